"""Pack's pieces across local processes: costly pieces first, results in order.

:func:`msmd_prep.parallel.iter_pieces` submits the pieces in the order it
yields them and tops its window up only when the consumer takes a result.
For pack that leaves a worker idle: while the consumer writes a large
piece's shards nothing new is submitted, a long piece late in the order
runs alone at the end, and a long piece in the middle fills the window with
short ones done behind it.  :func:`iter_costly_first` yields in the same
order, but runs the costliest piece of a window of the next ones first
(longest processing time first), and while it waits for the next result it
submits more as others finish.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import TypeVar

from tqdm import tqdm

from ..errors import ConfigError
from ..parallel import iter_pieces

T = TypeVar("T")
R = TypeVar("R")


def iter_costly_first(func: Callable[[T], R], items: Sequence[T], *, cost: Sequence[float],
                      jobs: int = 1, scheduler: str | None = None, desc: str = "",
                      progress: bool = False, ahead: int | None = None) -> Iterator[R]:
    """``func(item)`` for each item, yielded in the order of ``items``.

    In ``jobs`` local processes: among the next ``ahead`` items (default
    ``6 * jobs``; their results, done or not, are all that is held), the
    costliest not yet submitted goes next, except that the next item to be
    yielded is always submitted first.  At most ``2 * jobs`` items are
    submitted and not done, so that the choice stays open and a worker that
    finishes finds the next one queued.  In one process or on the Dask
    ``scheduler``: :func:`msmd_prep.parallel.iter_pieces`.  ``cost`` is one
    number per item; only the order in which items run depends on it.
    """
    if jobs < 1:
        raise ConfigError(f"jobs must be >= 1, got {jobs!r}")
    if scheduler or jobs == 1 or len(items) <= 1:
        yield from iter_pieces(func, items, jobs=jobs, scheduler=scheduler, desc=desc,
                               progress=progress)
        return
    ahead = max(1, 6 * jobs if ahead is None else ahead)
    bar = tqdm(total=len(items), desc=desc, unit="piece", disable=not progress)
    try:
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            futures: dict[int, Future] = {}
            for i in range(len(items)):
                _top_up(pool, func, items, cost, futures, i, ahead, 2 * jobs)
                while not futures[i].done():
                    wait([f for f in futures.values() if not f.done()],
                         return_when=FIRST_COMPLETED)
                    _top_up(pool, func, items, cost, futures, i, ahead, 2 * jobs)
                result = futures.pop(i).result()
                bar.update()
                yield result
    finally:
        bar.close()


def _top_up(pool: ProcessPoolExecutor, func: Callable, items: Sequence, cost: Sequence[float],
            futures: dict[int, Future], first: int, ahead: int, most: int) -> None:
    """Submit items of ``first .. first + ahead - 1``, item ``first`` before any, then the
    costliest (ties: the earliest), until ``most`` are submitted and not done."""
    busy = sum(1 for f in futures.values() if not f.done())
    waiting = [i for i in range(first, min(first + ahead, len(items))) if i not in futures]
    while waiting and (busy < most or first not in futures):
        i = first if first not in futures else max(waiting, key=lambda k: (cost[k], -k))
        waiting.remove(i)
        futures[i] = pool.submit(func, items[i])
        busy += 1
