"""The one type every rule produces and every reporter consumes: a finding.

A finding has a primary location (path, 1-based line and column), the rule that made it,
a message, optional trace steps (the path or call chain that explains it, shown as SARIF
code flows and LSP related information) and optional fixes (text edits).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Severity(StrEnum):
    """How bad a finding is; notices (DDI9xx) are notes and never fail a run on their own."""

    ERROR = "error"
    WARNING = "warning"
    NOTE = "note"


@dataclass(frozen=True, slots=True)
class Location:
    """A place in a source file: 1-based line and column (columns count characters)."""

    path: str
    line: int
    column: int
    end_line: int | None = None
    end_column: int | None = None


@dataclass(frozen=True, slots=True)
class TraceStep:
    """One step of the story behind a finding (an open, a branch taken, a call, an exit)."""

    location: Location
    message: str


@dataclass(frozen=True, slots=True)
class TextEdit:
    """Replace the bytes [start, end) of a file's UTF-8 text with `replacement`."""

    start: int
    end: int
    replacement: str


@dataclass(frozen=True, slots=True)
class Fix:
    """A suggested change that makes the finding go away; applied only with --fix."""

    description: str
    edits: tuple[TextEdit, ...]


@dataclass(frozen=True, slots=True)
class Citation:
    """The documentation a finding or rule rests on: a page, a section of it, its URL.

    `title` is the page's title (the routine's name, or a project function's name for a
    requirement that comes from a project annotation), `section` the part of the page that
    states the requirement ("Parameters: HandleAttributes", "Requirements: IRQL"), `url`
    the page on learn.microsoft.com (with the section's anchor when it has one), or the
    file and line of a project annotation.
    """

    title: str
    section: str = ""
    url: str = ""

    @property
    def label(self) -> str:
        """"ZwOpenProcessTokenEx, Parameters: HandleAttributes"."""
        return f"{self.title}, {self.section}" if self.section else self.title

    def __str__(self) -> str:
        return f"{self.label} <{self.url}>" if self.url else self.label


@dataclass(frozen=True, slots=True)
class Finding:
    """A rule violation (or an analysis notice) at one primary location."""

    code: str
    name: str
    severity: Severity
    message: str
    location: Location
    trace: tuple[TraceStep, ...] = ()
    fixes: tuple[Fix, ...] = ()
    # A short text that identifies the finding independent of its line (used for
    # fingerprints and baselines): usually the function name and the routine called.
    anchor: str = ""
    related: tuple[TraceStep, ...] = field(default=())
    # The page and section of the documented requirement of the routine this finding is
    # about (filled by FileContext.finding(..., routine=...)); None: the rule's own
    # citation (Rule.citation) applies.
    citation: Citation | None = None

    def sort_key(self) -> tuple[str, int, int, str, str]:
        """Order findings by place, then code, then message: deterministic output."""
        loc = self.location
        return (loc.path, loc.line, loc.column, self.code, self.message)

    @property
    def is_notice(self) -> bool:
        """Analysis notices (DDI9xx) report on ddilint itself, not on the driver."""
        return self.code.startswith("DDI9")
