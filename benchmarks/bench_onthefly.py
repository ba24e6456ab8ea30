"""The on-the-fly reader against packed shards and a plain h5py loop, on one dataset.

``--dataset`` is a dataset packed by this version (piece files and
compressed shards).  For the baselines its split is also written the way
earlier versions did, uncompressed with one sample per chunk (``sheet``,
``spec`` (N, F, T), ``meta``), into a temporary folder.  All in one process
run, random order (a seeded permutation), pairs per second:

* plain h5py loop over the uncompressed shards, ``f["sheet"][j]``, ``f["spec"][j]``;
* ``SnippetDataset[i]`` over the uncompressed shards (the reader of earlier versions);
* ``SnippetDataset[i]`` over the compressed shards (the random-access target
  is >= 0.8x the plain loop over uncompressed shards);
* ``SnippetReader`` without augmentation, from a cold start (construction,
  which decodes the piece files, plus the first epoch, batches of 100),
  then a warm epoch, and ``reader[i]`` one by one;
* ``SnippetReader`` with the ``msmd`` augmentation, one epoch in batches of 100;
* a torch DataLoader (if torch is importable) over ``SnippetReader`` with 2
  workers, batches of 100 (``collate_fn=torch_batch``), augmented, and over
  ``SnippetDataset`` (compressed shards, ``BatchSampler``) for comparison.

"Cold" is a new process object; the files may be in the page cache (the
machine is shared, its cache cannot be dropped).  Timings on a shared
machine are noisy: compare the ratios, measured in one run.  For the
one-process figures the CPU time of this process is printed too (pairs per
CPU second): on a machine whose cores are taken by others, it estimates what
one free core would do.
Run: ``python benchmarks/bench_onthefly.py --dataset DIR [--split train]``.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

from msmd_prep.data import SnippetDataset
from msmd_prep.packing.core import write_shard
from msmd_prep.reader import SnippetReader, torch_batch


def uncompressed_copy(root: Path, split: str, folder: Path) -> list[tuple[Path, int]]:
    """Write ``split`` of ``root`` as uncompressed shards into ``folder``; the shards and counts."""
    index = json.loads((root / "index.json").read_text())
    ds = SnippetDataset(root, split)
    shards, start = [], 0
    (folder / split).mkdir(parents=True)
    for k, entry in enumerate(index["splits"][split]["shards"]):
        n = entry["count"]
        sheet, spec, _ = ds[np.arange(start, start + n)]
        with h5py.File(root / entry["path"], "r") as f:
            meta = f["meta"][:]
        path = folder / split / f"shard-{k:05d}.h5"
        write_shard(path, {"sheet": sheet, "spec": spec, "meta": meta}, chunk_samples=1,
                    attrs={"schema_version": index["schema_version"]})
        entry["path"] = f"{split}/{path.name}"
        shards.append((path, n))
        start += n
    (folder / "index.json").write_text(json.dumps(index))
    return shards


class Clock:
    """Wall and CPU time (this process) since it was made."""

    def __init__(self) -> None:
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def rates(self, n: int) -> tuple[float, float]:
        return n / (time.perf_counter() - self.wall), n / (time.process_time() - self.cpu)


def rate(n: int, seconds: float) -> float:
    return n / seconds


def plain_loop(shards: list[tuple[Path, int]], order: np.ndarray) -> tuple[float, float]:
    starts = np.cumsum([0] + [n for _, n in shards])
    files = [h5py.File(p, "r", rdcc_nbytes=64 << 20) for p, _ in shards]
    data = [(f["sheet"], f["spec"]) for f in files]
    where = np.searchsorted(starts, order, side="right") - 1
    clock = Clock()
    for k, i in zip(where.tolist(), order.tolist()):
        sheet, spec = data[k]
        sheet[i - starts[k]]
        spec[i - starts[k]]
    rates = clock.rates(len(order))
    for f in files:
        f.close()
    return rates


def getitem_loop(ds, order: np.ndarray) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    ds[0]
    clock = Clock()
    for i in order.tolist():
        ds[i]
    return clock.rates(len(order))


def epoch(reader: SnippetReader, order: np.ndarray, batch: int) -> int:
    n = 0
    for lo in range(0, len(order), batch):
        n += len(reader.__getitems__(order[lo:lo + batch])[0])
    return n


def loader_rate(ds, order: np.ndarray, *, workers: int, batch: int, reader: bool) -> float:  # type: ignore[no-untyped-def]
    import torch

    if reader:
        loader = torch.utils.data.DataLoader(ds, batch_size=batch, sampler=order.tolist(),
                                             num_workers=workers, collate_fn=torch_batch)
    else:
        sampler = torch.utils.data.BatchSampler(order.tolist(), batch, drop_last=False)
        loader = torch.utils.data.DataLoader(ds, batch_size=None, sampler=sampler,
                                             num_workers=workers)
    t = time.perf_counter()
    n = sum(len(b[0]) for b in loader)
    return rate(n, time.perf_counter() - t)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", type=Path, required=True)
    parser.add_argument("--split", default="train")
    parser.add_argument("--loop-samples", type=int, default=20000,
                        help="samples read one by one in the per-sample loops")
    parser.add_argument("--batch", type=int, default=100)
    args = parser.parse_args()
    results: dict[str, tuple[float, float | None]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-onthefly-") as tmp:
        clock = Clock()
        reader = SnippetReader(args.dataset, args.split, augment=False)
        load_s = time.perf_counter() - clock.wall
        n = len(reader)
        order = np.random.default_rng(1).permutation(n)
        epoch(reader, order, args.batch)
        first_s = time.perf_counter() - clock.wall - load_s
        results["reader, no aug, cold (load + epoch 1)"] = clock.rates(n)
        clock = Clock()
        epoch(reader, order, args.batch)
        results["reader, no aug, warm epoch"] = clock.rates(n)
        loop = order[:args.loop_samples]
        results["reader[i], no aug"] = getitem_loop(reader, loop)
        aug = SnippetReader(args.dataset, args.split, augment=True)
        clock = Clock()
        epoch(aug, order, args.batch)
        results["reader, msmd aug, epoch"] = clock.rates(n)

        shards = uncompressed_copy(args.dataset, args.split, Path(tmp))
        plain_loop(shards, loop)     # warms the page cache
        results["plain h5py loop, uncompressed shards"] = plain_loop(shards, loop)
        results["SnippetDataset[i], uncompressed shards"] = getitem_loop(
            SnippetDataset(tmp, args.split), loop)
        results["SnippetDataset[i], compressed shards"] = getitem_loop(
            SnippetDataset(args.dataset, args.split), loop)
        try:
            import torch  # noqa: F401
        except ImportError:
            torch = None
        if torch is not None:
            results["DataLoader 2 workers, reader, msmd aug"] = (loader_rate(
                aug, order, workers=2, batch=args.batch, reader=True), None)
            results["DataLoader 2 workers, SnippetDataset compressed"] = (loader_rate(
                SnippetDataset(args.dataset, args.split), order[:args.loop_samples * 2],
                workers=2, batch=args.batch, reader=False), None)
    plain, plain_cpu = results["plain h5py loop, uncompressed shards"]
    print(f"{args.dataset} {args.split}: {n} samples; piece files decoded in {load_s:.2f} s, "
          f"first epoch {first_s:.2f} s; batches of {args.batch}")
    print(f"  {'':50s} {'wall':>10s} {'':8s} {'':7s} {'per CPU s':>10s}")
    for name, (value, cpu) in results.items():
        cpu_text = "" if cpu is None else f"{cpu:10,.0f} ({cpu / plain_cpu:5.2f}x)"
        print(f"  {name:50s} {value:10,.0f} pairs/s {value / plain:6.2f}x plain h5py  {cpu_text}")
    if torch is None:
        print("  torch is not installed: no DataLoader figures")


if __name__ == "__main__":
    main()
