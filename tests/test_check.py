"""anesim check: the rule table, its conformance with the guide's matrix, the report, --fix, assert_on_ane."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from anesim.check.assertions import assert_on_ane
from anesim.check.onnx_model import check_graph_from_onnx
from anesim.check.report import check_graph, placement_matrix
from anesim.chips import load_chip
from anesim.cli import main
from anesim.compiler import Builder
from anesim.compiler.graph.ops import OP_NAMES
from anesim.compiler.lowering.capability import decide, limits_of
from anesim.compiler.lowering.rules import load_rules

onnx = pytest.importorskip("onnx")
from onnx import TensorProto as T, helper as h, numpy_helper as nh  # noqa: E402

APPENDIX = Path(__file__).resolve().parents[1] / ".." / "shared" / "reference" / "ane-guide" / "appendices" / "a-op-device-matrix.md"
COLUMN_CHIPS = {0: "m1", 1: "m2", 2: "m3", 3: "m5"}  # tiers A13, A14, A15, A17 (the M4/M5 column)
RNG = np.random.default_rng(0)


def _w(shape: tuple[int, ...], name: str) -> object:
    return nh.from_array((RNG.standard_normal(shape) * 0.1).astype(np.float32), name)


def _model(nodes: list, inputs: list, outputs: list, inits: list, name: str) -> object:
    return h.make_model(h.make_graph(nodes, name, inputs, outputs, inits))


def lstm_model() -> object:
    shp = nh.from_array(np.array([8, 1, 16], np.int64), "shp")
    return _model([h.make_node("Conv", ["x", "cw"], ["c"], name="proj"),
                   h.make_node("Reshape", ["c", "shp"], ["seq"], name="to_seq"),
                   h.make_node("LSTM", ["seq", "W", "R"], ["y", "yh"], name="lstm", hidden_size=16)],
                  [h.make_tensor_value_info("x", T.FLOAT, [1, 16, 1, 8])],
                  [h.make_tensor_value_info("yh", T.FLOAT, [1, 1, 16])],
                  [_w((1, 64, 16), "W"), _w((1, 64, 16), "R"), _w((16, 16, 1, 1), "cw"), shp], "lstm_model")


def wide_model() -> object:
    return _model([h.make_node("Conv", ["x", "kw"], ["y"], name="wide", pads=[1, 9, 1, 10]),
                   h.make_node("Relu", ["y"], ["z"], name="act")],
                  [h.make_tensor_value_info("x", T.FLOAT, [1, 8, 32, 64])],
                  [h.make_tensor_value_info("z", T.FLOAT, [1, 8, 32, 64])], [_w((8, 8, 3, 20), "kw")], "wide")


def dynamic_model() -> object:
    return _model([h.make_node("Conv", ["x", "dw"], ["y"], name="conv"), h.make_node("Relu", ["y"], ["z"], name="relu")],
                  [h.make_tensor_value_info("x", T.FLOAT, [1, 16, "height", 32])],
                  [h.make_tensor_value_info("z", T.FLOAT, [1, 32, "height", 32])], [_w((32, 16, 1, 1), "dw")], "dyn")


def dtype_model() -> object:
    return _model([h.make_node("Relu", ["x"], ["a"], name="relu"),
                   h.make_node("Cast", ["a"], ["ai"], name="to_int", to=T.INT32),
                   h.make_node("Add", ["ai", "ai"], ["s"], name="int_add")],
                  [h.make_tensor_value_info("x", T.FLOAT, [1, 4, 8, 8])],
                  [h.make_tensor_value_info("s", T.INT32, [1, 4, 8, 8])], [], "dtype")


def lm_head_model() -> object:
    return _model([h.make_node("MatMul", ["x", "lw"], ["logits"], name="lm_head")],
                  [h.make_tensor_value_info("x", T.FLOAT, [1, 16, 256])],
                  [h.make_tensor_value_info("logits", T.FLOAT, [1, 16, 32000])], [_w((256, 32000), "lw")], "lmhead")


def _rows(report):  # type: ignore[no-untyped-def]
    return {r.name: r for r in report.layers}


def test_rule_table_validates_and_covers_every_graph_op() -> None:
    table = load_rules()
    # source_op and onnx_host carry the source model's operation; their row is looked up by its name
    missing = [op for op in OP_NAMES if op not in ("source_op", "onnx_host") and table.op_rule(graph_op=op) is None]
    assert missing == []
    for rule in table.ops:
        assert table.citation(rule).startswith(table.sources[rule.source])


def _appendix_rows() -> list[tuple[str, list[str]]]:
    rows = []
    for line in APPENDIX.read_text(encoding="utf-8").splitlines():
        m = re.match(r"\| `([a-z0-9_]+)` \|(.*)", line)
        if m:
            rows.append((m.group(1), [c.strip() for c in m.group(2).split("|")][:4]))
    return rows


@pytest.mark.skipif(not APPENDIX.is_file(), reason="the guide's Appendix A (../shared) is absent")
def test_conformance_every_op_of_the_guide_matrix_is_placed_as_the_matrix_says() -> None:
    table = load_rules()
    rows = _appendix_rows()
    assert len(rows) > 150
    chips = {k: load_chip(c) for k, c in COLUMN_CHIPS.items()}
    for op, cells in rows:
        rule = table.op_rule(name=op)
        assert rule is not None, f"{op}: no row in placement_rules.yaml"
        for col, chip in chips.items():
            b = Builder(f"one_{op}")
            x = b.input("x", (1, 8, 4, 16))
            b.output(b.op("source_op", [x], name=op, source_type=op, shape=[1, 8, 4, 16]))
            g = b.build()
            d = decide(g, g.nodes[0], limits_of(chip))
            mark = cells[col]
            expected = {"Native": True, "No path": False, "Family-gated": False}.get(mark)
            if mark == "Bridge":
                expected = rule.bridge == "engine" or op in rule.bridge_names
            assert d.engine is expected, f"{op} on {chip.name} ({mark}): placed {'engine' if d.engine else 'host'}"
            for graph_op in rule.graph_ops:
                if graph_op in ("conv2d", "linear", "matmul", "batch_norm", "layer_norm", "rms_norm"):
                    continue  # need weights; covered by the shipped programs
                assert table.on_engine(rule, chip.capability.tier) is expected


def test_lstm_dynamic_wide_kernel_and_dtype_layers_leave_the_engine_with_rule_and_citation() -> None:
    cases = [(lstm_model(), "lstm:yh", "recurrent", "Recurrent cells"),
             (wide_model(), "wide", "kernel", "per-chip numeric limits"),
             (dynamic_model(), "conv", "dynamic-shape", "ch. 8"),
             (dtype_model(), "to_int", "dtype", "Type limits")]
    for model, layer, rule, cited in cases:
        graph, _ = check_graph_from_onnx(model, "test.onnx")
        report = check_graph(graph, "m1")
        row = _rows(report)[layer]
        assert row.placement == "host" and row.rule == rule and cited in row.citation, row
        engine = [r for r in report.layers if r.placement == "engine"]
        assert all(r.name not in (layer,) for r in engine)
    report = check_graph(check_graph_from_onnx(lstm_model(), "t.onnx")[0], "m1")
    assert _rows(report)["proj"].placement == "engine"


def test_chip_all_shows_a_layer_only_newer_generations_run_on_the_engine() -> None:
    graph, _ = check_graph_from_onnx(lm_head_model(), "t.onnx")
    matrix = placement_matrix(graph, [load_chip(c) for c in ("m1", "m3", "m4", "m5-pro")])
    cells = matrix["layers"][0]["cells"]
    assert [cells[c]["engine"] for c in ("M1", "M3", "M4", "M5 Pro")] == [False, False, True, True]


@pytest.mark.parametrize("factory,layer", [(wide_model, "wide"), (lm_head_model, "lm_head")])
def test_fix_keeps_a_linear_layer_and_a_wide_kernel_on_the_engine_and_latency_drops(factory, layer, tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "m.onnx"
    onnx.save(factory(), str(path))
    assert main(["check", str(path), "--chip", "m1", "--fix", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    before = {r["name"]: r for r in out["report"]["layers"]}
    assert before[layer]["placement"] == "host"
    after = out["fix"]["after"]
    assert all(r["placement"] == "engine" for r in after["layers"])
    assert after["engine_mac_fraction"] == 1.0
    assert after["total_s"] < out["report"]["total_s"] and out["fix"]["gain_s"] > 0


def test_fix_binds_a_dynamic_shape(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "d.onnx"
    onnx.save(dynamic_model(), str(path))
    assert main(["check", str(path), "--fix", "--dim", "height=8", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["fix"]["applied"][0]["fix"] == "static-shape"
    assert all(r["placement"] == "engine" for r in out["fix"]["after"]["layers"])


def test_assert_on_ane_fails_with_the_rows_of_the_layers_off_the_engine() -> None:
    graph, _ = check_graph_from_onnx(wide_model(), "t.onnx")
    with pytest.raises(AssertionError, match=r"wide \(conv2d\): host, rule 'kernel'"):
        assert_on_ane(graph, "m1", min_engine_fraction=0.9)
    assert assert_on_ane("programs/resnet_basic_block.yaml", "m5-pro").engine_mac_fraction == 1.0


def test_shipped_program_report_and_plot(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    png = tmp_path / "seg.png"
    assert main(["check", "programs/resnet_basic_block.yaml", "--chip", "m1", "--plot", str(png)]) == 0
    text = capsys.readouterr().out
    assert "100.0% of MACs" in text and png.stat().st_size > 1000
    assert main(["check", "programs/transformer_block.yaml", "--chip", "all", "--json"]) == 0
    matrix = json.loads(capsys.readouterr().out)
    assert len(matrix["chips"]) > 20 and matrix["layers"]
