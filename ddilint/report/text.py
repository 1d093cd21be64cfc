"""Plain-text findings: `path:line:col: CODE [name] message`, one per line."""

from __future__ import annotations

import re
from collections.abc import Sequence

from ddilint.findings import Finding

# Control characters (C0, DEL, C1) in a file's name or in a piece of its code that a message
# quotes. Printed as they are they reach a terminal (an escape sequence that clears or
# recolours lines) or a CI log (a line break, then a `::` line that GitHub Actions runs as a
# workflow command). They are written as `\xNN`.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def printable(line: str) -> str:
    """`line` with its control characters written as `\\xNN`."""
    return _CONTROL.sub(_escape, line) if _CONTROL.search(line) else line


def _escape(m: re.Match[str]) -> str:
    return f"\\x{ord(m.group()):02x}"

# Rules whose trace starts where the context of every finding comes from (the entry, the
# raise, the annotation that sets the IRQL): findings that share that first step share
# one cause, and one change there answers them all.
_CAUSE_FIRST = frozenset({"DDI301", "DDI601"})


def format_text(findings: Sequence[Finding], show_trace: bool = False) -> str:
    """Findings as text lines (trace steps indented below when asked)."""
    lines: list[str] = []
    for f in findings:
        loc = f.location
        lines.append(printable(
            f"{loc.path}:{loc.line}:{loc.column}: {f.code} [{f.name}] {f.message}"))
        if show_trace:
            for step in f.trace:
                s = step.location
                lines.append(printable(f"    {s.path}:{s.line}:{s.column}: {step.message}"))
    return "\n".join(lines) + ("\n" if lines else "")


def shared_causes(findings: Sequence[Finding], minimum: int = 5) -> list[str]:
    """One line per cause that at least `minimum` findings of a rule share (the first step
    of their trace, for the rules whose trace starts at the cause), most first: a driver
    that raises the IRQL in one place above a deep call tree gets dozens of findings, one
    per call that may not run there, and the cause is worth saying once."""
    groups: dict[tuple[str, str, int, str], int] = {}
    for f in findings:
        if f.code in _CAUSE_FIRST and f.trace:
            first = f.trace[0]
            key = (f.code, first.location.path, first.location.line, first.message)
            groups[key] = groups.get(key, 0) + 1
    out = []
    for (code, path, line, message), n in sorted(groups.items(), key=lambda g: (-g[1], g[0])):
        if n >= minimum:
            where = f"{path.replace(chr(92), '/').rsplit('/', 1)[-1]}:{line}"
            said = f" ({where})" if where not in message else ""
            out.append(printable(f"{n} {code} findings have one cause: {message}{said}"))
    return out
