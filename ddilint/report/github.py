"""GitHub Actions workflow commands: one `::error`/`::warning`/`::notice` line per finding,
which the Actions runner shows as an annotation on the pull request's diff."""

from __future__ import annotations

from collections.abc import Sequence

from ddilint.findings import Finding, Severity

COMMAND = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.NOTE: "notice"}


def _data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _prop(text: str) -> str:
    return _data(text).replace(":", "%3A").replace(",", "%2C")


def format_github(findings: Sequence[Finding]) -> str:
    """Findings as workflow-command lines."""
    lines: list[str] = []
    for f in findings:
        loc = f.location
        props = [f"file={_prop(loc.path)}", f"line={loc.line}", f"col={loc.column}"]
        if loc.end_line is not None and loc.end_column is not None:
            props += [f"endLine={loc.end_line}", f"endColumn={loc.end_column}"]
        props.append(f"title={_prop(f'{f.code} {f.name}')}")
        lines.append(f"::{COMMAND[f.severity]} {','.join(props)}::{_data(f.message)}")
    return "\n".join(lines) + ("\n" if lines else "")
