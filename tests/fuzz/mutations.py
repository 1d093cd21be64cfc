"""Hypothesis strategies that make hostile driver sources out of real-looking ones.

A seed file (a fixture, an example driver, a corpus file) is cut into tokens and lines;
a mutation deletes, duplicates or swaps tokens and lines, or inserts random bytes, a few
times over. Shared by the fuzz tests (a few hundred examples in CI) and `tests/fuzz/run.py`
(a longer run, over any folder of seeds).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path

from hypothesis import strategies as st

from ddilint.analyzer.engine import Options, analyze_bytes
from ddilint.findings import Finding
from ddilint.knowledge import Knowledge
from ddilint.report.json_report import format_json
from ddilint.rules.base import Rule

ROOT = Path(__file__).resolve().parents[2]
SEED_DIRS = (ROOT / "fixtures", ROOT / "examples")
SUFFIXES = (".c", ".cpp", ".h", ".hpp")

_TOKEN = re.compile(rb"[A-Za-z_]\w*|\d+|\s+|/\*|\*/|//|.", re.S)

# Bytes that break parsers and decoders in interesting ways.
_NASTY = [b"\x00", b"\xff", b"\xfe\xff", b"\xef\xbb\xbf", b"\r", b"\r\n", b"/*", b"*/", b"\"",
          b"'", b"\\\n", b"#if 0\n", b"#endif\n", b"#define X(a) a(\n", b"{", b"}", b"(", b")",
          b"__try {", b"__finally {", b"goto L;", b"L:", b"\xc3", b"\xe9", b"\x1a",
          b"_IRQL_requires_max_(", b"OBJ_KERNEL_HANDLE", b"ZwClose(", b"NtClose("]


def seed_files(dirs: Sequence[Path] = SEED_DIRS) -> list[Path]:
    """Source files under `dirs`, sorted."""
    out: list[Path] = []
    for d in dirs:
        out.extend(p for p in d.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES)
    return sorted(out)


def _tokens(data: bytes) -> list[bytes]:
    return _TOKEN.findall(data)


@st.composite
def mutated(draw: st.DrawFn, seeds: Sequence[bytes]) -> bytes:
    """A seed with a few token, line and byte mutations applied."""
    data = draw(st.sampled_from(seeds))
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["del-token", "dup-token", "swap-token", "del-line",
                                   "dup-line", "swap-line", "insert-bytes", "insert-nasty",
                                   "truncate"]))
        if op.endswith("token"):
            parts = _tokens(data)
        elif op.endswith("line"):
            parts = data.splitlines(keepends=True)
        else:
            parts = [data]
        if not parts or not data:
            data = draw(st.binary(max_size=64))
            continue
        if op in ("del-token", "del-line"):
            i = draw(st.integers(0, len(parts) - 1))
            n = draw(st.integers(1, 3))
            del parts[i:i + n]
        elif op in ("dup-token", "dup-line"):
            i = draw(st.integers(0, len(parts) - 1))
            parts.insert(i, parts[i] * draw(st.integers(1, 4)))
        elif op in ("swap-token", "swap-line"):
            i = draw(st.integers(0, len(parts) - 1))
            j = draw(st.integers(0, len(parts) - 1))
            parts[i], parts[j] = parts[j], parts[i]
        else:
            at = draw(st.integers(0, len(data)))
            if op == "truncate":
                parts = [data[:at]]
            else:
                junk = draw(st.binary(min_size=1, max_size=16)) if op == "insert-bytes" else (
                    draw(st.sampled_from(_NASTY)) * draw(st.integers(1, 40)))
                parts = [data[:at], junk, data[at:]]
        data = b"".join(parts)
    return data


def file_names() -> st.SearchStrategy[str]:
    """A C or C++ file name (the language follows the suffix)."""
    return st.sampled_from(["fuzz.c", "fuzz.cpp", "fuzz.h"])


def check_one(path: str, raw: bytes, rules: Sequence[Rule], knowledge: Knowledge,
              timeout: float = 20.0) -> list[Finding]:
    """The fuzz property: no exception escapes, no internal error, output is valid JSON."""
    res = analyze_bytes(path, raw, rules, knowledge, Options(debug=True, file_timeout=timeout))
    internal = [f.message for f in res.findings if f.code == "DDI906"]
    assert internal == [], internal[0]
    data = json.loads(format_json(sorted(res.findings, key=Finding.sort_key)))
    assert isinstance(data, list)
    for item in data:
        assert item["path"] == path and item["line"] >= 1 and item["column"] >= 1
    return res.findings
