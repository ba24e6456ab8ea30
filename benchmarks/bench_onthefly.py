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
machine are noisy: compare the ratios, measured in one run.
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


def rate(n: int, seconds: float) -> float:
    return n / seconds


def plain_loop(shards: list[tuple[Path, int]], order: np.ndarray) -> float:
    starts = np.cumsum([0] + [n for _, n in shards])
    files = [h5py.File(p, "r", rdcc_nbytes=64 << 20) for p, _ in shards]
    data = [(f["sheet"], f["spec"]) for f in files]
    where = np.searchsorted(starts, order, side="right") - 1
    t = time.perf_counter()
    for k, i in zip(where.tolist(), order.tolist()):
        sheet, spec = data[k]
        sheet[i - starts[k]]
        spec[i - starts[k]]
    dt = time.perf_counter() - t
    for f in files:
        f.close()
    return rate(len(order), dt)


def getitem_loop(ds, order: np.ndarray) -> float:  # type: ignore[no-untyped-def]
    ds[0]
    t = time.perf_counter()
    for i in order.tolist():
        ds[i]
    return rate(len(order), time.perf_counter() - t)


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
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="bench-onthefly-") as tmp:
        t = time.perf_counter()
        reader = SnippetReader(args.dataset, args.split, augment=False)
        load_s = time.perf_counter() - t
        n = len(reader)
        order = np.random.default_rng(1).permutation(n)
        t = time.perf_counter()
        epoch(reader, order, args.batch)
        first_s = time.perf_counter() - t
        results["reader, no aug, cold (load + epoch 1)"] = rate(n, load_s + first_s)
        t = time.perf_counter()
        epoch(reader, order, args.batch)
        results["reader, no aug, warm epoch"] = rate(n, time.perf_counter() - t)
        loop = order[:args.loop_samples]
        results["reader[i], no aug"] = getitem_loop(reader, loop)
        aug = SnippetReader(args.dataset, args.split, augment=True)
        t = time.perf_counter()
        epoch(aug, order, args.batch)
        results["reader, msmd aug, epoch"] = rate(n, time.perf_counter() - t)

        shards = uncompressed_copy(args.dataset, args.split, Path(tmp))
        plain = plain_loop(shards, loop)     # warms the page cache
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
            results["DataLoader 2 workers, reader, msmd aug"] = loader_rate(
                aug, order, workers=2, batch=args.batch, reader=True)
            results["DataLoader 2 workers, SnippetDataset compressed"] = loader_rate(
                SnippetDataset(args.dataset, args.split), order[:args.loop_samples * 2],
                workers=2, batch=args.batch, reader=False)
    plain = results["plain h5py loop, uncompressed shards"]
    print(f"{args.dataset} {args.split}: {n} samples; piece files decoded in {load_s:.2f} s, "
          f"first epoch {first_s:.2f} s; batches of {args.batch}")
    for name, value in results.items():
        print(f"  {name:50s} {value:10,.0f} pairs/s  {value / plain:7.2f}x plain h5py")
    if torch is None:
        print("  torch is not installed: no DataLoader figures")


if __name__ == "__main__":
    main()
