"""The on-the-fly reader against packed shards and a plain h5py loop, on one dataset.

``--dataset`` is a dataset packed by this version (piece files and
compressed shards).  For the baselines its split is also written the way
earlier versions did, uncompressed with one sample per chunk (``sheet``,
``spec`` (N, F, T), ``meta``), into a temporary folder.  All in one process
run, random order (a seeded permutation), pairs per second, with two ratios:
against the plain h5py loop and against ``SnippetDataset[i]`` over the
uncompressed shards (today's reader on today's shards):

* plain h5py loop over the uncompressed shards, ``f["sheet"][j]``, ``f["spec"][j]``;
* ``SnippetDataset[i]`` over the uncompressed and over the compressed
  shards (the random-access target: compressed >= 0.8x the plain loop),
  and ``SnippetDataset[batch]`` over the compressed ones;
* ``SnippetReader`` without augmentation from a cold start (construction,
  which decodes the piece files, plus the first epoch, batches of 100),
  then a warm epoch, the same with the batches made row-major
  (``np.ascontiguousarray``: what a consumer that needs C order pays),
  with ``read_into`` reusing one batch's arrays, and ``reader[i]`` one
  by one; cold again with ``read_into`` (piece files decoded in 2
  threads, and in 1);
* ``SnippetReader`` with the ``msmd`` augmentation, cold (construction
  rescales the scores) and warm;
* a torch DataLoader (if torch is importable), 2 workers, batches of 100,
  one epoch including the workers' start: over ``SnippetReader``
  augmented (``collate_fn=torch_batch``), over ``SnippetDataset``
  (compressed shards, ``BatchSampler``), and over a dataset that returns
  ready arrays of the same shapes (what torch's transfer from the workers
  alone allows);
* :class:`msmd_prep.loader.SnippetLoader` (if torch is importable), 2
  workers, batches of 100, with the ``msmd`` augmentation and without, a
  first epoch (including the workers' start) and a second one (its
  workers persist): the workers cut the batches into shared slots
  allocated once, the main process hands out views of them.

Also printed: the machine's load average and its memory copy bandwidth
(``np.copyto`` of 256 MB), which bounds a reader that copies every pair's
bytes once; the excerpt copies alone, from the reader's own stores into a
reused batch (its layout, its shuffled windows, no metadata), in 1 and 2
threads: the bound of a copying reader here; and the best cold figure
these allow (the load measured plus an epoch at that bound) against the
200k pairs/s goal.  ``--reader-only`` (or a dataset without shards) runs
the reader rows and the bounds only.  CPU seconds are those of this
process and of its children (the DataLoader's workers, running or ended): on a machine whose cores
are taken by others, pairs per CPU second estimate what one free core does.
"Cold" is a new reader object; the files may be in the page cache (the
machine is shared, its cache cannot be dropped).
Run: ``python benchmarks/bench_onthefly.py --dataset DIR [--split train] [--reader-only]``.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import h5py
import numpy as np

from msmd_prep.data import SnippetDataset
from msmd_prep.packing.core import write_shard
from msmd_prep.packing.excerpts import no_augmentation, sheet_windows, spec_start, spec_windows
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
    """Wall and CPU time (this process and its ended children) since it was made."""

    def __init__(self) -> None:
        self.wall, self.cpu = time.perf_counter(), cpu_seconds()

    def rates(self, n: int) -> tuple[float, float]:
        return n / (time.perf_counter() - self.wall), n / (cpu_seconds() - self.cpu)


def cpu_seconds() -> float:
    """CPU seconds of this process and its children, ended (and waited for) or running."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(
        resource.RUSAGE_CHILDREN)
    return (own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime
            + sum(map(running_cpu_seconds, multiprocessing.active_children())))


def running_cpu_seconds(process) -> float:  # type: ignore[no-untyped-def]
    """User and system CPU seconds of a running child so far (``/proc/PID/stat``)."""
    try:
        fields = Path(f"/proc/{process.pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def copy_bandwidth(nbytes: int = 256 << 20) -> float:
    """Bytes per second of ``np.copyto`` between two ``nbytes`` arrays (best of 3)."""
    a = np.ones(nbytes, np.uint8)
    b = np.zeros_like(a)
    best = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        np.copyto(b, a)
        best = min(best, time.perf_counter() - t)
    return nbytes / best


def copy_bound(reader, order: np.ndarray, batch: int, threads: int,  # type: ignore[no-untyped-def]
               *, specs: bool = True) -> float:
    """Pairs/s of the excerpt copies alone: the bound of a reader that copies every pair.

    The sheet (and spectrogram) excerpt of each sample of ``order``, from
    the reader's own stores (its layout, its windows, unaugmented), into a
    reused batch array of ``batch`` (as ``read_into`` writes it): one numpy
    slice copy per sheet excerpt and one gather of a batch's spectrogram
    excerpts (the reader's, 1.6 us per pair against 2.6-3 us for slice
    copies), nothing else (no metadata, no checks).  In
    ``threads`` threads, each copying its share of the epoch into its own
    batch array (numpy copies without the GIL).  Best of 2 epochs.
    """
    H, W = reader.sheet_shape
    T = reader.spec_shape[1]
    sheet, spec = reader._sheets, reader._specs      # noqa: SLF001 (the reader's layout)
    perf = reader._perf[order]
    lefts, tops, _ = sheet_windows(sheet, reader._image[perf], x=reader._x[order],
                                   center_y=reader._cy[order], aug=no_augmentation(len(order)),
                                   height_px=H, width_px=W)
    starts = spec_start(reader._onset_frame[order], n_frames=T, anchor=reader.config.spec_anchor,
                        jitter_max_frames=reader.config.jitter_max_frames)
    first, _ = spec_windows(spec, perf, starts=starts, n_frames=T)
    # The rare excerpt beyond the stores is cut on its own by the reader: here, one nearby.
    lefts = np.clip(lefts, 0, len(sheet.array) - W).tolist()
    tops = np.clip(tops, 0, sheet.array.shape[1] - H).tolist()
    first = np.clip(first, 0, len(spec.array) - T)
    a, s, frame = sheet.array, spec.array, np.arange(T)

    def run(lo: int, hi: int) -> None:
        out_sheets, out_specs = reader.new_batch(batch)
        columns, frames = out_sheets.transpose(0, 2, 1), out_specs.transpose(0, 2, 1)
        for b in range(lo, hi, batch):
            for k in range(b, min(b + batch, hi)):
                columns[k - b] = a[lefts[k]:lefts[k] + W, tops[k]:tops[k] + H]
            if specs:    # one gather per batch, as the reader does
                m = min(batch, hi - b)
                np.take(s, first[b:b + m, None] + frame, axis=0, out=frames[:m], mode="clip")

    n = len(order)
    cuts = np.linspace(0, n, threads + 1).astype(int).tolist()
    best = float("inf")
    with ThreadPoolExecutor(threads) as pool:
        for _ in range(2):
            t = time.perf_counter()
            list(pool.map(run, cuts[:-1], cuts[1:]))
            best = min(best, time.perf_counter() - t)
    return n / best


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


def epoch(reader, order: np.ndarray, batch: int, *,  # type: ignore[no-untyped-def]
          row_major: bool = False, into: bool = False) -> int:
    """Read ``order`` in batches: new arrays each, or ``into`` the same ones (``read_into``)."""
    n = 0
    out = reader.new_batch(batch) if into else None
    for lo in range(0, len(order), batch):
        idx = order[lo:lo + batch]
        if out is not None:
            sheets, specs = out[0][:len(idx)], out[1][:len(idx)]
            reader.read_into(idx, sheets, specs)
        else:
            sheets, specs, _ = reader[idx]
        if row_major:
            sheets, specs = np.ascontiguousarray(sheets), np.ascontiguousarray(specs)
        n += len(sheets)
    return n


class ReadyArrays:
    """A dataset whose batches are ready arrays of the given shapes: torch's transfer alone."""

    def __init__(self, n: int, sheet: np.ndarray, spec: np.ndarray) -> None:
        self.n, self.sheet, self.spec = n, sheet, spec

    def __len__(self) -> int:
        return self.n

    def __getitems__(self, indices):  # type: ignore[no-untyped-def]
        B = len(indices)
        return (np.broadcast_to(self.sheet, (B, *self.sheet.shape)).copy(),
                np.broadcast_to(self.spec, (B, *self.spec.shape)).copy(), {})


def loader_rates(ds, order: np.ndarray, *, workers: int, batch: int, reader: bool,  # type: ignore[no-untyped-def]
                 ) -> tuple[float, float]:
    import torch

    if reader:
        loader = torch.utils.data.DataLoader(ds, batch_size=batch, sampler=order.tolist(),
                                             num_workers=workers, collate_fn=torch_batch)
    else:
        sampler = torch.utils.data.BatchSampler(order.tolist(), batch, drop_last=False)
        loader = torch.utils.data.DataLoader(ds, batch_size=None, sampler=sampler,
                                             num_workers=workers)
    clock = Clock()
    n = sum(len(b[0]) for b in loader)
    return clock.rates(n)


def snippet_loader_rates(reader, *, workers: int, batch: int,  # type: ignore[no-untyped-def]
                         ) -> tuple[list[tuple[float, float]], str]:
    """Pairs per second of a first epoch (with the workers' start) and a second one."""
    from msmd_prep.loader import SnippetLoader

    loader = SnippetLoader(reader, batch, num_workers=workers)
    rates = []
    for epoch in range(2):
        loader.set_epoch(epoch)
        clock = Clock()
        n = sum(len(b[0]) for b in loader)
        rates.append(clock.rates(n))
    loader.close()
    reader.set_epoch(0)
    return rates, f"{loader.in_slots} batches from slots, {loader.fresh} fresh"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", type=Path, required=True)
    parser.add_argument("--split", default="train")
    parser.add_argument("--loop-samples", type=int, default=20000,
                        help="samples read one by one in the per-sample loops")
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--reader-only", action="store_true",
                        help="only the SnippetReader rows and the bounds (also when the "
                             "dataset has no shards)")
    args = parser.parse_args()
    index = json.loads((args.dataset / "index.json").read_text())
    baselines = not args.reader_only and bool(index["splits"][args.split].get("shards"))
    load_before = os.getloadavg()
    bandwidth = copy_bandwidth()
    results: dict[str, tuple[float, float]] = {}
    slots: dict[str, str] = {}
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
        clock = Clock()
        epoch(reader, order, args.batch, row_major=True)
        results["reader, no aug, warm epoch, made row-major"] = clock.rates(n)
        loop = order[:args.loop_samples]
        clock = Clock()
        epoch(reader, order, args.batch, into=True)
        results["reader, no aug, warm epoch, read_into"] = clock.rates(n)
        results["reader[i], no aug"] = getitem_loop(reader, loop)
        sample = reader[0]
        pair_bytes = sample[0].nbytes + sample[1].nbytes
        bounds = {threads: copy_bound(reader, order, args.batch, threads) for threads in (1, 2)}
        sheets_only = copy_bound(reader, order, args.batch, 1, specs=False)
        store_rows = (reader._sheets.array.shape[1], reader.sheet_shape[0])  # noqa: SLF001
        del reader
        clock = Clock()
        reader = SnippetReader(args.dataset, args.split, augment=False)
        into_load_s = time.perf_counter() - clock.wall
        epoch(reader, order, args.batch, into=True)
        results["reader, no aug, cold (load + epoch 1), read_into"] = clock.rates(n)
        del reader
        clock = Clock()
        reader = SnippetReader(args.dataset, args.split, augment=False, threads=1)
        one_load_s = time.perf_counter() - clock.wall
        epoch(reader, order, args.batch, into=True)
        results["reader, no aug, cold, read_into, 1 decoding thread"] = clock.rates(n)
        del reader
        clock = Clock()
        aug = SnippetReader(args.dataset, args.split, augment=True)
        aug_load_s = time.perf_counter() - clock.wall
        epoch(aug, order, args.batch)
        results["reader, msmd aug, cold (load + epoch 1)"] = clock.rates(n)
        clock = Clock()
        epoch(aug, order, args.batch)
        results["reader, msmd aug, warm epoch"] = clock.rates(n)
        clock = Clock()
        epoch(aug, order, args.batch, into=True)
        results["reader, msmd aug, warm epoch, read_into"] = clock.rates(n)
        if not baselines:
            del aug
            report(args, n, results, load_before, bandwidth, pair_bytes, bounds, sheets_only,
                   store_rows, (load_s, into_load_s, one_load_s, aug_load_s, first_s))
            return

        shards = uncompressed_copy(args.dataset, args.split, Path(tmp))
        plain_loop(shards, loop)     # warms the page cache
        results["plain h5py loop, uncompressed shards"] = plain_loop(shards, loop)
        results["SnippetDataset[i], uncompressed shards"] = getitem_loop(
            SnippetDataset(tmp, args.split), loop)
        packed = SnippetDataset(args.dataset, args.split)
        results["SnippetDataset[i], compressed shards"] = getitem_loop(packed, loop)
        clock = Clock()
        epoch(packed, loop, args.batch)
        results["SnippetDataset[batch], compressed shards"] = clock.rates(len(loop))
        try:
            import torch  # noqa: F401
        except ImportError:
            torch = None
        if torch is not None:
            results["DataLoader 2 workers, reader, msmd aug"] = loader_rates(
                aug, order, workers=2, batch=args.batch, reader=True)
            results["DataLoader 2 workers, SnippetDataset compressed"] = loader_rates(
                SnippetDataset(args.dataset, args.split), order[:args.loop_samples * 2],
                workers=2, batch=args.batch, reader=False)
            results["DataLoader 2 workers, ready arrays (transfer only)"] = loader_rates(
                ReadyArrays(n, np.ascontiguousarray(sample[0]), np.ascontiguousarray(sample[1])),
                order, workers=2, batch=args.batch, reader=True)
            unaugmented = SnippetReader(args.dataset, args.split, augment=False)
            for name, ds in (("msmd aug", aug), ("no aug", unaugmented)):
                (first, second), slots[name] = snippet_loader_rates(ds, workers=2,
                                                                    batch=args.batch)
                results[f"SnippetLoader 2 workers, {name}, epoch 1"] = first
                results[f"SnippetLoader 2 workers, {name}, epoch 2"] = second
    report(args, n, results, load_before, bandwidth, pair_bytes, bounds, sheets_only, store_rows,
           (load_s, into_load_s, one_load_s, aug_load_s, first_s))
    if torch is None:
        print("  torch is not installed: no DataLoader figures")
        return
    loader, loader_cpu = results["DataLoader 2 workers, reader, msmd aug"]
    ready, ready_cpu = results["DataLoader 2 workers, ready arrays (transfer only)"]
    for name, counts in slots.items():
        for k in (1, 2):
            value, cpu = results[f"SnippetLoader 2 workers, {name}, epoch {k}"]
            print(f"  SnippetLoader, {name}, epoch {k}: {value / loader:.2f}x the DataLoader "
                  f"over the reader (msmd aug), {value / ready:.2f}x transfer only; per CPU s "
                  f"{cpu / loader_cpu:.2f}x, {cpu / ready_cpu:.2f}x")
        print(f"    ({counts})")


def report(args, n: int, results: dict[str, tuple[float, float]],  # type: ignore[no-untyped-def]
           load_before: tuple[float, ...], bandwidth: float, pair_bytes: int,
           bounds: dict[int, float], sheets_only: float, store_rows: tuple[int, int],
           seconds: tuple[float, ...]) -> None:
    """Print the reader's table, the copy bounds and the best cold figure they allow."""
    load_s, into_load_s, one_load_s, aug_load_s, first_s = seconds
    print(f"{args.dataset} {args.split}: {n} samples; load average {load_before[0]:.2f} before, "
          f"{os.getloadavg()[0]:.2f} after")
    print(f"  piece files decoded in {load_s:.2f} s, again {into_load_s:.2f} s, in 1 thread "
          f"{one_load_s:.2f} s (augmented: {aug_load_s:.2f} s), first epoch {first_s:.2f} s; "
          f"batches of {args.batch}; decoded in 2 threads unless said")
    print(f"  memory copy {bandwidth / 1e9:.2f} GB/s: {bandwidth / pair_bytes:,.0f} pairs/s "
          f"of {pair_bytes} bytes copied once")
    best = max(bounds.values())
    print(f"  excerpt copies alone (the reader's stores, {store_rows[1]} of {store_rows[0]} bytes "
          f"per sheet column, shuffled, into a reused batch): 1 thread {bounds[1]:,.0f} pairs/s, "
          f"2 threads {bounds[2]:,.0f}; sheets only, 1 thread {sheets_only:,.0f}")
    load = min(load_s, into_load_s)
    goal_s = n / 200_000
    print(f"  cold bound: load {load:.2f} s (best no-aug load above) + epoch at the copy bound "
          f"{n / best:.2f} s = {load + n / best:.2f} s: at most {n / (load + n / best):,.0f} "
          f"pairs/s cold; 200k pairs/s needs {goal_s:.3f} s in all, "
          f"{goal_s - n / best:+.3f} s left for the load")
    ratios = "plain h5py loop, uncompressed shards" in results
    if ratios:
        plain, plain_cpu = results["plain h5py loop, uncompressed shards"]
        today, today_cpu = results["SnippetDataset[i], uncompressed shards"]
        print(f"  {'':52s} {'wall':>8s} {'x plain':>8s} {'x today':>8s} {'per CPU s':>10s} "
              f"{'x plain':>8s} {'x today':>8s}")
    else:
        print(f"  {'':52s} {'wall':>8s} {'per CPU s':>10s}   (no shard baselines)")
    for name, (value, cpu) in results.items():
        if ratios:
            print(f"  {name:52s} {value:8,.0f} {value / plain:8.2f} {value / today:8.2f} "
                  f"{cpu:10,.0f} {cpu / plain_cpu:8.2f} {cpu / today_cpu:8.2f}")
        else:
            print(f"  {name:52s} {value:8,.0f} {cpu:10,.0f}")
    if ratios:
        print("  (today: SnippetDataset[i] over uncompressed shards; plain: the h5py loop)")


if __name__ == "__main__":
    main()
