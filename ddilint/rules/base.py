"""What a rule is, and the context it is given.

A rule is a small object: its metadata (code, name, severity, the requirement it enforces
and the documentation section it comes from, an explanation with a bad and a good
example) and a `check_file` method that asks the engine questions through `FileContext`
and yields findings. Rules never walk syntax trees: they read the IR and the engine's
analyses.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ddilint.analyzer.ir import CallSite, FileIR
from ddilint.findings import Finding, Fix, Location, Severity, TraceStep
from ddilint.knowledge import Knowledge, Routine

DOCS_BASE = "https://learn.microsoft.com/windows-hardware/drivers/ddi/"


class Rule:
    """Base class of every rule. Subclasses set the class attributes and `check_file`."""

    code: ClassVar[str] = ""
    name: ClassVar[str] = ""
    severity: ClassVar[Severity] = Severity.WARNING
    summary: ClassVar[str] = ""
    # The documented requirement: the routine and the section of its page.
    routine: ClassVar[str] = ""
    doc_section: ClassVar[str] = ""
    requirement: ClassVar[str] = ""
    explanation: ClassVar[str] = ""
    bad_example: ClassVar[str] = ""
    good_example: ClassVar[str] = ""
    fix_text: ClassVar[str] = ""

    def check_file(self, ctx: FileContext) -> Iterable[Finding]:
        """Findings for one file. The default finds nothing."""
        return ()

    def help_uri(self, knowledge: Knowledge | None = None) -> str:
        """The documentation page the rule's requirement comes from."""
        if knowledge is not None and self.routine:
            r = knowledge.get(self.routine)
            if r is not None and r.url:
                return r.url
        return DOCS_BASE

    def describe(self) -> str:
        """`ddilint explain`: what it does, why it matters, examples, the fix."""
        parts = [f"{self.code} {self.name} ({self.severity.value})", "", self.summary]
        if self.requirement:
            cite = f"{self.routine}, {self.doc_section}" if self.routine else self.doc_section
            parts += ["", f"Requirement ({cite}):", f"  {self.requirement}"]
        if self.explanation:
            parts += ["", "Why it matters:", _indent(self.explanation)]
        if self.bad_example:
            parts += ["", "Example (fires):", _indent(self.bad_example)]
        if self.good_example:
            parts += ["", "Instead (silent):", _indent(self.good_example)]
        if self.fix_text:
            parts += ["", "Fix:", _indent(self.fix_text)]
        return "\n".join(parts)


def _indent(text: str) -> str:
    return "\n".join("    " + line if line else "" for line in text.strip("\n").splitlines())


@dataclass
class FileContext:
    """What a rule may ask about one file: its IR, its mode, the knowledge table."""

    file: FileIR
    knowledge: Knowledge
    mode: str  # "kernel" or "user"
    options: Mapping[str, Any] = field(default_factory=dict)

    @property
    def path(self) -> str:
        return self.file.path

    def location(self, offset: int, end: int | None = None) -> Location:
        """The location of a byte offset (and optional end offset)."""
        line, col = self.file.position(offset)
        if end is None:
            return Location(self.file.path, line, col)
        eline, ecol = self.file.position(end)
        return Location(self.file.path, line, col, eline, ecol)

    def step(self, offset: int, message: str) -> TraceStep:
        """A trace step at a byte offset."""
        return TraceStep(self.location(offset), message)

    def finding(
        self,
        rule: Rule,
        offset: int,
        message: str,
        *,
        end: int | None = None,
        trace: Iterable[TraceStep] = (),
        fixes: Iterable[Fix] = (),
        anchor: str = "",
    ) -> Finding:
        """A finding of `rule` whose primary location is the byte offset `offset`."""
        return Finding(
            code=rule.code,
            name=rule.name,
            severity=rule.severity,
            message=message,
            location=self.location(offset, end),
            trace=tuple(trace),
            fixes=tuple(fixes),
            anchor=anchor,
        )

    def calls(self) -> Iterator[tuple[CallSite, Routine]]:
        """Every call of a routine the knowledge table knows, with its facts."""
        get = self.knowledge.routines.get
        for call in self.file.calls:
            r = get(call.callee)
            if r is not None:
                yield call, r

    def defines_function(self, name: str) -> bool:
        """True when the analyzed file itself defines a function of this name (so a call of
        it is a call of the driver's own code, not of the documented routine)."""
        return any(f.name == name and f.kind != "lambda" for f in self.file.functions)
