"""JSON findings: an array of objects with path, line, column, code, name, severity,
message, and the trace steps, fixes and documentation citation when there are any."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from ddilint.findings import Finding


def finding_to_dict(f: Finding) -> dict[str, Any]:
    """One finding as a JSON-ready dict."""
    loc = f.location
    out: dict[str, Any] = {
        "path": loc.path,
        "line": loc.line,
        "column": loc.column,
        "code": f.code,
        "name": f.name,
        "severity": f.severity.value,
        "message": f.message,
    }
    if loc.end_line is not None:
        out["end_line"] = loc.end_line
        out["end_column"] = loc.end_column
    if f.trace:
        out["trace"] = [
            {"path": s.location.path, "line": s.location.line, "column": s.location.column,
             "message": s.message}
            for s in f.trace
        ]
    if f.citation is not None:
        out["citation"] = {"title": f.citation.title, "section": f.citation.section,
                           "url": f.citation.url}
    if f.fixes:
        out["fixes"] = [
            {"description": fx.description,
             "edits": [{"start": e.start, "end": e.end, "replacement": e.replacement}
                       for e in fx.edits]}
            for fx in f.fixes
        ]
    return out


def format_json(findings: Sequence[Finding]) -> str:
    """Findings as a JSON array."""
    return json.dumps([finding_to_dict(f) for f in findings], indent=2) + "\n"
