"""Baselines: record today's findings so CI fails only on new ones.

`ddilint check --write-baseline ddilint-baseline.json src/` writes every finding (notices
excepted) as {path, code, fingerprint, message}; `ddilint check --baseline
ddilint-baseline.json src/` then drops the findings whose (path, fingerprint) is in it.
Paths are stored relative to the baseline file's folder, so the file works from any working
directory; fingerprints do not contain line numbers (see `fingerprint.py`), so edits
elsewhere in a file keep old findings matched.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ddilint.findings import Finding

FORMAT_VERSION = 1


class BaselineError(Exception):
    """A baseline file that cannot be read."""


def _rel(path: str, base: Path) -> str:
    try:
        return Path(os.path.relpath(Path(path).resolve(), base.resolve())).as_posix()
    except ValueError:
        return Path(path).as_posix()


def write_baseline(file: Path, findings: Sequence[Finding], prints: Sequence[str]) -> int:
    """Write the baseline; returns how many findings it holds."""
    base = file.resolve().parent
    entries = [
        {"path": _rel(f.location.path, base), "code": f.code, "fingerprint": fp,
         "message": f.message}
        for f, fp in zip(findings, prints, strict=True) if not f.is_notice
    ]
    data: dict[str, Any] = {"version": FORMAT_VERSION, "tool": "ddilint", "findings": entries}
    tmp = file.with_name(file.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, file)
    return len(entries)


def read_baseline(file: Path) -> Counter[tuple[str, str]]:
    """(path relative to the baseline's folder, fingerprint) -> count."""
    try:
        data = json.loads(file.read_text(encoding="utf-8-sig"))
    except OSError as exc:
        raise BaselineError(f"{file}: cannot read the baseline: {exc.strerror or exc}") from exc
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BaselineError(f"{file}: not a ddilint baseline (invalid JSON: {exc})") from exc
    if not isinstance(data, dict) or data.get("version") != FORMAT_VERSION or not isinstance(
            data.get("findings"), list):
        raise BaselineError(f"{file}: not a ddilint baseline (version {FORMAT_VERSION} expected)")
    out: Counter[tuple[str, str]] = Counter()
    for e in data["findings"]:
        if isinstance(e, dict) and isinstance(e.get("path"), str) and isinstance(
                e.get("fingerprint"), str):
            out[(e["path"], e["fingerprint"])] += 1
    return out


def filter_baseline(file: Path, findings: Sequence[Finding],
                    prints: Sequence[str]) -> tuple[list[Finding], list[str]]:
    """The findings (and their fingerprints) that the baseline does not hold."""
    known = read_baseline(file)
    base = file.resolve().parent
    kept: list[Finding] = []
    kept_prints: list[str] = []
    for f, fp in zip(findings, prints, strict=True):
        key = (_rel(f.location.path, base), fp)
        if not f.is_notice and known[key] > 0:
            known[key] -= 1
            continue
        kept.append(f)
        kept_prints.append(fp)
    return kept, kept_prints
