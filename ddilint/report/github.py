"""GitHub Actions workflow commands: one `::error`/`::warning`/`::notice` line per finding,
which the Actions runner shows as an annotation on the pull request's diff."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from ddilint.findings import Finding, Severity

COMMAND = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.NOTE: "notice"}


def _data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _prop(text: str) -> str:
    return _data(text).replace(":", "%3A").replace(",", "%2C")


def _relative(path: str, base: Path) -> str:
    """The path relative to `base` (the checkout) when it is under it: annotations need
    repository-relative paths."""
    try:
        rel = Path(os.path.relpath(Path(path).resolve(), base.resolve()))
    except ValueError:
        return path
    return path if rel.parts[:1] == ("..",) else rel.as_posix()


def format_github(findings: Sequence[Finding], base: Path | None = None) -> str:
    """Findings as workflow-command lines, paths relative to `base` (default: the working
    directory) when under it."""
    base = base or Path.cwd()
    lines: list[str] = []
    files: dict[str, str] = {}  # each path's property, resolved once (not once per finding)
    for f in findings:
        loc = f.location
        file = files.get(loc.path)
        if file is None:
            file = files[loc.path] = _prop(_relative(loc.path, base))
        props = [f"file={file}", f"line={loc.line}", f"col={loc.column}"]
        if loc.end_line is not None and loc.end_column is not None:
            props += [f"endLine={loc.end_line}", f"endColumn={loc.end_column}"]
        props.append(f"title={_prop(f'{f.code} {f.name}')}")
        lines.append(f"::{COMMAND[f.severity]} {','.join(props)}::{_data(f.message)}")
    return "\n".join(lines) + ("\n" if lines else "")
