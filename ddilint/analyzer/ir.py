"""The intermediate representation rules and analyses work on (never tree-sitter nodes).

A `FileIR` holds a file's functions, call sites, macros, annotations and role
declarations. Expressions (`Expr`) and statements (`Stmt`) are small frontend-neutral
trees: a libclang frontend produces the same shapes. Offsets are byte offsets into the
file's UTF-8 text; code that came from a project macro carries the offsets of the macro's
use (and `via` names the macro), so findings point at what the developer wrote.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

from ddilint.analyzer.budget import ExpansionBudget
from ddilint.analyzer.preprocess import Annotation, MacroDef
from ddilint.analyzer.source import SourceText

# The classes that fields name are imported for real: the compiled build (setup.py) looks
# them up when the module loads. Only CFG is the checker's alone, as cfg imports this module.
if TYPE_CHECKING:
    from ddilint.analyzer.cfg import CFG


class Expr:
    """An expression.

    kinds: name, number, string, char, call, unary, postfix, binary, assign, cond, cast,
    field, index, comma, sizeof, init, lambda, other. For `call` the first child is the
    callee expression and the rest are the arguments; for `field`, `op` is `.` or `->` and
    `text` the field name; for `cast`, `text` is the type; for `name`, `text` is the name.
    """

    __slots__ = ("children", "end", "kind", "op", "start", "text", "value", "via")

    def __init__(
        self,
        kind: str,
        start: int,
        end: int,
        children: tuple[Expr, ...] = (),
        op: str = "",
        text: str = "",
        value: int | None = None,
        via: str = "",
    ) -> None:
        self.kind = kind
        self.start = start
        self.end = end
        self.children = children
        self.op = op
        self.text = text
        self.value = value
        self.via = via

    def __repr__(self) -> str:
        return f"Expr({self.kind!r}, {self.render()!r})"

    # -- call helpers -------------------------------------------------------------------
    @property
    def callee(self) -> str | None:
        """For a call: the name called (`Foo`, `Ns::Foo` -> `Foo`, `obj->Fn` -> `Fn`)."""
        if self.kind != "call" or not self.children:
            return None
        fn = self.children[0]
        if fn.kind == "name":
            return fn.text
        if fn.kind == "field":
            return fn.text
        return None

    @property
    def scoped_callee(self) -> bool:
        """For a call: whether its name is written with a class or namespace (`Ns::Fn()`,
        `Cls<T>::Make()`; not `::Fn()`), what `CallSite.scope` tells of a call site."""
        fn = self.children[0] if self.kind == "call" and self.children else None
        # A qualified name keeps its whole text in `op`; `::Fn` is its name and the colons.
        return fn is not None and fn.kind == "name" and bool(fn.op) and (
            fn.op.lstrip(": \t") != fn.text)

    @property
    def args(self) -> tuple[Expr, ...]:
        """For a call: the argument expressions."""
        return self.children[1:] if self.kind == "call" else ()

    def strip(self) -> Expr:
        """The expression without casts and parentheses around it."""
        e = self
        while e.kind == "cast" and e.children:
            e = e.children[0]
        return e

    def walk(self) -> Iterator[Expr]:
        """This expression and every sub-expression, pre-order (iterative: no recursion)."""
        stack = [self]
        while stack:
            e = stack.pop()
            yield e
            stack.extend(reversed(e.children))

    def calls(self) -> Iterator[Expr]:
        """Every call inside this expression, in evaluation order (arguments first)."""
        out: list[Expr] = []
        stack: list[tuple[Expr, bool]] = [(self, False)]
        while stack:
            e, done = stack.pop()
            if done:
                out.append(e)
                continue
            if e.kind == "lambda":
                continue
            if e.kind == "call":
                stack.append((e, True))
            for c in reversed(e.children):
                stack.append((c, False))
        return iter(out)

    def names(self) -> Iterator[str]:
        """Names read anywhere in this expression."""
        for e in self.walk():
            if e.kind == "name":
                yield e.text

    def render(self) -> str:
        """A compact C-like rendering, for messages and tests."""
        return _render(self)


def _render(e: Expr, depth: int = 0) -> str:
    if depth > 60:
        return "..."
    k = e.kind
    c = e.children
    if k in ("name", "number", "string", "char", "other"):
        return e.text
    if k == "call":
        return f"{_render(c[0], depth + 1)}({', '.join(_render(a, depth + 1) for a in c[1:])})"
    if k == "unary":
        return f"{e.op}{_render(c[0], depth + 1)}"
    if k == "postfix":
        return f"{_render(c[0], depth + 1)}{e.op}"
    if k in ("binary", "assign"):
        return f"{_render(c[0], depth + 1)} {e.op} {_render(c[1], depth + 1)}"
    if k == "cond":
        return " ? ".join(_render(x, depth + 1) for x in c[:2]) + f" : {_render(c[2], depth + 1)}"
    if k == "cast":
        return f"({e.text}){_render(c[0], depth + 1)}"
    if k == "field":
        return f"{_render(c[0], depth + 1)}{e.op}{e.text}"
    if k == "index":
        return f"{_render(c[0], depth + 1)}[{_render(c[1], depth + 1)}]"
    if k == "comma":
        return ", ".join(_render(x, depth + 1) for x in c)
    if k == "sizeof":
        return f"sizeof({e.text})"
    if k == "init":
        return "{" + ", ".join(_render(x, depth + 1) for x in c) + "}"
    if k == "lambda":
        return "[](...){...}"
    return e.text


def tested_name(cond: Expr) -> tuple[str, bool] | None:
    """(`v`, True) for a condition that is a plain name `v`, (`v`, False) for `!v`, and so
    on through any number of `!`; None for any other condition."""
    e = cond.strip()
    value = True
    while e.kind == "unary" and e.op == "!" and e.children:
        e = e.children[0].strip()
        value = not value
    return (e.text, value) if e.kind == "name" else None


@dataclass(slots=True)
class Decl:
    """A local variable declared in a statement, with its initializer if any."""

    name: str
    type_text: str
    init: Expr | None
    start: int
    end: int
    pointer: bool = False
    array: bool = False
    static: bool = False
    const: bool = False


class Stmt:
    """A statement.

    kinds and their parts:
    block(children) · expr(expr) · decl(decls) · if(expr=cond, children=[then, else?]) ·
    while(expr, [body]) · do([body], expr) · for(children=[init?, body], expr=cond,
    update) · switch(expr, [body]) · case(expr=value or None for default, children=stmts) ·
    break · continue · return(expr?) · goto(label) · label(label, [stmt]) ·
    seh_try([body, handler]) where handler is seh_except(expr=filter, [body]) or
    seh_finally([body]) · seh_leave · try([body, catch...]) · catch([body]) · empty · other.
    """

    __slots__ = ("children", "decls", "end", "expr", "kind", "label", "start", "update", "via")

    def __init__(
        self,
        kind: str,
        start: int,
        end: int,
        children: list[Stmt] | None = None,
        expr: Expr | None = None,
        label: str = "",
        decls: tuple[Decl, ...] = (),
        update: Expr | None = None,
        via: str = "",
    ) -> None:
        self.kind = kind
        self.start = start
        self.end = end
        self.children = children if children is not None else []
        self.expr = expr
        self.label = label
        self.decls = decls
        self.update = update
        self.via = via

    def __repr__(self) -> str:
        return f"Stmt({self.kind!r}, {self.start}..{self.end})"

    def walk(self) -> Iterator[Stmt]:
        """This statement and every nested statement, pre-order."""
        stack = [self]
        while stack:
            s = stack.pop()
            yield s
            stack.extend(reversed(s.children))


@dataclass(slots=True)
class Param:
    """A function parameter: its position, name (may be empty) and declared type (without
    the `&` of a C++ reference parameter: `by_reference` says it)."""

    index: int
    name: str
    type_text: str
    by_reference: bool = False


@dataclass(eq=False)
class Function:
    """A function, C++ method or lambda defined in the file."""

    name: str
    qualname: str
    kind: str  # function, method, lambda
    start: int
    end: int
    name_start: int
    body_start: int
    params: list[Param] = field(default_factory=list)
    annotations: list[Annotation] = field(default_factory=list)
    class_name: str = ""
    is_static: bool = False
    return_type: str = ""
    parent: Function | None = None
    _body_builder: Callable[[], Stmt] | None = field(default=None, repr=False)
    _body: Stmt | None = field(default=None, repr=False)
    _cfg: CFG | None = field(default=None, repr=False)

    @property
    def body(self) -> Stmt:
        """The statement tree of the body, built on first use."""
        if self._body is None:
            builder = self._body_builder
            self._body = builder() if builder else Stmt("block", self.body_start, self.end)
        return self._body

    @property
    def cfg(self) -> CFG:
        """The control-flow graph of the body, built on first use."""
        if self._cfg is None:
            from ddilint.analyzer.cfg import build_cfg

            self._cfg = build_cfg(self.body)
        return self._cfg

    def annotation(self, name: str) -> Annotation | None:
        """The first annotation with this name, e.g. `_IRQL_requires_max_`."""
        for a in self.annotations:
            if a.name == name:
                return a
        return None

    def param_index(self, name: str) -> int | None:
        """Position of the parameter called `name`, or None."""
        for p in self.params:
            if p.name == name:
                return p.index
        return None


@dataclass(eq=False, slots=True)
class CallSite:
    """A call of a named routine, found in the file (directly or through a project macro).

    `name_start` is the primary location of findings about the call: the first character
    of the callee's name, or of the macro's name where the call was written through one.
    """

    callee: str
    name_start: int
    start: int
    end: int
    function: Function | None
    via: str = ""
    indirect: bool = False  # called through a field (`obj->Fn(...)`, C++ method call)
    _expr_builder: Callable[[], Expr] | None = field(default=None, repr=False)
    _expr: Expr | None = field(default=None, repr=False)
    # The class or namespace the name was written with (`Cls` of `Cls::Make<T>(...)`).
    scope: str = ""

    @property
    def expr(self) -> Expr:
        """The call as an expression (converted on first use)."""
        if self._expr is None:
            builder = self._expr_builder
            self._expr = builder() if builder else Expr("call", self.start, self.end)
        return self._expr

    @property
    def args(self) -> tuple[Expr, ...]:
        """The argument expressions."""
        return self.expr.args

    @property
    def anchor(self) -> str:
        """A line-free identity for findings about this call: `Function:callee`."""
        return f"{self.function.qualname if self.function else ''}:{self.callee}"


@dataclass(slots=True)
class RoleDecl:
    """A declaration that gives a function a role: `DRIVER_DISPATCH Foo;` and its annotations."""

    function: str
    typedef: str
    start: int
    annotations: tuple[Annotation, ...] = ()


class FunctionRef(NamedTuple):
    """A name used as a value where a function pointer is expected: a candidate callback.

    `kind` says where: "arg" (argument `index` of a call of `callee`; `args` holds the call's
    argument texts), "field" (assigned to a field `key`, `index` the subscript text for
    `MajorFunction[IRP_MJ_X] = F`), "var" (assigned to or initializing a variable `key`
    whose declared type is `type_text`), "init" (an element of an initializer list: `key` is
    the designator (`.Field`/`[X]`) or "", `index` the position in its row, `args` the row's
    element texts, `type_text` the declared type of the object initialized), "other".
    `enclosing` is the qualified name of the function the use is in ("" at file scope);
    `scope` the class of a C++ qualified name (`&Stream::OnDpc`), "" for a plain name.

    A named tuple, as the summary records are (`summary.CallInfo`): a project has tens of
    thousands, and a frozen dataclass sets each field through `object.__setattr__`.
    """

    name: str
    offset: int
    kind: str
    key: str = ""
    index: str = ""  # type: ignore[assignment]  # a field, where tuple has a method
    callee: str = ""
    args: tuple[str, ...] = ()
    type_text: str = ""
    enclosing: str = ""
    scope: str = ""  # `Stream` of `&Stream::OnDpc`: the class the name was written with


@dataclass(eq=False)
class FileIR:
    """Everything the engine knows about one file."""

    path: str
    language: str  # "c" or "cpp"
    source: SourceText
    functions: list[Function] = field(default_factory=list)
    calls: list[CallSite] = field(default_factory=list)
    macros: dict[str, MacroDef] = field(default_factory=dict)
    annotations: list[Annotation] = field(default_factory=list)
    role_decls: list[RoleDecl] = field(default_factory=list)
    # Names used as function-pointer values (registrations, callbacks, escapes).
    refs: list[FunctionRef] = field(default_factory=list)
    # Where a flag or IRQL constant (`TRUE`, `false`, `DISPATCH_LEVEL`) is written as a
    # value (an argument, mostly): the calls around these are the ones whose constant
    # arguments the summary reads (`summary.CallInfo.consts`).
    constant_marks: list[int] = field(default_factory=list)
    # Annotations written on function prototypes (`_IRQL_requires_max_(...) VOID F(...);`).
    prototypes: dict[str, tuple[Annotation, ...]] = field(default_factory=dict)
    includes: list[str] = field(default_factory=list)
    mode_includes: list[str] = field(default_factory=list)  # see `Preprocessed.mode_includes`
    sided_includes: list[tuple[str, str]] = field(default_factory=list)  # and `.sided_includes`
    mode_regions: list[tuple[int, int, str]] = field(default_factory=list)  # `.mode_regions`
    pragmas: list[tuple[str, int]] = field(default_factory=list)
    inactive: list[tuple[int, int]] = field(default_factory=list)
    error_nodes: int = 0
    error_bytes: int = 0
    # Byte ranges the parser could not read (ERROR nodes), for analyses that must not
    # trust a function whose body was misread.
    error_spans: list[tuple[int, int]] = field(default_factory=list)
    # How much macro expansion the frontend may still do; says where it ran out, if it did.
    expansion_budget: ExpansionBudget | None = field(default=None, repr=False)
    # Where an analysis the rules ran stopped following something at one of its limits (the
    # place, and what it did not follow), in the order met: each a DDI905 notice.
    limits: dict[tuple[int, str], None] = field(default_factory=dict, repr=False)
    # Per-file results of analyses that several rules share (values, handles, ...), kept on
    # the file itself so that they die with it. (A module-level WeakKeyDictionary keyed by
    # the file never lets go when the value points back at the file: that kept every file
    # of a run, trees included, alive: 1.1 GB on Windows-driver-samples.)
    memo: dict[str, Any] = field(default_factory=dict, repr=False)
    _assignments: Callable[[], list[tuple[Expr, Function | None]]] | None = field(
        default=None, repr=False
    )
    _assignment_cache: list[tuple[Expr, Function | None]] | None = field(default=None, repr=False)
    _globals: Callable[[], list[Decl]] | None = field(default=None, repr=False)
    _globals_cache: list[Decl] | None = field(default=None, repr=False)

    def dispose(self) -> None:
        """Break the reference cycles the file's IR holds, so that it is freed as soon as
        the last reference to it goes instead of waiting for a garbage collection: the
        control-flow graphs (blocks and edges point at each other), the lazy builders of
        the file's assignments and globals (they hold the frontend's builder, which holds
        the file), and analyses kept in `memo` (which break their own with a `release()`
        method). Nothing else in the IR points back: calls, functions and expressions
        then go with the file. The IR is unusable after."""
        for kept in self.memo.values():
            release = getattr(kept, "release", None)
            if release is not None:
                release()
        self.memo.clear()
        for f in self.functions:
            cfg = f._cfg
            if cfg is not None:
                for b in cfg.blocks:
                    b.succs.clear()
                    b.preds.clear()
        self._assignments = self._globals = None
        self._assignment_cache = self._globals_cache = None

    def position(self, offset: int) -> tuple[int, int]:
        """1-based line and character column of a byte offset."""
        return self.source.position(offset)

    def text(self, start: int, end: int) -> str:
        """The source text between two byte offsets."""
        return self.source.data[start:end].decode("utf-8", errors="replace")

    def function_named(self, name: str) -> list[Function]:
        """Functions defined in this file with this (unqualified or qualified) name."""
        return [f for f in self.functions if f.name == name or f.qualname == name]

    def calls_to(self, names: set[str] | frozenset[str]) -> list[CallSite]:
        """Call sites whose callee is one of `names`."""
        return [c for c in self.calls if c.callee in names]

    @property
    def assignments(self) -> list[tuple[Expr, Function | None]]:
        """Every assignment expression in the file with its enclosing function (lazy)."""
        if self._assignment_cache is None:
            self._assignment_cache = self._assignments() if self._assignments else []
        return self._assignment_cache

    @property
    def globals(self) -> list[Decl]:
        """Variables declared at file scope (outside functions), with initializers (lazy)."""
        if self._globals_cache is None:
            self._globals_cache = self._globals() if self._globals else []
        return self._globals_cache
