"""Pack's pieces across local processes: costly pieces early, results in order.

:func:`msmd_prep.parallel.iter_pieces` submits the pieces in the order it
yields them and tops its window up only when the consumer takes a result.
For pack that leaves a worker idle: while the consumer writes a large
piece's shards nothing new is submitted, and a long piece late in the order
runs alone at the end.  :func:`iter_costly_first` yields in the same order,
but among a window of the next pieces it starts the one of least slack
first (:func:`least_slack`): a long piece as early as it must start to be
done when the consumer reaches it, a short one when its turn comes; and
while it waits for the next result it submits more as others finish.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from itertools import accumulate
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
    ``6 * jobs``; their results, done or not, are all that is held), the one
    of least slack not yet submitted goes next (:func:`least_slack`).  At
    most ``2 * jobs`` items are submitted and not done, so that a worker
    that finishes finds the next one queued, except that the next item to be
    yielded is always submitted.  In one process or on the Dask
    ``scheduler``: :func:`msmd_prep.parallel.iter_pieces`.  ``cost`` is one
    number per item, proportional to its run time; only the order in which
    items run depends on it.
    """
    if jobs < 1:
        raise ConfigError(f"jobs must be >= 1, got {jobs!r}")
    if scheduler or jobs == 1 or len(items) <= 1:
        yield from iter_pieces(func, items, jobs=jobs, scheduler=scheduler, desc=desc,
                               progress=progress)
        return
    ahead = max(1, 6 * jobs if ahead is None else ahead)
    before = list(accumulate(cost, initial=0.0))
    bar = tqdm(total=len(items), desc=desc, unit="piece", disable=not progress)
    try:
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            futures: dict[int, Future] = {}
            for i in range(len(items)):
                _top_up(pool, func, items, cost, before, futures, i, ahead, jobs)
                while not futures[i].done():
                    wait([f for f in futures.values() if not f.done()],
                         return_when=FIRST_COMPLETED)
                    _top_up(pool, func, items, cost, before, futures, i, ahead, jobs)
                result = futures.pop(i).result()
                bar.update()
                yield result
    finally:
        bar.close()


def least_slack(waiting: Sequence[int], cost: Sequence[float], before: Sequence[float],
                jobs: int) -> int:
    """The item of ``waiting`` whose latest start comes first.

    Item ``k`` is consumed about when ``jobs`` workers have done the items
    before it, at ``before[k] / jobs`` (``before[k]``: the summed cost of
    items ``0 .. k - 1``), so it must start by ``before[k] / jobs - cost[k]``
    (ties: the earliest item).  Costliest-first within a window instead left
    short pieces due now queued behind long ones due later, and the consumer
    idle (measured: 13 s at the start of a 58 s pack), and then wrote the
    shards of the pieces it had waited for at the end, alone.
    """
    return min(waiting, key=lambda k: (before[k] / jobs - cost[k], k))


def _top_up(pool: ProcessPoolExecutor, func: Callable, items: Sequence, cost: Sequence[float],
            before: Sequence[float], futures: dict[int, Future], first: int, ahead: int,
            jobs: int) -> None:
    """Submit items of ``first .. first + ahead - 1`` by least slack while fewer than
    ``2 * jobs`` are submitted and not done; item ``first`` in any case."""
    busy = sum(1 for f in futures.values() if not f.done())
    waiting = [i for i in range(first, min(first + ahead, len(items))) if i not in futures]
    while waiting and (busy < 2 * jobs or first not in futures):
        i = (first if first not in futures and busy >= 2 * jobs
             else least_slack(waiting, cost, before, jobs))
        waiting.remove(i)
        futures[i] = pool.submit(func, items[i])
        busy += 1
