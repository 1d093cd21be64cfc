"""Where a cold run's time goes: each stage of one `check` of a corpus, timed in-process.

    python bench/stages.py CORPUS [--jobs N] [--repeat K]

The stages are those of a run without a cache (`engine.run`): finding the files, phase one
(every file's parse, IR, summary and rules' own parts, in N processes), settling the
modes of headers, the project model, phase three (the rules' whole-program parts) and the
JSON report. Only phase one runs in N processes; the other stages run in this process
while the other cores idle, the serial part that a faster phase one does not win back.
Start-up (imports, the knowledge table, the rules) is timed once, in the first round.
Each stage's best time over K rounds is shown, with its share of the sum of the bests.
"""

from __future__ import annotations

import argparse
import sys
import time
from itertools import pairwise
from pathlib import Path
from typing import Any

SERIAL = ("start-up", "discover", "modes", "model", "phase three", "report")


def stages(corpus: Path, jobs: int, rounds: int) -> tuple[dict[str, float], list[Any]]:
    """The best time of each stage over `rounds` cold runs on `corpus` (start-up: the
    first only), and the findings a run reports."""
    started = time.perf_counter()
    from ddilint.analyzer.engine import (
        Options,
        discover,
        file_sizes,
        ir_reader,
        phase_one,
        quiet_gc,
        resolve,
        settle_modes,
    )
    from ddilint.analyzer.project import Project
    from ddilint.findings import Finding
    from ddilint.knowledge import load_knowledge
    from ddilint.plugins import collect_rules, plugin_manager
    from ddilint.report.json_report import format_json

    knowledge = load_knowledge()
    rules = collect_rules(plugin_manager())
    knowledge.load()
    best = {"start-up": time.perf_counter() - started}
    options = Options()
    findings: list[Any] = []
    for _ in range(rounds):
        marks = [("", time.perf_counter())]  # (stage, when it ended)
        names = [p.as_posix() for p in discover([corpus])[0]]
        marks.append(("discover", time.perf_counter()))
        with quiet_gc():
            sizes, _unreadable = file_sizes(names)
            facts = phase_one(sizes, set(names), rules, knowledge, options, None, {},
                              max(1, min(jobs, len(sizes))))
            marks.append(("phase one", time.perf_counter()))
            settle_modes(facts, names)
            marks.append(("modes", time.perf_counter()))
            project = Project([s for n in sizes if (s := facts[n].summary) is not None],
                              knowledge, options.roles, reader=ir_reader(options))
            marks.append(("model", time.perf_counter()))
            findings = []
            for name in names:
                findings.extend(resolve(facts[name], name, rules, knowledge, options,
                                        project))
            marks.append(("phase three", time.perf_counter()))
            findings.sort(key=Finding.sort_key)
            format_json(findings)
            marks.append(("report", time.perf_counter()))
        for (_, begun), (stage, ended) in pairwise(marks):
            best[stage] = min(best.get(stage, ended - begun), ended - begun)
    return best, findings


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("corpus", type=Path)
    ap.add_argument("--jobs", "-j", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    best, findings = stages(args.corpus, args.jobs, args.repeat)
    total = sum(best.values())
    print(f"corpus: {args.corpus}  jobs: {args.jobs}  best of {args.repeat}  "
          f"findings: {len(findings)}")
    print(f"{'stage':<12} {'seconds':>8} {'share':>6}  runs in")
    for stage, seconds in best.items():
        where = ("this process" if stage in SERIAL or args.jobs == 1
                 else f"{args.jobs} processes")
        print(f"{stage:<12} {seconds:8.3f} {seconds / total:6.1%}  {where}")
    serial = sum(s for k, s in best.items() if k in SERIAL)
    print(f"{'serial':<12} {serial:8.3f} {serial / total:6.1%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
