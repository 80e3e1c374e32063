"""Run sweep points on Dask (a LocalCluster, or an existing scheduler), or in this process.

distributed is optional (the ``sweep`` extra). Without it, or with ``workers=0``, the points run
one after another in this process; an explicit scheduler address without distributed is an error.
"""

from __future__ import annotations

import logging
import sys
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from anesim.errors import InputError
from anesim.sweep.points import SweepPoint
from anesim.sweep.simulate import run_point

INSTALL_HINT = "pip install 'anesim[sweep]'"
CONNECT_TIMEOUT_S = 10.0  # how long to wait for --scheduler before giving up


def have_distributed() -> bool:
    """Whether dask.distributed can be imported."""
    try:
        import distributed  # noqa: F401
    except ImportError:
        return False
    return True


def _progress(total: int, enabled: bool) -> Any:
    """A tqdm bar on stderr (a no-op object when tqdm is missing or the bar is off)."""
    try:
        from tqdm.auto import tqdm
    except ImportError:  # tqdm comes with the sweep extra; without it, no bar
        enabled = False
    if not enabled:
        class _Null:
            def update(self, n: int = 1) -> None: ...
            def set_postfix_str(self, s: str) -> None: ...
            def close(self) -> None: ...
        return _Null()
    return tqdm(total=total, unit="point", file=sys.stderr, dynamic_ncols=True)


@contextmanager
def _client(scheduler: str | None, workers: int) -> Iterator[Any]:
    """A distributed Client: connected to ``scheduler``, or to a new LocalCluster of ``workers`` processes."""
    from distributed import Client, LocalCluster

    if scheduler:
        try:
            client = Client(scheduler, timeout=f"{CONNECT_TIMEOUT_S}s")
        except OSError as exc:
            raise InputError("cannot reach the Dask scheduler", found=scheduler,
                             expected=f"a running scheduler address ({exc})") from None
        with client:
            yield client
        return
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                      silence_logs=logging.ERROR) as cluster, Client(cluster) as client:
        yield client


def run_points(points: list[SweepPoint], *, scheduler: str | None = None, workers: int | None = None,
               progress: bool = True, warn: Callable[[str], None] | None = None) -> list[dict[str, Any]]:
    """Every point's row, in the order of ``points``."""
    bar = _progress(len(points), progress)
    workers = workers if workers is not None else 2
    try:
        if scheduler is None and (workers == 0 or not have_distributed()):
            if workers != 0:
                message = (f"distributed is not installed: running {len(points)} points in this process "
                           f"({INSTALL_HINT} for parallel runs)")
                (warn or (lambda m: warnings.warn(m, stacklevel=2)))(message)
            rows = []
            for point in points:
                rows.append(run_point(point))
                bar.update()
            return rows
        if not have_distributed():
            raise InputError("--scheduler needs dask.distributed", expected=INSTALL_HINT)
        from distributed import as_completed

        with _client(scheduler, max(workers, 1)) as client:
            futures = client.map(run_point, points, pure=False)
            index = {f.key: i for i, f in enumerate(futures)}
            rows: list[dict[str, Any] | None] = [None] * len(points)
            for future in as_completed(futures):
                rows[index[future.key]] = future.result()
                bar.update()
            return [r for r in rows if r is not None]
    finally:
        bar.close()
