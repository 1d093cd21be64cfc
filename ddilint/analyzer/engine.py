"""Running the rules over files: discovery, per-file analysis, notices.

`analyze_bytes` is the per-file unit of work (decode, preprocess, parse, run each rule),
a pure function of its inputs so that it can run in worker processes and be cached. Any
failure inside it becomes a DDI9xx notice; nothing escapes to the caller.
"""

from __future__ import annotations

import os
import time
import traceback
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ddilint.analyzer.frontend import SOURCE_SUFFIXES, parse_file
from ddilint.analyzer.ir import FileIR
from ddilint.analyzer.mode import detect_mode
from ddilint.analyzer.source import MAX_FILE_BYTES, SourceText, decode_bytes
from ddilint.findings import Finding, Location
from ddilint.knowledge import Knowledge
from ddilint.rules.base import FileContext, Rule
from ddilint.rules.catalogue import notice_entry

SKIP_DIRS = frozenset({
    ".git", ".hg", ".svn", ".vs", ".vscode", ".idea", "node_modules", "__pycache__",
    ".ddilint_cache", ".mypy_cache", ".ruff_cache", ".pytest_cache", ".tox", ".venv",
    "venv", "build", "out", "bin", "obj", "Debug", "Release", "x64", "x86", "ARM", "ARM64",
    "Win32", "objfre", "objchk",
})


def notice(code: str, path: str, message: str, line: int = 1, column: int = 1) -> Finding:
    """A DDI9xx analysis notice."""
    entry = notice_entry(code)
    return Finding(code, entry.name, entry.severity, message, Location(path, line, column))


@dataclass
class FileResult:
    """What analyzing one file produced."""

    path: str
    findings: list[Finding] = field(default_factory=list)
    analyzed: bool = False
    seconds: float = 0.0
    error_nodes: int = 0
    mode: str = ""


@dataclass
class Options:
    """Per-run settings every file analysis sees."""

    mode_override: str | None = None
    debug: bool = False
    defined: dict[str, int] = field(default_factory=dict)
    undefined: frozenset[str] = frozenset()
    extra: dict[str, Any] = field(default_factory=dict)
    # Function name -> role, from the project config (`roles = {"MyDpc" = "dpc"}`).
    roles: dict[str, str] = field(default_factory=dict)
    # File path (as the engine names it) -> "kernel"/"user", from the config's `mode` globs;
    # `mode_override` (the command line's --mode) wins over it.
    file_modes: dict[str, str] = field(default_factory=dict)


def discover(
    paths: Sequence[str | Path], exclude: Iterable[str] = ()
) -> tuple[list[Path], list[str]]:
    """Source files under `paths` (sorted, unique) and the paths that do not exist."""
    from fnmatch import fnmatch

    patterns = list(exclude)
    found: dict[str, Path] = {}
    missing: list[str] = []

    def excluded(p: Path) -> bool:
        s = p.as_posix()
        return any(fnmatch(s, pat) or fnmatch(p.name, pat) or fnmatch(s, f"*/{pat}")
                   for pat in patterns)

    for raw in paths:
        p = Path(raw)
        if p.is_file():
            if not excluded(p):
                found.setdefault(os.path.normpath(p), p)
            continue
        if not p.is_dir():
            missing.append(str(raw))
            continue
        seen_dirs: set[tuple[int, int]] = set()
        for root, dirs, files in os.walk(p, followlinks=False):
            try:
                st = os.stat(root)
                key = (st.st_dev, st.st_ino)
                if key in seen_dirs:
                    dirs[:] = []
                    continue
                seen_dirs.add(key)
            except OSError:
                continue
            dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS and not d.startswith(".")
                             and not excluded(Path(root, d)))
            for name in sorted(files):
                dot = name.rfind(".")
                if dot < 0 or name[dot:].lower() not in SOURCE_SUFFIXES:
                    continue
                fp = Path(root, name)
                if excluded(fp):
                    continue
                found.setdefault(os.path.normpath(fp), fp)
    return [found[k] for k in sorted(found)], missing


def read_source(path: str, raw: bytes) -> tuple[SourceText | None, list[Finding]]:
    """Decode a file's bytes, with notices for what was lossy or impossible."""
    notes: list[Finding] = []
    if len(raw) > MAX_FILE_BYTES:
        notes.append(notice("DDI904", path, f"file is {len(raw) // 1024} KiB, over the "
                            f"{MAX_FILE_BYTES // (1024 * 1024)} MiB limit; not analyzed"))
        return None, notes
    decoded = decode_bytes(raw)
    if decoded.text is None:
        notes.append(notice(decoded.notice_code or "DDI902", path, decoded.notice or "skipped"))
        return None, notes
    if decoded.notice:
        notes.append(notice(decoded.notice_code or "DDI903", path, decoded.notice))
    elif decoded.encoding == "cp1252":
        notes.append(notice("DDI903", path, "not valid UTF-8; decoded as Windows-1252"))
    return SourceText(path, decoded.text, decoded.encoding), notes


def analyze_bytes(
    path: str,
    raw: bytes,
    rules: Sequence[Rule],
    knowledge: Knowledge,
    options: Options | None = None,
) -> FileResult:
    """Analyze one file's bytes with `rules`. Never raises."""
    options = options or Options()
    started = time.perf_counter()
    result = FileResult(path)
    try:
        source, notes = read_source(path, raw)
        result.findings.extend(notes)
        if source is None:
            return result
        fir = parse_file(source, defined=options.defined, undefined=options.undefined)
        result.error_nodes = fir.error_nodes
        result.analyzed = True
        result.findings.extend(run_rules(fir, rules, knowledge, options))
    except Exception as exc:  # the file fails, the run goes on
        detail = traceback.format_exc() if options.debug else f"{type(exc).__name__}: {exc}"
        result.findings.append(notice("DDI906", path, f"internal error while analyzing the "
                                      f"file: {detail}"))
    finally:
        result.seconds = time.perf_counter() - started
    return result


def run_rules(
    fir: FileIR, rules: Sequence[Rule], knowledge: Knowledge, options: Options
) -> Iterator[Finding]:
    """Run each rule on a parsed file; a failing rule becomes a DDI906 notice."""
    mode = detect_mode(fir.includes,
                       options.mode_override or options.file_modes.get(fir.path))
    ctx = FileContext(fir, knowledge, mode, options.extra)
    for rule in rules:
        try:
            yield from list(rule.check_file(ctx))
        except Exception as exc:
            detail = traceback.format_exc() if options.debug else f"{type(exc).__name__}: {exc}"
            yield notice("DDI906", fir.path, f"rule {rule.code} {rule.name} failed on this "
                         f"file: {detail}")


def analyze_file(
    path: Path, rules: Sequence[Rule], knowledge: Knowledge, options: Options | None = None
) -> FileResult:
    """Read and analyze one file from disk. Never raises."""
    name = path.as_posix()
    try:
        raw = path.read_bytes()
    except OSError as exc:
        message = f"cannot read file: {exc.strerror or exc}"
        return FileResult(name, [notice("DDI901", name, message)])
    return analyze_bytes(name, raw, rules, knowledge, options)


@dataclass
class RunResult:
    """The outcome of a run over many files."""

    findings: list[Finding]
    files: int
    analyzed: int
    seconds: float
    error_nodes: int = 0


def run(
    files: Sequence[Path],
    rules: Sequence[Rule],
    knowledge: Knowledge,
    options: Options | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> RunResult:
    """Analyze `files` in order; findings sorted by place. `progress(done, total)` is called
    after each file."""
    started = time.perf_counter()
    findings: list[Finding] = []
    analyzed = 0
    errors = 0
    for done, path in enumerate(files, start=1):
        res = analyze_file(path, rules, knowledge, options)
        findings.extend(res.findings)
        analyzed += res.analyzed
        errors += res.error_nodes
        if progress is not None:
            progress(done, len(files))
    findings.sort(key=Finding.sort_key)
    return RunResult(findings, len(files), analyzed, time.perf_counter() - started, errors)
