"""Project-level promises: the README's commands are the ones CI runs; the CLI behaves."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from anesim.cli import main


def _readme_commands(root: Path) -> list[str]:
    text = (root / "README.md").read_text()
    blocks = re.findall(r"## (Get started|Run the tests)\s+```sh\n(.*?)```", text, flags=re.S)
    return [cmd.strip() for _, block in blocks for cmd in block.strip().splitlines()]


def test_ci_runs_the_readme_commands(repo_root: Path) -> None:
    commands = _readme_commands(repo_root)
    assert len(commands) == 2, commands
    ci_lines = [line.strip() for line in (repo_root / ".ci" / "run").read_text().splitlines()]
    for command in commands:
        assert command in ci_lines, f"README command not run by .ci/run: {command}"


def test_no_subcommand_prints_help_and_fails(capsys) -> None:
    assert main([]) == 2
    assert "usage" in capsys.readouterr().out


def test_module_entry_point_runs() -> None:
    done = subprocess.run([sys.executable, "-m", "anesim", "--version"], capture_output=True, text=True)
    assert done.returncode == 0 and "anesim" in done.stdout


def test_console_runs_one_model_commands_without_the_collector(monkeypatch) -> None:
    import gc

    import pytest

    from anesim import cli

    seen: list[tuple[list[str], bool]] = []
    monkeypatch.setattr(cli, "main", lambda argv: seen.append((list(argv), gc.isenabled())) or 3)
    was_enabled = gc.isenabled()
    try:
        for argv, collector in ((["run", "x.yaml", "--timing-only"], False), (["compile", "x.yaml", "-o", "x.json"], False),
                                (["validate", "--json"], True), (["sweep", "x.yaml"], True), ([], True)):
            gc.enable()
            monkeypatch.setattr(sys, "argv", ["anesim", *argv])
            with pytest.raises(SystemExit) as info:
                cli.console()
            assert info.value.code == 3  # main's status is the process's
            assert seen[-1] == (argv, collector)
            assert gc.get_freeze_count() > 0  # (what is left is not walked again at the end)
            gc.unfreeze()
    finally:
        gc.unfreeze()
        (gc.enable if was_enabled else gc.disable)()


def test_usage_errors_are_one_line(capsys) -> None:
    import pytest

    with pytest.raises(SystemExit) as info:
        main(["no-such-command"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "error" in err
    # a count or a seed below zero is a usage error, not a traceback from deep inside
    for argv in (["compile", "programs/conv3x3.yaml", "--chip", "m1", "--tasks", "-5"],
                 ["run", "programs/conv3x3.yaml", "--chip", "m1", "--random-inputs", "-3"],
                 ["run", "programs/conv3x3.yaml", "--chip", "m1", "--random-inputs", "x"],
                 ["sweep", "programs/conv3x3.yaml", "--chips", "m1", "--out", "unused", "--workers", "-1"]):
        with pytest.raises(SystemExit) as info:
            main(argv)
        err = capsys.readouterr().err
        assert info.value.code == 2 and err.count("\n") == 1 and "0 or more" in err


def test_compile_report_shows_as_many_task_rows_as_asked(repo_root: Path) -> None:
    import anesim

    result = anesim.compile(repo_root / "programs" / "resnet_basic_block.yaml", "m1")  # three tasks
    for shown in range(5):
        text = result.report(max_tasks=shown).split("\ntask ")[1]
        rows = [line for line in text.splitlines()[1:] if not line.startswith("...")]
        assert len(rows) == min(shown, 3)
        assert ("more tasks" in text) == (shown < 3)


def test_readme_python_example_runs(repo_root: Path) -> None:
    text = (repo_root / "README.md").read_text()
    example = re.search(r"```python\n(.*?)```", text, flags=re.S).group(1)
    scope: dict = {}
    exec(compile(example, "README.md", "exec"), scope)  # noqa: S102 - our own documentation
    assert scope["timing"].latency_s > 0
    (out,) = scope["outputs"].values()
    assert out.shape == (1, 64, 32, 32) and float(out.astype("float32").min()) >= 0.0  # after ReLU
