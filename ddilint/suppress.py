"""Suppression comments in driver sources, and which findings they silence.

    status = NtClose(h);   // ddilint: ignore[DDI401]
    // ddilint: ignore-next-line[nt-routine-in-kernel-mode, DDI101]
    status = NtClose(h);
    // ddilint: ignore-file[DDI4]

Codes, code prefixes and rule names are accepted, comma separated. A bare
`// ddilint: ignore` (no brackets) silences every rule on that line. `ignore` applies to the
line of a finding's primary location, `ignore-next-line` to the line after the comment,
`ignore-file` to the whole file. A suppression that silenced nothing among the rules that
ran can be reported (`--report-unused-suppressions`) as a DDI907 notice.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from ddilint.analyzer.source import lines_of
from ddilint.findings import Finding, Location
from ddilint.rules.catalogue import notice_entry

DIRECTIVE = re.compile(
    r"(?://|/\*)[^\n]*?\bddilint:\s*(ignore-next-line|ignore-file|ignore)\b"
    r"(?:\[([^\]\n]*)\])?"
)


@dataclass
class Suppression:
    """One comment: its kind, the line it is on (1-based), its selectors, what it matched."""

    kind: str  # "ignore", "ignore-next-line", "ignore-file"
    line: int
    column: int
    selectors: tuple[str, ...]  # empty: every rule
    used: set[str] = field(default_factory=set)

    def target_line(self) -> int | None:
        """The line it silences (None for a whole-file suppression)."""
        if self.kind == "ignore":
            return self.line
        if self.kind == "ignore-next-line":
            return self.line + 1
        return None

    def covers(self, code: str, name: str) -> str | None:
        """The selector that matches this rule (or "*" for a bare ignore), else None."""
        if not self.selectors:
            return "*"
        for s in self.selectors:
            if code.startswith(s.upper()) or s.lower() == name:
                return s
        return None


def parse_suppressions(text: str) -> list[Suppression]:
    """Every ddilint suppression comment in a file's text."""
    out: list[Suppression] = []
    if "ddilint:" not in text:
        return out
    for lineno, line in enumerate(lines_of(text), start=1):
        if "ddilint:" not in line:
            continue
        for m in DIRECTIVE.finditer(line):
            raw = m.group(2)
            selectors = tuple(s.strip() for s in (raw or "").split(",") if s.strip())
            if raw is not None and not selectors:
                continue  # "ignore[]" names nothing: silence nothing
            out.append(Suppression(m.group(1), lineno, m.start() + 1, selectors))
    return out


def apply_suppressions(
    findings: Sequence[Finding],
    text_of: Callable[[str], str | None],
    report_unused: bool = False,
    active: Iterable[tuple[str, str]] = (),
    only_paths: Iterable[str] | None = None,
) -> list[Finding]:
    """Drop the findings that a suppression comment silences.

    `text_of(path)` gives a file's text (None when unreadable). With `report_unused`, each
    selector that silenced nothing becomes a DDI907 notice, but only when it names a rule
    that ran (`active`, as (code, name) pairs): a suppression for a rule that was not selected
    this time is not unused. `only_paths` limits the unused check to those files.
    """
    by_path: dict[str, list[Finding]] = {}
    for f in findings:
        by_path.setdefault(f.location.path, []).append(f)
    kept: list[Finding] = []
    parsed: dict[str, list[Suppression]] = {}
    for path, group in by_path.items():
        text = text_of(path)
        sups = parse_suppressions(text) if text else []
        parsed[path] = sups
        index = _by_target(sups)
        for f in group:
            if f.is_notice or not _silenced(f, index):
                kept.append(f)
        for alike in index.values():
            for same in alike.values():
                for other in same[1:]:  # what silenced the first, silenced them all
                    other.used |= same[0].used
    if report_unused:
        active_rules = list(active)
        paths = set(only_paths) if only_paths is not None else set(by_path)
        for path in sorted(paths):
            if path not in parsed:
                text = text_of(path)
                parsed[path] = parse_suppressions(text) if text else []
            kept.extend(_unused(path, parsed[path], active_rules))
    kept.sort(key=Finding.sort_key)
    return kept


# A file's suppressions by the line they silence (None: the whole file), then by their
# selectors: those alike answer alike. A finding looks only at its own line's (a file of
# 8,000 suppressed lines compared each finding with every comment: 10 s), and at one of
# each kind there (8,000 comments on one generated line).
_Index = dict[int | None, dict[tuple[str, ...], list[Suppression]]]


def _by_target(sups: Sequence[Suppression]) -> _Index:
    out: _Index = {}
    for s in sups:
        out.setdefault(s.target_line(), {}).setdefault(s.selectors, []).append(s)
    return out


def _silenced(f: Finding, index: _Index) -> bool:
    """Whether a suppression silences `f`; each one that does records the selector (on the
    first of those alike: `apply_suppressions` tells the others)."""
    hit = False
    for target in (f.location.line, None):
        for same in index.get(target, {}).values():
            sel = same[0].covers(f.code, f.name)
            if sel is not None:
                same[0].used.add(sel)
                hit = True
    return hit


def _unused(path: str, sups: Sequence[Suppression],
            active: Sequence[tuple[str, str]]) -> list[Finding]:
    entry = notice_entry("DDI907")
    out: list[Finding] = []
    for s in sups:
        if not s.selectors:
            if "*" not in s.used and active:
                out.append(Finding("DDI907", entry.name, entry.severity,
                                   f"unused suppression: 'ddilint: {s.kind}' silenced nothing",
                                   Location(path, s.line, s.column)))
            continue
        for sel in s.selectors:
            if sel in s.used:
                continue
            probe = Suppression(s.kind, s.line, s.column, (sel,))
            if not any(probe.covers(code, name) for code, name in active):
                continue  # names a rule that did not run: cannot tell
            out.append(Finding("DDI907", entry.name, entry.severity,
                               f"unused suppression: {sel} in 'ddilint: {s.kind}' silenced "
                               "nothing", Location(path, s.line, s.column)))
    return out
