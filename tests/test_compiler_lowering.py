"""Lowering decisions: OCG, cores, passes, Winograd, tiling, chaining, fusion, splits, numerics."""

from __future__ import annotations

import math

import numpy as np
import pytest

import anesim
from anesim.chips import load_chip
from anesim.errors import AnesimError
from anesim.compiler import Builder, compile_graph
from anesim.compiler.lowering import capability
from anesim.compiler.lowering.kernels import KernelSource, make_kernel, pack_per_core
from anesim.compiler.lowering.luts import build_table
from anesim.compiler.reference import fp16_inputs, run_graph, run_program
from anesim.compiler.reference.tables import evaluate
from anesim.program.kernels import gather_weights
from anesim.program.model import KernelPlacement


@pytest.fixture(scope="module")
def m1():
    return load_chip("m1")


def _one(build, chip, cores=None):
    b = Builder("t")
    b.output(build(b))
    return compile_graph(b.build(), chip, cores=cores)


def _check_numerics(graph, chip, tol=5e-3):
    result = compile_graph(graph, chip)
    inputs = fp16_inputs(graph, 7)
    ref = run_graph(graph, inputs)
    got = result.execute(inputs, run_program)
    for name, want in ref.items():
        scale = float(np.max(np.abs(want))) + 1e-6
        err = float(np.max(np.abs(want - got[name]))) / scale
        assert err < tol, f"{graph.name}/{name}: relative error {err:.3g}"
    return result


# -- geometry --------------------------------------------------------------------------------

@pytest.mark.parametrize("cout, cin, hw, kernel, cores, expect", [
    # H13 samples (16 NE channels): conv 3->3 on 4 cores with OCG 1; the 512x512 inner product on
    # 16 cores with OCG 32 (command-stream.md §3.10: ActiveNE 2 / OCGSize 0 and 4 / 5).
    (3, 3, 1, 1, 16, (1, 4, 1)),
    (512, 512, 1, 1, 16, (32, 16, 1)),
    (2, 3, 2, 1, 16, (1, 2, 1)),
    # M1 (4 cores): a 1x1 conv at 32x32 in default source mode holds 16 channels per pass.
    (256, 256, 32, 1, 4, (16, 4, 4)),
    (192, 256, 32, 1, 4, (16, 4, 3)),
    # 3x3 stride 2 (no Winograd): floor_pow2(8 / 9) clamps to 1, times 2 channels per accumulator.
    (64, 64, 56, 3, 4, (2, 4, 8)),
])
def test_ocg_cores_passes(m1, cout, cin, hw, kernel, cores, expect) -> None:
    stride = 2 if kernel == 3 else 1
    size = hw * stride

    def build(b):
        return b.conv2d(b.input("x", (1, cin, size, size)), cout, kernel=kernel, stride=stride,
                        padding=kernel // 2)

    result = _one(build, m1, cores=cores)
    task = result.program.tasks[0]
    passes = result.task_info[0].plan.passes
    assert (task.ocg_size, task.cores_used, passes) == expect
    assert passes == math.ceil(cout / (task.ocg_size * task.cores_used))


def test_cores_are_next_power_of_two_and_capped(m1) -> None:
    for cout, cores in ((1, 1), (2, 2), (3, 4), (5, 4), (64, 4)):
        task = _one(lambda b, c=cout: b.conv2d(b.input("x", (1, 8, 1, 1)), c, kernel=1), m1).program.tasks[0]
        assert task.cores_used == cores


def test_winograd_not_selected_by_default(m1) -> None:
    task = _one(lambda b: b.conv2d(b.input("x", (1, 64, 28, 28)), 64, kernel=3, padding=1), m1)
    assert not task.program.tasks[0].winograd


def test_winograd_only_for_dense_3x3_stride_1(m1, monkeypatch: pytest.MonkeyPatch) -> None:
    from anesim.compiler.lowering import tile

    monkeypatch.setattr(tile, "SELECT_WINOGRAD", True)

    def flag(**kw):
        cin = kw.pop("cin", 64)
        kw.setdefault("padding", 1)
        task = _one(lambda b: b.conv2d(b.input("x", (1, cin, 28, 28)), 64, kernel=3, **kw), m1)
        return task.program.tasks[0].winograd

    assert flag()
    assert not flag(stride=2)
    assert not flag(groups=64)
    assert not flag(dilation=2, padding=2)
    assert not flag(cin=4)
    m1_no = load_chip("a11")  # the A11 profile has no Winograd-enable bit
    if not m1_no.ne.winograd.value:
        task = _one(lambda b: b.conv2d(b.input("x", (1, 64, 28, 28)), 64, kernel=3, padding=1), m1_no)
        assert not task.program.tasks[0].winograd


def test_tile_height_keeps_the_tile_under_the_working_set_cap(m1) -> None:
    cap = m1.memory.working_set_cap_bytes.value
    result = _one(lambda b: b.conv2d(b.input("x", (1, 64, 256, 256)), 64, kernel=3, padding=1), m1)
    task = result.program.tasks[0]
    assert 1 <= task.tile_height < 256
    rows_in = task.tile_height + 2
    need = (task.tile_height * task.result.row_stride_bytes * 64
            + rows_in * task.sources[0].row_stride_bytes * 64)
    assert need <= cap
    small = _one(lambda b: b.conv2d(b.input("x", (1, 64, 32, 32)), 64, kernel=3, padding=1), m1)
    assert small.program.tasks[0].tile_height == 32


def test_large_weights_split_into_sub_layers(m1, monkeypatch) -> None:
    monkeypatch.setattr(capability, "KERNEL_STREAM_CAP_BYTES", 256 * 1024)
    result = _one(lambda b: b.linear(b.input("x", (1, 512, 1, 64)), 512, bias=True), m1)
    tasks = result.program.tasks
    assert len(tasks) == 2  # 512 KB of weights, 256 KB per task
    assert [t.result.channels for t in tasks] == [256, 256]
    assert tasks[1].result.offset_bytes == 256 * tasks[0].result.plane_stride_bytes
    assert all(t.ne.kernel.shape == (256, 512, 1, 1) for t in tasks)


# -- fusion, chaining, segments ----------------------------------------------------------------

def test_conv_bias_scale_activation_fuse_into_one_task(m1) -> None:
    def build(b):
        y = b.conv2d(b.input("x", (1, 8, 8, 8)), 8, kernel=3, padding=1, bias=True)
        y = b.mul(y, b.constant("s", 0.5, shape=(1,)))
        y = b.add(y, b.constant("c", "normal", shape=(1, 8, 1, 1)))
        return b.sigmoid(y)

    result = _one(build, m1)
    assert len(result.program.tasks) == 1
    ne = result.program.tasks[0].ne
    assert ne.post_scale == 0.5 and ne.activation == "lut" and ne.table.name == "sigmoid"
    assert result.task_info[0].fused == ("mul", "add", "sigmoid")


def test_two_live_inputs_stay_on_the_planar_engine(m1) -> None:
    def build(b):
        x = b.input("x", (1, 8, 8, 8))
        return b.relu(b.add(b.conv2d(x, 8, kernel=1), x))

    tasks = _one(build, m1).program.tasks
    assert [t.name.split(":")[1] for t in tasks] == ["conv", "add"]
    assert tasks[1].planar.relu


def test_chained_intermediates_stay_in_the_pool(repo_root, m1) -> None:
    from anesim.compiler import compile_file

    result = compile_file(repo_root / "programs" / "conv1x1_chain.yaml", m1)
    spaces = [t.result.space for t in result.program.tasks]
    assert spaces == ["pool"] * 7 + ["dram"]
    for prev, task in zip(result.program.tasks, result.program.tasks[1:]):
        assert task.sources[0] == prev.result  # read exactly as written


def test_intermediates_stay_resident_across_engines_and_fan_out(m1) -> None:
    def build(b):
        x = b.input("x", (1, 16, 8, 8))
        a = b.conv2d(x, 16, kernel=1)       # two consumers, one of them two tasks later
        c = b.conv2d(a, 16, kernel=1)
        return b.add(a, c)                   # planar after NE

    tasks = _one(build, m1).program.tasks
    # ch. 22's resident (type 0) tensors: on chip over their live range, whoever reads them
    assert [t.result.space for t in tasks] == ["pool", "pool", "dram"]
    b = Builder("t")
    b.output(build(b))
    plain = compile_graph(b.build(), m1, chain=False).program.tasks
    assert [t.result.space for t in plain] == ["dram", "dram", "dram"]


def test_residual_block_keeps_its_branch_input_on_chip_and_adds_in_place(m1) -> None:
    b = Builder("res")
    x = b.input("x", (1, 64, 32, 32))
    y = b.relu(b.conv2d(x, 64, kernel=1))
    for _ in range(2):  # two blocks: the branch input lives across three tasks
        h = b.relu(b.conv2d(y, 64, kernel=3, padding=1))
        h = b.conv2d(h, 64, kernel=3, padding=1)
        y = b.relu(b.add(h, y))
    b.output(y)
    graph = b.build()
    result = _check_numerics(graph, m1)  # in-place adds and pool reuse leave the values alone
    tasks = result.program.tasks
    assert [t.result.space for t in tasks] == ["pool"] * (len(tasks) - 1) + ["dram"]
    first_add = next(t for t in tasks if t.planar is not None and t.planar.op == "add")
    # the add writes its result over the branch output that dies with it (type 4, in place)
    assert first_add.result.offset_bytes in [s.offset_bytes for s in first_add.sources]


def test_intermediate_over_the_working_set_cap_streams(m1) -> None:
    def build(b):
        x = b.input("x", (1, 64, 128, 128))  # 2 MB at fp16: the M1's cap is 2 MiB, rows pad to 64 B
        a = b.conv2d(x, 80, kernel=1)        # 2.6 MB: over the cap
        c = b.conv2d(x, 80, kernel=1)
        return b.add(a, c)

    tasks = _one(build, m1).program.tasks
    assert [t.result.space for t in tasks] == ["dram", "dram", "dram"]


@pytest.mark.parametrize("c_out, space", [(256, "pool"), (1280, "dram")])
def test_a_layer_whose_weights_exceed_the_cap_streams_its_operands(m1, c_out, space) -> None:
    def build(b):
        x = b.input("x", (1, 1024, 1, 8))
        y = b.conv2d(x, c_out, kernel=1)    # 1024 x 1280 fp16 = 2.6 MB of weights: over the 2 MiB cap
        return b.add(y, b.relu(y))           # two readers on both engines: not chainable

    tasks = _one(build, m1).program.tasks
    conv = next(t for t in tasks if t.ne is not None and t.ne.op == "conv")
    assert conv.result.space == space


def test_unsupported_op_splits_into_segments(m1) -> None:
    b = Builder("split")
    x = b.input("x", (1, 4, 6, 8))
    y = b.conv2d(x, 4, kernel=1, bias=True)
    t = b.transpose(y, (0, 1, 3, 2))        # moves the width axis: host
    z = b.relu(b.conv2d(t, 4, kernel=1))
    b.output(z)
    graph = b.build()
    result = _check_numerics(graph, m1)
    assert result.dispatches == 2
    assert [h.node.op for h in result.host_ops] == ["transpose"]
    assert "width axis" in result.host_ops[0].reason
    report = result.report()
    assert "2 dispatches" in report and "host: transpose" in report
    seg = result.segments[1]
    assert [s.role for s in seg.program.tensors.values()].count("input") == 1


def test_an_output_that_is_a_view_is_written_before_a_cut(m1) -> None:
    """An identity of a concat is an output; slices of the concat feed a product the host runs.

    The output's copy used to be emitted after the host op, in the next segment, which cannot
    read the first segment's intermediates: it came back as zeros (attention with a past
    key/value cache and grouped heads)."""
    b = Builder("cache")
    past, new = b.input("past", (2, 3, 12, 8)), b.input("new", (2, 3, 6, 8))
    q = b.input("q", (2, 6, 4, 8))
    cat = b.concat([past, new], axis=2)
    present = b.op("identity", [cat], name="present")
    heads = b.concat([b.slice(cat, 1, h, h + 1) for h in (0, 0, 1, 1, 2, 2)], axis=1)
    scores = b.matmul(q, heads, transpose_b=True)  # a run-time transposed right operand: the host
    b.output(b.relu(scores), present)
    result = _check_numerics(b.build(), m1)
    assert result.dispatches == 2 and [h.node.op for h in result.host_ops] == ["matmul"]


def test_kernel_size_over_the_tier_limit_runs_on_the_host(m1) -> None:
    def build(b):
        return b.conv2d(b.input("x", (1, 4, 20, 20)), 4, kernel=(3, 15))

    assert _one(build, m1).host_ops[0].reason.startswith("kernel 3x15 exceeds")
    assert not _one(build, load_chip("m5")).host_ops  # A14 tier and later: 16 wide


def test_dimension_over_the_chip_maximum_runs_on_the_host(m1) -> None:
    result = _one(lambda b: b.relu(b.input("x", (1, 1, 2, 20000))), m1)
    assert "maximum dimension" in result.host_ops[0].reason


def test_a_batch_has_its_own_limit_per_tier(m1) -> None:
    """Max tensor N: 4096 below the A13 tier, 65536 from it (not the 16384 of a width or height)."""
    def build(n: int):
        return lambda b: b.relu(b.input("x", (n, 1, 1, 2)))

    assert not _one(build(20000), m1).host_ops
    a11 = load_chip("a11")
    assert not _one(build(4096), a11).host_ops
    assert _one(build(4097), a11).host_ops[0].reason == "a batch of 4097 exceeds this tier's maximum 4096"


# -- kernels and tables --------------------------------------------------------------------

@pytest.mark.parametrize("cores, ocg", [(4, 1), (4, 8), (16, 32), (2, 3)])
def test_per_core_packing_matches_the_kernel_placement(cores: int, ocg: int) -> None:
    rng = np.random.default_rng(0)
    w = rng.standard_normal((37, 5, 3, 3)).astype(np.float32)
    kernel = make_kernel(KernelSource(w.shape, lambda: w), cores, ocg)
    buffers = pack_per_core(kernel, cores, ocg)
    offsets, pos = [], 0
    for buf in buffers:
        offsets.append(pos)
        pos += len(buf)
    placement = KernelPlacement(1, tuple(offsets), tuple(len(b) for b in buffers), ocg, cores,
                                64 * math.ceil(5 * 9 * 2 / 64), w.shape)
    got = gather_weights(b"".join(buffers), placement, "fp16")
    assert np.array_equal(got, kernel.weights)
    assert kernel.dram_bytes == sum(len(b) for b in buffers)


@pytest.mark.parametrize("name, fn, lo, hi, tol", [
    ("exp2", np.exp2, -12.0, 12.0, 2e-3),
    ("recip", lambda x: 1 / x, 1e-3, 1e3, 2e-3),
    ("sqrt", np.sqrt, 1e-4, 1e4, 2e-3),
    ("rsqrt", lambda x: 1 / np.sqrt(x), 1e-4, 1e4, 2e-3),
    ("log2", np.log2, 1e-3, 1e3, 1e-2),
    ("sigmoid", lambda x: 1 / (1 + np.exp(-x)), -12.0, 12.0, 5e-3),
    ("tanh", np.tanh, -6.0, 6.0, 6e-3),
])
def test_lookup_tables_are_accurate(name, fn, lo, hi, tol) -> None:
    table = build_table(name)
    xs = np.geomspace(lo, hi, 500) if lo > 0 else np.linspace(lo, hi, 501)
    want = fn(xs)
    got = evaluate(table, xs)
    err = np.abs(got - want) / np.maximum(np.abs(want), 1.0 if lo <= 0 else 1e-30)
    assert float(err.max()) < tol
    assert table.samples.dtype == np.uint16 and table.samples.size == 33


# -- numerics of the lowering (float32 interpreter against numpy) ------------------------------

def _graph(name, shapes, body):
    b = Builder(name, seed=11)
    ins = [b.input(f"x{i}", s) for i, s in enumerate(shapes)]
    out = body(b, *ins)
    b.output(*(out if isinstance(out, tuple) else (out,)))
    return b.build()


CASES = {
    "softmax_c": ([(1, 6, 5, 7)], lambda b, x: b.softmax(x, axis=1)),
    "softmax_h": ([(1, 6, 5, 7)], lambda b, x: b.softmax(x, axis=2)),
    "softmax_w": ([(1, 6, 5, 7)], lambda b, x: b.softmax(x, axis=3)),
    "layer_norm_c": ([(1, 6, 5, 7)], lambda b, x: b.layer_norm(x, 1, gamma="normal", beta="normal")),
    "layer_norm_w": ([(1, 6, 5, 7)], lambda b, x: b.layer_norm(x, -1, gamma="normal", beta="normal")),
    "rms_norm_h": ([(1, 6, 5, 7)], lambda b, x: b.rms_norm(x, 2, gamma="normal")),
    "reduce_mean_h": ([(1, 6, 5, 7)], lambda b, x: b.op("reduce_mean", [x], axis=2)),
    "reduce_sum_w": ([(1, 6, 5, 7)], lambda b, x: b.op("reduce_sum", [x], axis=3)),
    "reduce_max_c": ([(1, 6, 5, 7)], lambda b, x: b.op("reduce_max", [x], axis=1)),
    "matmul": ([(1, 3, 5, 4), (1, 3, 4, 6)], lambda b, x, y: b.matmul(x, y)),
    "matmul_ta": ([(1, 3, 4, 5), (1, 3, 4, 6)], lambda b, x, y: b.matmul(x, y, transpose_a=True)),
    "matmul_const": ([(7, 5)], lambda b, x: b.matmul(x, b.constant("w", "normal", shape=(5, 6)))),
    "matmul_const_tb": ([(7, 5)], lambda b, x: b.matmul(x, b.constant("w", "normal", shape=(6, 5)),
                                                         transpose_b=True)),
    "matmul_stacked": ([(3, 4, 5, 6)], lambda b, x: b.matmul(x, b.constant("w", "normal", shape=(6, 7)))),
    "matmul_stacked_n": ([(1, 4, 5, 6)], lambda b, x: b.matmul(x, b.constant("w", "normal", shape=(3, 1, 6, 7)))),
    "gelu": ([(1, 4, 3, 5)], lambda b, x: b.gelu(x)),
    "silu": ([(1, 4, 3, 5)], lambda b, x: b.activation("silu", x)),
    "leaky_relu": ([(1, 4, 3, 5)], lambda b, x: b.activation("leaky_relu", x, alpha=0.1)),
    "exp_log": ([(1, 4, 3, 5)], lambda b, x: b.activation("log", b.activation("exp", x))),
    "rsqrt": ([(1, 4, 3, 5)], lambda b, x: b.activation("rsqrt", b.scale(b.activation("square", x), 1, 0.5))),
    "broadcast": ([(1, 4, 3, 5), (1, 1, 3, 1)], lambda b, x, y: b.mul(x, y)),
    "broadcast_c": ([(1, 4, 3, 5), (1, 4, 1, 5)], lambda b, x, y: b.sub(x, y)),
    "broadcast_hw": ([(1, 4, 3, 70), (1, 4, 1, 1)], lambda b, x, y: b.sub(x, y)),  # a group norm's mean
    "broadcast_chw": ([(1, 4, 3, 5), (1, 1, 1, 1)], lambda b, x, y: b.div(y, x)),
    "const_ops": ([(1, 4, 3, 5)], lambda b, x: b.div(b.sub(b.constant("k", 2.0, shape=(1,)), x),
                                                     b.constant("d", 4.0, shape=(1,)))),
    "concat": ([(1, 4, 3, 5), (1, 2, 3, 5)], lambda b, x, y: b.concat(
        [b.conv2d(x, 3, kernel=1), b.conv2d(y, 2, kernel=1), x], axis=1)),
    "views": ([(1, 8, 3, 5)], lambda b, x: b.relu(b.transpose(
        b.slice(b.reshape(x, (1, 2, 12, 5)), 2, 2, 10, 2), (0, 2, 1, 3)))),
    "pools": ([(1, 4, 9, 9)], lambda b, x: (b.max_pool2d(x, 3, 2, 1), b.avg_pool2d(x, 2))),
    "grouped": ([(1, 8, 9, 9)], lambda b, x: b.conv2d(x, 8, kernel=3, stride=2, dilation=1, groups=4,
                                                       padding=1, bias=True, activation="relu6")),
    "batch2": ([(2, 4, 6, 6)], lambda b, x: b.conv2d(x, 4, kernel=3, padding=1, bias=True)),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_lowering_matches_numpy(m1, case: str) -> None:
    shapes, body = CASES[case]
    _check_numerics(_graph(case, shapes, body), m1)


def test_quantised_weights_match_their_dequantised_reference(m1) -> None:
    from anesim.compiler.reference.program import dequantize

    for fmt, bits in (("int8", 0), ("uint8", 0), ("palette", 4), ("palette", 2)):
        graph = _graph(fmt, [(1, 16, 6, 6)], lambda b, x: b.conv2d(
            x, 8, kernel=3, padding=1, weight_format=fmt, palette_bits=bits or None))
        result = compile_graph(graph, m1)
        kernel = result.program.tasks[0].ne.kernel
        assert kernel.format == fmt
        w = dequantize(kernel)
        inputs = fp16_inputs(graph, 1)
        x = inputs["x0"].astype(np.float32)
        from anesim.compiler.reference.ops import _conv2d

        want = _conv2d(x, w, None, {"stride": (1, 1), "dilation": (1, 1), "padding": (1, 1, 1, 1), "groups": 1})
        got = result.execute(inputs, run_program)[graph.outputs[0]]
        assert float(np.max(np.abs(want - got))) < 2e-2 * float(np.max(np.abs(want)))
        if fmt != "palette" or bits >= 4:  # few-bit palettes are coarse by nature
            exact = run_graph(graph, inputs)[graph.outputs[0]]
            assert float(np.max(np.abs(exact - got))) < 0.35 * float(np.max(np.abs(exact)))


def test_sparse_linear_prunes_deterministically_and_moves_fewer_bytes(m1) -> None:
    def build(s: float):  # type: ignore[no-untyped-def]
        b = Builder("sparse")
        b.output(b.linear(b.input("x", (1, 256, 1, 16)), 128, sparsity=s, name="fc"))
        return compile_graph(b.build(), m1)

    dense, sparse = build(0.0), build(0.75)
    kd, ks = dense.program.tasks[0].ne.kernel, sparse.program.tasks[0].ne.kernel
    assert ks.sparse_mask is not None and kd.sparse_mask is None
    assert abs(1 - ks.sparse_mask.mean() - 0.75) < 0.02
    # a 1-bit mask plus a quarter of the fp16 values: (1 + 4) / 16 of the dense bytes
    assert ks.dram_bytes == pytest.approx(kd.dram_bytes * 5 / 16, rel=0.02)
    assert np.array_equal(np.asarray(build(0.75).program.tasks[0].ne.kernel.weights), np.asarray(ks.weights))
    x = np.random.default_rng(3).standard_normal((1, 256, 1, 16)).astype(np.float16)
    got = list(anesim.execute(sparse, {"x": x}).values())[0].astype(np.float32).reshape(128, 16)
    w = np.asarray(ks.weights).view(np.float16).astype(np.float32).reshape(128, 256)
    assert np.abs(got - w @ x.astype(np.float32).reshape(256, 16)).max() < 0.02


@pytest.mark.parametrize("bad", [-0.1, 1.0, "half", True])
def test_sparsity_out_of_range_is_a_compile_error(bad) -> None:  # type: ignore[no-untyped-def]
    b = Builder("bad_sparse")
    with pytest.raises(AnesimError, match="sparsity"):
        b.linear(b.input("x", (1, 8, 1, 4)), 4, sparsity=bad)


def test_batched_transposed_matmul_is_one_grouped_task(m1) -> None:
    b = Builder("heads")
    k, q = b.input("k", (1, 8, 16, 32)), b.input("q", (1, 8, 16, 1))
    b.output(b.matmul(k, q, transpose_a=True))
    result = compile_graph(b.build(), m1)
    assert len(result.program.tasks) == 1 and result.program.tasks[0].ne.groups == 8
    rng = np.random.default_rng(5)
    kv = rng.standard_normal((1, 8, 16, 32)).astype(np.float16)
    qv = rng.standard_normal((1, 8, 16, 1)).astype(np.float16)
    got = list(anesim.execute(result, {"k": kv, "q": qv}).values())[0].astype(np.float32)
    want = np.einsum("nckm,nckj->ncmj", kv.astype(np.float32), qv.astype(np.float32))
    assert np.abs(got - want).max() < 0.02
    # the weights travel once, through the tile DMA (no second copy through the kernel DMA)
    t = anesim.simulate(result, m1).tasks[0]
    assert t.dram_weight_bytes == 0 and t.dram_activation_bytes >= kv.nbytes


def _product_tasks_and_result(m1, x: np.ndarray, weights: np.ndarray) -> tuple[int, np.ndarray]:
    """Tasks and output of x @ weights (a constant), compiled for the M1 and executed."""
    b = Builder("product")
    b.output(b.matmul(b.input("x", x.shape), b.constant("w", weights)))
    result = compile_graph(b.build(), m1)
    return len(result.program.tasks), list(anesim.execute(result, {"x": x}).values())[0]


def test_planes_sharing_a_right_operand_are_stacked(m1) -> None:
    """A_(n,c) B with a shared constant B: the planes' rows stacked into products of at most the
    channel limit (whole planes each), bit for bit the plane-by-plane products (the same B given
    once per plane)."""
    rng = np.random.default_rng(3)
    xv = rng.standard_normal((3, 4, 5, 6)).astype(np.float16)
    # one B for every plane: one product; one B per image, shared by its channels: one per image
    for x, w, tasks in ((xv, rng.standard_normal((6, 7)), 1), (xv[:1], rng.standard_normal((3, 1, 6, 7)), 3)):
        w = w.astype(np.float16)
        stacked = _product_tasks_and_result(m1, x, w)
        plane_by_plane = _product_tasks_and_result(m1, x, np.broadcast_to(w, (3, 4, 6, 7)).copy())
        assert stacked[0] == tasks and plane_by_plane[0] == 12
        assert np.array_equal(stacked[1], plane_by_plane[1])
    # past the channel limit (16,384 on the M1): whole planes per product
    b = Builder("many")
    b.output(b.matmul(b.input("x", (4096, 16, 1, 4)), b.constant("w", "normal", shape=(4, 8))))
    assert len(compile_graph(b.build(), m1).program.tasks) == 4


def test_pool_fits_from_the_top_and_the_bottom() -> None:
    from anesim.compiler.lowering.memory import _first_fit, _last_fit

    live = [(9, 0, 1024), (9, 4096, 1024), (9, 4096, 1024)]  # an in-place pair shares its span
    assert _first_fit(live, 2048, 8192) == 1024
    assert _last_fit(live, 2048, 8192) == 6144
    assert _last_fit(live, 4096, 8192) is None and _first_fit(live, 4096, 8192) is None
    assert _last_fit([], 8192, 8192) == 0 and _last_fit([], 8256, 8192) is None


def test_per_group_statistic_is_read_through_zero_strides(m1) -> None:
    """(1, C, 1, 1) across (1, C, H, W): one planar task, the statistic's width copied once."""
    graph = _graph("gn", [(1, 32, 40, 64), (1, 32, 1, 1)], lambda b, x, y: b.sub(x, y))
    result = _check_numerics(graph, m1)
    planar = [t for t in result.program.tasks if t.planar is not None]
    assert len(planar) == 1
    stat = planar[0].sources[1]
    assert stat.row_stride_bytes == 0 and stat.height == 40 and stat.width == 64
    assert sum(t.result.nbytes for t in result.program.tasks if t.planar is None) <= 32 * 64 * 2


def _batched_per_plane_graph(n: int) -> object:
    b = Builder("batched")
    x = b.input("x", (n, 3, 12, 10))
    y = b.input("y", (n, 3, 12, 10))
    s = b.sigmoid(b.add(x, y))  # planar add, then a LUT through the NE bypass
    p = b.max_pool2d(b.scale(s, 0.5, 0.25), kernel=2, stride=2)  # post-scale and bias; a pooling
    bias = b.constant("bias", np.array([0.5, -1.0, 2.0], np.float32).reshape(1, 3, 1, 1))
    gain = b.constant("gain", np.array([1.5, -0.5, 0.25], np.float32).reshape(1, 3, 1, 1))
    q = b.mul(b.add(p, bias), gain)  # a bias and a depthwise scale per channel, repeated per image
    b.output(b.mul(p, q))
    return b.build()


def test_a_batch_of_per_plane_work_runs_as_channels(m1, monkeypatch) -> None:
    """Element-wise (a depthwise scale included) and pooling ops over a batch take its images as channels, a task for as many
    images as the channel limit holds rather than a task per image, bit for bit the per-image
    lowering; a batch of one image, or images that are not back to back (a concat's part), go
    image by image."""
    from anesim.compiler.lowering import segment
    from anesim.compiler.lowering.views import Buffer, batch_folds

    graph = _batched_per_plane_graph(64)
    rng = np.random.default_rng(5)
    inputs = {k: rng.standard_normal((64, 3, 12, 10)).astype(np.float16) for k in ("x", "y")}
    folded = compile_graph(graph, m1)
    monkeypatch.setattr(segment, "batch_folds", lambda views, max_channels, max_bytes: None)
    per_image = compile_graph(graph, m1)
    assert len(per_image.program.tasks) == 7 * 64
    assert len(folded.program.tasks) == 7  # (64 images of 3 channels: 192 channels, one task each op)
    got = folded.execute(inputs, run_program)
    want = per_image.execute(inputs, run_program)
    for name in want:
        assert np.array_equal(got[name].view(np.uint16), want[name].view(np.uint16))
    monkeypatch.undo()

    whole = Buffer(0, "t", "intermediate", 5, 4, 3, 7).view()
    assert batch_folds([whole.image(0)], 16, 1 << 20) is None  # one image
    assert batch_folds([whole.channels(0, 2)], 16, 1 << 20) is None  # images not back to back
    assert batch_folds([whole], 16, 2 * whole.sn - 1) is None  # two images over the working set
    groups = batch_folds([whole, whole], 8, 1 << 20)  # two images of four channels per group
    assert [g[0].dims for g in groups] == [(1, 8, 3, 7), (1, 8, 3, 7), (1, 4, 3, 7)]
    assert [g[0].offset for g in groups] == [0, 2 * whole.sn, 4 * whole.sn]


def _norm_and_softmax_graph(batch: int):
    b = Builder(f"rows_{batch}")
    x = b.input("x", (batch, 64, 1, 1024))
    normed = b.layer_norm(x, axis=1, gamma=np.linspace(0.5, 1.5, 64), beta=np.full(64, 0.25))
    b.output(b.softmax(normed, axis=1))
    return b.build()


def test_a_batch_of_row_wise_work_is_tiled_image_by_image(m1) -> None:
    """A layer norm and a softmax over a batch whose working set exceeds the cap are cut into its
    images (and each image into row tiles where it does not fit), their temporaries on chip as
    for one image: DRAM moves the input and the result once, as for the images one by one (the
    batch used to be left whole, its temporaries spilling). Bit for bit each image compiled on
    its own; a batch that fits as a whole is not cut."""
    from anesim.sweep.overrides import apply_overrides
    from anesim.timing import simulate

    # (an image's 128 KiB fits six times over; the batch of four does not)
    chip = apply_overrides(m1, {"memory.working_set_cap_bytes": 768 * 1024})
    batched = compile_graph(_norm_and_softmax_graph(4), chip)
    one = compile_graph(_norm_and_softmax_graph(1), chip)
    moved = simulate(batched, chip, trace=False).dram_bytes["activation"]
    assert moved == 4 * simulate(one, chip, trace=False).dram_bytes["activation"] == 4 * 2 * 64 * 1024 * 2
    rng = np.random.default_rng(11)
    x = rng.standard_normal((4, 64, 1, 1024)).astype(np.float16)
    got = batched.execute({"x": x}, run_program)
    (name,) = got
    for i in range(4):
        (want,) = one.execute({"x": x[i:i + 1]}, run_program).values()
        assert np.array_equal(got[name][i:i + 1].view(np.uint16), want.view(np.uint16))
    # an image whose narrowest row tile (32 columns) does not fit is left whole, as alone
    tight = apply_overrides(m1, {"memory.working_set_cap_bytes": 16 * 1024})
    alone = simulate(compile_graph(_norm_and_softmax_graph(1), tight), tight, trace=False).dram_bytes
    together = simulate(compile_graph(_norm_and_softmax_graph(4), tight), tight, trace=False).dram_bytes
    assert together["activation"] == 4 * alone["activation"]
    roomy = apply_overrides(m1, {"memory.working_set_cap_bytes": 16 * 2**20})
    whole = compile_graph(_norm_and_softmax_graph(4), roomy)
    # (its per-plane stages take the images as channels)
    assert len(whole.program.tasks) < len(batched.program.tasks)
