"""Every fixture file, analyzed with every built-in rule, gives exactly the findings its
`// expect: CODE` comments name: nothing missing, nothing extra.

A folder `fixtures/<rule>/fires_*/` or `silent_*/` is one driver of several files (a DPC in
one file, the helper it calls in another): its files are analyzed together, as
`ddilint check FOLDER` does."""

from __future__ import annotations

from pathlib import Path

import pytest

from ddilint.analyzer.engine import analyze_bytes, run
from ddilint.analyzer.frontend import SOURCE_SUFFIXES
from ddilint.knowledge import load_knowledge
from ddilint.rules.base import Rule
from tests.conftest import FIXTURES, expectations

ALL = sorted(p for p in FIXTURES.rglob("*") if p.suffix.lower() in SOURCE_SUFFIXES)
FILES = [p for p in ALL if len(p.relative_to(FIXTURES).parts) == 2]
PROJECTS = sorted({FIXTURES.joinpath(*p.relative_to(FIXTURES).parts[:2]) for p in ALL
                   if len(p.relative_to(FIXTURES).parts) > 2})


def test_fixture_folders_have_both_kinds() -> None:
    folders = {p.parent for p in FILES} | {p.parent for p in PROJECTS}
    assert folders, "no fixtures found"
    for folder in folders:
        names = [p.name for p in folder.iterdir()]
        assert any(n.startswith("fires") for n in names), f"{folder.name}: no fires_* fixture"
        assert any(n.startswith("silent") for n in names), f"{folder.name}: no silent_* fixture"


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(FIXTURES)))
def test_fixture(path: Path, builtin_rules: list[Rule]) -> None:
    data = path.read_bytes()
    expected = expectations(data)
    findings = {e for e in expected if not e[1].startswith("DDI9")}
    if path.name.startswith("silent"):
        assert not findings, "a silent_* fixture must not expect findings (notices it may)"
    else:
        assert findings, "a fires_* fixture must expect at least one finding"
    result = analyze_bytes(path.as_posix(), data, builtin_rules, load_knowledge())
    assert result.analyzed
    # Notices (DDI9xx) count too: a fixture expects each one it causes, like a finding.
    got = {(f.location.line, f.code) for f in result.findings}
    missing = sorted(expected - got)
    extra = sorted(got - expected)
    detail = "\n".join(f"  {f.location.line}:{f.location.column} {f.code} {f.message}"
                       for f in result.findings)
    assert not missing and not extra, f"missing {missing}, extra {extra}\n{detail}"


@pytest.mark.parametrize("folder", PROJECTS, ids=lambda p: str(p.relative_to(FIXTURES)))
def test_fixture_project(folder: Path, builtin_rules: list[Rule]) -> None:
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in SOURCE_SUFFIXES)
    expected = {(p.as_posix(), line, code) for p in files
                for line, code in expectations(p.read_bytes())}
    if folder.name.startswith("silent"):
        assert not expected, "a silent_* fixture must not expect findings"
    else:
        assert expected, "a fires_* fixture must expect at least one finding"
    result = run(files, builtin_rules, load_knowledge())
    assert result.analyzed == len(files)
    got = {(f.location.path, f.location.line, f.code) for f in result.findings
           if not f.is_notice}
    notices = [f for f in result.findings if f.is_notice]
    assert not notices, notices
    missing = sorted(expected - got)
    extra = sorted(got - expected)
    detail = "\n".join(f"  {f.location.path}:{f.location.line}:{f.location.column} {f.code} "
                       f"{f.message}" for f in result.findings)
    assert not missing and not extra, f"missing {missing}, extra {extra}\n{detail}"
