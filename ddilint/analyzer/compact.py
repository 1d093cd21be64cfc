"""The text tree-sitter parses, and the way from its nodes back to the file.

About half of a parse view is blanks: the comments, annotations and inactive branches
`preprocess` blanked, and indentation. tree-sitter's lexer steps over each one, a byte at
a time. So the parser reads a `CompactView`: every line of the view without the blanks at
its ends (a line that was all blanks is empty). Every line keeps its line break and its
tokens with the blanks between them, so the rows of the parse are those of the view, and a
node's offset in the view is where its row's first token is, plus its column. On
Windows-driver-samples the lexer's instructions fell by about half when the blanks at the
ends of lines went, the whole parse by a sixth; the indentation is a fifth of what was
left, and the parse another tenth.

A node's text is the compact text's bytes where it lies on one line (the same bytes as
the view's), the view's bytes where it spans lines. `Verbatim` answers the same questions
for a text parsed as it is (a macro expansion).

The few words the parser must read spelled longer than the view can hold (`try` as
`__try`: `Preprocessed.rewrites`) are written into the compact text too; on their rows
the columns after such a word are shifted back (`compact_view`).
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from itertools import accumulate
from operator import add, sub

from tree_sitter import Node

_NEXT_LINE = (1).__add__


class Verbatim:
    """Nodes of a tree parsed from `view` itself: offsets are the nodes' own."""

    __slots__ = ("parsed", "view")

    def __init__(self, view: bytes) -> None:
        self.view = view
        self.parsed = view

    def start(self, node: Node) -> int:
        return node.start_byte

    def end(self, node: Node) -> int:
        return node.end_byte

    def span(self, node: Node) -> tuple[int, int]:
        return node.start_byte, node.end_byte

    def text(self, node: Node) -> str:
        return self.view[node.start_byte:node.end_byte].decode("utf-8", errors="replace")

    def name(self, node: Node) -> str:
        """The text of a node on one line (an identifier): the parsed text's own bytes."""
        return self.parsed[node.start_byte:node.end_byte].decode("utf-8", errors="replace")


class CompactView(Verbatim):
    """`view` with the blanks at both ends of each line taken out (`parsed`, what the
    parser reads), and the offsets in `view` of the nodes of its parse."""

    __slots__ = ("line_starts", "row_starts")

    def __init__(self, view: bytes) -> None:
        lines = view.split(b"\n")
        self.view = view
        starts = list(accumulate(map(_NEXT_LINE, map(len, lines)), initial=0))
        starts.pop()
        # Where each line of the view starts: the source's own line index, as the view has
        # its line breaks where the source has them.
        self.line_starts: list[int] = starts
        edited = self._edited(lines)
        kept = list(map(bytes.lstrip, edited))
        # Where the text of each parsed row starts in the view: after its indentation.
        self.row_starts: list[int] = list(map(
            add, starts, map(sub, map(len, edited), map(len, kept))))
        self.parsed = b"\n".join(map(bytes.rstrip, kept))

    def _edited(self, lines: list[bytes]) -> list[bytes]:
        """The lines the parser reads, before their blanks go (`_Rewritten` respells)."""
        return lines

    def start(self, node: Node) -> int:
        row, column = node.start_point
        return self.row_starts[row] + column

    def end(self, node: Node) -> int:
        row, column = node.end_point
        return self.row_starts[row] + column

    def span(self, node: Node) -> tuple[int, int]:
        starts = self.row_starts
        row, column = node.start_point
        end_row, end_column = node.end_point
        return starts[row] + column, starts[end_row] + end_column

    def text(self, node: Node) -> str:
        part = self.parsed[node.start_byte:node.end_byte]
        # Over several lines, the view has the blanks this lost. (A byte value, not b"\n":
        # `bytes.__contains__` tries its argument as an integer first, and a failed try
        # raises and clears an exception, about 1,800 instructions each time.)
        if 10 in part:
            part = self.view[self.start(node):self.end(node)]
        return part.decode("utf-8", errors="replace")


class _Rewritten(CompactView):
    """A `CompactView` in which some words are spelled longer: on the rows that hold one,
    a column after the word's start is moved back by what it gained."""

    __slots__ = ("_edits", "_rewrites")

    def __init__(self, view: bytes, rewrites: Sequence[tuple[int, int, bytes]]) -> None:
        self._rewrites = rewrites
        # Row -> [(parsed column of a rewritten word, bytes it gained)], left to right.
        self._edits: dict[int, list[tuple[int, int]]] = {}
        super().__init__(view)

    def _edited(self, lines: list[bytes]) -> list[bytes]:
        starts = self.line_starts
        by_row: dict[int, list[tuple[int, int, bytes]]] = {}
        for at, length, spelled in self._rewrites:
            row = bisect_right(starts, at) - 1
            by_row.setdefault(row, []).append((at - starts[row], length, spelled))
        for row, words in by_row.items():
            line = lines[row]
            parts: list[bytes] = []
            done = 0
            gained = 0
            row_edits = []
            for column, length, spelled in sorted(words):
                parts.append(line[done:column])
                parts.append(spelled)
                row_edits.append((column + gained, len(spelled) - length))
                gained += len(spelled) - length
                done = column + length
            parts.append(line[done:])
            lines[row] = b"".join(parts)
            self._edits[row] = row_edits
        return lines

    def _column(self, row: int, column: int) -> int:
        """The view's column of a parsed column: past the row's indentation, less what
        each longer word before it on the row gained (all of it past the word's start,
        compared in columns of the respelled line)."""
        column += self.row_starts[row] - self.line_starts[row]
        shift = 0
        for at, gained in self._edits.get(row, ()):
            if column <= at:
                break  # the edits of a row are in order
            shift += min(gained, column - at)
        return column - shift

    def start(self, node: Node) -> int:
        row, column = node.start_point
        return self.line_starts[row] + self._column(row, column)

    def end(self, node: Node) -> int:
        row, column = node.end_point
        return self.line_starts[row] + self._column(row, column)

    def span(self, node: Node) -> tuple[int, int]:
        return self.start(node), self.end(node)

    def text(self, node: Node) -> str:
        return self.view[self.start(node):self.end(node)].decode("utf-8", errors="replace")


def compact_view(view: bytes, rewrites: Sequence[tuple[int, int, bytes]] = ()) -> CompactView:
    """The `CompactView` of `view`, with `rewrites` (offset, length, spelling) applied."""
    return _Rewritten(view, rewrites) if rewrites else CompactView(view)
