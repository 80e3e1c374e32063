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


def test_emitted_tasks_equal_those_their_init_makes() -> None:
    from anesim.compiler.backend.emit import _task
    from anesim.program.model import Layout, Task

    layout = Layout("pool", None, 64, 4, 8, 32, "fp16", 64, 512, 1, 2048, 1, 2048)
    args = (0, (layout,), layout, None, None, 2, 1, 8, False, "t:copy")
    made, reference = _task(*args), Task(*args)
    assert type(made) is Task
    assert list(vars(made)) == list(vars(reference))  # the same fields in the same order
    assert made == reference and repr(made) == repr(reference)
    assert made.fields == {} and made.fields is not _task(*args).fields


def test_the_passes_leave_the_callers_graph_as_it_was() -> None:
    from anesim.compiler.graph.passes import run_passes

    b = Builder("t")
    x = b.input("x", (1, 8, 4, 4))
    y = b.op("transpose", [b.relu(x)], perm=(0, 1, 3, 2))
    b.output(b.op("identity", [b.matmul(x, y)]))
    graph = b.build()
    before = [(n.name, n.op, n.inputs, n.output, dict(n.attrs)) for n in graph.nodes]
    passed = run_passes(graph)
    assert [n.op for n in passed.nodes] != [n.op for n in graph.nodes]  # the passes did rewrite
    assert [(n.name, n.op, n.inputs, n.output, n.attrs) for n in graph.nodes] == before
    assert not any(p is n for p in passed.nodes for n in graph.nodes)


def test_the_rule_index_finds_the_row_a_scan_of_the_table_finds() -> None:
    from anesim.compiler.lowering.rules import load_rules

    table = load_rules()

    def scan(graph_op=None, name=None):
        for rule in table.ops:
            if graph_op is not None and graph_op in rule.graph_ops:
                return rule
            if name is not None and (name.lower() in rule.names or name in rule.onnx):
                return rule
        return None

    names = {"no_such_op", "Conv", "CONV"}
    for rule in table.ops:
        names |= {*rule.graph_ops, *rule.names, *rule.onnx, *(n.upper() for n in rule.names)}
    for name in names:
        assert table.op_rule(graph_op=name) is scan(graph_op=name)
        assert table.op_rule(name=name) is scan(name=name)
    for cond in table.conditions:
        assert table.condition(cond.check) is next(c for c in table.conditions if c.check == cond.check)


def test_expanding_a_program_file_leaves_no_reference_cycles(tmp_path) -> None:
    from anesim.compiler.frontends.program_file import load_program_file

    path = tmp_path / "p.yaml"
    path.write_text("name: p\nparams: {w: 8}\ninputs: {x: {shape: [1, 4, 2, '${w * 2}']}}\n"
                    "blocks:\n  b: {params: [t, s], ops: [{op: scale, in: $t, scale: '${s / 2}', out: y}],"
                    " returns: y}\n"
                    "ops:\n  - {use: b, with: {t: x, s: 1}, out: y0}\n"
                    "  - {repeat: 3, as: i, ops: [{use: b, with: {t: y0, s: '${i + 1}'}}]}\n"
                    "outputs: [y0]\n")
    gc.collect()
    gc.disable()
    try:
        graph = load_program_file(path)
        assert graph.outputs == ["y0"] and len(graph.nodes) > 4
        del graph
        assert gc.collect() == 0  # reference counting freed everything
    finally:
        gc.enable()


def test_op_rule_takes_one_key():
    """A graph op and a source-model name at once would leave one of them unread: refused."""
    from anesim.compiler.lowering.rules import load_rules

    with pytest.raises(TypeError, match="not both"):
        load_rules().op_rule(graph_op="conv", name="conv")
