"""How ddilint's time grows with the size of a driver tree (synthetic corpora).

    python bench/scaling.py [--sizes 100,1000,10000] [--functions 4] [--jobs N] [--chain]

For each size, `gen_corpus.py` writes N files of M functions into a temporary folder;
the parse-only baseline and a cold ddilint run (no cache) are measured on it in the same
run. The last column compares the growth with linear growth: 1.00 means time per file
stayed the same as at the smallest size. With `--chain`, the corpora also have one call
chain through all their files (`gen_corpus.py --chain`).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from gen_corpus import generate

from bench import BASELINE, measure


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="100,1000,10000")
    ap.add_argument("--functions", type=int, default=4)
    ap.add_argument("--jobs", "-j", type=int, default=None)
    ap.add_argument("--chain", action="store_true",
                    help="one call chain through every file, a finding in each link")
    args = ap.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    py = sys.executable
    work = Path(tempfile.mkdtemp(prefix="ddilint-scaling-"))
    print(f"{'files':>7} {'MB':>6} {'parse s':>8} {'ddilint s':>10} {'cpu s':>8} "
          f"{'RSS MB':>7} {'x parse':>8} {'s/file':>8} {'vs linear':>10}")
    first: float | None = None
    try:
        for n in sizes:
            corpus = work / str(n)
            size = generate(corpus, n, args.functions, chain=args.chain)
            base = measure("parse-only", [py, "-c", BASELINE, str(corpus)])
            cmd = [py, "-m", "ddilint", "check", str(corpus), "--quiet", "--no-cache",
                   "--format", "json", "--output", "/dev/null"]
            if args.jobs is not None:
                cmd += ["--jobs", str(args.jobs)]
            m = measure("ddilint", cmd)
            per_file = m.seconds / n
            first = first or per_file
            print(f"{n:7d} {size / 1e6:6.1f} {base.seconds:8.2f} {m.seconds:10.2f} {m.cpu:8.2f} "
                  f"{m.peak_rss_mb:7.0f} {m.seconds / base.seconds:8.2f} {per_file:8.4f} "
                  f"{per_file / first:10.2f}", flush=True)
            shutil.rmtree(corpus, ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
