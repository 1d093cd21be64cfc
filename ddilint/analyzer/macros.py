"""Expanding the file's own macros where they are used.

A call written through a project macro (`#define OPEN_TOKEN(h) ZwOpenProcessTokenEx(...)`)
must be seen as that call. `expand` substitutes the arguments into the macro body and
returns the expanded text with a map from each expanded byte back to the source: text that
came from an argument maps to where the argument was written, text that came from the body
maps to the macro's name at the place of use (the finding's primary location).
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Mapping
from dataclasses import dataclass

from ddilint.analyzer.pickling import compact_pickle
from ddilint.analyzer.preprocess import MacroDef

_IDENT = re.compile(r"[A-Za-z_]\w*")
_PASTE = re.compile(r"\s*##\s*")  # token pasting
# Bodies that expand to statements rather than an expression.
_STATEMENT_BODY = re.compile(r"^\s*(do\b|\{|if\b|for\b|while\b|switch\b|return\b)|;")
MAX_EXPANSION = 64 * 1024
MAX_DEPTH = 8


@compact_pickle
@dataclass(frozen=True, slots=True)
class Expansion:
    """Expanded text and how to map its offsets back to the file."""

    text: str
    use_start: int
    # (expanded start, expanded end, source start) for text that came from arguments.
    segments: tuple[tuple[int, int, int], ...]
    statement_like: bool

    def map_offset(self, offset: int) -> int:
        """Source byte offset of an expanded-text byte offset."""
        starts = [s[0] for s in self.segments]
        i = bisect.bisect_right(starts, offset) - 1
        if i >= 0:
            s, e, src = self.segments[i]
            if s <= offset < e:
                return src + (offset - s)
        return self.use_start


def expand(
    macro: MacroDef,
    args: list[tuple[str, int]],
    use_start: int,
    macros: Mapping[str, MacroDef] | None = None,
) -> Expansion | None:
    """Expand a function-like (or object-like, with no args) macro use.

    `args` are the argument texts with the byte offset where each was written. Object-like
    macros in the body that are themselves project macros are expanded too (depth-limited);
    function-like ones are left for the caller to expand when it meets them.
    """
    body = macro.body
    if not body:
        return None
    params = macro.params or ()
    values: dict[str, tuple[str, int | None]] = {}
    for i, p in enumerate(params):
        if macro.variadic and i == len(params) - 1:
            rest = args[i:]
            if rest:
                joined = ", ".join(a for a, _ in rest)
                values[p] = (joined, rest[0][1] if len(rest) == 1 else None)
            else:
                values[p] = ("", None)
        elif i < len(args):
            values[p] = args[i]
        else:
            values[p] = ("", None)
    out: list[str] = []
    segments: list[tuple[int, int, int]] = []
    length = 0
    pos = 0
    body = _PASTE.sub("\x01", body)
    for m in _IDENT.finditer(body):
        s, e = m.span()
        if s > pos:
            chunk = body[pos:s]
            out.append(chunk)
            length += len(chunk.encode("utf-8"))
        word = m.group(0)
        stringify = s > 0 and body[s - 1] == "#" and (s < 2 or body[s - 2] != "#")
        if word in values:
            text, src = values[word]
            if stringify:
                out[-1] = out[-1][:-1] if out and out[-1].endswith("#") else out[-1]
                length -= 1
                lit = '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
                out.append(lit)
                length += len(lit.encode("utf-8"))
            else:
                enc = len(text.encode("utf-8"))
                if src is not None and enc:
                    segments.append((length, length + enc, src))
                out.append(text)
                length += enc
        elif macros is not None and word in macros and macros[word].params is None and (
            word != macro.name
        ):
            inner = _object_body(word, macros, 0)
            out.append(inner)
            length += len(inner.encode("utf-8"))
        else:
            out.append(word)
            length += len(word.encode("utf-8"))
        pos = e
        if length > MAX_EXPANSION:
            return None
    out.append(body[pos:])
    text = "".join(out).replace("\x01", "")
    if "\x01" in "".join(out):
        # Token pasting shifted offsets: keep positions only for whole arguments.
        segments = []
    return Expansion(text, use_start, tuple(segments), bool(_STATEMENT_BODY.search(text)))


def _object_body(name: str, macros: Mapping[str, MacroDef], depth: int) -> str:
    body = macros[name].body
    if depth >= MAX_DEPTH:
        return body

    def sub(m: re.Match[str]) -> str:
        w = m.group(0)
        if w != name and w in macros and macros[w].params is None:
            return _object_body(w, macros, depth + 1)
        return w

    return _IDENT.sub(sub, body)


def resolve_alias(name: str, macros: Mapping[str, MacroDef]) -> str:
    """Follow object-like macros whose body is a single name: `#define Open ZwOpenKey`."""
    seen = {name}
    while name in macros:
        m = macros[name]
        if m.params is not None:
            break
        body = m.body.strip()
        while body.startswith("(") and body.endswith(")"):
            body = body[1:-1].strip()
        if not _IDENT.fullmatch(body) or body in seen:
            break
        seen.add(body)
        name = body
    return name
