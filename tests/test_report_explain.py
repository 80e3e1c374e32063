"""``anesim explain``: the verdict per layer is the resource its simulated time is closest to,
and changing the key behind that resource moves the layer's time."""

from __future__ import annotations

import json

import pytest

import anesim
from anesim.chips import load_chip
from anesim.cli import main
from anesim.report.explain import COMPUTE, DRAM, L2, RESOURCES, explain
from anesim.timing import simulate


@pytest.fixture(scope="module")
def block():
    chip = load_chip("m5-pro")
    target = anesim.compile("programs/transformer_block.yaml", chip)
    return chip, target, explain(target, chip)


def _scaled(chip, section: str, key: str, factor: float):
    """A copy of ``chip`` with one key multiplied by ``factor``."""
    sec = getattr(chip, section)
    param = getattr(sec, key)
    new = param.model_copy(update={"value": type(param.value)(param.value * factor)})
    return chip.model_copy(update={section: sec.model_copy(update={key: new})})


def test_layer_bound_is_the_resource_closest_to_its_simulated_time(block):
    chip, _, e = block
    clock = chip.ne.clock_hz.value
    by_index = {t.index: t for t in e.tasks}
    assert e.layers
    for layer in e.layers:
        tasks = [by_index[i] for i in layer.tasks]
        sim = sum(t.numbers["simulated_cycles"] for t in tasks) / clock
        assert sim == pytest.approx(layer.simulated_s)
        # Recompute compute and DRAM times from the raw per-task figures, independently of explain.
        compute = sum(max(t.numbers["ne_cycles"] - t.numbers["layer_overhead_cycles"], t.numbers["planar_cycles"])
                      for t in tasks) / clock
        d = chip.dram
        # (activation bytes on the scratch stream move at its rate, the rest at the activation stream's)
        dram = sum(max((t.numbers["dram_activation_bytes"] - t.numbers["dram_scratch_bytes"])
                       / d.activation_bytes_per_s.value,
                       t.numbers["dram_scratch_bytes"] / d.scratch_bytes_per_s.value,
                       t.numbers["dram_weight_bytes"] / d.weight_bytes_per_s.value,
                       (t.numbers["dram_activation_bytes"] + t.numbers["dram_weight_bytes"]) / d.peak_bytes_per_s.value)
                   + (d.latency_s.value if t.numbers["dram_activation_bytes"] + t.numbers["dram_weight_bytes"] else 0)
                   for t in tasks)
        assert layer.times_s[COMPUTE] == pytest.approx(compute)
        assert layer.times_s[DRAM] == pytest.approx(dram)
        nearest = min(RESOURCES, key=lambda r: abs(sim - layer.times_s[r]))
        verdict = DRAM if layer.bound == L2 else layer.bound
        assert abs(sim - layer.times_s[verdict]) == pytest.approx(abs(sim - layer.times_s[nearest]))
    assert {lay.bound for lay in e.layers} >= {COMPUTE, DRAM}  # this block has both kinds
    assert any(t.numbers["dram_scratch_bytes"] for t in e.tasks)  # and intermediates in DRAM


@pytest.mark.xfail(strict=True, reason=(
    "known defect: with the planar engine at 12 elements per cycle per engine, the block's "
    "per-head softmax is called DRAM-bound (its DRAM estimate is the closest) but slows 1.54x "
    "with half the clock and 1.24x with half the DRAM bandwidth; its one compute-bound layer, "
    "a layer norm, runs compute and DRAM phases one after the other (13 + 11 us of 23 us). The "
    "closest-resource verdict needs a serial-phase term before this sensitivity check holds again."))
def test_changing_the_bound_resource_key_moves_that_layer(block):
    chip, target, e = block
    dram_layer = max((lay for lay in e.layers if lay.bound == DRAM), key=lambda lay: lay.explained)
    compute_layer = max((lay for lay in e.layers if lay.bound == COMPUTE), key=lambda lay: lay.explained)
    base = simulate(target, chip, trace=False)
    slow_dram = simulate(target, _scaled(_scaled(chip, "dram", "activation_bytes_per_s", 0.5),
                                         "dram", "weight_bytes_per_s", 0.5), trace=False)
    slow_clock = simulate(target, _scaled(chip, "ne", "clock_hz", 0.5), trace=False)

    def layer_s(result, layer):
        return sum(result.tasks[i].cycles / result.clock_hz for i in layer.tasks)

    def growth(result, layer):
        return layer_s(result, layer) / layer_s(base, layer)

    # Halving DRAM bandwidth hurts the DRAM-bound layer more than the compute-bound one,
    # and halving the clock hurts the compute-bound layer more than the DRAM-bound one.
    assert growth(slow_dram, dram_layer) > growth(slow_dram, compute_layer)
    assert growth(slow_clock, compute_layer) > growth(slow_clock, dram_layer)
    assert growth(slow_dram, dram_layer) > 1.3


def test_spilled_operand_is_an_l2_verdict():
    # A chained intermediate just over the test chip's 2 MiB working-set cap spills to DRAM;
    # the same chain just under it stays resident (as tests/test_timing_engine.py times it).
    from timing_support import conv_task, make_chip, program

    chip = make_chip()

    def chain(c_mid):
        return program(conv_task(0, 16, c_mid, 32, 32, src_space="dram", dst_space="pool", ocg=8),
                       conv_task(1, c_mid, 16, 32, 32, src_space="pool", dst_space="dram", ocg=4, dst_slot=1))

    over, under = explain(chain(1040), chip), explain(chain(1024), chip)
    assert [t.spilled for t in over.tasks] == [("result",), ("source0",)]
    assert all(t.numbers["spilled_bytes"] == 1040 * 32 * 32 * 2 for t in over.tasks)
    assert over.tasks[1].bound == L2 and over.tasks[1].times_s[L2] > 0
    assert all(t.bound != L2 and t.times_s[L2] == 0 for t in under.tasks)


def test_cli_explain_text_and_json(capsys):
    assert main(["explain", "programs/transformer_block.yaml", "--chip", "m5-pro"]) == 0
    out = capsys.readouterr().out
    assert "time by bound" in out and "dram.activation_bytes_per_s" in out and "head0/probs" in out
    assert main(["explain", "programs/conv3x3.yaml", "--chip", "m1", "--json", "--tasks"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["chip"] == "M1" and data["tasks"][0]["bound"] in RESOURCES
    assert set(data["keys"]) == set(RESOURCES)
