"""Micro-benchmark of the preprocessor alone: `preprocess()` over every C/C++ file in a tree.

    python bench/preprocess_bench.py /work/corpus/wds [--repeat 3]

Files are read into memory first, so the time printed is preprocessing only (best of
`--repeat` passes), with the throughput in MB/s of source bytes.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from ddilint.analyzer.frontend import SOURCE_SUFFIXES, language_for
from ddilint.analyzer.preprocess import preprocess


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", type=Path)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    files = sorted(
        p for p in args.folder.rglob("*") if p.is_file() and p.suffix.lower() in SOURCE_SUFFIXES
    )
    sources = [(p.read_bytes(), language_for(str(p)) == "cpp") for p in files]
    size = sum(len(data) for data, _ in sources)
    best = float("inf")
    for _ in range(max(1, args.repeat)):
        t0 = time.perf_counter()
        for data, cpp in sources:
            preprocess(data, cplusplus=cpp)
        best = min(best, time.perf_counter() - t0)
    mb = size / 1e6
    print(f"{len(sources)} files, {mb:.1f} MB: {best:.3f} s, {mb / best:.1f} MB/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
