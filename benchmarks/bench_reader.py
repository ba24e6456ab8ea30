"""Reader throughput: pairs per second, random and sequential, against a plain h5py loop.

Builds one shard of ``--samples`` msmd-preset samples (sheet 160x200 uint8,
spectrogram 92x42 float16) in a temporary dataset folder, either tiled from
the train split of an existing dataset (``--dataset``) or filled with random
values (the contents do not change read speed), then times:

* a plain h5py loop, ``f["sheet"][i]`` and ``f["spec"][i]`` per sample;
* ``SnippetDataset[i]`` in one process;
* ``SnippetDataset.iter_batches``;
* a torch ``DataLoader`` with 1 and 2 workers, when torch is installed
  (it is not a dependency: ``pip install torch`` for this benchmark), both
  per sample (``batch_size=64``, default collation) and per batch
  (``batch_size=None`` with a ``BatchSampler``: ``ds[[i, j, ...]]``).

Random order is a seeded permutation of all samples.  Run
``python benchmarks/bench_reader.py [--samples 20000] [--dataset out/dataset]``.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

from msmd_prep.data import SCHEMA_VERSION, SnippetDataset
from msmd_prep.packing.core import write_shard
from msmd_prep.packing.snippets import META_DTYPE, PRESETS


def make_dataset(folder: Path, *, samples: int, source: Path | None, chunk_samples: int) -> Path:
    """Write a one-shard ``train`` split of ``samples`` msmd samples into ``folder``."""
    preset = PRESETS["msmd"]
    H, W, F, T = (preset.sheet_height_px, preset.sheet_width_px, preset.spec_bins,
                  preset.spec_frames)
    rng = np.random.default_rng(0)
    if source is not None:
        src = SnippetDataset(source, "train")
        batches = list(src.iter_batches(1024))
        base_sheet = np.concatenate([b[0] for b in batches])
        base_spec = np.concatenate([b[1] for b in batches])
        with h5py.File(source / src.index["splits"]["train"]["shards"][0]["path"], "r") as f:
            base_meta = f["meta"][:]
        reps = -(-samples // len(base_sheet))
        sheet = np.tile(base_sheet, (reps, 1, 1))[:samples]
        spec = np.tile(base_spec, (reps, 1, 1))[:samples]
        meta = np.tile(base_meta, reps)[:samples]
    else:
        sheet = rng.integers(0, 256, (samples, H, W), dtype=np.uint8)
        spec = rng.random((samples, F, T), dtype=np.float32).astype(np.float16)
        meta = np.zeros(samples, dtype=META_DTYPE)
        meta["piece"] = b"bench"
        meta["notehead_id"] = [f"h{i}".encode() for i in range(samples)]
    (folder / "train").mkdir(parents=True)
    shard = folder / "train" / "shard-00000.h5"
    write_shard(shard, {"sheet": sheet, "spec": spec, "meta": meta}, chunk_samples=chunk_samples,
                attrs={"schema_version": SCHEMA_VERSION})
    (folder / "index.json").write_text(json.dumps({
        "schema_version": SCHEMA_VERSION, "sheet_shape": [H, W], "spec_shape": [F, T],
        "spec_dtype": "float16",
        "splits": {"train": {"count": samples, "pieces": [],
                             "shards": [{"path": "train/shard-00000.h5", "count": samples}]}},
        "pieces": {}}))
    return shard


def rate(n: int, seconds: float) -> str:
    return f"{n / seconds:10,.0f} pairs/s"


def bench_plain(shard: Path, order: np.ndarray) -> float:
    with h5py.File(shard, "r", rdcc_nbytes=64 << 20) as f:
        sheet, spec = f["sheet"], f["spec"]
        t = time.perf_counter()
        for i in order.tolist():
            sheet[i]
            spec[i]
        return time.perf_counter() - t


def bench_getitem(root: Path, order: np.ndarray) -> float:
    ds = SnippetDataset(root, "train")
    ds[0]
    t = time.perf_counter()
    for i in order.tolist():
        ds[i]
    return time.perf_counter() - t


def bench_batches(root: Path, *, shuffle: bool, batch_size: int) -> tuple[int, float]:
    ds = SnippetDataset(root, "train")
    t = time.perf_counter()
    n = sum(len(s) for s, _, _ in ds.iter_batches(batch_size, shuffle=shuffle, seed=0))
    return n, time.perf_counter() - t


class _Zeros:
    """A dataset that reads nothing: batches of zeros of the msmd shapes."""

    def __len__(self) -> int:
        return 1 << 30

    def __getitem__(self, indices):  # type: ignore[no-untyped-def]
        return (np.zeros((len(indices), 160, 200), np.uint8),
                np.zeros((len(indices), 92, 42), np.float16), {})


def bench_loader(root: Path | None, order: np.ndarray, *, workers: int, batch_size: int,
                 batched: bool) -> tuple[int, float]:
    """Time a torch DataLoader over ``order``: per-sample reads and collation, or
    whole batches (``ds[[i, j, ...]]`` through a BatchSampler)."""
    import torch

    ds = SnippetDataset(root, "train") if root is not None else _Zeros()
    indices = order.tolist()
    if batched:
        sampler = torch.utils.data.BatchSampler(indices, batch_size, drop_last=False)
        loader = torch.utils.data.DataLoader(ds, batch_size=None, sampler=sampler,
                                             num_workers=workers)
    else:
        loader = torch.utils.data.DataLoader(ds, batch_size=batch_size, sampler=indices,
                                             num_workers=workers)
    it = iter(loader)
    first = len(next(it)[0])          # workers started and files open before timing
    n = 0
    t = time.perf_counter()
    for sheet, _, _ in it:
        n += len(sheet)
    assert n + first == len(indices)
    return n, time.perf_counter() - t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=20000)
    parser.add_argument("--dataset", type=Path, default=None,
                        help="tile the train split of this dataset instead of random values")
    parser.add_argument("--chunk-samples", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--loader-samples", type=int, default=5000,
                        help="samples read through each DataLoader configuration")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-reader-") as tmp:
        root = Path(tmp)
        shard = make_dataset(root, samples=args.samples, source=args.dataset,
                             chunk_samples=args.chunk_samples)
        n = args.samples
        orders = {"sequential": np.arange(n), "random": np.random.default_rng(1).permutation(n)}
        print(f"{n} msmd samples, {shard.stat().st_size / 1e6:.0f} MB, chunk "
              f"{args.chunk_samples} sample(s), batch {args.batch_size}")
        bench_plain(shard, orders["sequential"])   # warm the page cache
        for name, order in orders.items():
            print(f"plain h5py loop      {name:10s} {rate(n, bench_plain(shard, order))}")
            print(f"SnippetDataset[i]    {name:10s} {rate(n, bench_getitem(root, order))}")
        for shuffle in (False, True):
            name = "random" if shuffle else "sequential"
            count, secs = bench_batches(root, shuffle=shuffle, batch_size=args.batch_size)
            print(f"iter_batches         {name:10s} {rate(count, secs)}")
        try:
            import torch  # noqa: F401
        except ImportError:
            print("torch is not installed: no DataLoader figures")
            return
        for workers in (1, 2):
            count, secs = bench_loader(None, orders["sequential"][:args.loader_samples],
                                       workers=workers, batch_size=args.batch_size, batched=True)
            print(f"DataLoader zeros   {workers}w (transfer only) {rate(count, secs)}")
        for batched in (False, True):
            mode = "batches" if batched else "samples"
            for workers in (1, 2):
                for name, order in orders.items():
                    count, secs = bench_loader(root, order[:args.loader_samples],
                                               workers=workers, batch_size=args.batch_size,
                                               batched=batched)
                    print(f"DataLoader {mode} {workers}w {name:10s} {rate(count, secs)}"
                          f"  ({count / secs / workers:,.0f} per worker)")

if __name__ == "__main__":
    main()
