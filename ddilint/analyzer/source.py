"""Reading source files safely: decoding, binary detection, size limits, positions.

Every file becomes a `SourceText` (its text as UTF-8 bytes, which is what the parser sees,
plus a line index), or a notice saying why it could not be read. Nothing here raises on bad
input: unreadable, binary, huge, UTF-16 and half-written files all have an answer.
"""

from __future__ import annotations

import bisect
import codecs
import contextlib
import errno
import os
import re
import stat
from dataclasses import dataclass, field

_NEWLINE = re.compile(b"\n")

# A file larger than this is not analyzed (generated tables, amalgamations): a notice says so.
MAX_FILE_BYTES = 8 * 1024 * 1024

# Opening a named pipe for reading waits for a writer, unless it is opened non-blocking.
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
_NOT_REGULAR = ((stat.S_ISFIFO, "a named pipe"), (stat.S_ISCHR, "a character device"),
                (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"),
                (stat.S_ISDIR, "a directory"))


def read_file(path: str | os.PathLike[str]) -> bytes:
    """A source file's bytes as the analysis reads them: from a regular file only, and at
    most `MAX_FILE_BYTES` + 1 of them, which is enough for `read_source` to tell that it is
    too large without holding gigabytes of a generated file.

    A named pipe called `x.c` is opened without waiting for a writer, and a link to a
    device (`/dev/zero`, `/dev/urandom`) is never read: either would make a run wait or
    read for ever. Both raise `OSError`, whose `strerror` says what the path is; every
    caller takes that as a file it cannot read (DDI901)."""
    fd = os.open(path, _OPEN_FLAGS)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            kind = next((name for test, name in _NOT_REGULAR if test(st.st_mode)),
                        "a special file")
            raise OSError(errno.EINVAL, f"not a regular file ({kind})", os.fspath(path))
        with open(fd, "rb", closefd=False) as fh:
            # Asked for its size and a byte (a read makes room for all it is asked for
            # first): the byte tells whether it grew since `fstat`, or tells too little.
            raw = fh.read(min(st.st_size, MAX_FILE_BYTES) + 1)
            if st.st_size < len(raw) <= MAX_FILE_BYTES:
                raw += fh.read(MAX_FILE_BYTES + 1 - len(raw))
            return raw
    finally:
        os.close(fd)


@dataclass(slots=True)
class DecodeResult:
    """The outcome of decoding a file: text (or None) and what to tell the user."""

    text: str | None
    encoding: str
    notice: str | None = None  # a DDI9xx message when something was lossy or impossible
    notice_code: str = ""


def decode_bytes(raw: bytes) -> DecodeResult:
    """Decode source bytes: UTF-8 (with or without BOM), UTF-16 (with a BOM, or without one
    when the NUL pattern says so), UTF-32 with a BOM, else lossy Windows-1252.

    NUL bytes in an 8-bit file are replaced by spaces so that code before (and after) them is
    still analyzed; a file that looks binary (many NULs or control bytes) is refused. Old
    Mac line endings (a CR alone) become LF, byte for byte, so line numbers match editors.
    """
    if raw.startswith(codecs.BOM_UTF8):
        body = raw[len(codecs.BOM_UTF8):]
        try:
            return _finish(body.decode("utf-8"), "utf-8-sig")
        except UnicodeDecodeError:
            return _finish(body.decode("utf-8", errors="replace"), "utf-8-sig",
                           "UTF-8 file with invalid byte sequences; decoded lossily")
    if raw.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)):
        # (Visual Studio saves "Unicode (UTF-32)". The UTF-32 LE BOM starts as UTF-16 LE's
        # does: what does not decode as UTF-32 is tried as UTF-16 below.)
        with contextlib.suppress(UnicodeDecodeError):
            return _finish(raw.decode("utf-32"), "utf-32")
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            return _finish(raw.decode("utf-16"), "utf-16")
        except UnicodeDecodeError:
            text = raw.decode("utf-16", errors="replace")
            return _finish(text, "utf-16", "UTF-16 file with invalid sequences; decoded lossily")
    guess = _utf16_without_bom(raw)
    if guess is not None:
        try:
            return _finish(raw.decode(guess), guess)
        except UnicodeDecodeError:
            pass
    if _looks_binary(raw):
        return DecodeResult(None, "binary", "binary file (NUL or control bytes), skipped", "DDI902")
    try:
        text = raw.decode("utf-8")
        return _finish(text, "utf-8")
    except UnicodeDecodeError:
        text = raw.decode("cp1252", errors="replace")
        return _finish(text, "cp1252", None)


_LONE_CR = re.compile(r"\r(?!\n)")


def _finish(text: str, encoding: str, notice: str | None = None) -> DecodeResult:
    notice_code = "DDI903" if notice else ""
    if "\x00" in text:
        text = text.replace("\x00", " ")
        notice = notice or "NUL characters in the file were read as spaces"
        notice_code = "DDI903"
    if "\r" in text and text.count("\r") != text.count("\r\n"):  # (CR LF alone: no regex)
        text = _LONE_CR.sub("\n", text)
    return DecodeResult(text, encoding, notice, notice_code)


def _utf16_without_bom(raw: bytes) -> str | None:
    """"utf-16-le"/"utf-16-be" when text looks like mostly-ASCII UTF-16 without a BOM."""
    head = raw[:4096]
    if len(head) < 8 or len(head) % 2:
        return None
    even, odd = head[0::2], head[1::2]
    half = len(head) // 2
    nul_even, nul_odd = even.count(0), odd.count(0)
    if nul_odd * 10 >= half * 9 and nul_even * 10 < half:
        return "utf-16-le"
    if nul_even * 10 >= half * 9 and nul_odd * 10 < half:
        return "utf-16-be"
    return None


# Control bytes that do not occur in text files (tab, LF, VT, FF, CR and ESC-free text).
_CONTROL_BYTES = bytes(b for b in range(32) if b < 9 or 13 < b < 32)


def _looks_binary(raw: bytes) -> bool:
    head = raw[:8192]
    if not head:
        return False
    nul = head.count(0)
    if nul > 8 and nul * 100 > len(head):
        return True  # a few stray NULs (a half-saved buffer) are read as spaces
    controls = len(head) - len(head.translate(None, _CONTROL_BYTES))
    return controls * 10 > len(head)


def lines_of(text: str, keepends: bool = False) -> list[str]:
    """A decoded file's lines, broken where its findings count them: at LF only (a CR LF
    line keeps its CR without `keepends`). `str.splitlines` also breaks at a form feed
    (`^L`, a page break in older C sources), a vertical tab, `\x1c`-`\x1e`, NEL and the
    Unicode line separators: every line after one of them was a line too far."""
    parts = text.split("\n")
    if not keepends:
        return parts if parts[-1] else parts[:-1]
    out = [part + "\n" for part in parts[:-1]]
    if parts[-1]:
        out.append(parts[-1])
    return out


@dataclass(slots=True)
class SourceText:
    """A decoded source file as the parser sees it (UTF-8 bytes) with a line index."""

    path: str
    text: str
    encoding: str
    data: bytes = b""
    _line_starts: list[int] | None = field(default=None, repr=False)
    # Whether the file is ASCII, and which of its lines (0-based) are, once asked: there a
    # byte is a column (`position`).
    _ascii: bool | None = field(default=None, repr=False)
    _ascii_lines: dict[int, bool] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if not self.data:
            self.data = self.text.encode("utf-8", errors="replace")

    @property
    def line_starts(self) -> list[int]:
        """Byte offset of the start of each line (built on first use)."""
        starts = self._line_starts
        if starts is None:
            starts = [0]
            starts.extend(map(re.Match.end, _NEWLINE.finditer(self.data)))  # no genexpr frame
            self._line_starts = starts
        return starts

    @property
    def crlf(self) -> bool:
        """Whether the file uses CR LF line endings."""
        return b"\r\n" in self.data[:65536]

    def position(self, offset: int) -> tuple[int, int]:
        """1-based (line, column) of a byte offset; the column counts characters."""
        offset = max(0, min(offset, len(self.data)))
        index = bisect.bisect_right(self.line_starts, offset) - 1
        start = self.line_starts[index]
        # Whether the line is ASCII, asked once: many positions on one long generated line
        # each copied and scanned their part of it.
        if self._ascii is None:
            self._ascii = self.data.isascii()
        ascii_line = self._ascii or self._ascii_lines.get(index)
        if ascii_line is None:
            end = self.line_starts[index + 1] if index + 1 < len(self.line_starts) else (
                len(self.data))
            ascii_line = self._ascii_lines[index] = self.data[start:end].isascii()
        if ascii_line:
            return index + 1, offset - start + 1
        return index + 1, len(self.data[start:offset].decode("utf-8", errors="replace")) + 1

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
