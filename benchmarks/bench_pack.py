"""pack in 1 and 2 processes on a work folder: wall time, speed-up, same bytes, sizes.

Packs ``WORKDIR`` (after align) with the snippet task, shards on, alternately
with ``--jobs 1`` and ``--jobs 2`` (``--runs`` times each, interleaved so that
load on a shared machine affects both alike), checks that both give the same
files byte for byte, and prints the median times, their ratio and the size
table of the result (piece files and shards, per piece and per sample:
sheet, spectrogram, metadata).  Each run also reports the CPU seconds of
the main process and of its workers, and the load average before it.

Run: ``python benchmarks/bench_pack.py WORKDIR [--runs 2] [--out /tmp/bench-pack]``.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import time
from pathlib import Path

import h5py

from msmd_prep.packing.snippets import PackConfig, pack_workdir


def storage(path: Path) -> dict[str, int]:
    """Bytes stored per role in one HDF5 file: sheet, spec, meta, and the whole file."""
    roles = {"sheet": 0, "spec": 0, "meta": 0}
    with h5py.File(path, "r") as f:
        def visit(name: str, obj) -> None:  # type: ignore[no-untyped-def]
            if isinstance(obj, h5py.Dataset):
                leaf = name.rsplit("/", 1)[-1]
                role = ("sheet" if leaf in ("sheet", "unrolled") else
                        "spec" if leaf.startswith("spec") and leaf != "spec_offset" else "meta")
                roles[role] += obj.id.get_storage_size()
        f.visititems(visit)
    roles["file"] = path.stat().st_size
    return roles


def size_table(root: Path) -> None:
    index = json.loads((root / "index.json").read_text())
    samples = sum(e["samples"] for e in index["pieces"].values())
    n_pieces = len(index["pieces"])
    forms = {"pieces": sorted((root / "pieces").glob("*.h5")),
             "shards": sorted(root.glob("*/shard-*.h5"))}
    print(f"{n_pieces} pieces, {samples} samples")
    print(f"{'form':8s} {'total MB':>9s} | per piece KB: {'sheet':>8s} {'spec':>8s} {'meta':>7s} "
          f"| per sample B: {'sheet':>7s} {'spec':>6s} {'meta':>5s} {'file':>6s}")
    for form, files in forms.items():
        total = {"sheet": 0, "spec": 0, "meta": 0, "file": 0}
        for p in files:
            for k, v in storage(p).items():
                total[k] += v
        print(f"{form:8s} {total['file'] / 1e6:9.1f} | {'':14s}"
              f"{total['sheet'] / n_pieces / 1e3:8.1f} {total['spec'] / n_pieces / 1e3:8.1f} "
              f"{total['meta'] / n_pieces / 1e3:7.1f} | {'':14s}"
              f"{total['sheet'] / samples:7.0f} {total['spec'] / samples:6.0f} "
              f"{total['meta'] / samples:5.0f} {total['file'] / samples:6.0f}")


def _cpu() -> tuple[float, float]:
    """CPU seconds (user + system) of this process and of its finished children."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime, kids.ru_utime + kids.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("workdir", type=Path)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("/tmp/bench-pack"))
    args = parser.parse_args()
    times: dict[int, list[float]] = {1: [], 2: []}
    for _ in range(args.runs):
        for jobs in (1, 2):
            out = args.out / f"jobs{jobs}"
            load = os.getloadavg()[0]
            before = _cpu()
            t = time.perf_counter()
            pack_workdir(args.workdir, out, PackConfig(), jobs=jobs)
            times[jobs].append(time.perf_counter() - t)
            main_s, workers_s = (a - b for a, b in zip(_cpu(), before))
            print(f"jobs {jobs}: {times[jobs][-1]:.1f} s wall, CPU {main_s:.1f} s main "
                  f"+ {workers_s:.1f} s workers (load before {load:.2f})", flush=True)
    one, two = args.out / "jobs1", args.out / "jobs2"
    files = sorted(p.relative_to(one) for p in one.rglob("*") if p.is_file())
    same = all((one / f).read_bytes() == (two / f).read_bytes() for f in files)
    t1, t2 = statistics.median(times[1]), statistics.median(times[2])
    print(f"pack median: 1 job {t1:.1f} s, 2 jobs {t2:.1f} s, speed-up {t1 / t2:.2f}x; "
          f"{len(files)} files byte-identical: {same}")
    size_table(one)
    shutil.rmtree(two)


if __name__ == "__main__":
    main()
