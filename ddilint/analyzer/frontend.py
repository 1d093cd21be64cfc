"""The tree-sitter frontend: a file's parse view -> `FileIR`.

Cheap things are collected for every file with tree-sitter queries (which run in C):
functions, call sites, role declarations, parse-error statistics. Function bodies and call
arguments are converted to the IR on first use only, so a rule that never looks inside a
function costs nothing there. Calls written through the file's own macros are found by
expanding the macro and parsing the expansion (see `macros.py`). The parser reads the
view without the blanks at its line ends (`compact.py`); every offset the IR holds is an
offset in the file.
"""

from __future__ import annotations

import operator
import re
import sys
from bisect import bisect_right
from collections.abc import Callable, Iterable, Mapping
from functools import lru_cache
from sys import intern

import tree_sitter_c
import tree_sitter_cpp
from tree_sitter import Language, Node, Parser, Query, QueryCursor

from ddilint.analyzer.budget import ExpansionBudget
from ddilint.analyzer.compact import CompactView, Verbatim, compact_view
from ddilint.analyzer.ir import (
    CallSite,
    Decl,
    Expr,
    FileIR,
    Function,
    FunctionRef,
    Param,
    RoleDecl,
    Stmt,
)
from ddilint.analyzer.macros import Expansion, expand, resolve_alias
from ddilint.analyzer.preprocess import (
    Annotation,
    MacroDef,
    Preprocessed,
    StringScanner,
    cplusplus_view_differs,
    line_start_matches,
    needs_rare_edits,
    preprocess,
)
from ddilint.analyzer.source import SourceText

CPP_SUFFIXES = frozenset({".cpp", ".cc", ".cxx", ".hpp", ".hh", ".hxx", ".inl", ".c++", ".ipp"})
C_SUFFIXES = frozenset({".c", ".h"})
SOURCE_SUFFIXES = CPP_SUFFIXES | C_SUFFIXES

MAX_DEPTH = 250  # deeper expressions/statements become opaque `other` nodes (and a notice)

# Conversion recurses up to MAX_DEPTH levels (two frames a level, times nested macro
# expansions): make room once, at import, rather than in the middle of a run.
if sys.getrecursionlimit() < 5000:
    sys.setrecursionlimit(5000)

_LANGS: dict[str, Language] = {}


def language(name: str) -> Language:
    """The tree-sitter language for "c" or "cpp" (loaded once per process)."""
    lang = _LANGS.get(name)
    if lang is None:
        mod = tree_sitter_cpp if name == "cpp" else tree_sitter_c
        lang = Language(mod.language())
        _LANGS[name] = lang
    return lang


@lru_cache(maxsize=4)
def parser(name: str) -> Parser:
    """A parser for "c" or "cpp"."""
    return Parser(language(name))


_FUNCTION_QUERY = {
    "c": "(function_definition) @fn",
    "cpp": "[(function_definition) @fn (lambda_expression) @fn]",
}
_CALL_QUERY = "(call_expression function: (_)) @call"
_ROLE_QUERY = "(declaration type: (type_identifier) declarator: (identifier)) @decl"
_ERROR_QUERY = "(ERROR) @error"
# Names a block declares (`NTSTATUS status = ...;`, `PUCHAR p;`, `WCHAR buf[8];`): a local
# variable is never a function, so a use of its name is no function reference.
_LOCAL_QUERY = (
    "(compound_statement (declaration declarator: ["
    " (identifier) @local"
    " (init_declarator declarator: (identifier) @local)"
    " (pointer_declarator declarator: (identifier) @local)"
    " (array_declarator declarator: (identifier) @local)"
    " (init_declarator declarator: (pointer_declarator declarator: (identifier) @local))"
    " (init_declarator declarator: (array_declarator declarator: (identifier) @local))]))"
)
# Names in the places a function pointer goes: arguments, right sides of assignments,
# initializers (possibly behind `&` or a cast).
# (In C++ also `Class::Method` and `&Class::Method`, a static method given as a callback.)
_REF_VALUES = {"c": "[(identifier) (pointer_expression) (cast_expression)]",
               "cpp": "[(identifier) (qualified_identifier) (pointer_expression) "
                      "(cast_expression)]"}
_REF_QUERY = {
    lang: (f"[(argument_list {v} @v)"
           f" (assignment_expression right: {v} @v)"
           f" (initializer_list {v} @v)"
           f" (initializer_pair value: {v} @v)"
           f" (init_declarator value: {v} @v)]")
    for lang, v in _REF_VALUES.items()
}
_CONSTANT_NAME = re.compile(r"^[A-Z0-9_]+$")
_SHORT_ARG = frozenset({"identifier", "null", "number_literal", "true", "false"})
_SCOPE_TYPES = ("translation_unit", "declaration_list", "linkage_specification")
_ASSIGN_QUERY = "(assignment_expression) @assign"
# The queries every file needs, as one: a query cursor walks the tree once for all of its
# patterns, so one combined query costs about what one simple query costs (the five
# separate walks were 20% of a run).
# A flag constant given as an argument (its own pattern: in the alternatives of
# `_REF_VALUES` it made the whole query a sixth slower).
_FLAG_ARG_QUERY = "(argument_list [(true) (false)] @k)"
_FILE_QUERY = {
    lang: "\n".join((_FUNCTION_QUERY[lang], _CALL_QUERY, _ROLE_QUERY, _ERROR_QUERY,
                     _REF_QUERY[lang], _LOCAL_QUERY, _FLAG_ARG_QUERY))
    for lang in ("c", "cpp")
}


@lru_cache(maxsize=16)
def query(lang: str, source: str) -> Query:
    """A compiled query (cached per language and text)."""
    return Query(language(lang), source)


def prepare_queries(langs: Iterable[str]) -> None:
    """Build the queries every file of these languages needs, now: a parallel run does it
    before it forks, so that each worker does not build them again (0.06 s a process)."""
    for lang in set(langs):
        query(lang, _FILE_QUERY[lang])
        query(lang, _ASSIGN_QUERY)


def captures(lang: str, source: str, root: Node, ordered: bool = True) -> dict[str, list[Node]]:
    """The nodes each capture of query `source` finds under `root`, in document order
    (start, outermost first). tree-sitter's own order of a capture's nodes is not stable:
    two parses of the same bytes give the same nodes in a different order, and everything
    built from them (function references, role declarations, calls out of one macro use)
    would follow it into the project model and the text of traces. `ordered=False` leaves
    them in tree-sitter's order, for a caller that orders what it builds from them."""
    found = QueryCursor(query(lang, source)).captures(root)
    if not ordered:
        return found
    return {name: sorted(nodes, key=_document_order) for name, nodes in found.items()}


_START = operator.attrgetter("start_byte")
# The order of a file's calls (`FileIR.calls`) and of its function references.
_CALL_ORDER = operator.attrgetter("name_start", "start")
_OFFSET = operator.attrgetter("offset")
_ANNOTATION_START = operator.attrgetter("start")
# Argument list id -> its callee, each argument's place by node id, and the arguments'
# short texts; initializer list id -> each element's place by node id, the first elements'
# texts, and the declared type (see _function_refs).
_ArgLists = dict[int, tuple[str, dict[int, int], tuple[str, ...]]]
_InitLists = dict[int, tuple[dict[int, int], tuple[str, ...], str]]


def _document_order(node: Node) -> tuple[int, int, int]:
    return (node.start_byte, -node.end_byte, node.kind_id)


# C++ in a `.h` file, as the C parse view shows it (comments, directives and the
# `#ifdef __cplusplus` branches blanked): a template, a namespace or class definition, an
# access label at the start of a line. Parsed as C, the samples' 197 such headers gave 2,838
# ERROR nodes and 493 functions; as C++, 1,125 and 899. (The class head is bounded: an
# unbounded one made 20,000 lines of `class A` take 8 s.) Every alternative starts with a
# letter, which the regex engine searches for fast; `_is_cpp_header` keeps a match with
# only blanks before it on its line (a `^` with re.M was tried at every byte: three times
# slower on the samples' headers).
_CPP_HEADER = re.compile(
    rb"template[ \t]*<|namespace[ \t]+\w+\s*\{|class[ \t]+\w+[^;{}]{0,400}\{"
    rb"|public[ \t]*:(?!:)|private[ \t]*:(?!:)|protected[ \t]*:(?!:)")


# A name qualified with `::` (`prevail::EbpfInst`, `std::vector`), which C does not have:
# a header that uses C++ only through other headers' namespaces and classes. (On the
# samples, eBPF for Windows and Sandboxie, each of the 23 headers this adds parses with
# fewer ERROR nodes as C++: 219 as C, 2 as C++.)
_QUALIFIED_NAME = re.compile(rb"\b[A-Za-z_]\w*::~?[A-Za-z_]")


def _is_cpp_header(view: bytes) -> bool:
    """Whether a line of `view` starts (after blanks) with what `_CPP_HEADER` matches, or
    the view names something with `::`."""
    if next(line_start_matches(_CPP_HEADER, view), None) is not None:
        return True
    if b"::" not in view:
        return False
    # Not in a string (`DbgPrint("Drv::Log")`).
    quotes = StringScanner(view)
    return any(not quotes.inside(m.start()) for m in _QUALIFIED_NAME.finditer(view))


def language_for(path: str) -> str:
    """"cpp" for C++ file suffixes, "c" otherwise (`parse_file` also reads a `.h` file
    written in C++ as C++)."""
    lower = path.lower()
    dot = lower.rfind(".")
    return "cpp" if dot >= 0 and lower[dot:] in CPP_SUFFIXES else "c"


def parse_file(
    source: SourceText,
    lang: str | None = None,
    defined: Mapping[str, int] | None = None,
    undefined: frozenset[str] = frozenset(),
) -> FileIR:
    """Preprocess, parse and index one decoded file (a `.h` file written in C++ is parsed
    as C++, see `_CPP_HEADER`)."""
    chosen = lang or language_for(source.path)
    pre = preprocess(source.data, defined, undefined, cplusplus=chosen == "cpp")
    if lang is None and chosen == "c" and source.path.lower().endswith(".h") and (
            _is_cpp_header(pre.view)):
        chosen = "cpp"
        # Preprocessed as C++, a file differs only where it tests `__cplusplus`, uses
        # C++/CLI words or writes a macro's name after a string (`preprocess`): most C++
        # headers do none of these.
        if cplusplus_view_differs(source.data, pre.view):
            pre = preprocess(source.data, defined, undefined, cplusplus=True)
    lang = chosen
    view = compact_view(pre.view, pre.rewrites)
    if source._line_starts is None:
        source._line_starts = view.line_starts  # the view breaks lines where the source does
    tree = parser(lang).parse(view.parsed)
    root = tree.root_node
    if root.has_error and needs_rare_edits(source.data, cplusplus=lang == "cpp"):
        # `0i64`, `__BEGIN_DECLS`: parse errors, and rare enough that only a file with an
        # error is searched for them (`preprocess`).
        pre = preprocess(source.data, defined, undefined, cplusplus=lang == "cpp",
                         rare=True)
        view = compact_view(pre.view, pre.rewrites)
        tree = parser(lang).parse(view.parsed)
        root = tree.root_node
    fir = FileIR(path=source.path, language=lang, source=source)
    fir.macros = pre.macros
    fir.annotations = pre.annotations
    fir.includes = pre.includes
    fir.mode_includes = pre.mode_includes
    fir.sided_includes = pre.sided_includes
    fir.mode_regions = pre.mode_regions
    fir.pragmas = [(d.text, d.start) for d in pre.pragmas]
    fir.inactive = pre.inactive
    builder = _FileBuilder(fir, pre, lang, root, view)
    builder.build()
    return fir


class _FileBuilder:
    def __init__(self, fir: FileIR, pre: Preprocessed, lang: str, root: Node,
                 view: CompactView) -> None:
        self.fir = fir
        self.pre = pre
        self.lang = lang
        self.root = root
        self.src = view  # where the nodes are in the view, and their texts (`compact.py`)
        # Where each function starts and ends, in the file and in the parsed text, in the
        # order of `fir.functions` (for `enclosing`). A node's innermost function is asked
        # in the parsed text: the same answer as in the file (places are in the same order
        # in both), without turning the node's place into an offset in the file.
        self.spans: list[tuple[int, int]] = []
        self.parsed_spans: list[tuple[int, int]] = []
        # Their starts alone (`_around` bisects a list of integers).
        self.starts: list[int] = []
        self.parsed_starts: list[int] = []
        self.function_index: dict[int, int] = {}  # id of a function -> its place there
        self.by_node: dict[int, Function] = {}
        self.budget = ExpansionBudget(len(view.view))
        # The annotations in the order of the file, and where each starts (for the
        # functions, role declarations and prototypes they belong to).
        self.annotations = sorted(pre.annotations, key=_ANNOTATION_START)
        self.annotation_starts = [a.start for a in self.annotations]
        fir.expansion_budget = self.budget
        # The one walk of the file's query. Its captures are not put in document order
        # here (sorting every captured node was a tenth of the frontend): each step below
        # orders what it builds, or the nodes where the order decides the result.
        self.caps = captures(lang, _FILE_QUERY[lang], root, ordered=False)

    def build(self) -> None:
        self._functions()
        self._calls()
        self._object_macro_calls()
        self._role_decls()
        self._refs()
        self._prototypes()
        self._errors()
        root = self.root
        conv = _Converter(self.src, self.fir.macros, self.lang, budget=self.budget)

        def assignments() -> list[tuple[Expr, Function | None]]:
            out: list[tuple[Expr, Function | None]] = []
            caps = captures(self.lang, _ASSIGN_QUERY, root)
            for node in caps.get("assign", []):
                expr = conv.expr(node)
                out.append((expr, self.enclosing(expr.start)))
            out.sort(key=lambda item: item[0].start)
            return out

        self.fir._assignments = assignments

        def file_scope_decls() -> list[Decl]:
            out: list[Decl] = []
            stack = [root]
            while stack:
                node = stack.pop()
                for child in node.named_children:
                    if child.type == "declaration":
                        out.extend(conv._decls(child, 0))
                    elif child.type in ("linkage_specification", "declaration_list",
                                        "namespace_definition"):
                        stack.append(child)
            out.sort(key=lambda d: d.start)
            return out

        self.fir._globals = file_scope_decls

    # -- functions ----------------------------------------------------------------------
    def _functions(self) -> None:
        caps = self.caps
        nodes = sorted(caps.get("fn", []), key=lambda n: (n.start_byte, -n.end_byte))
        annotations, ann_starts = self.annotations, self.annotation_starts
        stack: list[Function] = []
        conv = _Converter(self.src, self.fir.macros, self.lang, budget=self.budget)
        for node in nodes:
            fn = self._function(node, conv, annotations, ann_starts)
            if fn is None:
                continue
            while stack and stack[-1].end <= fn.start:
                stack.pop()
            if stack and _block_macro(node):
                continue  # the enclosing function's statement (see `_block_macro`)
            fn.parent = stack[-1] if stack else None
            stack.append(fn)
            self.fir.functions.append(fn)
            self.by_node[node.id] = fn
            self.spans.append((fn.start, fn.end))
            self.parsed_spans.append((node.start_byte, node.end_byte))
        self.function_index = {id(f): i for i, f in enumerate(self.fir.functions)}
        self.starts = [start for start, _end in self.spans]
        self.parsed_starts = [start for start, _end in self.parsed_spans]

    def _function(
        self,
        node: Node,
        conv: _Converter,
        annotations: list[Annotation],
        ann_starts: list[int],
    ) -> Function | None:
        body = node.child_by_field_name("body")
        if body is None:
            return None
        src = self.src
        start, end = src.span(node)
        body_start = src.start(body)
        if node.type == "lambda_expression":
            decl = node.child_by_field_name("declarator")
            params = _params(decl.child_by_field_name("parameters"), src) if decl else []
            line = self.fir.source.position(start)[0]
            name = f"<lambda:{line}>"
            fn = Function(name, name, "lambda", start, end, start, body_start, params)
        else:
            fdecl = _function_declarator(node.child_by_field_name("declarator"))
            if fdecl is None:
                return None
            name_node = fdecl.child_by_field_name("declarator")
            if name_node is None:
                return None
            name, cls = _declared_name(name_node, src)
            if not name:
                return None
            if not cls:
                cls = _enclosing_class(node, src)
            qual = f"{cls}::{name}" if cls else name
            params = _params(fdecl.child_by_field_name("parameters"), src)
            type_node = node.child_by_field_name("type")
            ret = src.text(type_node) if type_node is not None else ""
            static = any(
                c.type == "storage_class_specifier" and src.text(c) == "static"
                for c in node.children
            )
            fn = Function(name, qual, "method" if cls else "function", start, end,
                          src.start(name_node), body_start, params,
                          class_name=cls, is_static=static, return_type=ret)
            # Annotations written before the definition (down to the previous item) and in
            # its head belong to it.
            prev = node.prev_sibling
            lo = src.end(prev) if prev is not None else 0
            import bisect

            i = bisect.bisect_left(ann_starts, lo)
            while i < len(annotations) and annotations[i].start < body_start:
                fn.annotations.append(annotations[i])
                i += 1
        fn._body_builder = _lazy_body(conv, body)
        return fn

    def enclosing(self, offset: int) -> Function | None:
        """The innermost function whose text contains `offset`."""
        i = self._around(self.spans, self.starts, offset)
        return self.fir.functions[i] if i >= 0 else None

    def _around(self, spans: list[tuple[int, int]], starts: list[int], at: int,
                last: int | None = None) -> int:
        """The index of the innermost function whose span in `spans` (one text's;
        `starts`, their starts) contains `at`, -1 for none. `last`, when the caller knows
        it: the last function that starts at or before `at` (the others around `at` are
        among its parents)."""
        i = bisect_right(starts, at) - 1 if last is None else last
        functions = self.fir.functions
        while i >= 0:
            start, end = spans[i]
            if start <= at < end:
                return i
            parent = functions[i].parent
            i = self.function_index[id(parent)] if parent is not None else -1
        return -1

    # -- calls --------------------------------------------------------------------------
    def _calls(self) -> None:
        caps = self.caps
        # In document order: macro expansions spend the file's budget in that order.
        calls = sorted(caps.get("call", []), key=_START)
        macros = self.fir.macros
        src = self.src
        conv = _Converter(src, macros, self.lang, budget=self.budget)
        out = self.fir.calls
        # The enclosing function, found by sweeping the functions (in the parsed text, in
        # the order of their starts) along with the calls: `last` is the last function
        # that starts at or before the call. Nearly always it is the one around the call.
        spans = self.parsed_spans
        functions = self.fir.functions
        starts = self.parsed_starts
        count = len(starts)
        last = -1
        parsed = src.parsed
        # A callee's bytes in the parsed text -> its name, interned (see `_callee`): a file
        # calls the same few names again and again.
        names: dict[bytes, str] = {}
        for call in calls:
            fn_node = call.child_by_field_name("function")
            if fn_node is None:
                continue
            fn_type = fn_node.type
            if fn_type == "identifier":
                # Most calls name their callee: the call starts where the name does.
                at, name_end = fn_node.byte_range
                raw = parsed[at:name_end]
                name = names.get(raw)
                if name is None:
                    name = names[raw] = intern(raw.decode("utf-8", errors="replace"))
                start = name_start = src.start(fn_node)
                end = src.end(call)
                indirect = False
            else:
                callee, name_start, indirect = _callee(fn_node, src)
                if callee is None:
                    continue
                name = callee
                start, end = src.span(call)
                at = call.start_byte
            while last + 1 < count and starts[last + 1] <= at:
                last += 1
            i = last if last >= 0 and at < spans[last][1] else self._around(spans, starts, at, last)
            enclosing = functions[i] if i >= 0 else None
            if name in macros:
                macro = macros[name]
                if macro.params is not None:
                    self._macro_calls(call, macro, name_start, enclosing, conv)
                    continue
                alias = resolve_alias(name, macros)
                if alias != name:
                    out.append(CallSite(alias, name_start, start, end, enclosing, via=name,
                                        indirect=indirect, _expr_builder=_lazy_expr(conv, call)))
                    continue
            # (Positional: keywords cost the generated `__init__` a tenth more.)
            out.append(CallSite(name, name_start, start, end, enclosing, "", indirect,
                                _lazy_expr(conv, call), None,
                                _scope(fn_node, src) if fn_type == "qualified_identifier"
                                else ""))
        out.sort(key=_CALL_ORDER)

    def _macro_calls(
        self, call: Node, macro: MacroDef, use_start: int, enclosing: Function | None,
        conv: _Converter,
    ) -> None:
        args_node = call.child_by_field_name("arguments")
        args = _macro_args(args_node, self.src) if args_node is not None else []
        exp = expand(macro, args, use_start, self.fir.macros)
        if exp is None:
            return
        for site in _calls_in_expansion(exp, self.fir.macros, self.lang, macro.name, 0,
                                        self.budget):
            site.function = enclosing
            self.fir.calls.append(site)

    def _object_macro_calls(self) -> None:
        """Object-like macros whose body holds calls (`#define CLOSE_IT ZwClose(h)`)."""
        macros = self.fir.macros
        data = self.src.view
        # Only the names the parse view holds (their `#define` lines are blanked there): a
        # header defines many and uses few, and compiling the alternation of them all was
        # three quarters of this step on the samples.
        names = [w for n, m in macros.items()
                 if m.params is None and "(" in m.body and (w := n.encode()) in data]
        if not names:
            return
        pattern = re.compile(rb"\b(" + b"|".join(re.escape(n) for n in names) + rb")\b")
        for m in pattern.finditer(data):
            j = m.end()
            while j < len(data) and data[j] in (32, 9, 10, 13):
                j += 1
            if j < len(data) and data[j] == 40:
                continue  # used as a callee: handled as an alias or a call
            macro = macros[m.group(1).decode()]
            exp = expand(macro, [], m.start(), macros)
            if exp is None:
                continue
            enclosing = self.enclosing(m.start())
            for site in _calls_in_expansion(exp, macros, self.lang, macro.name, 0,
                                            self.budget):
                site.function = enclosing
                self.fir.calls.append(site)
        self.fir.calls.sort(key=_CALL_ORDER)

    # -- declarations and errors --------------------------------------------------------
    def _role_decls(self) -> None:
        caps = self.caps
        annotations, starts = self.annotations, self.annotation_starts
        import bisect

        src = self.src
        for decl in caps.get("decl", []):
            parent = decl.parent
            if parent is None or parent.type not in (
                "translation_unit", "declaration_list", "linkage_specification"
            ):
                continue
            type_node = decl.child_by_field_name("type")
            name_node = decl.child_by_field_name("declarator")
            if type_node is None or name_node is None:
                continue
            typedef = src.text(type_node)
            if not _ROLE_TYPEDEF.match(typedef):
                continue
            prev = decl.prev_sibling
            lo = src.end(prev) if prev is not None else 0
            i = bisect.bisect_left(starts, lo)
            anns: list[Annotation] = []
            start, end = src.span(decl)
            while i < len(annotations) and annotations[i].start < end:
                anns.append(annotations[i])
                i += 1
            self.fir.role_decls.append(
                RoleDecl(src.text(name_node), typedef, start, tuple(anns))
            )
        self.fir.role_decls.sort(key=lambda d: d.start)

    def _refs(self) -> None:
        caps = self.caps
        src = self.src
        parsed = src.parsed
        out = self.fir.refs
        functions = self.fir.functions
        spans, starts = self.parsed_spans, self.parsed_starts
        seen: set[int] = set()
        # Argument list id -> its callee and argument texts, shared by every name in it.
        calls: _ArgLists = {}
        rows: _InitLists = {}
        # Function index -> the names its parameters and its blocks declare as variables.
        local_names = [{p.name for p in f.params} for f in functions]
        for decl in caps.get("local", []):
            owner = self._around(spans, starts, decl.start_byte)
            if owner >= 0:
                local_names[owner].add(src.name(decl))
        # A name's bytes in the parsed text -> the name, and whether it is all capitals,
        # digits and underscores (a file's arguments name the same few variables and
        # constants again and again: each is decoded and classified once).
        words: dict[bytes, tuple[str, bool]] = {}
        # Flag and IRQL constants given as arguments (`TRUE` is a `true` node in both
        # grammars; an IRQL's name an identifier, below).
        marks = self.fir.constant_marks
        marks.extend(map(src.start, caps.get("k", ())))
        for value in caps.get("v", []):
            node = value
            qualified: Node | None = None  # `Class::Method`: the name is its last part
            innermost: Node | None = None  # `Engine<T>::OnEvent` of `drv::Engine<T>::OnEvent`
            if value.type != "identifier":  # (most values are a plain name)
                named = _value_name(value)
                if named is None:
                    continue
                node, qualified, innermost = named
            anchor = qualified or node
            at = anchor.start_byte  # (offsets in the parsed text: only compared)
            if at in seen:
                continue
            seen.add(at)
            start, end = node.byte_range
            raw = parsed[start:end]
            word = words.get(raw)
            if word is None:
                name = raw.decode("utf-8", errors="replace")
                word = words[raw] = (name, _CONSTANT_NAME.match(name) is not None)
            name, is_constant = word
            if is_constant:
                if name.endswith("_LEVEL"):
                    marks.append(src.start(node))
                continue  # constants and macros, never a function
            i = self._around(spans, starts, at)
            if qualified is None and i >= 0 and name in local_names[i]:
                continue  # a parameter or local variable shadows any function of that name
            refs = _function_refs(anchor, name, src, functions[i].qualname if i >= 0 else "",
                                  calls, rows)
            if innermost is not None:
                scope = _scope_class(innermost, src)
                refs = [r._replace(scope=scope) for r in refs]
            out.extend(refs)
        # One node's references (an assignment chain) stay together in their order.
        out.sort(key=_OFFSET)

    def _prototypes(self) -> None:
        """Annotations on function declarations (prototypes), by function name."""
        anns, starts = self.annotations, self.annotation_starts
        if not anns:
            return
        import bisect

        src = self.src
        stack = [self.root]
        while stack:
            scope = stack.pop()
            prev_end = src.start(scope) if scope is not self.root else 0
            for item in scope.named_children:
                t = item.type
                if t in ("linkage_specification", "declaration_list"):
                    stack.append(item)
                    body = item.child_by_field_name("body")
                    if body is not None:
                        stack.append(body)
                elif t == "declaration":
                    fdecl = _function_declarator(item.child_by_field_name("declarator"))
                    name_node = fdecl.child_by_field_name("declarator") if fdecl else None
                    if name_node is not None:
                        name, _cls = _declared_name(name_node, src)
                        i = bisect.bisect_left(starts, prev_end)
                        found: list[Annotation] = []
                        item_end = src.end(item)
                        while i < len(anns) and anns[i].start < item_end:
                            found.append(anns[i])
                            i += 1
                        if name and found:
                            old = self.fir.prototypes.get(name, ())
                            self.fir.prototypes[name] = old + tuple(found)
                prev_end = src.end(item)

    def _errors(self) -> None:
        caps = self.caps
        errors = caps.get("error", [])
        self.fir.error_nodes = len(errors)
        covered = 0
        last_end = -1
        for start, end in sorted(map(self.src.span, errors)):
            self.fir.error_spans.append((start, end))
            s = max(start, last_end)
            if end > s:
                covered += end - s
                last_end = end
        self.fir.error_bytes = covered


def _value_name(value: Node) -> tuple[Node, Node | None, Node | None] | None:
    """The name a value that is not a plain name gives (`&Fn`, `(PVOID)Fn`,
    `Class::Method`): its identifier, the outermost qualified name around it and the
    innermost; None when it is something else (`*p`, `a + b`) or deeper than a callback is
    written."""
    node: Node | None = value
    qualified: Node | None = None
    innermost: Node | None = None
    steps = 0
    while node is not None and node.type != "identifier":
        steps += 1
        if steps > 8:
            return None
        if node.type == "qualified_identifier":
            qualified = qualified or node
            innermost = node
            node = node.child_by_field_name("name")
        elif node.type == "pointer_expression":
            op = node.child_by_field_name("operator")
            if op is None or op.type != "&":
                return None
            node = node.child_by_field_name("argument")
        elif node.type in ("cast_expression", "parenthesized_expression"):
            node = node.child_by_field_name("value") if (
                node.type == "cast_expression") else (
                node.named_children[0] if node.named_children else None)
        else:
            return None
    return None if node is None else (node, qualified, innermost)


_ROLE_TYPEDEF = re.compile(r"^[A-Z][A-Z0-9_]*$")


def _function_refs(
    node: Node, name: str, src: Verbatim, enclosing: str,
    calls: _ArgLists | None = None, rows: _InitLists | None = None,
) -> list[FunctionRef]:
    """Where a name used as a value goes (see `FunctionRef`). `calls` and `rows` memoize
    what an argument list or an initializer list tells (callee or type, the places of its
    elements, their short texts) for its other names: read again for each name, a table of
    5,000 callbacks took 9 s."""
    child = node
    p = node.parent
    steps = 0
    while p is not None and p.type in ("pointer_expression", "cast_expression",
                                       "parenthesized_expression"):
        if p.type == "pointer_expression" and src.text(p)[:1] != "&":
            return []  # `*Name`: a dereference, not the function's address
        steps += 1
        if steps > 8:
            return []  # not how a callback is written; and never quadratic
        child, p = p, p.parent
    if p is None:
        return []
    off = src.start(node)
    t = p.type
    if t == "argument_list":
        known = calls.get(p.id) if calls is not None else None
        if known is None:
            call = p.parent
            fn = call.child_by_field_name("function") if call is not None else None
            if call is None or fn is None:
                return []
            callee, _s, _i = _callee(fn, src)
            args = [c for c in p.named_children if c.type != "comment"]
            # Short literal-like arguments only (`NULL`, `0`, names): what registrations
            # test.
            known = (callee or "", {a.id: i for i, a in enumerate(args)},
                     tuple(_short_arg(a, src) for a in args))
            if calls is not None:
                calls[p.id] = known
        callee_name, places, texts = known
        index = places.get(child.id, -1)
        return [FunctionRef(name, off, "arg", index=str(index), callee=callee_name,
                            args=texts, enclosing=enclosing)]
    if t == "assignment_expression":
        # `a = b = F`: every target in the chain gets F.
        refs = [_assigned_ref(name, off, p.child_by_field_name("left"), src, enclosing)]
        while p.parent is not None and p.parent.type == "assignment_expression":
            p = p.parent
            refs.append(_assigned_ref(name, off, p.child_by_field_name("left"), src,
                                      enclosing))
        return refs
    if t == "init_declarator":
        decl = p.child_by_field_name("declarator")
        var, _ptr, _arr = _declarator_name(decl, src)
        outer = p.parent
        type_text = _text_between(src.view, src.start(outer), off) if outer else ""
        return [FunctionRef(name, off, "var", key=var, enclosing=enclosing,
                            type_text=type_text)]
    if t in ("initializer_list", "initializer_pair"):
        key = ""
        row = p
        if t == "initializer_pair":
            designator = p.child_by_field_name("designator")
            key = "".join(src.text(designator).split()) if designator is not None else ""
            row = p.parent if p.parent is not None else p
            child = p
        facts = rows.get(row.id) if rows is not None else None
        if facts is None:
            facts = _init_list(row, src)
            if rows is not None:
                rows[row.id] = facts
        places, texts, type_text = facts
        return [FunctionRef(name, off, "init", key=key, index=str(places.get(child.id, -1)),
                            args=texts, type_text=type_text, enclosing=enclosing)]
    return [FunctionRef(name, off, "other", enclosing=enclosing)]


def _init_list(row: Node, src: Verbatim) -> tuple[dict[int, int], tuple[str, ...], str]:
    """An initializer list's elements' places by node id, the texts of its first eight,
    and the type of the variable it initializes (within six levels of nesting)."""
    elems = [c for c in row.named_children if c.type != "comment"]
    texts = tuple(" ".join(src.text(a).split())[:60] for a in elems[:8])
    outer = row.parent
    depth = 0
    while outer is not None and outer.type not in ("init_declarator",) and depth < 6:
        outer = outer.parent
        depth += 1
    type_text = ""
    if outer is not None and outer.type == "init_declarator" and outer.parent is not None:
        value = outer.child_by_field_name("value")
        type_text = _text_between(src.view, src.start(outer.parent),
                                  src.start(value) if value is not None else src.end(outer))
    return {a.id: i for i, a in enumerate(elems)}, texts, type_text


def _scope_class(qualified: Node, src: Verbatim) -> str:
    """The scope of the innermost part of a qualified name, without template arguments:
    `Stream` of `Stream<T>::OnDpc`."""
    scope = qualified.child_by_field_name("scope")
    text = src.text(scope) if scope is not None else ""
    return text.split("<", 1)[0].rsplit("::", 1)[-1].strip()


def _short_arg(node: Node, src: Verbatim) -> str:
    """The text of a short literal-like argument (`NULL`, `0`, `(HANDLE)0`, a name) without
    casts or parentheses; "" for anything else."""
    depth = 0
    while node.type in ("cast_expression", "parenthesized_expression") and depth < 4:
        inner = node.child_by_field_name("value") if node.type == "cast_expression" else (
            node.named_children[0] if node.named_children else None)
        if inner is None:
            return ""
        node = inner
        depth += 1
    if node.type in _SHORT_ARG and node.end_byte - node.start_byte < 40:
        return src.text(node)
    return ""


def _text_between(data: bytes, start: int, end: int) -> str:
    """The words between two offsets (a declaration's type part), whitespace squeezed."""
    return " ".join(data[start:end].decode("utf-8", errors="replace").split())[:80]


def _assigned_ref(
    name: str, off: int, target: Node | None, src: Verbatim, enclosing: str
) -> FunctionRef:
    if target is None:
        return FunctionRef(name, off, "other", enclosing=enclosing)
    while target.type == "parenthesized_expression" and target.named_children:
        target = target.named_children[0]
    index = ""
    if target.type == "subscript_expression":
        idx = target.child_by_field_name("index") or target.child_by_field_name("indices")
        if idx is not None:
            index = " ".join(src.text(idx).strip("[]").split())
        arg = target.child_by_field_name("argument")
        if arg is not None:
            target = arg
    if target.type == "field_expression":
        fld = target.child_by_field_name("field")
        if fld is not None:
            return FunctionRef(name, off, "field", key=src.text(fld), index=index,
                               enclosing=enclosing)
    if target.type == "identifier":
        return FunctionRef(name, off, "var", key=src.text(target), index=index,
                           enclosing=enclosing)
    return FunctionRef(name, off, "other", enclosing=enclosing)


def _calls_in_expansion(
    exp: Expansion,
    macros: Mapping[str, MacroDef],
    lang: str,
    via: str,
    depth: int,
    budget: ExpansionBudget | None = None,
) -> list[CallSite]:
    """Call sites whose callee name comes from a macro body (arguments are seen directly)."""
    if depth > 8:
        return []
    prefix = b"void __ddilint_expansion__(void) {\n"
    expanded = exp.text.encode("utf-8")
    snippet = prefix + expanded + b"\n;}"
    if budget is not None and not budget.take(len(snippet), exp.use_start):
        return []
    if not any(not _in_segments(exp, m.start()) for m in _CALLEE_WORD.finditer(expanded)):
        return []  # no call of a name the macro's own text writes
    base = len(prefix)
    tree = parser(lang).parse(snippet)
    caps = captures(lang, _CALL_QUERY, tree.root_node)
    mapper = _offset_mapper(exp, base)
    text = Verbatim(snippet)
    conv = _Converter(text, macros, lang, mapper, via, depth + 1, budget)
    out: list[CallSite] = []
    for call in caps.get("call", []):
        fn_node = call.child_by_field_name("function")
        if fn_node is None:
            continue
        name, name_off, indirect = _callee(fn_node, text)
        if name is None or name == "__ddilint_expansion__":
            continue
        if _in_segments(exp, name_off - base):
            continue  # written in an argument: found where it is written
        use = exp.use_start
        if name in macros:
            inner = macros[name]
            if inner.params is not None and inner.name != via:
                args_node = call.child_by_field_name("arguments")
                raw = _macro_args(args_node, text) if args_node is not None else []
                inner_args = [(t, mapper(o)) for t, o in raw]
                sub = expand(inner, inner_args, use, macros)
                if sub is not None:
                    out.extend(_calls_in_expansion(sub, macros, lang, via, depth + 1, budget))
                continue
            name = resolve_alias(name, macros)
        out.append(CallSite(name, use, use, use, None, via=via, indirect=indirect,
                            _expr_builder=_lazy_expr(conv, call)))
    return out


# Where a call's callee name can be: a word followed by `(` (`Name(`, `obj->Name(`,
# `A::Name(`), or by `<` (`Name<T>(`). An expansion none of whose such words comes from
# the macro's own text (all of them written in its arguments, found where written) calls
# nothing: it is not parsed. Four in ten expansions in the samples, DMF, wireguard-nt and
# winfsp, every one with no call found when parsed.
_CALLEE_WORD = re.compile(rb"[A-Za-z_]\w*\s*[(<]")


def _in_segments(exp: Expansion, offset: int) -> bool:
    return any(s <= offset < e for s, e, _ in exp.segments)


def _offset_mapper(exp: Expansion, base: int) -> Callable[[int], int]:
    def mapper(offset: int) -> int:
        return exp.map_offset(offset - base)

    return mapper


def _lazy_expr(conv: _Converter, node: Node) -> Callable[[], Expr]:
    return lambda: conv.expr(node)


def _lazy_body(conv: _Converter, node: Node) -> Callable[[], Stmt]:
    return lambda: conv.stmt(node)


def _callee(fn: Node, src: Verbatim) -> tuple[str | None, int, bool]:
    """The callee's name (interned: a file calls the same few routines again and again,
    and one string each pickles and stores once), where it starts, and whether the call
    goes through a field."""
    t = fn.type
    if t == "identifier":
        return intern(src.name(fn)), src.start(fn), False
    if t == "field_expression":
        f = fn.child_by_field_name("field")
        if f is not None:
            # `this->Method()` is the call `Method()` of a member function, written out.
            receiver = fn.child_by_field_name("argument")
            return intern(src.name(f)), src.start(f), (
                receiver is None or receiver.type != "this")
    if t == "qualified_identifier":
        n = fn.child_by_field_name("name")
        while n is not None and n.type in ("qualified_identifier", "template_function"):
            n = n.child_by_field_name("name")
        if n is not None and n.type == "identifier":
            return intern(src.text(n)), src.start(n), False
    if t == "template_function":
        n = fn.child_by_field_name("name")
        if n is not None:
            return intern(src.text(n)), src.start(n), False
    return None, src.start(fn), False


def _scope(fn: Node, src: Verbatim) -> str:
    """The class or namespace a qualified callee is written with, the one nearest its name
    (`Cls` of `ns::Cls::Make<T>`), without template arguments; "" for `::Fn`."""
    innermost = fn
    n = fn.child_by_field_name("name")
    while n is not None and n.type == "qualified_identifier":
        innermost, n = n, n.child_by_field_name("name")
    return intern(_scope_class(innermost, src))


def _macro_args(args_node: Node, src: Verbatim) -> list[tuple[str, int]]:
    """Argument texts of a macro use with the offsets where they are written."""
    out: list[tuple[str, int]] = []
    for child in args_node.named_children:
        if child.type == "comment":
            continue
        out.append((src.text(child), src.start(child)))
    return out


def _block_macro(node: Node) -> bool:
    """A "function definition" with no return type inside a function's body: a macro
    followed by a block that the parser read as a constructor-style definition
    (`LIST_FOR_EACH_ENTRY_SAFE(head, next, entry) { ... }`, `foreach (x, list) { ... }`,
    `_ATLCATCH(e) { ... }`). No function can be defined there (a lambda is an expression),
    so it is a statement of the function around it: its calls are that function's, and
    the converter reads it as a block."""
    return node.type == "function_definition" and node.child_by_field_name("type") is None


def _function_declarator(node: Node | None) -> Node | None:
    depth = 0
    while node is not None and depth < 16:
        if node.type == "function_declarator":
            inner = node.child_by_field_name("declarator")
            # `NTSTATUS (*Foo(...))(...)`: the outer one is the return type's.
            if inner is not None and inner.type in ("parenthesized_declarator",):
                nested = _function_declarator(inner.named_children[0] if inner.named_children
                                              else None)
                if nested is not None:
                    return nested
            return node
        nxt = node.child_by_field_name("declarator")
        if nxt is None and node.named_children:
            nxt = node.named_children[0]
        node = nxt
        depth += 1
    return None


def _declared_name(node: Node, src: Verbatim) -> tuple[str, str]:
    """(name, class) of a function declarator's name part."""
    t = node.type
    if t in ("identifier", "field_identifier"):
        return src.name(node), ""
    if t == "destructor_name":
        return src.text(node), ""
    if t == "operator_name":
        return src.text(node), ""
    if t == "qualified_identifier":
        scope = node.child_by_field_name("scope")
        name = node.child_by_field_name("name")
        if name is None:
            return "", ""
        inner, inner_cls = _declared_name(name, src)
        cls = src.text(scope) if scope is not None else ""
        if inner_cls:
            cls = f"{cls}::{inner_cls}" if cls else inner_cls
        # For `A::B::m`, the class is the last scope part.
        return inner, cls.split("::")[-1] if cls else ""
    if t == "template_function":
        n = node.child_by_field_name("name")
        return (src.text(n), "") if n is not None else ("", "")
    return "", ""


def _enclosing_class(node: Node, src: Verbatim) -> str:
    p = node.parent
    depth = 0
    while p is not None and depth < 12:
        if p.type in ("class_specifier", "struct_specifier", "union_specifier"):
            n = p.child_by_field_name("name")
            return src.text(n) if n is not None else ""
        if p.type in ("translation_unit", "compound_statement"):
            return ""
        p = p.parent
        depth += 1
    return ""


def _params(node: Node | None, src: Verbatim) -> list[Param]:
    if node is None:
        return []
    out: list[Param] = []
    for child in node.named_children:
        if child.type not in ("parameter_declaration", "optional_parameter_declaration"):
            if child.type == "variadic_parameter":
                out.append(Param(len(out), "...", "..."))
            continue
        type_node = child.child_by_field_name("type")
        type_text = src.text(type_node) if type_node is not None else ""
        decl = child.child_by_field_name("declarator")
        name, ptr, _arr = _declarator_name(decl, src)
        if not name and type_text in ("void", "VOID") and not ptr:
            continue
        out.append(Param(len(out), name, type_text + ("*" * ptr),
                         decl is not None and decl.type == "reference_declarator"))
    return out


def _declarator_name(node: Node | None, src: Verbatim) -> tuple[str, int, bool]:
    """(name, pointer depth, is array) of a declarator."""
    ptr = 0
    arr = False
    depth = 0
    while node is not None and depth < 32:
        t = node.type
        if t in ("identifier", "field_identifier"):
            return src.name(node), ptr, arr
        if t == "pointer_declarator":
            ptr += 1
        elif t == "array_declarator":
            arr = True
        elif t == "reference_declarator":
            pass
        nxt = node.child_by_field_name("declarator")
        if nxt is None:
            nxt = next((c for c in node.named_children if c.type != "type_qualifier"), None)
        node = nxt
        depth += 1
    return "", ptr, arr


_TYPE_LIKE = re.compile(r"^(?:[A-Z][A-Z0-9_]*|[a-z_]+_t|unsigned|signed|int|long|short|char|void)$")
_NUMBER = re.compile(r"^(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)")


def parse_number(text: str) -> int | None:
    """The value of a C integer literal (suffixes ignored), or None for floats and junk."""
    t = text.replace("'", "")
    m = _NUMBER.match(t)
    if not m:
        return None
    rest = t[m.end():]
    if rest and not re.fullmatch(r"[uUlLiI0-9]*", rest):
        return None
    lit = m.group(1)
    if lit.startswith(("0x", "0X")):
        return int(lit, 16)
    if len(lit) > 1 and lit.startswith("0"):
        return int(lit, 8)
    return int(lit)


def _mapped_span(mapper: Callable[[int], int]) -> Callable[[Node], tuple[int, int]]:
    """Where a node of a macro expansion's parse is in the file (`mapper`: offset in the
    expansion -> offset in the file)."""
    def span(node: Node) -> tuple[int, int]:
        s = mapper(node.start_byte)
        e = mapper(node.end_byte - 1) + 1 if node.end_byte > node.start_byte else s
        return s, max(e, s)
    return span


class _Converter:
    """Turns tree-sitter nodes into IR, expanding the file's macros where they are used."""

    def __init__(
        self,
        src: Verbatim,
        macros: Mapping[str, MacroDef],
        lang: str,
        mapper: Callable[[int], int] | None = None,
        via: str = "",
        depth: int = 0,
        budget: ExpansionBudget | None = None,
    ) -> None:
        self.src = src  # where the nodes are, and their texts (`compact.py`)
        self.budget = budget
        self.memo: dict[int, tuple[Expr, int]] = {}
        self.macros = macros
        self.lang = lang
        self.mapper = mapper
        self.via = via
        self.depth = depth
        # Where a node is in the file, and its text: the view's own answers, bound once
        # (every node of a converted body asks both; neither holds the converter, so it
        # makes no reference cycle).
        self._pos: Callable[[Node], tuple[int, int]] = (
            src.span if mapper is None else _mapped_span(mapper))
        self.text: Callable[[Node], str] = src.text

    def head(self, node: Node, n: int) -> str:
        """The first `n` characters of a node's text (without decoding all of a huge node)."""
        src = self.src
        start = src.start(node)
        end = min(src.end(node), start + 4 * n)
        return src.view[start:end].decode("utf-8", errors="replace")[:n]

    # -- expressions --------------------------------------------------------------------
    def expr(self, node: Node, depth: int = 0) -> Expr:
        s, e = self._pos(node)
        via = self.via
        if depth > MAX_DEPTH:
            if self.budget is not None:
                self.budget.too_deep(s)
            return Expr("other", s, e, text=self.head(node, 80), via=via)
        t = node.type
        d = depth + 1
        if t in ("identifier", "field_identifier", "this", "namespace_identifier"):
            name = self.text(node)
            macro = self.macros.get(name)
            if macro is not None and macro.params is None and macro.body and self.depth < 8:
                expanded = self._expand_expr(macro, [], s)
                if expanded is not None:
                    return expanded
            return Expr("name", s, e, text=name, via=via)
        if t == "call_expression":
            # Nested calls are each a call site: convert each one once, not once per call
            # around it. A converted call is reused where at most its own depth budget is
            # left (the depth limit holds) and at least half of it (no visible truncation).
            room = MAX_DEPTH - depth
            hit = self.memo.get(node.id)
            if hit is not None and room // 2 <= hit[1] <= room:
                return hit[0]
            call = self._call(node, s, e, d)
            self.memo[node.id] = (call, room)
            return call
        if t == "field_expression":
            arg = node.child_by_field_name("argument")
            fld = node.child_by_field_name("field")
            op_node = node.child_by_field_name("operator")
            op = self.text(op_node) if op_node is not None else "."
            if arg is None or fld is None:
                return Expr("other", s, e, text=self.head(node, 80), via=via)
            return Expr("field", s, e, (self.expr(arg, d),), op=op, text=self.text(fld), via=via)
        if t in ("binary_expression", "assignment_expression"):
            left = node.child_by_field_name("left")
            right = node.child_by_field_name("right")
            op_node = node.child_by_field_name("operator")
            op = self.text(op_node) if op_node is not None else "?"
            kids = tuple(self.expr(c, d) for c in (left, right) if c is not None)
            if len(kids) != 2:
                return Expr("other", s, e, kids, text=self.head(node, 80), via=via)
            kind = "assign" if t == "assignment_expression" else "binary"
            return Expr(kind, s, e, kids, op=op, via=via)
        if t == "number_literal":
            text = self.text(node)
            return Expr("number", s, e, text=text, value=parse_number(text), via=via)
        if t == "parenthesized_expression":
            inner = [c for c in node.named_children if c.type != "comment"]
            if len(inner) == 1:
                return self.expr(inner[0], d)
            return Expr("other", s, e, tuple(self.expr(c, d) for c in inner), text="()", via=via)
        if t in ("unary_expression", "pointer_expression"):
            op_node = node.child_by_field_name("operator")
            op = self.text(op_node) if op_node is not None else self.text(node)[:1]
            arg = node.child_by_field_name("argument")
            if arg is None:
                return Expr("other", s, e, text=self.head(node, 80), via=via)
            return Expr("unary", s, e, (self.expr(arg, d),), op=op, via=via)
        if t in ("string_literal", "concatenated_string", "raw_string_literal"):
            return Expr("string", s, e, text=self.head(node, 200), via=via)
        if t == "qualified_identifier":
            name_node = node.child_by_field_name("name")
            last = self.text(name_node) if name_node is not None else self.text(node)
            return Expr("name", s, e, text=last, op=self.text(node), via=via)
        if t == "cast_expression":
            type_node = node.child_by_field_name("type")
            value = node.child_by_field_name("value")
            type_text = " ".join(self.text(type_node).split()) if type_node is not None else ""
            if value is None:
                return Expr("other", s, e, text=self.head(node, 80), via=via)
            return Expr("cast", s, e, (self.expr(value, d),), text=type_text, via=via)
        if t in ("true", "false"):
            return Expr("number", s, e, text=self.text(node), value=int(t == "true"), via=via)
        if t in ("null", "nullptr"):
            return Expr("number", s, e, text=self.text(node), value=0, via=via)
        if t == "subscript_expression":
            arg = node.child_by_field_name("argument")
            idx = node.child_by_field_name("index") or node.child_by_field_name("indices")
            if idx is not None and idx.type == "subscript_argument_list":
                idx = idx.named_children[0] if idx.named_children else None
            if arg is None or idx is None:
                return Expr("other", s, e, text=self.head(node, 80), via=via)
            return Expr("index", s, e, (self.expr(arg, d), self.expr(idx, d)), via=via)
        if t == "char_literal":
            return Expr("char", s, e, text=self.text(node), via=via)
        if t == "update_expression":
            arg = node.child_by_field_name("argument")
            op_node = node.child_by_field_name("operator")
            op = self.text(op_node) if op_node is not None else "++"
            if arg is None:
                return Expr("other", s, e, text=self.head(node, 80), via=via)
            kind = "unary" if op_node is not None and op_node.start_byte < arg.start_byte else (
                "postfix")
            return Expr(kind, s, e, (self.expr(arg, d),), op=op, via=via)
        if t == "conditional_expression":
            parts = [node.child_by_field_name(f) for f in ("condition", "consequence",
                                                           "alternative")]
            if any(p is None for p in parts):
                return Expr("other", s, e, tuple(self.expr(c, d) for c in node.named_children),
                            text=self.head(node, 80), via=via)
            return Expr("cond", s, e, tuple(self.expr(p, d) for p in parts if p is not None),
                        via=via)
        if t == "comma_expression":
            items: list[Expr] = []
            cur: Node | None = node
            while cur is not None and cur.type == "comma_expression":
                left = cur.child_by_field_name("left")
                if left is not None:
                    items.append(self.expr(left, d))
                cur = cur.child_by_field_name("right")
            if cur is not None:
                items.append(self.expr(cur, d))
            return Expr("comma", s, e, tuple(items), via=via)
        if t in ("sizeof_expression", "alignof_expression"):
            return Expr("sizeof", s, e, text=self.text(node)[7:-1].strip("( )"), via=via)
        if t in ("initializer_list", "argument_list"):
            return Expr("init", s, e, tuple(self.expr(c, d) for c in node.named_children
                                           if c.type != "comment"), via=via)
        if t == "compound_literal_expression":
            value = node.child_by_field_name("value")
            type_node = node.child_by_field_name("type")
            kids = (self.expr(value, d),) if value is not None else ()
            return Expr("cast", s, e, kids, text=self.text(type_node) if type_node else "",
                        via=via)
        if t == "lambda_expression":
            return Expr("lambda", s, e, via=via)
        if t == "initializer_pair":
            value = node.child_by_field_name("value")
            kids = (self.expr(value, d),) if value is not None else ()
            designator = node.child_by_field_name("designator")
            return Expr("other", s, e, kids, op="designated",
                        text=self.text(designator) if designator is not None else "", via=via)
        kids = tuple(self.expr(c, d) for c in node.named_children
                     if c.type not in ("comment", "type_descriptor", "primitive_type",
                                       "type_identifier", "template_argument_list"))
        return Expr("other", s, e, kids, op=t, text=self.head(node, 80), via=via)

    def _call(self, node: Node, s: int, e: int, d: int) -> Expr:
        via = self.via
        fn = node.child_by_field_name("function")
        args_node = node.child_by_field_name("arguments")
        arg_nodes = [c for c in args_node.named_children if c.type != "comment"] if (
            args_node is not None) else []
        if fn is not None and fn.type == "identifier":
            name = self.text(fn)
            macro = self.macros.get(name)
            if macro is not None and macro.params is not None and self.depth < 8:
                raw = [(self.text(a), self.src.start(a)) for a in arg_nodes]
                expanded = self._expand_expr(macro, raw, self._pos(fn)[0])
                if expanded is not None:
                    return expanded
        if fn is not None and fn.type == "parenthesized_expression" and len(arg_nodes) == 1:
            inner = fn.named_children
            if len(inner) == 1 and inner[0].type == "identifier" and _TYPE_LIKE.match(
                    self.text(inner[0])):
                # `(ULONG)(a | b)` parsed as a call: it is a cast.
                return Expr("cast", s, e, (self.expr(arg_nodes[0], d),), text=self.text(inner[0]),
                            via=via)
        callee = self.expr(fn, d) if fn is not None else Expr("other", s, s, via=via)
        if callee.kind == "name" and callee.via and fn is not None and fn.type == "identifier":
            # An alias macro (`#define Open ZwOpenKey`): call the aliased name.
            alias = resolve_alias(self.text(fn), self.macros)
            callee = Expr("name", callee.start, callee.end, text=alias, via=self.text(fn))
        kids = (callee, *(self.expr(a, d) for a in arg_nodes))
        return Expr("call", s, e, kids, via=via)

    def _expand_expr(self, macro: MacroDef, args: list[tuple[str, int]], use: int) -> Expr | None:
        if self.mapper is not None:
            args = [(t, self.mapper(o)) for t, o in args]
        exp = expand(macro, args, use, self.macros)
        if exp is None or exp.statement_like:
            return None
        prefix = b"void __ddilint_expansion__(void) {\n"
        snippet = prefix + exp.text.encode("utf-8") + b"\n;}"
        if self.budget is not None and not self.budget.take(len(snippet), use):
            return None
        tree = parser(self.lang).parse(snippet)
        body = tree.root_node.named_children[0].child_by_field_name("body") if (
            tree.root_node.named_children) else None
        if body is None or not body.named_children:
            return None
        first = body.named_children[0]
        if first.type != "expression_statement" or not first.named_children:
            return None
        sub = _Converter(Verbatim(snippet), self.macros, self.lang,
                         _offset_mapper(exp, len(prefix)), self.via or macro.name,
                         self.depth + 1, self.budget)
        return sub.expr(first.named_children[0])

    def _expand_stmt(self, macro: MacroDef, args: list[tuple[str, int]], use: int) -> Stmt | None:
        if self.mapper is not None:
            args = [(t, self.mapper(o)) for t, o in args]
        exp = expand(macro, args, use, self.macros)
        if exp is None or not exp.statement_like:
            return None
        prefix = b"void __ddilint_expansion__(void) {\n"
        snippet = prefix + exp.text.encode("utf-8") + b"\n;}"
        if self.budget is not None and not self.budget.take(len(snippet), use):
            return None
        tree = parser(self.lang).parse(snippet)
        body = tree.root_node.named_children[0].child_by_field_name("body") if (
            tree.root_node.named_children) else None
        if body is None:
            return None
        sub = _Converter(Verbatim(snippet), self.macros, self.lang,
                         _offset_mapper(exp, len(prefix)), self.via or macro.name,
                         self.depth + 1, self.budget)
        block = sub.stmt(body)
        block.via = macro.name
        return block

    # -- statements ---------------------------------------------------------------------
    def stmt(self, node: Node, depth: int = 0) -> Stmt:
        s, e = self._pos(node)
        via = self.via
        if depth > MAX_DEPTH:
            if self.budget is not None:
                self.budget.too_deep(s)
            return Stmt("other", s, e, via=via)
        d = depth + 1
        t = node.type
        if t in ("compound_statement", "translation_unit", "declaration_list",
                 "field_declaration_list"):
            return Stmt("block", s, e, [self.stmt(c, d) for c in node.named_children
                                        if c.type != "comment"], via=via)
        if t == "function_definition" and _block_macro(node):
            body = node.child_by_field_name("body")
            return Stmt("block", s, e, [self.stmt(body, d)] if body is not None else [],
                        via=via)
        if t == "expression_statement":
            kids = [c for c in node.named_children if c.type != "comment"]
            if not kids:
                return Stmt("empty", s, e, via=via)
            inner = kids[0]
            expanded = self._statement_macro(inner)
            if expanded is not None:
                return expanded
            return Stmt("expr", s, e, expr=self.expr(inner, d), via=via)
        if t == "declaration":
            return Stmt("decl", s, e, decls=self._decls(node, d), via=via)
        if t == "if_statement":
            cond = node.child_by_field_name("condition")
            then = node.child_by_field_name("consequence")
            alt = node.child_by_field_name("alternative")
            if alt is not None and alt.type == "else_clause":
                alt = next((c for c in alt.named_children if c.type != "comment"), None)
            children = [self.stmt(then, d) if then is not None else Stmt("empty", s, s)]
            if alt is not None:
                children.append(self.stmt(alt, d))
            return Stmt("if", s, e, children, expr=self._condition(cond, d), via=via)
        if t == "while_statement":
            cond = node.child_by_field_name("condition")
            body = node.child_by_field_name("body")
            return Stmt("while", s, e, [self._maybe(body, d)], expr=self._condition(cond, d),
                        via=via)
        if t == "do_statement":
            cond = node.child_by_field_name("condition")
            body = node.child_by_field_name("body")
            return Stmt("do", s, e, [self._maybe(body, d)], expr=self._condition(cond, d),
                        via=via)
        if t == "for_statement":
            init = node.child_by_field_name("initializer")
            cond = node.child_by_field_name("condition")
            update = node.child_by_field_name("update")
            body = node.child_by_field_name("body")
            init_stmt = Stmt("empty", s, s)
            if init is not None:
                if init.type == "declaration":
                    init_stmt = Stmt("decl", *self._pos(init), decls=self._decls(init, d))
                else:
                    init_stmt = Stmt("expr", *self._pos(init), expr=self.expr(init, d))
            return Stmt("for", s, e, [init_stmt, self._maybe(body, d)],
                        expr=self.expr(cond, d) if cond is not None else None,
                        update=self.expr(update, d) if update is not None else None, via=via)
        if t == "for_range_loop":
            body = node.child_by_field_name("body")
            right = node.child_by_field_name("right")
            return Stmt("while", s, e, [self._maybe(body, d)],
                        expr=self.expr(right, d) if right is not None else None, via=via)
        if t == "switch_statement":
            cond = node.child_by_field_name("condition")
            body = node.child_by_field_name("body")
            return Stmt("switch", s, e, [self._maybe(body, d)], expr=self._condition(cond, d),
                        via=via)
        if t == "case_statement":
            value = node.child_by_field_name("value")
            stmts = [self.stmt(c, d) for c in node.named_children
                     if c.type != "comment" and (value is None or c.id != value.id)]
            return Stmt("case", s, e, stmts,
                        expr=self.expr(value, d) if value is not None else None, via=via)
        if t == "break_statement":
            return Stmt("break", s, e, via=via)
        if t == "continue_statement":
            return Stmt("continue", s, e, via=via)
        if t == "return_statement":
            kids = [c for c in node.named_children if c.type != "comment"]
            return Stmt("return", s, e, expr=self.expr(kids[0], d) if kids else None, via=via)
        if t == "goto_statement":
            label = node.child_by_field_name("label")
            return Stmt("goto", s, e, label=self.text(label) if label is not None else "",
                        via=via)
        if t == "labeled_statement":
            label = node.child_by_field_name("label")
            kids = [c for c in node.named_children if c.type != "comment" and (
                label is None or c.id != label.id)]
            return Stmt("label", s, e, [self.stmt(c, d) for c in kids],
                        label=self.text(label) if label is not None else "", via=via)
        if t == "seh_try_statement":
            body = node.child_by_field_name("body")
            children = [self._maybe(body, d)]
            for c in node.named_children:
                if c.type == "seh_except_clause":
                    flt = c.child_by_field_name("filter")
                    cbody = c.child_by_field_name("body")
                    children.append(Stmt("seh_except", *self._pos(c), [self._maybe(cbody, d)],
                                         expr=self._condition(flt, d)))
                elif c.type == "seh_finally_clause":
                    cbody = c.child_by_field_name("body")
                    children.append(Stmt("seh_finally", *self._pos(c), [self._maybe(cbody, d)]))
            return Stmt("seh_try", s, e, children, via=via)
        if t == "seh_leave_statement":
            return Stmt("seh_leave", s, e, via=via)
        if t == "try_statement":
            body = node.child_by_field_name("body")
            children = [self._maybe(body, d)]
            for c in node.named_children:
                if c.type == "catch_clause":
                    cbody = c.child_by_field_name("body")
                    children.append(Stmt("catch", *self._pos(c), [self._maybe(cbody, d)]))
            return Stmt("try", s, e, children, via=via)
        if t == "ERROR":
            out: list[Stmt] = []
            for c in node.named_children:
                if c.type.endswith("statement") or c.type in ("declaration",):
                    out.append(self.stmt(c, d))
                elif c.type.endswith("expression") or c.type == "identifier":
                    out.append(Stmt("expr", *self._pos(c), expr=self.expr(c, d)))
            return Stmt("block", s, e, out, via=via)
        if t.endswith("_expression"):
            return Stmt("expr", s, e, expr=self.expr(node, d), via=via)
        return Stmt("other", s, e, via=via)

    def _maybe(self, node: Node | None, depth: int) -> Stmt:
        if node is None:
            return Stmt("empty", 0, 0)
        return self.stmt(node, depth)

    def _condition(self, node: Node | None, depth: int) -> Expr | None:
        if node is None:
            return None
        if node.type == "condition_clause":
            value = node.child_by_field_name("value")
            if value is None:
                kids = [c for c in node.named_children if c.type != "comment"]
                if not kids:
                    return None
                value = kids[-1]
            if value.type == "declaration":
                decls = self._decls(value, depth)
                if decls and decls[0].init is not None:
                    init = decls[0].init
                    target = Expr("name", decls[0].start, decls[0].start + len(decls[0].name),
                                  text=decls[0].name)
                    return Expr("assign", init.start, init.end, (target, init), op="=")
                return None
            return self.expr(value, depth)
        return self.expr(node, depth)

    def _statement_macro(self, inner: Node) -> Stmt | None:
        if self.depth >= 8:
            return None
        if inner.type == "call_expression":
            fn = inner.child_by_field_name("function")
            if fn is None or fn.type != "identifier":
                return None
            macro = self.macros.get(self.text(fn))
            if macro is None or macro.params is None:
                return None
            args_node = inner.child_by_field_name("arguments")
            raw = _macro_args(args_node, self.src) if args_node is not None else []
            return self._expand_stmt(macro, raw, self._pos(fn)[0])
        if inner.type == "identifier":
            macro = self.macros.get(self.text(inner))
            if macro is None or macro.params is not None:
                return None
            return self._expand_stmt(macro, [], self._pos(inner)[0])
        return None

    def _constructor_args(self, dnode: Node) -> Expr | None:
        """`Guard g(h);` in a C++ body reads as a function declaration to the parser; when
        every "parameter" is a bare name it is an object built from those variables."""
        params = dnode.child_by_field_name("parameters")
        if params is None or not params.named_children:
            return None
        names: list[Expr] = []
        for p in params.named_children:
            ptype = p.child_by_field_name("type")
            if p.type != "parameter_declaration" or p.child_by_field_name("declarator") \
                    or ptype is None or ptype.type != "type_identifier" or len(p.children) != 1:
                return None
            ps, pe = self._pos(ptype)
            names.append(Expr("name", ps, pe, text=self.text(ptype)))
        s, e = self._pos(params)
        return Expr("init", s, e, tuple(names))

    def _decls(self, node: Node, depth: int) -> tuple[Decl, ...]:
        type_node = node.child_by_field_name("type")
        type_text = " ".join(self.text(type_node).split()) if type_node is not None else ""
        static = any(c.type == "storage_class_specifier" and self.text(c) == "static"
                     for c in node.children)
        const = any(c.type == "type_qualifier" and self.text(c) in ("const", "constexpr")
                    for c in node.children)
        out: list[Decl] = []
        for dnode in node.children_by_field_name("declarator"):
            init: Expr | None = None
            target = dnode
            if dnode.type == "init_declarator":
                target = dnode.child_by_field_name("declarator") or dnode
                value = dnode.child_by_field_name("value")
                if value is not None:
                    init = self.expr(value, depth)
            elif dnode.type == "function_declarator" and self.lang == "cpp":
                init = self._constructor_args(dnode)
            name, ptr, arr = _declarator_name(target, self.src)
            if not name:
                continue
            s, e = self._pos(dnode)
            out.append(Decl(name, type_text + "*" * ptr, init, s, e, pointer=ptr > 0, array=arr,
                            static=static, const=const and ptr == 0))
        return tuple(out)
