"""Run one stage's work over many pieces: in order, in processes, or on Dask.

Every stage is a function of one piece that writes only into that piece's
folder, so pieces can run anywhere and finish in any order.  Results come
back in the order of the inputs whatever the order they finished in, so
everything downstream (packing above all) is the same as a one-process run.
"""
from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Callable, Sequence, TypeVar

from tqdm import tqdm

from .errors import ConfigError

T = TypeVar("T")
R = TypeVar("R")


def map_pieces(func: Callable[[T], R], items: Sequence[T], *, jobs: int = 1,
               scheduler: str | None = None, desc: str = "",
               progress: bool = False) -> list[R]:
    """``[func(item) for item in items]``, spread over workers.

    Parameters
    ----------
    func : callable
        A picklable function of one item (a module-level function, or a
        ``functools.partial`` of one).  It reports a bad piece in its result;
        an exception it raises is a bug and stops the run.
    items : sequence
        The pieces.
    jobs : int >= 1
        Local worker processes; 1 runs in this process.
    scheduler : str, optional
        Address of a Dask distributed scheduler (``tcp://host:port``); the
        workers need the same file system paths as this process.
    desc : str
        Label of the progress bar.
    progress : bool
        Show a progress bar.

    Returns
    -------
    list
        The results, in the order of ``items``.
    """
    if jobs < 1:
        raise ConfigError(f"jobs must be >= 1, got {jobs!r}")
    bar = tqdm(total=len(items), desc=desc, unit="piece", disable=not progress)
    try:
        if scheduler:
            return _map_dask(func, items, scheduler, bar)
        if jobs == 1 or len(items) <= 1:
            results = []
            for item in items:
                results.append(func(item))
                bar.update()
            return results
        return _map_processes(func, items, jobs, bar)
    finally:
        bar.close()


def _map_processes(func, items, jobs, bar) -> list:
    results: list = [None] * len(items)
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        futures = {pool.submit(func, item): i for i, item in enumerate(items)}
        for future in as_completed(futures):
            results[futures[future]] = future.result()
            bar.update()
    return results


def _map_dask(func, items, scheduler, bar) -> list:
    try:
        from distributed import Client, as_completed as dask_completed
    except ImportError:
        raise ConfigError("a Dask scheduler needs the dask extra: "
                          "pip install 'msmd-prep[dask]'") from None

    results: list = [None] * len(items)
    with Client(scheduler) as client:
        futures = client.map(func, list(items), pure=False)
        index = {f.key: i for i, f in enumerate(futures)}
        for future in dask_completed(futures):
            results[index[future.key]] = future.result()
            bar.update()
    return results


def iter_pieces(func: Callable[[T], R], items: Sequence[T], *, jobs: int = 1,
                scheduler: str | None = None, desc: str = "", progress: bool = False,
                ahead: int | None = None) -> Iterator[R]:
    """``func(item)`` for each item, spread over workers, yielded in the order of ``items``.

    Like :func:`map_pieces`, but results stream: at most ``ahead`` items
    (default ``2 * jobs``) are in flight or waiting to be consumed, so that
    large results (packed samples) need not all fit in memory.
    """
    if jobs < 1:
        raise ConfigError(f"jobs must be >= 1, got {jobs!r}")
    ahead = max(1, 2 * jobs if ahead is None else ahead)
    bar = tqdm(total=len(items), desc=desc, unit="piece", disable=not progress)
    try:
        if not scheduler and (jobs == 1 or len(items) <= 1):
            for item in items:
                yield func(item)
                bar.update()
            return
        if scheduler:
            from distributed import Client

            with Client(scheduler) as client:
                yield from _stream(lambda item: client.submit(func, item, pure=False),
                                   items, ahead, bar)
            return
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            yield from _stream(lambda item: pool.submit(func, item), items, ahead, bar)
    finally:
        bar.close()


def _stream(submit, items, ahead, bar) -> Iterator:  # type: ignore[no-untyped-def]
    pending: deque = deque()
    todo = iter(items)
    for item in todo:
        pending.append(submit(item))
        if len(pending) >= ahead:
            break
    while pending:
        result = pending.popleft().result()
        bar.update()
        for item in todo:
            pending.append(submit(item))
            break
        yield result
