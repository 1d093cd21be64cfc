"""Applying the fixes findings carry (`--fix`) or showing them as a diff (`--diff`).

Edits are byte ranges of a file's UTF-8 text as ddilint read it. A file is changed only if
all of this holds: its bytes round-trip through ddilint's decoding unchanged (so nothing
lossy is ever written back), it has not changed on disk since it was read, the edits do not
overlap (overlapping ones are left for the next run), and the edited text parses with no
more syntax errors than before. The new text is encoded in the file's own encoding (UTF-8,
UTF-8 with BOM, UTF-16 with BOM) and keeps its line endings, and is written atomically
(temporary file in the same folder, then rename) with the file's permissions.
"""

from __future__ import annotations

import codecs
import contextlib
import difflib
import os
import stat
import tempfile
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ddilint.analyzer.frontend import parse_file
from ddilint.analyzer.source import SourceText, decode_bytes, lines_of
from ddilint.findings import Finding, TextEdit


@dataclass
class FileFix:
    """The outcome of fixing one file."""

    path: str
    old: str = ""
    new: str = ""
    applied: int = 0  # fixes applied
    skipped: list[str] = field(default_factory=list)  # why fixes or the file were left alone

    @property
    def changed(self) -> bool:
        return self.applied > 0 and self.old != self.new


def encode_like(text: str, encoding: str, raw: bytes) -> bytes | None:
    """`text` in the encoding ddilint decoded the file with, or None if that is lossy."""
    try:
        if encoding == "utf-8":
            return text.encode("utf-8")
        if encoding == "utf-8-sig":
            return codecs.BOM_UTF8 + text.encode("utf-8")
        if encoding == "utf-16":
            if raw.startswith(codecs.BOM_UTF16_BE):
                return codecs.BOM_UTF16_BE + text.encode("utf-16-be")
            return codecs.BOM_UTF16_LE + text.encode("utf-16-le")
        if encoding == "utf-32":
            if raw.startswith(codecs.BOM_UTF32_BE):
                return codecs.BOM_UTF32_BE + text.encode("utf-32-be")
            return codecs.BOM_UTF32_LE + text.encode("utf-32-le")
        if encoding == "cp1252":
            return text.encode("cp1252")
    except UnicodeEncodeError:
        return None
    return None


def _conflict(a: TextEdit, b: TextEdit) -> bool:
    """Edits that overlap, or an insertion at the edge of (or inside) another edit's range:
    the order of the two would matter, so only one is applied per pass."""
    if a.start < b.end and b.start < a.end:
        return True
    if a.start == a.end and b.start <= a.start <= b.end:
        return True
    return b.start == b.end and a.start <= b.start <= a.end


class _Chosen:
    """The edits chosen so far, in the order of their places, so that the edits a new one
    may conflict with are found by bisection: compared with every chosen edit, the 8,000
    fixes of a generated file took most of a 4.1 s `--diff` (0.9 s now)."""

    def __init__(self) -> None:
        self.edits: list[TextEdit] = []
        self._starts: list[int] = []
        self._sorted: list[TextEdit] = []
        # Two edits of one fix that conflict with each other (no fix is made so, but one
        # could be): then the order below does not hold, and every edit is looked at.
        self._tangled = False

    def conflicts(self, e: TextEdit) -> bool:
        if self._tangled:
            return any(_conflict(e, c) for c in self.edits)
        # Chosen edits do not conflict with each other: by place, they neither overlap nor
        # touch but as two ranges end to end, so their ends are in order too. Those that may
        # conflict with `e` start at or before its end and end at or after its start.
        i = bisect_right(self._starts, e.end) - 1
        while i >= 0 and self._sorted[i].end >= e.start:
            if _conflict(e, self._sorted[i]):
                return True
            i -= 1
        return False

    def add(self, e: TextEdit) -> None:
        if not self._tangled and self.conflicts(e):
            self._tangled = True
        self.edits.append(e)
        i = bisect_right(self._starts, e.start)
        self._starts.insert(i, e.start)
        self._sorted.insert(i, e)


def _choose_edits(findings: Sequence[Finding]) -> tuple[list[TextEdit], int, list[str]]:
    """The first fix of each finding whose edits overlap no edit already chosen."""
    chosen = _Chosen()
    applied = 0
    skipped: list[str] = []
    seen: set[tuple[int, int, str]] = set()
    for f in sorted(findings, key=Finding.sort_key):
        if not f.fixes:
            continue
        fix = f.fixes[0]
        edits = [e for e in fix.edits if (e.start, e.end, e.replacement) not in seen]
        if not edits:
            continue  # the same edit twice (two rules, one fix)
        if any(chosen.conflicts(e) for e in edits):
            skipped.append(f"line {f.location.line}: {fix.description} overlaps another fix")
            continue
        for e in edits:
            chosen.add(e)
        seen.update((e.start, e.end, e.replacement) for e in edits)
        applied += 1
    return chosen.edits, applied, skipped


def plan_file(path: str, findings: Sequence[Finding],
              expected: tuple[int, int] | None = None) -> tuple[FileFix, bytes | None]:
    """Work out the new content of one file. Returns the outcome and the new bytes (None when
    the file must not be written)."""
    out = FileFix(path)
    p = Path(path)
    try:
        raw = p.read_bytes()
        st = p.stat()
    except OSError as exc:
        out.skipped.append(f"cannot read: {exc.strerror or exc}")
        return out, None
    if expected is not None and (st.st_mtime_ns, st.st_size) != expected:
        out.skipped.append("the file changed on disk during the run; not fixed")
        return out, None
    decoded = decode_bytes(raw)
    if decoded.text is None or decoded.notice:
        out.skipped.append("the file was decoded lossily; not fixed")
        return out, None
    if encode_like(decoded.text, decoded.encoding, raw) != raw:
        out.skipped.append(f"the file does not round-trip through {decoded.encoding}; not fixed")
        return out, None
    edits, applied, skipped = _choose_edits(findings)
    out.skipped.extend(skipped)
    if not edits:
        return out, None
    data = decoded.text.encode("utf-8")
    newline = "\r\n" if b"\r\n" in data else "\n"
    buf = bytearray(data)
    for e in sorted(edits, key=lambda e: (e.start, e.end), reverse=True):
        if not (0 <= e.start <= e.end <= len(data)):
            out.skipped.append(f"an edit at bytes {e.start}-{e.end} is outside the file")
            return out, None
        text = e.replacement.replace("\r\n", "\n").replace("\n", newline)
        buf[e.start:e.end] = text.encode("utf-8")
    try:
        new_text = bytes(buf).decode("utf-8")
    except UnicodeDecodeError:
        out.skipped.append("an edit splits a character; not fixed")
        return out, None
    before = parse_file(SourceText(path, decoded.text, decoded.encoding)).error_nodes
    after = parse_file(SourceText(path, new_text, decoded.encoding)).error_nodes
    if after > before:
        out.skipped.append("the fixed text does not parse as well as the original; not fixed")
        return out, None
    new_raw = encode_like(new_text, decoded.encoding, raw)
    if new_raw is None:
        out.skipped.append(f"the fixed text cannot be written as {decoded.encoding}; not fixed")
        return out, None
    out.old, out.new, out.applied = decoded.text, new_text, applied
    return out, new_raw


def write_atomic(path: str, data: bytes) -> None:
    """Replace a file's content atomically, keeping its permission bits.

    A symbolic link stays one: the file it points to is written (a rename over the link
    made it a copy of its own, and left the file it named unfixed). A file with other
    hard links is written in place, so that every name of it sees the fix: a rename
    would leave the others with the old text."""
    p = Path(os.path.realpath(path))
    st = p.stat()
    if st.st_nlink > 1:
        with open(p, "r+b") as fh:
            old = fh.read()
            try:
                fh.seek(0)
                fh.write(data)
                fh.truncate()
                fh.flush()
                os.fsync(fh.fileno())
            except OSError:  # (a full disk): the old text back, as far as it goes
                with contextlib.suppress(OSError):
                    fh.seek(0)
                    fh.write(old)
                    fh.truncate()
                    fh.flush()
                raise
        return
    mode = stat.S_IMODE(st.st_mode)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".ddilint-tmp", dir=p.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, p)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def unified_diff(fx: FileFix) -> str:
    """The change to one file as a unified diff."""
    absolute = fx.path.startswith("/") or (len(fx.path) > 1 and fx.path[1] == ":")
    old_name, new_name = (fx.path, fx.path) if absolute else (f"a/{fx.path}", f"b/{fx.path}")
    return "".join(difflib.unified_diff(
        lines_of(fx.old, keepends=True), lines_of(fx.new, keepends=True),
        fromfile=old_name, tofile=new_name))


def fix_files(findings: Sequence[Finding], write: bool,
              stamps: dict[str, tuple[int, int]] | None = None) -> list[FileFix]:
    """Plan (and with `write`, apply) the fixes of `findings`, file by file."""
    by_path: dict[str, list[Finding]] = {}
    for f in findings:
        if f.fixes:
            by_path.setdefault(f.location.path, []).append(f)
    results: list[FileFix] = []
    for path in sorted(by_path):
        expected = (stamps or {}).get(path)
        fx, new_raw = plan_file(path, by_path[path], expected)
        if write and new_raw is not None and fx.changed:
            try:
                write_atomic(path, new_raw)
            except OSError as exc:
                fx.skipped.append(f"cannot write: {exc.strerror or exc}")
                fx.applied = 0
        results.append(fx)
    return results


def stamp(paths: Sequence[Path]) -> dict[str, tuple[int, int]]:
    """(mtime_ns, size) of each file, keyed as the engine names them (POSIX paths)."""
    out: dict[str, tuple[int, int]] = {}
    for p in paths:
        try:
            st = p.stat()
        except OSError:
            continue
        out[p.as_posix()] = (st.st_mtime_ns, st.st_size)
    return out
