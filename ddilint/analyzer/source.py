"""Reading source files safely: decoding, binary detection, size limits, positions.

Every file becomes a `SourceText` (its text as UTF-8 bytes, which is what the parser sees,
plus a line index), or a notice saying why it could not be read. Nothing here raises on bad
input: unreadable, binary, huge, UTF-16 and half-written files all have an answer.
"""

from __future__ import annotations

import bisect
import codecs
from dataclasses import dataclass, field

# A file larger than this is not analyzed (generated tables, amalgamations): a notice says so.
MAX_FILE_BYTES = 8 * 1024 * 1024


@dataclass(slots=True)
class DecodeResult:
    """The outcome of decoding a file: text (or None) and what to tell the user."""

    text: str | None
    encoding: str
    notice: str | None = None  # a DDI9xx message when something was lossy or impossible
    notice_code: str = ""


def decode_bytes(raw: bytes) -> DecodeResult:
    """Decode source bytes: UTF-8 (with or without BOM), UTF-16 with BOM, else lossy cp1252.

    NUL bytes in an 8-bit file are replaced by spaces so that code before (and after) them is
    still analyzed; a file that looks binary (many NULs or control bytes) is refused.
    """
    if raw.startswith(codecs.BOM_UTF8):
        return _finish(raw[len(codecs.BOM_UTF8):].decode("utf-8", errors="replace"), "utf-8-sig")
    if raw.startswith(codecs.BOM_UTF16_LE) or raw.startswith(codecs.BOM_UTF16_BE):
        try:
            return _finish(raw.decode("utf-16"), "utf-16")
        except UnicodeDecodeError:
            text = raw.decode("utf-16", errors="replace")
            return _finish(text, "utf-16", "UTF-16 file with invalid sequences; decoded lossily")
    if _looks_binary(raw):
        return DecodeResult(None, "binary", "binary file (NUL or control bytes), skipped", "DDI902")
    try:
        text = raw.decode("utf-8")
        return _finish(text, "utf-8")
    except UnicodeDecodeError:
        text = raw.decode("cp1252", errors="replace")
        return _finish(text, "cp1252", None)


def _finish(text: str, encoding: str, notice: str | None = None) -> DecodeResult:
    notice_code = "DDI903" if notice else ""
    if "\x00" in text:
        text = text.replace("\x00", " ")
        notice = notice or "NUL characters in the file were read as spaces"
        notice_code = "DDI903"
    return DecodeResult(text, encoding, notice, notice_code)


def _looks_binary(raw: bytes) -> bool:
    head = raw[:8192]
    if not head:
        return False
    nul = head.count(0)
    if nul > 16 or nul * 100 > len(head):
        return True
    controls = sum(1 for b in head if b < 9 or 13 < b < 32)
    return controls * 10 > len(head)


@dataclass(slots=True)
class SourceText:
    """A decoded source file as the parser sees it (UTF-8 bytes) with a line index."""

    path: str
    text: str
    encoding: str
    data: bytes = b""
    line_starts: list[int] = field(default_factory=list)
    crlf: bool = False

    def __post_init__(self) -> None:
        if not self.data:
            self.data = self.text.encode("utf-8", errors="replace")
        starts = [0]
        find = self.data.find
        pos = find(b"\n")
        while pos >= 0:
            starts.append(pos + 1)
            pos = find(b"\n", pos + 1)
        self.line_starts = starts
        self.crlf = b"\r\n" in self.data[:65536]

    def position(self, offset: int) -> tuple[int, int]:
        """1-based (line, column) of a byte offset; the column counts characters."""
        offset = max(0, min(offset, len(self.data)))
        index = bisect.bisect_right(self.line_starts, offset) - 1
        start = self.line_starts[index]
        prefix = self.data[start:offset]
        if prefix.isascii():
            column = len(prefix) + 1
        else:
            column = len(prefix.decode("utf-8", errors="replace")) + 1
        return index + 1, column

    def line_text(self, line: int) -> str:
        """The text of a 1-based line without its line ending."""
        if line < 1 or line > len(self.line_starts):
            return ""
        start = self.line_starts[line - 1]
        end = self.line_starts[line] if line < len(self.line_starts) else len(self.data)
        return self.data[start:end].decode("utf-8", errors="replace").rstrip("\r\n")

    def offset_of(self, line: int, column: int) -> int:
        """Byte offset of a 1-based line and character column (inverse of `position`)."""
        line = max(1, min(line, len(self.line_starts)))
        start = self.line_starts[line - 1]
        text = self.line_text(line)
        return start + len(text[: max(0, column - 1)].encode("utf-8"))
