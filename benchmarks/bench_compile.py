"""Compile speed of the whole-model programs, and the start-up of the command a user runs.

Prints, per program: its task count and the CPU time of ``anesim.compile`` (program file read
and compiled, best of ``--repeat``); then the CPU time of importing what ``anesim run`` needs,
and the wall time of ``anesim run PROGRAM --chip CHIP --timing-only`` (process start included;
the bar is 2 s per whole model, docs/whole-models.md). CPU time, not wall time, for the
compile: the machine's other processes move the wall time.

``--baseline REV`` measures the same things, in the same run, on the code of a git revision
(exported to a temporary directory) and prints the ratio baseline / current beside each figure,
so a change's speed-up is measured under the same load as the code it replaces. The two are
measured in turns, ``--rounds`` times (each figure the best of its rounds): the load of a shared
machine shifts over seconds, and measuring all of one before all of the other let a shift
decide the ratios.

    python benchmarks/bench_compile.py [--chip m1] [--repeat 3] [--programs sd_unet,resnet50]
                                       [--baseline REV] [--rounds 2] [--cli sd_unet]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from whole_models import WHOLE_MODELS  # noqa: E402

# Runs in a fresh interpreter on the code under test (PYTHONPATH): compile CPU time per program.
_COMPILE_WORKER = """
import json, sys, time
from anesim.chips import load_chip
from anesim.compiler import compile_file
chip = load_chip(sys.argv[1])
repeat = int(sys.argv[2])
out = {}
for path in sys.argv[3:]:
    best, tasks = None, 0
    for _ in range(repeat):
        t0 = time.process_time()
        result = compile_file(path, chip)
        spent = time.process_time() - t0
        best = spent if best is None else min(best, spent)
        tasks = len(result.program.tasks)
    out[path] = [best, tasks]
print(json.dumps(out))
"""

# The modules ``anesim run PROGRAM.yaml --timing-only`` imports before and while it works.
_IMPORT_WORKER = """
import time
t0 = time.process_time()
import anesim.cli
try:
    anesim.cli.build_parser("run")
except TypeError:  # code from before the parser registered only the command it runs
    anesim.cli.build_parser()
import anesim.compiler, anesim.compiler.frontends.program_file, anesim.timing
print(time.process_time() - t0)
"""


def _run(code_dir: Path, args: list[str]) -> str:
    env = dict(os.environ, PYTHONPATH=str(code_dir))
    proc = subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env, cwd=code_dir)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(args[:3])} failed in {code_dir}: {proc.stderr.strip().splitlines()[-1:]}")
    return proc.stdout


def measure(code_dir: Path, chip: str, repeat: int, programs: list[str], cli_program: str) -> dict:
    """Compile CPU time per program, the run command's import CPU time and its wall time."""
    paths = [str(REPO / "programs" / f"{name}.yaml") for name in programs]
    compiled = json.loads(_run(code_dir, ["-c", _COMPILE_WORKER, chip, str(repeat), *paths]))
    imports = min(float(_run(code_dir, ["-c", _IMPORT_WORKER])) for _ in range(repeat))
    t0 = time.perf_counter()
    _run(code_dir, ["-m", "anesim", "run", str(REPO / "programs" / f"{cli_program}.yaml"), "--chip", chip,
                    "--timing-only"])
    wall = time.perf_counter() - t0
    return {"compile": {name: compiled[p] for name, p in zip(programs, paths)}, "import": imports, "cli": wall}


def _best(runs: list[dict]) -> dict:
    """Each figure's best (lowest) over several :func:`measure` results."""
    compile_ = {name: [min(r["compile"][name][0] for r in runs), runs[0]["compile"][name][1]]
                for name in runs[0]["compile"]}
    return {"compile": compile_, "import": min(r["import"] for r in runs), "cli": min(r["cli"] for r in runs)}


def export(revision: str, into: Path) -> Path:
    """The tree of a git revision, written under ``into``."""
    archive = into / "tree.tar"
    with archive.open("wb") as out:
        subprocess.run(["git", "archive", revision], cwd=REPO, stdout=out, check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(into / "tree", filter="data")
    return into / "tree"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chip", default="m1")
    parser.add_argument("--repeat", type=int, default=3, help="best of N (default 3)")
    parser.add_argument("--programs", default=",".join(WHOLE_MODELS),
                        help="programs/NAME.yaml to compile (default: every whole model)")
    parser.add_argument("--baseline", metavar="REV", help="also measure the code of this git revision")
    parser.add_argument("--rounds", type=int, default=2,
                        help="with --baseline: measure current and baseline in turns this often (default 2)")
    parser.add_argument("--cli", default="sd_unet", metavar="NAME", help="program the CLI wall time runs")
    args = parser.parse_args()
    programs = [p for p in args.programs.split(",") if p]

    base = None
    if not args.baseline:
        current = measure(REPO, args.chip, args.repeat, programs, args.cli)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            tree = export(args.baseline, Path(tmp))
            rounds = [(measure(REPO, args.chip, args.repeat, programs, args.cli),
                       measure(tree, args.chip, args.repeat, programs, args.cli))
                      for _ in range(max(1, args.rounds))]
        current, base = _best([r[0] for r in rounds]), _best([r[1] for r in rounds])

    print(f"chip {args.chip}; CPU seconds, best of {args.repeat}"
          + (f" in each of {max(1, args.rounds)} rounds; baseline {args.baseline}, ratio = baseline / current"
             if base else ""))
    head = f"{'program':<24} {'tasks':>6} {'compile s':>10}"
    if base:
        head += f" {'baseline s':>11} {'ratio':>6}"
    print(head)
    for name in programs:
        seconds, tasks = current["compile"][name]
        line = f"{name:<24} {tasks:>6} {seconds:>10.3f}"
        if base:
            b = base["compile"][name][0]
            line += f" {b:>11.3f} {b / seconds:>6.2f}"
        print(line)
    rows = [("import for 'anesim run' (CPU s)", "import"),
            (f"anesim run programs/{args.cli}.yaml --chip {args.chip} --timing-only (wall s)", "cli")]
    for label, key in rows:
        line = f"{label}: {current[key]:.3f}"
        if base:
            line += f" (baseline {base[key]:.3f}, ratio {base[key] / current[key]:.2f})"
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
