"""Chip configs: every built-in profile loads, names resolve, bad files fail clearly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from anesim.chips import PROVENANCES, Param, all_chips, builtin_chip_dir, load_chip, load_chip_file
from anesim.cli import main
from anesim.cli.chips import chip_fields
from anesim.errors import AnesimError, ConfigError

REQUIRED_CHIPS = [
    "M1", "M1 Pro", "M1 Max", "M1 Ultra", "M2", "M2 Pro", "M2 Max", "M2 Ultra",
    "M3", "M3 Pro", "M3 Max", "M3 Ultra", "M4", "M4 Pro", "M4 Max", "M5", "M5 Pro", "M5 Max",
    "A11", "A12", "A13", "A14", "A15", "A16", "A17 Pro", "A18", "A18 Pro", "A19",
]


def test_every_required_chip_is_shipped() -> None:
    names = {c.name for c in all_chips()}
    assert set(REQUIRED_CHIPS) <= names
    assert len(names) == len(all_chips()), "chip names must be unique"


@pytest.mark.parametrize("spec, name", [
    ("m1", "M1"), ("M1", "M1"), ("t8103", "M1"), ("M5 Pro", "M5 Pro"), ("m5-pro", "M5 Pro"),
    ("m5_pro", "M5 Pro"), ("a17 pro", "A17 Pro"), ("M1 MAX", "M1 Max"),
])
def test_names_and_aliases_resolve(spec: str, name: str) -> None:
    assert load_chip(spec).name == name


def test_aliases_are_unambiguous() -> None:
    from anesim.chips.loader import normalize_name

    seen: dict[str, str] = {}
    for chip in all_chips():
        for alias in {normalize_name(a) for a in [chip.name, *chip.aliases]}:
            assert seen.setdefault(alias, chip.name) == chip.name, f"{alias} names two chips"


def test_every_numeric_field_has_provenance_and_source() -> None:
    for chip in all_chips():
        for key, value in chip_fields(chip):
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                pytest.fail(f"{chip.name}: {key} is a bare number without provenance")
            if isinstance(value, Param):
                assert value.provenance in PROVENANCES
                assert value.source.strip(), f"{chip.name}: {key} has an empty source"


def test_chip_files_inherit_a_generation() -> None:
    for path in sorted(builtin_chip_dir().glob("*.yaml")):
        data = yaml.safe_load(path.read_text())
        assert "inherits" in data, f"{path.name} must inherit a generation file"


def test_derived_peak_is_positive_and_ordered() -> None:
    m1, m1_max, m5_pro = load_chip("m1"), load_chip("m1 max"), load_chip("m5 pro")
    assert m1.peak_fp16_flops_per_s > 1e12
    assert m5_pro.peak_fp16_flops_per_s > m1.peak_fp16_flops_per_s
    assert m1_max.peak_fp16_flops_per_s >= m1.peak_fp16_flops_per_s


def test_cli_lists_chips(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["chips"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in REQUIRED_CHIPS)
    assert main(["chips", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) >= 28
    assert {"name", "generation", "ne_cores", "clock_hz", "peak_fp16_flops_per_s"} <= set(rows[0])


def test_cli_show_json_carries_provenance(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["chips", "show", "m5-pro", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)

    def walk(node: object, path: str) -> None:
        if isinstance(node, dict):
            if "value" in node:
                assert node["provenance"] in PROVENANCES, path
                assert node["source"], path
                return
            for key, child in node.items():
                if key not in ("derived", "year_note"):
                    walk(child, f"{path}.{key}")
        elif isinstance(node, (int, float)) and not isinstance(node, bool):
            pytest.fail(f"{path} is a bare number")

    walk({k: v for k, v in data.items() if k != "derived"}, "")
    assert data["name"] == "M5 Pro"


def test_cli_show_text(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["chips", "show", "m1"]) == 0
    out = capsys.readouterr().out
    assert "ne.clock_hz" in out and "provenance" in out


# --- bad configs ---------------------------------------------------------------------------

def _user_chip(tmp_path: Path, body: dict, name: str = "mychip.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(body, sort_keys=False))
    return path


def _base_body() -> dict:
    return {"inherits": "m1", "name": "My Chip", "aliases": ["mine"]}


def test_user_chip_file_loads(tmp_path: Path) -> None:
    body = _base_body()
    body["ne"] = {"cores": {"value": 8, "provenance": "predicted", "source": "what-if study"}}
    chip = load_chip(_user_chip(tmp_path, body))
    assert chip.name == "My Chip"
    assert chip.ne.cores.value == 8
    assert chip.ne.clock_hz == load_chip("m1").ne.clock_hz


def _expect_cli_error(capsys: pytest.CaptureFixture[str], path: Path, *needles: str) -> str:
    assert main(["chips", "show", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, f"expected one line, got: {err!r}"
    assert "Traceback" not in err
    for needle in needles:
        assert needle in err, f"{needle!r} not in {err!r}"
    return err


def test_misspelt_key_names_file_and_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    body = _base_body()
    body["ne"] = {"coers": {"value": 8, "provenance": "predicted", "source": "x"}}
    path = _user_chip(tmp_path, body)
    _expect_cli_error(capsys, path, "mychip.yaml", "ne.coers", "unknown key")


def test_misspelt_param_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    body = _base_body()
    body["ne"] = {"cores": {"value": 8, "provenence": "predicted", "source": "x"}}
    _expect_cli_error(capsys, _user_chip(tmp_path, body), "mychip.yaml", "ne.cores")


def test_missing_field(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _user_chip(tmp_path, {"name": "Lonely", "family": "M"})
    _expect_cli_error(capsys, path, "mychip.yaml", "missing key")


@pytest.mark.parametrize("value, needle", [("four", "ne.cores"), (4.5, "ne.cores"), (True, "ne.cores")])
def test_wrong_type(tmp_path: Path, capsys: pytest.CaptureFixture[str], value: object, needle: str) -> None:
    body = _base_body()
    body["ne"] = {"cores": {"value": value, "provenance": "predicted", "source": "x"}}
    _expect_cli_error(capsys, _user_chip(tmp_path, body), "mychip.yaml", needle)


@pytest.mark.parametrize("key, value", [("cores", 0), ("cores", -4), ("clock_hz", 0.0), ("clock_hz", -1e9)])
def test_zero_or_negative_quantity(tmp_path: Path, capsys: pytest.CaptureFixture[str], key: str, value: float) -> None:
    body = _base_body()
    body["ne"] = {key: {"value": value, "provenance": "predicted", "source": "x"}}
    _expect_cli_error(capsys, _user_chip(tmp_path, body), "mychip.yaml", f"ne.{key}", "greater than 0")


@pytest.mark.parametrize("caps, needle", [([], "at least 1 item"), ([32, 16, 8, 4], "at most 3 items")])
def test_ocg_byte_caps_hold_one_to_three_formats(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                 caps: list, needle: str) -> None:
    """The output-channel-group byte caps are read per weight format (fp16, 8-bit, palette): an
    empty list raised IndexError in the compiler (found by fuzzing), a fourth entry would be ignored."""
    body = _base_body()
    body["ne"] = {"ocg_byte_caps_per_element": {"value": caps, "provenance": "predicted", "source": "x"}}
    _expect_cli_error(capsys, _user_chip(tmp_path, body), "mychip.yaml", "ne.ocg_byte_caps_per_element", needle)


def test_bad_provenance(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    body = _base_body()
    body["ne"] = {"cores": {"value": 4, "provenance": "guessed", "source": "x"}}
    _expect_cli_error(capsys, _user_chip(tmp_path, body), "ne.cores.provenance")


def test_unknown_parent(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    body = _base_body()
    body["inherits"] = "h99"
    _expect_cli_error(capsys, _user_chip(tmp_path, body), "mychip.yaml", "inherits", "unknown parent", "h99")


def test_cycle_of_parents(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _user_chip(tmp_path, {"inherits": "loop-b", "name": "A"}, "loop-a.yaml")
    path = _user_chip(tmp_path, {"inherits": "loop-a", "name": "B"}, "loop-b.yaml")
    _expect_cli_error(capsys, path, "cycle of parents", "inherits")


def test_malformed_yaml(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("name: [unclosed\nne: {cores: 4\n")
    _expect_cli_error(capsys, path, "broken.yaml", "malformed YAML", "line")


def test_not_a_mapping(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "list.yaml"
    path.write_text("- a\n- b\n")
    _expect_cli_error(capsys, path, "list.yaml", "mapping")


def test_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _expect_cli_error(capsys, tmp_path / "nope.yaml", "nope.yaml", "no such chip file")


def test_unknown_chip_name(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["chips", "show", "m99"]) == 2
    err = capsys.readouterr().err
    assert "unknown chip" in err and "'m99'" in err and err.count("\n") == 1


def test_error_is_attributed_to_the_parent_file(tmp_path: Path) -> None:
    _user_chip(tmp_path, {"inherits": "h13", "ne": {"bogus": 1}}, "mygen.yaml")
    path = _user_chip(tmp_path, {"inherits": "mygen", "name": "Child"}, "child.yaml")
    with pytest.raises(ConfigError) as info:
        load_chip_file(path)
    assert "mygen.yaml" in str(info.value) and "ne.bogus" in str(info.value)


_scalars = st.one_of(st.none(), st.booleans(), st.integers(-10, 10**12), st.floats(allow_nan=True),
                     st.text(max_size=8))
_trees = st.recursive(_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=4)), max_leaves=12)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(section=st.sampled_from(["ne", "memory", "dram", "dispatch", "capability", "identity", "planar", "year"]),
       junk=_trees)
def test_fuzzed_sections_fail_only_with_config_error(tmp_path: Path, section: str, junk: object) -> None:
    body = _base_body()
    body[section] = junk
    path = _user_chip(tmp_path, body, "fuzz.yaml")
    try:
        load_chip_file(path)
    except AnesimError as exc:
        assert "fuzz.yaml" in str(exc) or "m1" in str(exc).lower()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(max_size=200))
def test_fuzzed_text_fails_only_with_config_error(tmp_path: Path, text: str) -> None:
    path = tmp_path / "raw.yaml"
    path.write_text(text, encoding="utf-8")
    try:
        load_chip_file(path)
    except AnesimError:
        pass
