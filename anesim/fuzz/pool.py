"""Run fuzz cases in worker processes under an address-space cap and a time limit.

Each worker is forked from a fork server (or, where there is none, spawned) and caps its own
address space with ``RLIMIT_AS`` at what it maps plus :data:`ADDRESS_CAP_BYTES` and sets the memory limit anesim itself enforces (``ANESIM_MAX_MEMORY``) well
below that cap, so a case that tries to allocate past anesim's own checks hits the cap and is
counted, never the machine. A case that runs past the time limit is a hang: its worker is
killed and replaced. Every case ends as one of :data:`STATUSES`.
"""

from __future__ import annotations

import importlib.util
import multiprocessing
import os
import random
import resource
import tempfile
import time
import traceback
from collections.abc import Iterable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

from anesim.errors import AnesimError
from anesim.fuzz.kinds import Sources

STATUSES = ("accepted", "refused", "escape", "hang", "memory", "nonsense", "unnamed", "crash")
FAILURES = ("escape", "hang", "memory", "nonsense", "unnamed", "crash")
ADDRESS_CAP_BYTES = 2 << 30  # address space a case may add to what its worker already maps
CASE_SECONDS = 10.0
COMPILE_SECONDS = 300.0  # a numba kernel compiled for the first time on a cold cache
ANESIM_MEMORY = "192M"  # what anesim itself allows one fuzzed program; the cap is far above it
ANESIM_WORK = "30M"  # operations one fuzzed run may ask for: keeps every accepted case cheap
FUZZ_ENVIRONMENT = {"ANESIM_MAX_MEMORY": ANESIM_MEMORY, "ANESIM_MAX_WORK": ANESIM_WORK}


@dataclass(frozen=True)
class CaseResult:
    """How one case ended."""

    kind: str
    index: int
    status: str
    detail: str = ""
    seconds: float = 0.0


@dataclass
class Report:
    """Per-kind counts of every status, and the failing cases with what happened."""

    seed: int
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    failures: list[CaseResult] = field(default_factory=list)
    slowest: dict[str, float] = field(default_factory=dict)
    slowest_index: dict[str, int] = field(default_factory=dict)  # (to replay it: --replay KIND:INDEX)
    seconds: dict[str, float] = field(default_factory=dict)
    wall_s: float = 0.0

    def add(self, result: CaseResult) -> None:
        """Count one case."""
        row = self.counts.setdefault(result.kind, {s: 0 for s in STATUSES})
        row[result.status] += 1
        if result.seconds >= self.slowest.get(result.kind, 0.0):
            self.slowest[result.kind] = result.seconds
            self.slowest_index[result.kind] = result.index
        self.seconds[result.kind] = self.seconds.get(result.kind, 0.0) + result.seconds
        if result.status in FAILURES:
            self.failures.append(result)

    @property
    def cases(self) -> int:
        """Cases run over every kind."""
        return sum(sum(row.values()) for row in self.counts.values())

    def table(self) -> str:
        """The counts as a text table, one row per kind."""
        head = f"{'kind':<8}" + "".join(f"{s:>9}" for s in ("cases",) + STATUSES) + f"{'mean ms':>9}{'max s':>7}"
        lines = [head]
        for kind, row in self.counts.items():
            lines.append(f"{kind:<8}{sum(row.values()):>9}" + "".join(f"{row[s]:>9}" for s in STATUSES)
                         + f"{1000 * self.seconds[kind] / max(sum(row.values()), 1):>9.1f}"
                         + f"{self.slowest[kind]:>7.2f}")
        total = {s: sum(r[s] for r in self.counts.values()) for s in STATUSES}
        lines.append(f"{'total':<8}{self.cases:>9}" + "".join(f"{total[s]:>9}" for s in STATUSES))
        if self.slowest:
            kind = max(self.slowest, key=lambda k: self.slowest[k])
            lines.append(f"slowest case: {kind}:{self.slowest_index[kind]} ({self.slowest[kind]:.2f} s)")
        return "\n".join(lines)


def case_rng(seed: int, kind: str, index: int) -> random.Random:
    """The random stream of one case: a function of (seed, kind, index) alone."""
    return random.Random(f"{seed}:{kind}:{index}")


def run_one(kind: str, index: int, seed: int, src: Sources, workdir: Path) -> CaseResult:
    """Run one case in this process and classify how it ended."""
    from anesim.fuzz import kinds
    from anesim.fuzz.checks import Nonsense

    start = time.perf_counter()
    case_dir = workdir / f"{kind}-{index}"
    case_dir.mkdir(parents=True, exist_ok=True)
    try:
        kinds.run_case(kind, case_rng(seed, kind, index), case_dir, src)
        status, detail = "accepted", ""
    except AnesimError as exc:
        named = exc.file is not None and str(exc.file) != ""
        status, detail = ("refused" if named else "unnamed"), f"{type(exc).__name__}: {exc}"
    except Nonsense as exc:
        status, detail = "nonsense", str(exc)
    except MemoryError as exc:
        status, detail = "memory", f"MemoryError {exc}"[:300]
    except BaseException as exc:  # noqa: BLE001 - the fuzzer's job is to classify whatever escapes
        if isinstance(exc, KeyboardInterrupt):
            raise
        tail = "".join(traceback.format_exception(exc)[-4:])
        status, detail = "escape", f"{type(exc).__name__}: {exc}"[:300] + "\n" + tail[-1200:]
    finally:
        for p in sorted(case_dir.rglob("*"), reverse=True):
            p.rmdir() if p.is_dir() else p.unlink()
        case_dir.rmdir()
    return CaseResult(kind, index, status, detail[:2000], time.perf_counter() - start)


def _worker(conn: Connection, seed: int, src: Sources, cap: int, wanted: frozenset[str]) -> None:
    """Worker process: cap the address space, then run the cases it is sent until told to stop."""
    os.environ.update(FUZZ_ENVIRONMENT)
    os.environ.setdefault("TQDM_DISABLE", "1")
    import logging

    logging.disable(logging.WARNING)  # coremltools and onnx warn on damaged models
    from anesim.fuzz import kinds

    kinds.warm(src, wanted)
    _report_compiles(conn)
    limit = _mapped_bytes() + cap
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    with tempfile.TemporaryDirectory(prefix="anesim-fuzz-") as tmp:
        conn.send("ready")
        while True:
            job = conn.recv()
            if job is None:
                return
            conn.send(run_one(job[0], job[1], seed, src, Path(tmp)))


def _context(wanted: frozenset[str]) -> Any:
    """Where workers come from: a fork server that has imported the heavy modules once.

    Forking the caller itself (a test runner, say) would copy whatever threads and locks it
    holds; the fork server is a clean process, so replacing a killed worker stays cheap and safe.
    Where there is no fork server, each worker is spawned and imports everything itself.
    """
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    ctx = multiprocessing.get_context("forkserver")
    preload = ["anesim.compiler", "anesim.functional", "anesim.timing", "anesim.fuzz.kinds"]
    for module, kinds in (("onnx", {"onnx"}), ("coremltools.proto.MIL_pb2", {"coreml"})):
        if wanted & kinds and importlib.util.find_spec(module.split(".")[0]) is not None:
            preload.append(module)
    ctx.set_forkserver_preload(preload)
    return ctx


def _mapped_bytes() -> int:
    """The address space this process maps now (Linux /proc; 0 where unknown)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _report_compiles(conn: Connection) -> None:
    """Tell the parent when numba compiles a kernel: a cold cache's one-off cost, not the case's work."""
    from numba.core import event

    class _Listener(event.Listener):
        def on_start(self, ev: Any) -> None:
            conn.send("compile-start")

        def on_end(self, ev: Any) -> None:
            conn.send("compile-end")

    event.register("numba:compile", _Listener())


class _Slot:
    def __init__(self, ctx: Any, seed: int, src: Sources, cap: int, wanted: frozenset[str]) -> None:
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_worker, args=(child, seed, src, cap, wanted), daemon=True)
        self.proc.start()
        child.close()
        self.ready = False
        self.job: tuple[str, int] | None = None
        self.deadline = 0.0
        self.compiling = 0

    def stop(self) -> None:
        if self.proc.is_alive():
            self.proc.kill()
        self.proc.join(5)
        self.conn.close()


def run_cases(cases: Iterable[tuple[str, int]], seed: int, *, src: Sources, workers: int = 2,
              case_seconds: float = CASE_SECONDS, cap: int = ADDRESS_CAP_BYTES,
              startup_seconds: float = 300.0) -> Report:
    """Run every (kind, index) case on ``workers`` processes; a report of how each ended."""
    todo = list(cases)[::-1]
    wanted = frozenset(kind for kind, _ in todo)
    ctx = _context(wanted)
    report = Report(seed)
    started = time.perf_counter()
    slots = [_Slot(ctx, seed, src, cap, wanted) for _ in range(max(1, min(workers, len(todo))))]
    born = {id(s): time.monotonic() for s in slots}
    try:
        while todo or any(s.job for s in slots):
            for i, slot in enumerate(slots):
                if slot.ready and slot.job is None and todo:
                    slot.job = todo.pop()
                    slot.deadline = time.monotonic() + case_seconds
                    slot.conn.send(slot.job)
            ready = wait([s.conn for s in slots], timeout=0.5)
            now = time.monotonic()
            for i, slot in enumerate(slots):
                if slot.conn in ready:
                    try:
                        message = slot.conn.recv()
                    except (EOFError, OSError):
                        message = None
                    if message == "ready":
                        slot.ready = True
                        continue
                    if message in ("compile-start", "compile-end"):
                        slot.compiling += 1 if message == "compile-start" else -1
                        slot.deadline = now + (COMPILE_SECONDS if slot.compiling else case_seconds)
                        continue
                    if isinstance(message, CaseResult):
                        report.add(message)
                        slot.job = None
                        continue
                    # the worker died: a crash in the case it held (or in its start-up)
                    code = slot.proc.exitcode
                    if slot.job is None:
                        raise RuntimeError(f"fuzz worker failed to start (exit {code})")
                    report.add(CaseResult(*slot.job, "crash", f"worker exited with {code}"))
                    slot.stop()
                    slots[i] = _Slot(ctx, seed, src, cap, wanted)
                    born[id(slots[i])] = now
                elif slot.job is not None and now > slot.deadline:
                    report.add(CaseResult(*slot.job, "hang", f"no answer within {case_seconds} s", case_seconds))
                    slot.stop()
                    slots[i] = _Slot(ctx, seed, src, cap, wanted)
                    born[id(slots[i])] = now
                elif not slot.ready and now - born[id(slot)] > startup_seconds:
                    raise RuntimeError(f"fuzz worker did not start within {startup_seconds} s")
    finally:
        for slot in slots:
            if slot.proc.is_alive():
                try:
                    slot.conn.send(None)
                except OSError:
                    pass
            slot.proc.join(2)
            slot.stop()
    report.wall_s = time.perf_counter() - started
    return report


def plan(counts: dict[str, int]) -> list[tuple[str, int]]:
    """Interleave the cases of every kind so that the workers share the cheap and the costly ones."""
    queues = {kind: list(range(n)) for kind, n in counts.items()}
    out: list[tuple[str, int]] = []
    while any(queues.values()):
        for kind, queue in queues.items():
            if queue:
                out.append((kind, queue.pop(0)))
    return out


def replay(kind: str, index: int, seed: int, src: Sources | None = None) -> CaseResult:
    """Run one case here, in this process, under the workers' limits (for debugging a failure the report names)."""
    saved = {k: os.environ.get(k) for k in FUZZ_ENVIRONMENT}
    os.environ.update(FUZZ_ENVIRONMENT)
    try:
        with tempfile.TemporaryDirectory(prefix="anesim-fuzz-") as tmp:
            return run_one(kind, index, seed, src or Sources(), Path(tmp))
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
