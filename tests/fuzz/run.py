"""A longer fuzz run than CI's: `python -m tests.fuzz.run --examples 5000 [SEED_DIR ...]`.

Seeds default to the fixtures and examples; give folders (a driver corpus) to fuzz
mutations of real files. Each example checks the CI property (no exception, no internal
error, valid JSON) and, with `--timeout`, that the per-file time budget holds. A failing
example is shrunk by hypothesis and written to `--save` so it can become a test.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ddilint.knowledge import load_knowledge
from ddilint.plugins import collect_rules, plugin_manager
from tests.exercise import ExerciseRule
from tests.fuzz.mutations import SEED_DIRS, check_one, file_names, mutated, seed_files


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("seeds", nargs="*", type=Path, help="folders of seed sources")
    ap.add_argument("--examples", type=int, default=2000)
    ap.add_argument("--max-seeds", type=int, default=400, help="seed files sampled at most")
    ap.add_argument("--timeout", type=float, default=20.0, help="per-file budget, seconds")
    ap.add_argument("--seed", type=int, default=None, help="random seed (default: random)")
    ap.add_argument("--save", type=Path, default=Path("fuzz-failure.bin"))
    ap.add_argument("--slowest", type=Path, default=None,
                    help="write the bytes of the slowest example here, to look into")
    args = ap.parse_args(argv)

    files = seed_files(args.seeds or SEED_DIRS)
    if len(files) > args.max_seeds:
        step = len(files) / args.max_seeds
        files = [files[int(i * step)] for i in range(args.max_seeds)]
    seeds = [p.read_bytes()[:200_000] for p in files]
    rules = [*collect_rules(plugin_manager()), ExerciseRule()]
    knowledge = load_knowledge()
    count = [0]
    slowest = [0.0]
    slowest_raw = [b""]
    slowest_name = [""]  # the file name it was checked under
    started = time.perf_counter()

    def one(raw: bytes, path: str) -> None:
        count[0] += 1
        t = time.perf_counter()
        try:
            check_one(path, raw, rules, knowledge, args.timeout)
        except BaseException:
            args.save.write_bytes(raw)
            raise
        took = time.perf_counter() - t
        if took > slowest[0]:
            slowest[0], slowest_raw[0], slowest_name[0] = took, raw, path

    strategy = st.one_of(mutated(seeds), st.binary(max_size=8192))
    prop = settings(max_examples=args.examples, deadline=None, database=None,
                    suppress_health_check=list(HealthCheck))(
        given(raw=strategy, path=file_names())(one))
    if args.seed is not None:
        from hypothesis import seed as fix_seed

        prop = fix_seed(args.seed)(prop)
    try:
        prop()
    except Exception as exc:
        print(f"FAILED after {count[0]} examples: {exc}\nshrunk input saved to {args.save}",
              file=sys.stderr)
        return 1
    print(f"{count[0]} examples from {len(seeds)} seeds in "
          f"{time.perf_counter() - started:.1f}s; slowest {slowest[0]:.2f}s "
          f"(as {slowest_name[0]}), no failure")
    if args.slowest is not None:
        args.slowest.write_bytes(slowest_raw[0])
        print(f"slowest example written to {args.slowest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
