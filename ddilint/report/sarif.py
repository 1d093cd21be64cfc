"""SARIF 2.1.0 output for code scanning (GitHub upload-sarif, Azure DevOps, VS viewers).

One run; `tool.driver.rules` lists every rule that ran, with descriptions, help text,
`helpUri` (the documentation page of the rule's routine) and default level. Results carry
`ruleId`/`ruleIndex`, level, region (1-based, columns in Unicode code points),
`partialFingerprints` that do not depend on line numbers, `codeFlows` built from the
finding's trace steps and `relatedLocations` from its related steps. Analysis notices
(DDI9xx: a file that could not be read well) are not results, so they never become
code-scanning alerts: they are the invocation's `toolExecutionNotifications`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

from ddilint import __version__
from ddilint.findings import Finding, Location, Severity, TraceStep
from ddilint.knowledge import Knowledge
from ddilint.rules.base import DOCS_BASE, Rule
from ddilint.rules.catalogue import BY_CODE

SCHEMA_URI = "https://json.schemastore.org/sarif-2.1.0.json"
FINGERPRINT_KEY = "ddilint/v1"
INFO_URI = "https://github.com/ddilint/ddilint"
LEVEL = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.NOTE: "note"}


def artifact_uri(path: str, base: Path) -> str:
    """The URI reference SARIF requires for `path`: relative to `base` (forward slashes)
    when it is under it, else a file URI. Either is percent-encoded from the name's bytes
    (RFC 3986): `my driver/a#1.c` is `my%20driver/a%231.c`, a name that is not UTF-8 keeps
    its bytes, and a colon cannot make a first segment read as a scheme."""
    p = Path(path)
    try:
        rel = Path(os.path.relpath(p.resolve(), base.resolve()))
    except ValueError:
        return p.resolve().as_uri()
    if rel.parts and rel.parts[0] == "..":
        return p.resolve().as_uri()
    return quote(os.fsencode(rel.as_posix()), safe="/")


class _Uris(dict[str, str]):
    """`artifact_uri` of each path, worked out once per run: a report's locations name
    the same few files again and again (64,000 results in one file resolved its path
    128,000 times, 4 s)."""

    def __init__(self, base: Path) -> None:
        super().__init__()
        self.base = base

    def __missing__(self, path: str) -> str:
        uri = self[path] = artifact_uri(path, self.base)
        return uri


def _location(loc: Location, uris: _Uris, message: str | None = None) -> dict[str, Any]:
    region: dict[str, Any] = {"startLine": max(1, loc.line), "startColumn": max(1, loc.column)}
    if loc.end_line is not None and loc.end_column is not None:
        region["endLine"] = max(loc.end_line, region["startLine"])
        region["endColumn"] = max(1, loc.end_column)
    uri = uris[loc.path]
    artifact: dict[str, Any] = {"uri": uri}
    if not uri.startswith("file:"):
        artifact["uriBaseId"] = "%SRCROOT%"
    out: dict[str, Any] = {"physicalLocation": {"artifactLocation": artifact, "region": region}}
    if message:
        out["message"] = {"text": message}
    return out


def _rule_descriptor(code: str, rules: dict[str, Rule],
                     knowledge: Knowledge | None) -> dict[str, Any]:
    rule = rules.get(code)
    if rule is not None:
        short = rule.summary or rule.name
        full = rule.requirement or short
        help_text = rule.describe()
        uri = rule.help_uri(knowledge)
        name, severity = rule.name, rule.severity
    else:
        entry = BY_CODE.get(code)
        name = entry.name if entry else code
        short = full = help_text = entry.summary if entry else code
        severity = entry.severity if entry else Severity.NOTE
        uri = DOCS_BASE
    return {
        "id": code,
        "name": _pascal(name),
        "shortDescription": {"text": short},
        "fullDescription": {"text": full},
        "help": {"text": help_text},
        "helpUri": uri,
        "defaultConfiguration": {"level": LEVEL[severity]},
        "properties": {"tags": ["ddilint", name]},
    }


def _pascal(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("-"))


def _code_flow(steps: Sequence[TraceStep], uris: _Uris) -> dict[str, Any]:
    return {"threadFlows": [{"locations": [
        {"location": _location(s.location, uris, s.message), "executionOrder": i}
        for i, s in enumerate(steps)
    ]}]}


def to_sarif(
    findings: Sequence[Finding],
    prints: Sequence[str],
    rules: Sequence[Rule],
    knowledge: Knowledge | None = None,
    base: Path | None = None,
) -> dict[str, Any]:
    """The SARIF log as a dict. `prints` are the findings' fingerprints (same order)."""
    base = base or Path.cwd()
    uris = _Uris(base)
    by_code = {r.code: r for r in rules}
    codes = [r.code for r in rules]
    for f in findings:
        if f.code not in codes and not f.is_notice:
            codes.append(f.code)
    index = {c: i for i, c in enumerate(codes)}
    results: list[dict[str, Any]] = []
    notifications: list[dict[str, Any]] = []
    for f, fp in zip(findings, prints, strict=True):
        if f.is_notice:
            # About ddilint's view of the input, not the driver: a tool notification, not an
            # alert in code scanning.
            notifications.append({
                "descriptor": {"id": f.code},
                "level": LEVEL[f.severity],
                "message": {"text": f"{f.code} {f.name}: {f.message}"},
                "locations": [_location(f.location, uris)],
            })
            continue
        res: dict[str, Any] = {
            "ruleId": f.code,
            "ruleIndex": index[f.code],
            "level": LEVEL[f.severity],
            "message": {"text": f.message},
            "locations": [_location(f.location, uris)],
            "partialFingerprints": {FINGERPRINT_KEY: fp},
        }
        if f.trace:
            res["codeFlows"] = [_code_flow(f.trace, uris)]
        if f.related:
            res["relatedLocations"] = [
                {"id": i, **_location(s.location, uris, s.message)}
                for i, s in enumerate(f.related)
            ]
        props: dict[str, Any] = {}
        if f.citation is not None:
            props["documentation"] = {"title": f.citation.label, "url": f.citation.url}
        if f.fixes:
            props["fixes"] = [fx.description for fx in f.fixes]
        if props:
            res["properties"] = props
        results.append(res)
    return {
        "$schema": SCHEMA_URI,
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "ddilint",
                "version": __version__,
                "semanticVersion": __version__,
                "informationUri": INFO_URI,
                "rules": [_rule_descriptor(c, by_code, knowledge) for c in codes],
            }},
            "originalUriBaseIds": {"%SRCROOT%": {"uri": base.resolve().as_uri() + "/"}},
            "columnKind": "unicodeCodePoints",
            "invocations": [{"executionSuccessful": True,
                             "toolExecutionNotifications": notifications}],
            "results": results,
        }],
    }


def format_sarif(findings: Sequence[Finding], prints: Sequence[str], rules: Sequence[Rule],
                 knowledge: Knowledge | None = None, base: Path | None = None) -> str:
    """The SARIF log as JSON text."""
    return json.dumps(to_sarif(findings, prints, rules, knowledge, base), indent=2) + "\n"
