"""Instructions, not seconds: ddilint's CPU work counted by Valgrind (callgrind).

    python bench/instructions.py CORPUS [--every N] [--run] [--tree DIR ...]

On a machine shared with other jobs a run's wall time moves by tens of percent from one
run to the next, so a change of a few percent cannot be seen in seconds. The number of
instructions executed does not move: this script counts them, for one or more checkouts
of ddilint (`--tree`, default: the one it belongs to) on the same files, side by side.

- Default: phase one (read, parse, summarize, every rule's own part) of every `--every`th
  C/C++ file of CORPUS, in one process, start-up included (`ddilint.analyzer.engine`'s
  `read_and_facts`, as a worker runs it).
- `--run`: a whole `ddilint check CORPUS --no-cache -j 2`, every process counted (the
  main process alone is phases two and three plus its part of phase one; a worker, what
  it ran after the fork); use a small corpus, Valgrind runs the program fifty times
  slower.

Needs `valgrind` on PATH. Each tree's bytecode is compiled first, as an installed
package has it.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent

# Phase one of every Nth file, as `python -c PHASE_ONE CORPUS N`.
PHASE_ONE = r"""
import sys
from ddilint.analyzer import engine
from ddilint.cli import load_rules_and_knowledge
files, _ = engine.discover([sys.argv[1]])
rules, knowledge = load_rules_and_knowledge()
options = engine.Options()
with engine.quiet_gc():
    for i, p in enumerate(files[::int(sys.argv[2])], 1):
        engine.read_and_facts(p.as_posix(), rules, knowledge, options, True)
        if i % engine.COLLECT_EVERY == 0:
            engine.collect_garbage()
"""

# A process's count, in each of its profile files (`cg.<pid>`, and `cg.<pid>.<n>` for the
# parts dumped before a fork).
_SUMMARY = re.compile(r"^summary:\s*(\d+)", re.M)


def count(tree: Path, command: list[str], children: bool) -> dict[int, int]:
    """Instructions per process of `command` run in `tree`, with it first on the path (`-c`
    and `-m` put the working directory before PYTHONPATH: run elsewhere, they would count
    the checkout found there)."""
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(tree / "ddilint")],
                   check=True, stdout=subprocess.DEVNULL)
    # A fixed hash seed: the order of a set of names, and with it some of the work, follows
    # the seed; a count compared with another run's should not depend on it.
    env = {**os.environ, "PYTHONPATH": str(tree), "PYTHONHASHSEED": "0"}
    # A forked process starts with a copy of callgrind's counters, so its own total (the
    # "Collected" line) holds what its parent ran before the fork: imports, the knowledge
    # table, the queries, all counted once per worker again. The counters are dumped and
    # zeroed before each fork, and each process's profile files summed.
    found: dict[int, int] = {}
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.run(
            ["valgrind", "--tool=callgrind", f"--trace-children={'yes' if children else 'no'}",
             "--dump-before=fork", f"--callgrind-out-file={tmp}/cg.%p", *command],
            cwd=tree, env=env, capture_output=True, text=True, check=False)
        for path in Path(tmp).iterdir():
            m = _SUMMARY.search(path.read_text(encoding="utf-8", errors="replace"))
            if m is not None:
                pid = int(path.name.split(".")[1])
                found[pid] = found.get(pid, 0) + int(m.group(1))
    if not found:
        sys.exit(f"instructions.py: valgrind counted nothing:\n{proc.stderr[-2000:]}")
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("corpus", type=Path)
    parser.add_argument("--every", type=int, default=10, help="phase one: every Nth file")
    parser.add_argument("--run", action="store_true", help="a whole check run instead")
    parser.add_argument("--tree", type=Path, action="append",
                        help="a ddilint checkout (repeat to compare; default: this one)")
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        sys.exit("instructions.py: needs valgrind on PATH (apt install valgrind)")
    trees = [t.resolve() for t in (args.tree or [HERE.parent])]
    corpus = str(args.corpus.resolve())
    base: int | None = None
    for tree in trees:
        if args.run:
            command = [sys.executable, "-m", "ddilint", "check", corpus,
                       "--no-cache", "--quiet", "--format", "json", "-o", os.devnull,
                       "-j", "2"]
        else:
            command = [sys.executable, "-c", PHASE_ONE, corpus, str(args.every)]
        per_process = count(tree, command, children=args.run)
        total = sum(per_process.values())
        main_pid = min(per_process)  # the first process started
        parts = (f" (main process {per_process[main_pid] / 1e9:.3f} G)"
                 if len(per_process) > 1 else "")
        ratio = f"  {total / base:.4f}x the first" if base else ""
        print(f"{tree}: {total / 1e9:.3f} G instructions{parts}{ratio}")
        base = base or total


if __name__ == "__main__":
    main()
