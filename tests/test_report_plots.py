"""Figures of a timing result: timeline with pool occupancy, utilisation bars, task roofline."""

from __future__ import annotations

import pytest

import anesim
import anesim.report
from anesim.chips import load_chip
from anesim.cli import main
from anesim.errors import AnesimError
from anesim.report.plots import pool_occupancy, task_roofline_plot, timeline_plot, utilisation_plot
from anesim.timing import simulate

PNG = b"\x89PNG\r\n\x1a\n"


def test_pool_occupancy_follows_a_chained_intermediate():
    from timing_support import conv_task, make_chip, program

    chip = make_chip()
    prog = program(conv_task(0, 16, 1024, 32, 32, src_space="dram", dst_space="pool", ocg=8),
                   conv_task(1, 1024, 16, 32, 32, src_space="pool", dst_space="dram", ocg=4, dst_slot=1))
    result = simulate(prog, chip)
    times, level = pool_occupancy([prog], result, chip)
    inter = 1024 * 32 * 32 * 2
    assert max(level) == inter  # the intermediate, live from its producer's start to its reader's end
    assert level[-1] == 0 and times == sorted(times)
    live = [t for t, b in zip(times, level) if b == inter]
    assert live[0] == pytest.approx(result.tasks[0].start_s)


def test_timeline_utilisation_and_roofline_figures(tmp_path):
    chip = load_chip("m5-pro")
    target = anesim.compile("programs/transformer_block.yaml", chip)
    result = simulate(target, chip)
    fig = timeline_plot(result, tmp_path / "t.png", programs=anesim.report.programs_of(target), chip=chip)
    assert len(fig.axes) == 2 and (tmp_path / "t.png").read_bytes().startswith(PNG)
    assert len(fig.axes[0].get_yticklabels()) == len(result.trace_units)
    fig = utilisation_plot(result, chip, tmp_path / "u.png", top=10)
    assert len(fig.axes[0].get_yticklabels()) == 10
    fig = task_roofline_plot(chip, result, tmp_path / "r.png")
    assert (tmp_path / "r.png").stat().st_size > 10_000
    with pytest.raises(AnesimError, match="no timeline"):
        timeline_plot(simulate(target, chip, trace=False))
    assert "range" not in fig_title(timeline_plot(result))
    # a chip without calibration rows of its own: the title gives the prediction's range
    a16 = load_chip("a16")
    predicted = simulate(anesim.compile("programs/transformer_block.yaml", a16), a16)
    lo, hi = predicted.latency_range_s
    assert f"(range {lo * 1e6:,.1f}-{hi * 1e6:,.1f} µs)" in fig_title(timeline_plot(predicted))


def fig_title(fig) -> str:
    return fig.axes[0].get_title()


def test_cli_run_plot_and_roofline_plot(tmp_path, capsys):
    out = tmp_path / "timeline.png"
    assert main(["run", "programs/conv3x3.yaml", "--chip", "m1", "--timing-only", "--plot", str(out)]) == 0
    assert out.read_bytes().startswith(PNG) and "wrote timeline" in capsys.readouterr().out
    roof = tmp_path / "roof.png"
    assert main(["roofline", "--chip", "m1", "--roofs-only", "--plot", str(roof)]) == 0
    assert roof.read_bytes().startswith(PNG)


def test_roofline_of_a_chip_file_with_a_name_of_its_own(tmp_path, capsys):
    """A chip file named 'X' (no chip of anesim's): its roofs alone; the command looked its name
    up among the shipped chips and failed with 'unknown chip'."""
    chip = tmp_path / "x.yaml"
    chip.write_text("inherits: h13\nname: X\n")
    roof = tmp_path / "roof.png"
    assert main(["roofline", "--chip", str(chip), "--plot", str(roof)]) == 0
    assert roof.read_bytes().startswith(PNG) and "(0 points)" in capsys.readouterr().out
