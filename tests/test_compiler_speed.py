"""What the compiler does to stay fast must not change what it produces (docs/compiler.md)."""

from __future__ import annotations

import gc
import subprocess
import sys

import pytest

from anesim.chips import all_chips, load_chip
from anesim.cli import COMMAND_MODULES, _command, build_parser
from anesim.compiler import Builder, compile_graph
from anesim.compiler.lowering.views import Buffer, View, reshape_view


@pytest.fixture(scope="module")
def m1():
    return load_chip("m1")


def test_a_task_reading_one_tensor_twice_gets_two_source_layouts(m1) -> None:
    # the timing tells a task's first source from the others by identity
    b = Builder("square")
    x = b.input("x", (1, 8, 4, 32))
    b.output(b.mul(b.relu(x), b.relu(x)))
    b.output(b.mul(x, x))
    tasks = compile_graph(b.build(), m1).program.tasks
    squares = [t for t in tasks if t.planar is not None and t.planar.op == "mul"
               and t.sources[0] == t.sources[1]]
    assert squares
    assert all(t.sources[0] is not t.sources[1] for t in squares)


def test_equal_layouts_and_plans_are_shared_between_tasks(m1) -> None:
    b = Builder("chain")
    x = b.input("x", (1, 8, 4, 32))
    for _ in range(4):
        x = b.add(b.relu(x), b.relu(x))
    b.output(x)
    result = compile_graph(b.build(), m1)
    plans = {id(i.plan) for i in result.task_info}
    assert len(plans) < len(result.task_info)


def test_the_garbage_collector_runs_again_after_a_compile(m1) -> None:
    b = Builder("t")
    b.output(b.relu(b.input("x", (1, 4, 4, 4))))
    graph = b.build()
    assert gc.isenabled()
    compile_graph(graph, m1)
    assert gc.isenabled()
    gc.disable()
    try:
        compile_graph(graph, m1)
        assert not gc.isenabled()  # a caller's choice is left as it was
    finally:
        gc.enable()


def test_reshape_depends_on_geometry_not_on_the_buffer() -> None:
    a = Buffer(0, "a", "intermediate", 1, 4, 8, 32).view()
    b = View(7, 4096, *a[2:])
    ra, rb = reshape_view(a, (1, 32, 1, 32)), reshape_view(b, (1, 32, 1, 32))
    assert ra is not None and rb is not None
    assert (rb.buffer, rb.offset) == (7, 4096)
    assert ra[2:] == rb[2:]
    assert reshape_view(View(1, 0, 1, 4, 8, 32, 0, 4096, 128), (1, 2, 16, 32)) is None  # planes padded past their rows


def test_a_chip_by_its_file_name_is_the_chip_of_the_full_list() -> None:
    chip = load_chip("m5-pro")
    assert chip is next(c for c in all_chips() if c.name == "M5 Pro")
    assert load_chip("t8103") is load_chip("M1")


def test_the_cli_registers_only_the_command_it_runs() -> None:
    assert _command(["run", "model.yaml", "--chip", "m1"]) == "run"
    assert _command(["--version"]) is None and _command(["nonsense"]) is None
    sub = next(a for a in build_parser("run")._actions if a.__class__.__name__ == "_SubParsersAction")
    assert list(sub.choices) == ["run"]
    every = next(a for a in build_parser()._actions if a.__class__.__name__ == "_SubParsersAction")
    assert list(every.choices) == COMMAND_MODULES
    code = ("import sys; from anesim.cli import build_parser; build_parser('run'); "
            "print(sorted(m for m in sys.modules if m.startswith('anesim.validate')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
