"""The compact parse text (`compact.py`): the parser reads the view without the blanks at
the ends of its lines, and every node still lands where it is in the file."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tree_sitter import Node

from ddilint.analyzer.compact import CompactView, Verbatim, compact_view
from ddilint.analyzer.frontend import language_for, parser
from ddilint.analyzer.preprocess import preprocess
from tests.conftest import ROOT, parse_text, source_files


def _nodes(root: Node) -> Iterator[Node]:
    stack = [root]
    while stack:
        node = stack.pop()
        yield node
        stack.extend(reversed(node.children))


@pytest.mark.parametrize("path", source_files(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_node_lands_where_the_view_parse_puts_it(path) -> None:
    lang = language_for(str(path))
    view = preprocess(path.read_bytes(), cplusplus=lang == "cpp").view
    whole = parser(lang).parse(view).root_node
    compact = CompactView(view)
    assert len(compact.parsed) < len(view) or not view.strip()
    tree = parser(lang).parse(compact.parsed).root_node
    if whole.has_error:
        # Error recovery weighs the bytes it skips, so it may choose differently on fewer
        # blanks; every node still maps into the file, in order.
        for node in _nodes(tree):
            start, end = compact.span(node)
            assert 0 <= start <= end <= len(view)
        return
    expected = [(n.type, n.start_byte, n.end_byte) for n in _nodes(whole)][1:]
    got = [(n.type, *compact.span(n)) for n in _nodes(tree)][1:]
    assert got == expected
    for node in _nodes(tree):
        start, end = compact.span(node)
        assert compact.text(node) == view[start:end].decode("utf-8", errors="replace")


def test_blank_line_ends_and_indentation_go_and_line_breaks_stay() -> None:
    view = b"int a;   \r\n\t  \n    /*x*/\nint b;\t \n  c"
    compact = CompactView(view)
    assert compact.parsed == b"int a;\n\n/*x*/\nint b;\nc"
    assert compact.parsed.count(b"\n") == view.count(b"\n")
    assert compact.line_starts == [0, 11, 15, 25, 34]
    # Where each parsed row's text is in the view: past its indentation.
    assert compact.row_starts == [0, 14, 19, 25, 36]
    tree = parser("c").parse(compact.parsed).root_node
    assert [compact.text(n) for n in tree.children] == ["int a;", "/*x*/", "int b;", "c"]


def test_a_call_over_several_lines_keeps_its_text_and_place() -> None:
    view = b"void f(void) {\r\n    Foo(a,      \r\n        b);   \r\n}\r\n"
    compact = CompactView(view)
    tree = parser("c").parse(compact.parsed)
    call = next(n for n in _nodes(tree.root_node) if n.type == "call_expression")
    start, end = compact.span(call)
    assert view[start:end] == b"Foo(a,      \r\n        b)"
    assert compact.text(call) == "Foo(a,      \r\n        b)"
    b = next(n for n in _nodes(call) if n.type == "identifier" and compact.text(n) == "b")
    assert compact.start(b) == view.index(b"b);")


def test_a_missing_token_is_an_empty_span() -> None:
    view = b"int f(void) {\n    int x = 1   \n    return x;\n}\n"
    compact = CompactView(view)
    tree = parser("c").parse(compact.parsed)
    missing = [n for n in _nodes(tree.root_node) if n.is_missing]
    assert missing
    for node in missing:
        start, end = compact.span(node)
        assert start == end


def test_verbatim_offsets_are_the_nodes_own() -> None:
    text = b"void f(void) {\n  g(1);   \n}\n"
    tree = parser("c").parse(text)
    plain = Verbatim(text)
    for node in _nodes(tree.root_node):
        assert plain.span(node) == (node.start_byte, node.end_byte)
        assert plain.text(node) == text[node.start_byte:node.end_byte].decode()


def test_positions_after_blanked_comments_and_annotations() -> None:
    fir = parse_text(
        "/* a comment        \n   over lines */   \n"
        "_IRQL_requires_max_(PASSIVE_LEVEL)      \n"
        "NTSTATUS Foo(_In_ HANDLE h)   // trailing comment\n"
        "{\n"
        "    return ZwClose(h);   /* done */\n"
        "}\n")
    (fn,) = fir.functions
    assert fir.position(fn.name_start) == (4, 10)
    assert [a.name for a in fn.annotations][:1] == ["_IRQL_requires_max_"]
    (call,) = fir.calls
    assert fir.position(call.name_start) == (6, 12)
    assert fir.source.data[call.start:call.end] == b"ZwClose(h)"


def test_seh_keyword_macros_are_read_as_the_keywords() -> None:
    src = (b"void f(void) {\n"
           b"    try { a(); if (x) { leave; } } except (Filter(GetExceptionInformation()))"
           b" { b(); }\n"
           b"    try {\n        c();\n    } finally {\n        d();\n    }\n}\n")
    pre = preprocess(src)
    words = [(src[at:at + length], spelled) for at, length, spelled in pre.rewrites]
    assert words == [(b"try", b"__try"), (b"leave", b"__leave"), (b"except", b"__except"),
                     (b"try", b"__try"), (b"finally", b"__finally")]
    compact = compact_view(pre.view, pre.rewrites)
    tree = parser("c").parse(compact.parsed)
    assert not tree.root_node.has_error
    kinds = {n.type for n in _nodes(tree.root_node)}
    assert {"seh_try_statement", "seh_except_clause", "seh_finally_clause",
            "seh_leave_statement"} <= kinds
    # Every node still lands on its own bytes, also after two longer words on one row.
    for node in _nodes(tree.root_node):
        if node.type in ("identifier", "call_expression", "argument_list"):
            start, end = compact.span(node)
            assert compact.text(node) == src[start:end].decode()
    b = next(n for n in _nodes(tree.root_node) if n.type == "identifier"
             and compact.text(n) == "b")
    assert compact.start(b) == src.index(b"b()")
    clause = next(n for n in _nodes(tree.root_node) if n.type == "seh_except_clause")
    assert compact.text(clause).startswith("except (Filter(")


def test_other_words_named_like_seh_macros_stay() -> None:
    src = (b"void f(int leave) {\n    try { g(); } catch (...) { leave = 1; }\n"
           b"    if (leave) { finally(); }\n}\n")
    assert preprocess(src, cplusplus=True).rewrites == []


_BLANKS = st.sampled_from([" ", "  ", "\t", "\r\n", "\n", "\n    ", " /* c */ ", " // c\n", ""])
_TOKENS = ["try", "{", "g(a);", "leave;", "}", "except", "(", "EXCEPTION_EXECUTE_HANDLER", ")",
           "{", "f(b);", "}", "try", "{", "x = y;", "}", "finally", "{", "leave;", "}"]


@st.composite
def _seh_text(draw: st.DrawFn) -> str:
    """SEH blocks spelled with the macros, blanks of every kind between the tokens."""
    out = []
    for _ in range(draw(st.integers(1, 3))):
        for token in _TOKENS:
            out.append(draw(_BLANKS) or " ")
            out.append(token)
    return "".join(out)


@settings(max_examples=150, deadline=None)
@given(_seh_text())
def test_every_identifier_maps_to_its_own_bytes(body: str) -> None:
    src = ("void h(void) {\n" + body + "\n}\n").encode()
    pre = preprocess(src)
    assert pre.rewrites
    compact = compact_view(pre.view, pre.rewrites)
    tree = parser("c").parse(compact.parsed)
    last = -1
    for node in _nodes(tree.root_node):
        start, end = compact.span(node)
        assert 0 <= start <= end <= len(src)
        if node.type == "identifier":
            assert compact.text(node) == src[start:end].decode()
            assert compact.name(node) == src[start:end].decode()
            assert start >= last  # in document order
            last = start
