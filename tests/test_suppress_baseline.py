"""Suppression comments and baselines, through the command line on real files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ddilint.cli import main
from ddilint.findings import Finding, Location, Severity
from ddilint.fingerprint import SourceCache
from ddilint.suppress import Suppression, _unused, apply_suppressions, parse_suppressions

SUPPRESSED = """#include <ntddk.h>
VOID F(HANDLE a, HANDLE b, HANDLE c, HANDLE d, HANDLE e)
{
    NtClose(a); // ddilint: ignore[DDI401]
    // ddilint: ignore-next-line[nt-routine-in-kernel-mode]
    NtClose(b);
    NtClose(c); /* ddilint: ignore[DDI4] */
    NtClose(d); // ddilint: ignore[DDI101]
    ZwClose(e); // ddilint: ignore[DDI401]
}
"""


def _lines(capsys: pytest.CaptureFixture[str]) -> list[tuple[int, str]]:
    return sorted((f["line"], f["code"]) for f in json.loads(capsys.readouterr().out))


def test_parse_forms() -> None:
    sups = parse_suppressions(
        "x(); // ddilint: ignore[DDI101, missing-kernel-handle]\n"
        "/* ddilint: ignore-file[DDI4] */\n// ddilint: ignore-next-line\n"
        "// ddilint:ignore[]\n")
    assert [(s.kind, s.line, s.selectors) for s in sups] == [
        ("ignore", 1, ("DDI101", "missing-kernel-handle")),
        ("ignore-file", 2, ("DDI4",)),
        ("ignore-next-line", 3, ()),
    ]


def test_line_and_next_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "d.c").write_text(SUPPRESSED)
    assert main(["check", "--format", "json", str(tmp_path)]) == 1
    # line 8's suppression names another rule: the finding stays
    assert _lines(capsys) == [(8, "DDI401")]


@pytest.mark.parametrize("breaker", ["\f", "\v", "\x1c", "\x85", "\u2028"])
def test_line_breaks_python_knows_and_c_does_not(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], breaker: str) -> None:
    # A form feed (a page break, `^L`) and the like end a line for `str.splitlines`, not for
    # a compiler: counted as lines, each moved every suppression after it a line down.
    (tmp_path / "d.c").write_text(f"/* page one */{breaker}\n" + SUPPRESSED, encoding="utf-8")
    assert main(["check", "--format", "json", "--report-unused-suppressions",
                 "--select", "DDI4", str(tmp_path)]) == 1
    assert _lines(capsys) == [(9, "DDI401"), (10, "DDI907")]
    assert [s.line for s in parse_suppressions("a\f b\n// ddilint: ignore\n")] == [2]
    # Fingerprints (SARIF, baselines) hash the finding's line: the right one.
    line = SourceCache().line(str(tmp_path / "d.c"), 9)
    assert line == "    NtClose(d); // ddilint: ignore[DDI101]"


def _reference_silenced(f: Finding, sups: list[Suppression]) -> bool:
    """What `apply_suppressions` did comment by comment, before it indexed them."""
    hit = False
    for sup in sups:
        target = sup.target_line()
        if target is not None and target != f.location.line:
            continue
        sel = sup.covers(f.code, f.name)
        if sel is not None:
            sup.used.add(sel)
            hit = True
    return hit


_COMMENTS = st.sampled_from([
    "// ddilint: ignore", "// ddilint: ignore[DDI401]", "/* ddilint: ignore[DDI4, DDI202] */",
    "// ddilint: ignore-next-line[double-close]", "// ddilint: ignore-file[DDI202]",
    "// ddilint: ignore[DDI101]", ""])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(_COMMENTS, max_size=3), min_size=1, max_size=8),
       st.lists(st.tuples(st.integers(1, 9), st.sampled_from([
           ("DDI401", "nt-routine-in-kernel-mode"), ("DDI202", "double-close"),
           ("DDI101", "missing-kernel-handle")])), max_size=12))
def test_indexed_suppressions_silence_what_each_comment_did(
        lines: list[list[str]], placed: list[tuple[int, tuple[str, str]]]) -> None:
    text = "".join(" ".join(["x();", *comments]) + "\n" for comments in lines)
    findings = [Finding(code, name, Severity.WARNING, "m", Location("d.c", line, 1))
                for line, (code, name) in placed]
    active = [("DDI401", "nt-routine-in-kernel-mode"), ("DDI202", "double-close"),
              ("DDI101", "missing-kernel-handle")]
    got = apply_suppressions(findings, lambda _p: text, True, active, only_paths=["d.c"])
    sups = parse_suppressions(text)
    want = [f for f in findings if not _reference_silenced(f, sups)]
    want += _unused("d.c", sups, active)
    want.sort(key=Finding.sort_key)
    assert got == want


def test_unused_suppressions_flag(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "d.c").write_text(SUPPRESSED)
    assert main(["check", "--format", "json", "--report-unused-suppressions",
                 "--select", "DDI4", str(tmp_path)]) == 1
    # line 9's ignore[DDI401] silenced nothing; line 8's names DDI101, which does not run
    # (not selected), so it cannot be judged unused
    assert _lines(capsys) == [(8, "DDI401"), (9, "DDI907")]
    # a suppression for a rule that was not selected is not unused (DDI4 also names
    # DDI402, so the whole prefix is left out, and DDI101 with it)
    assert main(["check", "--format", "json", "--report-unused-suppressions",
                 "--ignore", "DDI4,DDI101", str(tmp_path)]) == 0
    assert _lines(capsys) == []


def test_ignore_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "d.c").write_text("// ddilint: ignore-file[nt-routine-in-kernel-mode]\n"
                                  + SUPPRESSED)
    assert main(["check", "--format", "json", str(tmp_path)]) == 0
    assert _lines(capsys) == []


LEGACY = """#include <ntddk.h>
VOID Old(HANDLE h)
{
    NtClose(h);
}
"""


def test_baseline_keeps_old_findings_out_across_edits(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    drv = tmp_path / "drv"
    drv.mkdir()
    (drv / "legacy.c").write_text(LEGACY)
    base = tmp_path / "ddilint-baseline.json"
    assert main(["check", "--write-baseline", str(base), str(drv)]) == 0
    capsys.readouterr()
    data = json.loads(base.read_text())
    assert [(e["path"], e["code"]) for e in data["findings"]] == [("drv/legacy.c", "DDI401")]
    assert main(["check", "--baseline", str(base), str(drv)]) == 0
    # unrelated edit: lines added above move the old finding; it stays baselined
    (drv / "legacy.c").write_text("// header comment\n\n" + LEGACY.replace(
        "VOID Old", "static int x;\nVOID Old"))
    assert main(["check", "--format", "json", "--baseline", str(base), str(drv)]) == 0
    assert _lines(capsys) == []
    # a new finding in the same file is reported, the old one is not
    (drv / "legacy.c").write_text(LEGACY.replace(
        "NtClose(h);", "NtClose(h);\n    NtYieldFoo();\n    NtDuplicateObject(h);"))
    assert main(["check", "--format", "json", "--baseline", str(base), str(drv)]) == 1
    assert _lines(capsys) == [(6, "DDI401")]


def test_bad_baseline_is_exit_two(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "b.json").write_text("{nope")
    (tmp_path / "d.c").write_text(LEGACY)
    assert main(["check", "--baseline", str(tmp_path / "b.json"), str(tmp_path / "d.c")]) == 2
    assert "b.json" in capsys.readouterr().err
