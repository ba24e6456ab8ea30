"""HDF5 codecs for the piece files and the packed shards: size and decode speed.

On the real data of a packed dataset (``--dataset``, made by ``msmd-prep
dataset``): its ``pieces/*.h5`` (the unrolled scores, uint8, and the
spectrograms, float16) and the first shard of its train split (sheet and
spectrogram excerpts).  Every codec writes the same arrays into a temporary
HDF5 file and reads them back; printed per codec:

* pieces: bytes relative to raw, and the time to read every array whole
  (MB/s of raw data), with the chunk shapes the piece files use;
* shards: bytes relative to raw, and random access (one sample at a time,
  a seeded permutation, h5py ``ds[i]``), pairs/s, with chunks of
  ``--shard-chunk`` samples; the uncompressed row is the baseline.

Codecs: HDF5's own gzip (levels 1, 4, 9) and lzf, and through hdf5plugin
Zstd, LZ4 and Blosc (lz4 and zstd, byte- or bit-shuffled).  Timings are
medians of interleaved runs; the machine may be shared (ratios measured in
one run).  Run: ``python benchmarks/bench_codecs.py --dataset DIR``.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import h5py
import hdf5plugin
import numpy as np

from timing import interleaved_medians

CODECS: dict[str, dict] = {
    "none": {},
    "gzip-1": {"compression": "gzip", "compression_opts": 1},
    "gzip-4": {"compression": "gzip", "compression_opts": 4},
    "gzip-9": {"compression": "gzip", "compression_opts": 9},
    "gzip-4+shuffle": {"compression": "gzip", "compression_opts": 4, "shuffle": True},
    "lzf": {"compression": "lzf"},
    "lzf+shuffle": {"compression": "lzf", "shuffle": True},
    "zstd-3": dict(hdf5plugin.Zstd(clevel=3)),
    "zstd-9": dict(hdf5plugin.Zstd(clevel=9)),
    "lz4": dict(hdf5plugin.LZ4()),
    "blosc-lz4-shuffle": dict(hdf5plugin.Blosc(cname="lz4", clevel=5,
                                               shuffle=hdf5plugin.Blosc.SHUFFLE)),
    "blosc-lz4-bitshuffle": dict(hdf5plugin.Blosc(cname="lz4", clevel=5,
                                                  shuffle=hdf5plugin.Blosc.BITSHUFFLE)),
    "blosc-zstd-shuffle": dict(hdf5plugin.Blosc(cname="zstd", clevel=5,
                                                shuffle=hdf5plugin.Blosc.SHUFFLE)),
    "blosc-zstd-bitshuffle": dict(hdf5plugin.Blosc(cname="zstd", clevel=5,
                                                   shuffle=hdf5plugin.Blosc.BITSHUFFLE)),
    "blosc-zstd-noshuffle": dict(hdf5plugin.Blosc(cname="zstd", clevel=5,
                                                  shuffle=hdf5plugin.Blosc.NOSHUFFLE)),
}


def piece_arrays(dataset: Path, limit: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The unrolled scores and spectrograms of the first ``limit`` piece files."""
    sheets, specs = [], []
    for path in sorted((dataset / "pieces").glob("*.h5"))[:limit]:
        with h5py.File(path, "r") as f:
            sheets.append(f["unrolled"][:])
            for perf in json.loads(f.attrs["performances"]):
                specs.append(f[perf]["spec"][:].astype(np.float16))
    return sheets, specs


def write_arrays(path: Path, arrays: list[np.ndarray], chunk, codec: dict) -> None:
    with h5py.File(path, "w") as f:
        for k, a in enumerate(arrays):
            f.create_dataset(str(k), data=a, chunks=chunk(a.shape) if codec or chunk else None,
                             **codec)


def read_all(path: Path) -> None:
    with h5py.File(path, "r") as f:
        for name in f:
            f[name][:]


def bench_pieces(arrays: list[np.ndarray], chunk, label: str, tmp: Path, runs: int) -> None:
    raw = sum(a.nbytes for a in arrays)
    paths = {}
    for name, codec in CODECS.items():
        paths[name] = tmp / f"{label}-{name}.h5"
        write_arrays(paths[name], arrays, chunk, codec)
    times = interleaved_medians({n: (lambda p=p: read_all(p)) for n, p in paths.items()}, runs)
    print(f"\n{label}: {len(arrays)} arrays, {raw / 1e6:.1f} MB raw")
    for name, p in paths.items():
        size = p.stat().st_size
        print(f"  {name:22s} {size / 1e6:8.2f} MB  x{raw / size:6.2f} smaller  "
              f"read {raw / 1e6 / times[name]:8.0f} MB/s")


def bench_shard(arrays: dict[str, np.ndarray], chunk_samples: int, tmp: Path, runs: int,
                n_reads: int) -> None:
    n = len(next(iter(arrays.values())))
    order = np.random.default_rng(0).permutation(n)[:n_reads].tolist()
    raw = sum(a.nbytes for a in arrays.values())
    paths = {}
    for name, codec in CODECS.items():
        paths[name] = tmp / f"shard-{name}.h5"
        with h5py.File(paths[name], "w") as f:
            for key, a in arrays.items():
                f.create_dataset(key, data=a, chunks=(chunk_samples, *a.shape[1:]), **codec)

    def reader(path: Path):
        def run() -> None:
            with h5py.File(path, "r") as f:
                sheet, spec = f["sheet"], f["spec"]
                for i in order:
                    sheet[i]
                    spec[i]
        return run

    times = interleaved_medians({n: reader(p) for n, p in paths.items()}, runs)
    print(f"\nshard: {n} samples, {raw / 1e6:.1f} MB raw, chunks of {chunk_samples} sample(s), "
          f"{len(order)} random reads")
    for name, p in paths.items():
        with h5py.File(p, "r") as f:
            parts = {k: f[k].id.get_storage_size() for k in arrays}
        size = p.stat().st_size
        print(f"  {name:22s} {size / 1e6:8.2f} MB  x{raw / size:6.2f} smaller "
              f"(sheet x{arrays['sheet'].nbytes / parts['sheet']:6.2f}, "
              f"spec x{arrays['spec'].nbytes / parts['spec']:5.2f})  "
              f"random {len(order) / times[name]:8.0f} pairs/s  "
              f"({times['none'] / times[name]:.2f}x uncompressed)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", type=Path, required=True)
    parser.add_argument("--pieces", type=int, default=12, help="piece files measured")
    parser.add_argument("--shard-samples", type=int, default=3000)
    parser.add_argument("--shard-chunk", type=int, default=1)
    parser.add_argument("--reads", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    sheets, specs = piece_arrays(args.dataset, args.pieces)
    index = json.loads((args.dataset / "index.json").read_text())
    shard = args.dataset / index["splits"]["train"]["shards"][0]["path"]
    with h5py.File(shard, "r") as f:
        m = min(args.shard_samples, len(f["sheet"]))
        excerpts = {"sheet": f["sheet"][:m], "spec": f["spec"][:m]}
    with tempfile.TemporaryDirectory(prefix="bench-codecs-") as tmp:
        tmp = Path(tmp)
        bench_pieces(sheets, lambda s: (s[0], min(s[1], 16384)), "unrolled scores (uint8)", tmp,
                     args.runs)
        bench_pieces(specs, lambda s: (s[0], min(s[1], 8192)), "spectrograms (float16)", tmp,
                     args.runs)
        bench_shard(excerpts, args.shard_chunk, tmp, args.runs, args.reads)


if __name__ == "__main__":
    main()
