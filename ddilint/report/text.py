"""Plain-text findings: `path:line:col: CODE [name] message`, one per line."""

from __future__ import annotations

from collections.abc import Sequence

from ddilint.findings import Finding


def format_text(findings: Sequence[Finding], show_trace: bool = False) -> str:
    """Findings as text lines (trace steps indented below when asked)."""
    lines: list[str] = []
    for f in findings:
        loc = f.location
        lines.append(f"{loc.path}:{loc.line}:{loc.column}: {f.code} [{f.name}] {f.message}")
        if show_trace:
            for step in f.trace:
                s = step.location
                lines.append(f"    {s.path}:{s.line}:{s.column}: {step.message}")
    return "\n".join(lines) + ("\n" if lines else "")
