"""Shared helpers: run ddilint on source text or fixture files, the way the CLI does."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import pytest

from ddilint.analyzer.engine import Options, analyze_bytes
from ddilint.analyzer.frontend import SOURCE_SUFFIXES, parse_file
from ddilint.analyzer.ir import FileIR
from ddilint.analyzer.source import SourceText
from ddilint.findings import Finding
from ddilint.knowledge import Knowledge, load_knowledge
from ddilint.plugins import collect_rules, plugin_manager
from ddilint.rules.base import Rule

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "fixtures"
EXPECT = re.compile(r"expect:\s*((?:DDI\d{3}(?::\d+)?\s*,?\s*)+)")


@pytest.fixture(scope="session")
def builtin_rules() -> list[Rule]:
    return collect_rules(plugin_manager())


@pytest.fixture(scope="session")
def knowledge() -> Knowledge:
    return load_knowledge()


def analyze_text(text: str, rules: Sequence[Rule], path: str = "t.c",
                 options: Options | None = None) -> list[Finding]:
    """Findings (notices included) for source text."""
    res = analyze_bytes(path, text.encode("utf-8"), rules, load_knowledge(), options)
    return sorted(res.findings, key=Finding.sort_key)


def source_files() -> list[Path]:
    """Every C/C++ file of the fixtures and the bundled example driver."""
    files = sorted(p for p in [*FIXTURES.rglob("*"), *(ROOT / "examples").rglob("*")]
                   if p.suffix.lower() in SOURCE_SUFFIXES)
    assert len(files) > 50, "the fixtures are missing"
    return files


def parse_text(text: str, path: str = "t.c") -> FileIR:
    """The IR of source text."""
    return parse_file(SourceText(path, text, "utf-8"))


def expectations(data: bytes) -> set[tuple[int, str]]:
    """(line, code) pairs written as `// expect: DDI101, DDI201` comments."""
    out: set[tuple[int, str]] = set()
    for lineno, line in enumerate(data.decode("utf-8", "replace").splitlines(), start=1):
        m = EXPECT.search(line)
        if m:
            for code in re.findall(r"DDI\d{3}", m.group(1)):
                out.add((lineno, code))
    return out
