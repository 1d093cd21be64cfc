"""A model built for a few files (`Project(..., focus=...)`: a pre-commit run on the changed
files, an editor's buffer) computes the IRQL flow only over their callers and the exits
over what those call; every answer about those files must be the one the whole model
gives."""

from __future__ import annotations

from pathlib import Path

from ddilint.analyzer.engine import (
    Options,
    discover,
    file_sizes,
    phase_one,
    resolve,
    run,
    settle_modes,
)
from ddilint.analyzer.project import Project
from ddilint.knowledge import Knowledge
from ddilint.rules.base import Rule
from tests.conftest import FIXTURES, ROOT


def _tree() -> list[Path]:
    # Every IRQL and handle fixture as one tree: many roles, locks, helpers and callers,
    # some names defined in several files.
    files, _ = discover([str(FIXTURES / "irql-too-high"), str(FIXTURES / "handle-leak"),
                         str(FIXTURES / "power-irp-ddi"), str(ROOT / "examples")])
    return files


def test_a_focused_model_answers_as_the_whole_one(
        builtin_rules: list[Rule], knowledge: Knowledge) -> None:
    options = Options()
    sizes, _notes = file_sizes(p.as_posix() for p in _tree())
    facts = phase_one(sizes, set(sizes), builtin_rules, knowledge, options, None, {})
    settle_modes(facts, list(sizes))
    summaries = [s for n in sizes if (s := facts[n].summary) is not None]
    whole = Project(summaries, knowledge, options.roles)
    compared = 0
    for name in sorted(sizes):
        if not facts[name].pending:
            continue
        focused = Project(summaries, knowledge, options.roles, focus={name})
        assert focused._upstream is not None and len(focused._upstream) < len(whole.nodes)
        want = resolve(facts[name], name, builtin_rules, knowledge, options, whole)
        got = resolve(facts[name], name, builtin_rules, knowledge, options, focused)
        assert [repr(f) for f in got] == [repr(f) for f in want], name
        compared += 1
    assert compared > 40


def test_a_run_that_reports_on_a_few_files_reports_what_the_whole_run_does(
        builtin_rules: list[Rule], knowledge: Knowledge) -> None:
    files = _tree()
    everything = run(files, builtin_rules, knowledge).findings
    some = [p.as_posix() for p in files if "across_files" in p.as_posix()]
    assert some
    reported = run(files, builtin_rules, knowledge, report=some).findings
    assert reported == [f for f in everything if f.location.path in some]
    assert any(f.code == "DDI301" for f in reported)
