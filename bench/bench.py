"""Benchmark: ddilint against a tree-sitter parse-only baseline, on the same files, in the
same run.

    python bench/bench.py CORPUS [--jobs N] [--repeat K] [--semgrep [--semgrep-rule F]]
                             [--pre-commit]

The baseline parses every C/C++ file ddilint would analyze with tree-sitter, in one
process, and does nothing else. ddilint runs every built-in rule, cold (no cache) and
warm (the cache filled by the cold run), with its bytecode compiled first as an
installed package has it. `--pre-commit` also times what a pre-commit hook does after an
edit: `ddilint check --project FILE` on one edited file, the others' results cached. It
edits a copy of the corpus (in a temporary folder), never the corpus: each round appends a
comment to the C file of median size and times the run, then the run with nothing
changed since. `--semgrep` times Semgrep on the corpus with one rule (by default
`semgrep_one_rule.yaml`, one pattern naming `ZwClose`), and on an empty folder: its
start-up, the part of its time that does not grow with the corpus. Semgrep parses only the
files that contain a word its pattern names (64 of the samples' 2,274 files contain
`ZwClose`); ddilint parses every file, since a call anywhere may lead to a documented
routine. Each measurement runs in its own process; peak RSS is the sum
over the process and its workers, sampled from /proc (Linux), else the largest process.
Timings on a busy machine are noisy: compare the ratios. Every measurement runs once per
round (`--repeat` rounds), so each round's ratios are measured side by side; the table
gives the best times and the median of the rounds' ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent

# The parse-only baseline, run as `python -c BASELINE CORPUS`.
BASELINE = r"""
import sys
import tree_sitter_c, tree_sitter_cpp
from tree_sitter import Language, Parser
from ddilint.analyzer.engine import discover
from ddilint.analyzer.frontend import CPP_SUFFIXES
files, _ = discover(sys.argv[1:])
parsers = {"c": Parser(Language(tree_sitter_c.language())),
           "cpp": Parser(Language(tree_sitter_cpp.language()))}
total = 0
for p in files:
    data = p.read_bytes()
    total += len(data)
    parsers["cpp" if p.suffix.lower() in CPP_SUFFIXES else "c"].parse(data)
print(len(files), total)
"""


@dataclass
class Measure:
    """One measured run."""

    name: str
    seconds: float
    cpu: float
    peak_rss_mb: float
    output: str


def _tree_rss_kb(pid: int) -> int:
    """Resident set of a process and its descendants (Linux /proc), in KiB."""
    total = 0
    stack = [pid]
    while stack:
        p = stack.pop()
        try:
            with open(f"/proc/{p}/status") as fh:
                for line in fh:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
                        break
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as fh:
                    stack.extend(int(c) for c in fh.read().split())
        except (OSError, ValueError):
            continue
    return total


def measure(name: str, argv: list[str], env: dict[str, str] | None = None) -> Measure:
    """Run `argv`, timing it and sampling the memory of its process tree."""
    started = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    peak = [0]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _tree_rss_kb(proc.pid))
            done.wait(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    if sys.platform.startswith("linux"):
        sampler.start()
    _pid, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - started
    done.set()
    out = proc.stdout.read().decode() if proc.stdout else ""
    err = proc.stderr.read().decode() if proc.stderr else ""
    code = os.waitstatus_to_exitcode(status)
    if code not in (0, 1):
        raise SystemExit(f"{name} failed ({code}): {err[-2000:]}")
    rss_kb = max(peak[0], usage.ru_maxrss)
    cpu = usage.ru_utime + usage.ru_stime
    return Measure(name, seconds, cpu, rss_kb / 1024, out)


def corpus_size(corpus: Path) -> tuple[int, int]:
    """(files, bytes) ddilint would analyze under `corpus`."""
    from ddilint.analyzer.engine import discover

    files, _ = discover([corpus])
    return len(files), sum(p.stat().st_size for p in files)


def _compile_package() -> None:
    """Write ddilint's bytecode, as an installed package has it. An editable install on a
    machine with PYTHONDONTWRITEBYTECODE set (this one) otherwise recompiles every module
    in each run's main process: about 0.15 s of start-up no user pays."""
    import compileall

    import ddilint

    compileall.compile_dir(str(Path(ddilint.__file__).parent), quiet=1)


def _edited_file(copy: Path) -> Path:
    """The `.c` file of median size under `copy` (the one a pre-commit round edits)."""
    from ddilint.analyzer.engine import discover

    files, _ = discover([copy])
    cs = sorted((p.stat().st_size, str(p)) for p in files if p.suffix.lower() == ".c")
    if not cs:
        raise SystemExit("--pre-commit: the corpus has no .c file to edit")
    return Path(cs[len(cs) // 2][1])


def run_bench(corpus: Path, jobs: int | None, repeat: int, semgrep: bool | Path,
              extra: list[str], pre_commit: bool = False) -> dict[str, object]:
    """Measure the baseline and ddilint cold and warm; returns a JSON-ready summary."""
    files, size = corpus_size(corpus)
    mb = size / 1e6
    semgrep_argv: list[str] = []
    env = {**os.environ, "SEMGREP_ENABLE_VERSION_CHECK": "0"}
    if semgrep:  # checked before any temporary folder is made
        exe = shutil.which("semgrep")
        if exe is None:
            raise SystemExit("--semgrep: no semgrep on PATH (pip install semgrep)")
        rule = semgrep if isinstance(semgrep, Path) else HERE / "semgrep_one_rule.yaml"
        semgrep_argv = [exe, "--config", str(rule), "--quiet", "--metrics=off", "--json",
                        "--output", os.devnull]
        if jobs is not None:
            semgrep_argv += ["--jobs", str(jobs)]
    _compile_package()
    py = sys.executable
    cache = Path(tempfile.mkdtemp(prefix="ddilint-bench-cache-"))
    # Semgrep's start-up is timed on this empty folder.
    empty = Path(tempfile.mkdtemp(prefix="ddilint-bench-empty-")) if semgrep_argv else None
    ddilint = [py, "-m", "ddilint", "check", str(corpus), "--quiet", "--format", "json",
               "--output", os.devnull, "--cache-dir", str(cache), *extra]
    if jobs is not None:
        ddilint += ["--jobs", str(jobs)]
    scratch = Path(tempfile.mkdtemp(prefix="ddilint-bench-copy-")) if pre_commit else None
    hook: list[str] = []
    edited: Path | None = None
    # Every measurement runs once per round, so that a machine whose speed drifts slows
    # all of a round alike: the ratios of a round are what to compare.
    rounds: list[list[Measure]] = []
    try:
        if scratch is not None:
            # A copy of the corpus for the pre-commit rounds, its cache filled once. Its
            # root is the project's (`--project` walks up to a repository's root).
            copy = scratch / corpus.name
            shutil.copytree(corpus, copy, symlinks=True)
            (copy / ".git").mkdir(exist_ok=True)
            edited = _edited_file(copy)
            hook = [py, "-m", "ddilint", "check", "--project", str(edited), "--quiet",
                    "--format", "json", "--output", os.devnull, "--cache-dir",
                    str(scratch / "cache"), *extra]
            if jobs is not None:
                hook += ["--jobs", str(jobs)]
            measure("pre-commit fill", hook)
        for n in range(repeat):
            row = [measure("parse-only", [py, "-c", BASELINE, str(corpus)]),
                   measure("ddilint cold", [*ddilint, "--no-cache"])]
            shutil.rmtree(cache, ignore_errors=True)
            row.append(measure("ddilint fill", ddilint))
            row.append(measure("ddilint warm", ddilint))
            if semgrep_argv:
                row.append(measure("semgrep 1 rule", [*semgrep_argv, str(corpus)], env))
                assert empty is not None
                row.append(measure("semgrep start-up", [*semgrep_argv, str(empty)], env))
            if edited is not None:
                with open(edited, "a", encoding="utf-8") as fh:
                    fh.write(f"\n// ddilint bench: edit {n + 1}\n")
                row.append(measure("pre-commit edit", hook))
                row.append(measure("pre-commit same", hook))
            rounds.append(row)
    finally:
        shutil.rmtree(cache, ignore_errors=True)
        if empty is not None:
            shutil.rmtree(empty, ignore_errors=True)
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
    best: dict[str, Measure] = {}
    for m in (m for row in rounds for m in row):
        if m.name not in best or m.seconds < best[m.name].seconds:
            best[m.name] = m
    # Per round, each run over that round's parse-only time; the median over the rounds.
    ratios: dict[str, float] = {
        name: statistics.median(
            next(m for m in row if m.name == name).seconds / row[0].seconds for row in rounds)
        for name in best}
    base = best["parse-only"].seconds
    from ddilint import build  # the build `py -m ddilint` runs: this interpreter's

    print(f"corpus: {corpus}  files: {files}  MB: {mb:.1f}  cores: {os.cpu_count()}  "
          f"jobs: {jobs if jobs is not None else 'default'}  best of {repeat}  "
          f"ddilint: {build()}")
    print(f"{'run':16} {'seconds':>8} {'cpu s':>8} {'MB/s':>8} {'peak RSS MB':>12} "
          f"{'x parse-only':>13} {'median ratio':>13}")
    for name, m in best.items():
        print(f"{name:16} {m.seconds:8.2f} {m.cpu:8.2f} {mb / m.seconds:8.1f} "
              f"{m.peak_rss_mb:12.0f} {m.seconds / base:13.2f} {ratios[name]:13.2f}")
    print("x parse-only: best time over best parse-only time; median ratio: the median over "
          "the rounds of each round's own ratio")
    if edited is not None:
        print(f"pre-commit: `check --project` on {edited.name}, edited in a copy of the corpus "
              "(edit: after the edit; same: run again, nothing changed)")
    return {
        "corpus": str(corpus), "files": files, "mb": round(mb, 2), "jobs": jobs,
        "build": build(),
        "runs": {name: {"seconds": round(m.seconds, 3), "cpu": round(m.cpu, 3),
                        "mb_per_s": round(mb / m.seconds, 2),
                        "peak_rss_mb": round(m.peak_rss_mb, 1),
                        "ratio": round(m.seconds / base, 3),
                        "median_ratio": round(ratios[name], 3)} for name, m in best.items()},
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("corpus", type=Path)
    ap.add_argument("--jobs", "-j", type=int, default=None, help="ddilint worker processes")
    ap.add_argument("--repeat", type=int, default=1, help="take the best of this many runs")
    ap.add_argument("--semgrep", action="store_true",
                    help="also time Semgrep with one one-pattern rule, and its start-up")
    ap.add_argument("--semgrep-rule", type=Path, metavar="FILE",
                    help="the Semgrep rule file for --semgrep (default: semgrep_one_rule.yaml)")
    ap.add_argument("--pre-commit", action="store_true",
                    help="also time `check --project` on one edited file (in a copy)")
    ap.add_argument("--json", type=Path, help="also write the numbers to this file")
    ap.add_argument("ddilint_args", nargs="*", help="extra arguments for ddilint (after --)")
    args = ap.parse_args(argv)
    if not args.corpus.is_dir():
        ap.error(f"not a folder: {args.corpus}")
    if args.semgrep_rule is not None and not args.semgrep_rule.is_file():
        ap.error(f"not a file: {args.semgrep_rule}")
    semgrep: bool | Path = args.semgrep
    if args.semgrep and args.semgrep_rule is not None:
        semgrep = args.semgrep_rule
    elif args.semgrep_rule is not None:
        ap.error("--semgrep-rule needs --semgrep")
    summary = run_bench(args.corpus, args.jobs, args.repeat, semgrep, args.ddilint_args,
                        args.pre_commit)
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
