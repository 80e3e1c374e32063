"""Bad input ends in one AnesimError naming the file, the position and what was expected."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from anesim import hwx
from anesim.cli import main
from anesim.errors import FormatError, ProgramError
from anesim.hwx.container import parse

SIGMOID = Path("tinygrad") / "sigmoid.hwx"
H14 = Path("alexaltea") / "matmul_h14.hwx"
TEXT = 0x4000  # file offset of __TEXT,__text in the tinygrad and alexaltea samples


@pytest.fixture()
def sigmoid(shared_dir: Path) -> bytes:
    return (shared_dir / "hwx" / SIGMOID).read_bytes()


def put(data: bytes, offset: int, value: int, fmt: str = "<I") -> bytes:
    out = bytearray(data)
    struct.pack_into(fmt, out, offset, value)
    return bytes(out)


def expect_format_error(data: bytes, *words: str) -> FormatError:
    with pytest.raises(FormatError) as info:
        parse(data, "bad.hwx")
    text = str(info.value)
    assert text.startswith("bad.hwx: ")
    for w in words:
        assert w in text, text
    return info.value


def test_empty_and_truncated_header() -> None:
    expect_format_error(b"", "byte 0x0", "Mach-O header", "expected 32 bytes")
    expect_format_error(b"\xce\xfa\xef\xbe" + bytes(10), "byte 0x0", "runs past the end")


def test_wrong_magic(sigmoid: bytes) -> None:
    err = expect_format_error(put(sigmoid, 0, 0xFEEDFACF), "wrong magic", "expected 0xbeefface", "found 0xfeedfacf")
    assert err.where == "byte 0x0"


def test_wrong_cputype_and_unknown_generation(sigmoid: bytes) -> None:
    expect_format_error(put(sigmoid, 4, 0x7), "wrong cputype", "byte 0x4")
    expect_format_error(put(sigmoid, 8, 8), "unknown ANE generation", "byte 0x8", "found 0x8")
    expect_format_error(put(sigmoid, 8, 0xEE), "unknown ANE generation")


def test_huge_counts_allocate_nothing(sigmoid: bytes) -> None:
    expect_format_error(put(sigmoid, 0x10, 0xFFFFFFFF), "more load commands than sizeofcmds", "byte 0x10")
    expect_format_error(put(sigmoid, 0x14, 0xFFFFFFF0), "sizeofcmds", "runs past the end")
    # __TEXT segment (load command 1 at 0x68): nsects = 2**32 - 1
    expect_format_error(put(sigmoid, 0x68 + 64, 0xFFFFFFFF), "more sections than its load command holds")
    # LC_THREAD (load command 6 at 0x2c8): state word count = 2**32 - 1
    expect_format_error(put(sigmoid, 0x2C8 + 12, 0xFFFFFFFF), "more words than its load command holds", "byte 0x2d4")
    # LC_SYMTAB (at 0xdf0): nsyms = 2**32 - 1
    expect_format_error(put(sigmoid, 0xDF0 + 12, 0xFFFFFFFF), "symbol table", "runs past the end")


def test_load_command_size_outside_area(sigmoid: bytes) -> None:
    expect_format_error(put(sigmoid, 0x68 + 4, 0x100000), "load command 1 has a size outside", "byte 0x6c")
    expect_format_error(put(sigmoid, 0x68 + 4, 4), "load command 1 has a size outside")


def test_sections_outside_file_or_overlapping(sigmoid: bytes) -> None:
    # __TEXT,__const (second section of the __TEXT command) offset moved past the end of the file
    const_off = 0x68 + 72 + 80 + 48
    expect_format_error(put(sigmoid, const_off, 0x7FF0), "runs past the end of the file")
    # ... or onto the command stream
    expect_format_error(put(sigmoid, const_off, 0x4100), "overlapping sections", "__TEXT,__const starts inside __TEXT,__text")
    # __text moved onto the load commands
    expect_format_error(put(sigmoid, 0x68 + 72 + 48, 0x100), "overlapping sections")


def test_task_group_overruns_its_task(sigmoid: bytes) -> None:
    # The last group (TileDMADst, 7 words) claims 9: two words past the end of the 0x274-byte task.
    err = expect_format_error(put(sigmoid, TEXT + 0x254, 0x20017800), "register group of task 0 runs past the end of the task",
                              "expected at most 7 words", "found 9 words")
    assert err.where == f"byte {TEXT + 0x254:#x}"


def test_first_task_size_from_thread_state(sigmoid: bytes) -> None:
    # LC_THREAD td_words (word 514 of the state) made huge: the first task cannot fit the stream.
    expect_format_error(put(sigmoid, 0x2C8 + 16 + 4 * 514, 0xFFFFFF), "task 0 runs past the end of the command stream")


def test_chained_task_pointing_backwards(shared_dir: Path) -> None:
    data = (shared_dir / "hwx" / "tinygrad" / "concat.hwx").read_bytes()
    expect_format_error(put(data, TEXT + 0x1C, 0x100), "overlaps it or lies outside", f"byte {TEXT + 0x1c:#x}")
    expect_format_error(put(data, TEXT + 0x1C, 0x10000), "overlaps it or lies outside")


def test_encoding_b_task_length(shared_dir: Path) -> None:
    data = (shared_dir / "hwx" / H14).read_bytes()
    expect_format_error(put(data, TEXT + 0x10, 0x07FF0000), "task 0 has an impossible length")
    expect_format_error(put(data, TEXT + 0x10, 0x00010000), "task 0 has an impossible length")


def test_truncation_at_every_structural_boundary(sigmoid: bytes) -> None:
    for cut in (31, 32, 0x68, 0x100, 0x2C8, 0xDF0, 0xE10, 0x4000, 0x4100, 0x4273, 0x4280, 0x42FF):
        with pytest.raises(FormatError):
            parse(sigmoid[:cut], "cut.hwx")


def test_raw_buffer_errors(shared_dir: Path) -> None:
    from anesim.hwx.raw import Sidecar, parse as parse_raw

    with pytest.raises(FormatError, match="runs past the end"):
        parse_raw(bytes(0x100), Sidecar(), "tiny.bin")
    with pytest.raises(FormatError, match="command size runs past"):
        parse_raw(bytes(0x400), Sidecar(command_size=0x800), "x.bin")
    with pytest.raises(FormatError, match="unknown ANE generation"):
        parse_raw(bytes(0x400), Sidecar(generation="H99"), "x.bin")


def test_sidecar_errors(tmp_path: Path) -> None:
    from anesim.hwx.raw import load_sidecar, parse as parse_raw

    bad = tmp_path / "bad.sidecar.json"
    bad.write_text("{not json")
    with pytest.raises(ProgramError, match="bad.sidecar.json: line 1"):
        load_sidecar(bad)
    bad.write_text(json.dumps({"format": "anesim-raw-sidecar", "version": 1, "buffers": [{"slot": 4, "name": "x", "role": "nope"}]}))
    with pytest.raises(ProgramError, match=r"\$.buffers\[0\].role: unknown buffer role"):
        load_sidecar(bad)
    # every key is read or refused: a misspelt key, an unknown type, a file of another size
    head = {"format": "anesim-raw-sidecar", "version": 1}
    for doc, needle in (({**head, "comand": {"size": 4}}, r"\$.comand: unknown key"),
                        ({**head, "command": {"size": 4, "task": 1}}, r"\$.command.task: unknown key"),
                        ({**head, "buffers": [{"slot": 4, "name": "x", "role": "input", "dtype": "fp32"}]},
                         r"\$.buffers\[0\].dtype: unknown buffer type")):
        bad.write_text(json.dumps(doc))
        with pytest.raises(ProgramError, match=needle):
            load_sidecar(bad)
    bad.write_text(json.dumps({**head, "file_size": 0x800}))
    with pytest.raises(FormatError, match="x.bin: byte 0x0: the sidecar describes a file of another size"):
        parse_raw(bytes(0x400), load_sidecar(bad), "x.bin")


def test_asm_rejects_bad_json(sigmoid: bytes) -> None:
    doc = hwx.to_json(hwx.decode_bytes(sigmoid, file="s.hwx"), summary=False)
    with pytest.raises(ProgramError, match="not a decoded anesim program"):
        hwx.encode({"format": "x"})
    broken = json.loads(json.dumps(doc))
    task = broken["regions"][-4]["stream"]["items"][0] if "stream" in broken["regions"][-4] else next(
        r for r in broken["regions"] if "stream" in r)["stream"]["items"][0]
    task["groups"][1]["registers"][0]["fields"]["Win"] = 1 << 20
    with pytest.raises(ProgramError, match=r"\.fields\.Win: value out of range"):
        hwx.encode(broken)
    broken = json.loads(json.dumps(doc))
    next(r for r in broken["regions"] if "stream" in r)["stream"]["items"][0]["groups"][1]["registers"][0]["fields"]["Bogus"] = 1
    with pytest.raises(ProgramError, match="has no field 'Bogus'"):
        hwx.encode(broken)
    broken = json.loads(json.dumps(doc))
    broken["regions"][0]["data"]["size"] = 1 << 40
    with pytest.raises(ProgramError, match="value out of range"):
        hwx.encode(broken)  # refused before anything is allocated
    broken = json.loads(json.dumps(doc))
    broken["load_commands"][0]["cmd"] = ["not", "a", "name"]
    with pytest.raises(ProgramError, match="expected an integer"):
        hwx.encode(broken)


def test_cli_reports_one_line_and_exit_2(tmp_path: Path, sigmoid: bytes, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.hwx"
    bad.write_bytes(put(sigmoid, 0, 0x12345678))
    assert main(["disasm", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "bad.hwx: byte 0x0: not an ANE program: wrong magic" in err[0]
    js = tmp_path / "bad.json"
    js.write_text("[1, 2")
    assert main(["asm", str(js), "-o", str(tmp_path / "out")]) == 2
    assert "bad.json: line 1" in capsys.readouterr().err
