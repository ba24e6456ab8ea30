"""map_pieces gives the same results in order, in processes and on Dask."""
from __future__ import annotations

import time

import pytest

from msmd_prep.errors import ConfigError
from msmd_prep.parallel import map_pieces


def _slow_square(x: int) -> int:
    # Later items finish first, so results arrive out of order.
    time.sleep(0.02 * (5 - x % 5))
    return x * x


def test_processes_keep_input_order():
    items = list(range(10))
    assert map_pieces(_slow_square, items, jobs=2) == [x * x for x in items]


def test_dask_local_cluster_equals_single_process():
    distributed = pytest.importorskip("distributed")
    items = list(range(8))
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, host="127.0.0.1",
                                  dashboard_address=None, processes=True) as cluster:
        on_dask = map_pieces(_slow_square, items, scheduler=cluster.scheduler_address)
    assert on_dask == map_pieces(_slow_square, items)


def test_jobs_must_be_positive():
    with pytest.raises(ConfigError, match="jobs"):
        map_pieces(_slow_square, [1], jobs=0)
