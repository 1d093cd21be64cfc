"""The life of a handle, path by path: the engine behind DDI201, DDI202 and DDI203.

Every call that creates a handle (the knowledge table's `handle_out_param`) into a local
variable (`&h`) is a *site*; each site is analyzed on its own with the shared dataflow
solver. The state at a point is a set of *worlds*; a world says what happened to the
site's handle on the paths it stands for: not created yet (`none`), created (`open`), the
call failed (`failed`), released (`released`) or handed to someone else (`escaped`), which
local variables hold it (`holders`, so copies are followed), and what is known about the
local variables the function tests (the status the call returned, NULL, flags). Branch
conditions prune worlds: `NT_SUCCESS(status)`, `status == STATUS_SUCCESS`, `status < 0`,
`if (h)`, `if (flag)` and their negations send the open world one way and the failed one
the other, so a failed open never looks like a leak.

Ownership moves (the world becomes `escaped`, silent from then on) when the handle is
stored through a pointer, into a field, a global or an array, returned, passed to a
routine that is neither documented to borrow it (a documented `[in]` parameter) nor a
helper of the file whose summary says it only uses it, or has its address taken. Helpers
of the file get per-parameter summaries computed the same way (`release` when the body
releases the parameter on every path, `borrow` when it only uses it, else `escape`).

Exceptional edges are ignored. The results (leaks with the exit they leak at and a path,
double releases, uses after release) are computed once per file and shared by the rules.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import NamedTuple

from ddilint.analyzer.cfg import CFG, Block, Edge, Element
from ddilint.analyzer.dataflow import join_sets, solve
from ddilint.analyzer.ir import CallSite, Expr, FileIR, Function
from ddilint.analyzer.pickling import compact_pickle
from ddilint.knowledge import Knowledge, Routine, call_routines

NONE, OPEN, FAILED, RELEASED, ESCAPED = "none", "open", "failed", "released", "escaped"

# A site whose state grows past this many worlds at one point is given up (silently):
# precision first, a guess would be worse than nothing.
MAX_WORLDS = 256
# Nodes the path search behind a leak's trace may visit.
MAX_TRACE_NODES = 4000
# World steps one file may take (the largest file of Windows-driver-samples needs 75,000):
# past it the remaining sites are given up, so no file costs more than a few seconds.
MAX_STEPS_PER_FILE = 300_000
# Helpers a handle is followed into, one inside another (a handle passed down a chain of
# helpers). A helper deeper than this is taken to keep the handle, and a DDI905 notice says
# so: a chain of 20,000 generated helpers recursed into each until the interpreter's limit.
MAX_HELPER_DEPTH = 32

# NTSTATUS constants for which NT_SUCCESS is true (severity success or informational).
# Every other STATUS_ name a driver writes is taken as a failure code.
SUCCESS_CODES = frozenset({
    "STATUS_SUCCESS", "STATUS_PENDING", "STATUS_REPARSE", "STATUS_MORE_ENTRIES",
    "STATUS_TIMEOUT", "STATUS_WAIT_0", "STATUS_ALERTED", "STATUS_USER_APC",
    "STATUS_OBJECT_NAME_EXISTS", "STATUS_NOT_ALL_ASSIGNED", "STATUS_SOME_NOT_MAPPED",
    "STATUS_ABANDONED", "STATUS_KERNEL_APC", "STATUS_OPLOCK_BREAK_IN_PROGRESS",
    "STATUS_NOTIFY_ENUM_DIR", "STATUS_NOTIFY_CLEANUP", "STATUS_FLT_IO_COMPLETE",
})
NULL_NAMES = frozenset({"NULL", "nullptr", "FALSE", "false"})
TRUE_NAMES = frozenset({"TRUE", "true"})
COMPARISONS = frozenset({"==", "!=", "<", ">", "<=", ">="})
# The special fact name for "the result of the site's call in the element being evaluated".
RESULT = "#"
CURRENT_PROCESS = frozenset({"NtCurrentProcess", "ZwCurrentProcess"})
# Header macros known to evaluate their argument exactly once, as a function would.
TRANSPARENT_MACROS = frozenset({
    "NT_SUCCESS", "NT_ERROR", "NT_WARNING", "NT_INFORMATION", "SUCCEEDED", "FAILED",
    "HRESULT_FROM_NT", "HRESULT_FROM_WIN32",
})
_MACRO_NAME = re.compile(r"^[A-Z][A-Z0-9_]*$")
# The status tests a project defines for itself in a header (`QUIC_FAILED(Status)`,
# `XDP_SUCCEEDED(Status)`, `FAILED_NTSTATUS(status)`, winerror.h's `FAILED(hr)`): the
# file cannot see their definitions, but their names say what they test. One word of the
# name is SUCCEEDED or SUCCESS (the status is a success: NT_SUCCESS), or FAILED (it is a
# failure: not NT_SUCCESS, as an HRESULT's FAILED is); only `_STATUS` or `_NTSTATUS` may
# follow it.
_SUCCESS_TEST = re.compile(r"^(?:[A-Z][A-Z0-9]*_)*(?:SUCCEEDED|SUCCESS)(?:_(?:NT)?STATUS)?$")
_FAILURE_TEST = re.compile(r"^(?:[A-Z][A-Z0-9]*_)*FAILED(?:_(?:NT)?STATUS)?$")


def status_test(name: str) -> bool | None:
    """What a call of `name` with one argument tests of it: True, that the status is a
    success (`NT_SUCCESS`); False, that it is not (`NT_ERROR`, a `..._FAILED` macro);
    None: it is no status test. A name the file defines as a macro never gets here: the
    frontend expands it."""
    if name == "NT_SUCCESS":
        return True
    if name == "NT_ERROR":
        return False
    if not name[:1].isupper():
        return None
    if _SUCCESS_TEST.match(name):
        return True
    if _FAILURE_TEST.match(name):
        return False
    return None

Fact = tuple[str, str, int, str]  # (variable, kind: const/status/ptr, value, constant name)


class World(NamedTuple):
    """What happened to one site's handle on a set of paths.

    A named tuple: the analysis makes, hashes and compares worlds by the hundred thousand
    (in sets of them), and a tuple does all three in C.
    """

    state: str
    holders: frozenset[str] = frozenset()
    facts: frozenset[Fact] = frozenset()
    ret: int = -1  # offset of the `return` taken (open worlds only); -1: none yet
    released_at: int = -1  # offset of the first release (released worlds only)


State = frozenset[World] | None


@compact_pickle
@dataclass(frozen=True, slots=True)
class Site:
    """What creates the tracked handle: a call writing `&var`, or a parameter (helpers)."""

    var: str
    offset: int  # primary location: the callee's name (or the macro's), or the parameter
    call_start: int = -1
    callee: str = ""
    routine: Routine | None = None
    status_kind: str = "status"  # how the call reports success: status, ptr

    @property
    def is_param(self) -> bool:
        return self.call_start < 0


@compact_pickle
@dataclass(frozen=True, slots=True)
class Step:
    """One step of a leak's path: a byte offset and what happens there."""

    offset: int
    message: str


@compact_pickle
@dataclass(frozen=True, slots=True)
class Leak:
    """A site's handle still open (and owned) where the function leaves or loses it."""

    function: Function
    site: Site
    exit_offset: int
    exit_kind: str  # return, end (falls off the end), overwrite (the last copy is replaced)
    other_exits: tuple[int, ...]
    trace: tuple[Step, ...]


@compact_pickle
@dataclass(frozen=True, slots=True)
class Misuse:
    """A release of an already released handle (double close) or a use after release."""

    function: Function
    kind: str  # double, use
    offset: int  # the call's primary location
    callee: str
    var: str
    released_at: int  # primary location of the first release
    site_offset: int


@dataclass
class HandleFacts:
    """Everything the handle analysis found in one file."""

    leaks: list[Leak] = field(default_factory=list)
    misuses: list[Misuse] = field(default_factory=list)
    functions: int = 0  # functions analyzed (those that create or release a handle)
    sites: int = 0
    # (offset, why) of each function or handle the analysis could not check.
    given_up: list[tuple[int, str]] = field(default_factory=list)


# ---------------------------------------------------------------------------------------
# Expressions: small helpers


def _strip(e: Expr) -> Expr:
    """Without casts (the frontend already drops parentheses)."""
    while e.kind == "cast" and e.children:
        e = e.children[0]
    return e


def _plain_name(e: Expr) -> str | None:
    s = _strip(e)
    return s.text if s.kind == "name" else None


def _value_name(e: Expr) -> str | None:
    """The variable whose value an expression is (`h`, `(HANDLE)h`, `a = h`)."""
    s = _strip(e)
    while s.kind == "assign" and s.op == "=" and len(s.children) == 2:
        s = _strip(s.children[1])
    return s.text if s.kind == "name" else None


def address_of_name(e: Expr) -> str | None:
    """`v` of `&v` (casts aside), else None."""
    s = _strip(e)
    if s.kind == "unary" and s.op == "&" and s.children:
        inner = _strip(s.children[0])
        if inner.kind == "name":
            return inner.text
    return None


# ---------------------------------------------------------------------------------------
# Events: what an element does, in evaluation order (syntactic; worlds interpret them)

Event = tuple[object, ...]


class _EventBuilder:
    def __init__(self, lambda_names: frozenset[str], quiet: Callable[[Expr], bool],
                 opaque: Callable[[Expr], bool]) -> None:
        self.out: list[Event] = []
        self.lambda_names = lambda_names
        self.quiet = quiet  # calls that never keep a handle found anywhere in their arguments
        self.opaque = opaque  # header macros: their arguments may run zero or more times

    def walk(self, e: Expr, role: str) -> None:
        """role: value (a use that may hand the value on), test (read only)."""
        k = e.kind
        if k == "name":
            if role == "value":
                self.out.append(("esc", e.text))
            return
        if k == "cast":
            for c in e.children:
                self.walk(c, role)
            return
        if k == "call":
            if self.opaque(e):
                names = frozenset(n for a in e.args for n in a.names())
                written: set[str] = set()
                for a in e.args:
                    for x in a.walk():
                        if x.kind in ("assign", "postfix") and x.children:
                            target = _plain_name(x.children[0])
                            if target is not None:
                                written.add(target)
                        elif (name := address_of_name(x)) is not None:
                            written.add(name)
                self.out.append(("opaque", names, frozenset(written)))
                return
            sub = "test" if self.quiet(e) else "value"
            for a in e.args:
                if _plain_name(a) is not None or address_of_name(a) is not None:
                    continue
                self.walk(a, sub)
            fn = e.children[0] if e.children else None
            if fn is not None and fn.kind == "field" and fn.children:
                self.walk(fn.children[0], "test")
            self.out.append(("call", e))
            return
        if k == "assign":
            lhs = _strip(e.children[0]) if e.children else None
            rhs = e.children[1] if len(e.children) > 1 else None
            if rhs is not None:
                if e.op == "=" and _value_name(rhs) is not None and _strip(rhs).kind == "name":
                    pass  # a copy: the assign event decides
                else:
                    self.walk(rhs, "value" if e.op == "=" else "test")
            if lhs is not None and lhs.kind != "name":
                self.walk(lhs, "test")
            lname = lhs.text if lhs is not None and lhs.kind == "name" else None
            self.out.append(("assign", lname, e.op, rhs))
            return
        if k == "binary":
            sub = "test" if e.op in COMPARISONS or e.op in ("&&", "||") else role
            for c in e.children:
                self.walk(c, sub)
            return
        if k == "unary":
            if e.op == "&":
                name = address_of_name(e)
                if name is not None:
                    self.out.append(("addr", name))
                    return
            sub = "test" if e.op in ("!", "*") else role
            for c in e.children:
                self.walk(c, sub)
            return
        if k == "postfix":
            name = _plain_name(e.children[0]) if e.children else None
            if name is not None:
                self.out.append(("assign", name, e.op, None))
            return
        if k == "cond":
            for i, c in enumerate(e.children):
                self.walk(c, "test" if i == 0 else role)
            return
        if k in ("field", "index"):
            for c in e.children:
                self.walk(c, "test")
            return
        if k == "comma":
            for i, c in enumerate(e.children):
                self.walk(c, role if i == len(e.children) - 1 else "test")
            return
        if k == "sizeof":
            return
        if k == "lambda":
            for n in sorted(self.lambda_names):
                self.out.append(("esc", n))
            return
        for c in e.children:
            self.walk(c, "value")


def _element_events(el: Element, lambda_names: frozenset[str],
                    quiet: Callable[[Expr], bool],
                    opaque: Callable[[Expr], bool]) -> tuple[Event, ...]:
    b = _EventBuilder(lambda_names, quiet, opaque)
    if el.kind == "decl" and el.decl is not None:
        d = el.decl
        if el.expr is not None:
            b.walk(el.expr, "value") if _strip(el.expr).kind != "name" else None
        if not d.static and not d.array:
            b.out.append(("assign", d.name, "decl=" if el.expr is not None else "decl",
                          el.expr))
        elif el.expr is not None and _strip(el.expr).kind == "name":
            b.out.append(("esc", _strip(el.expr).text))
    elif el.kind in ("cond", "switch") and el.expr is not None:
        b.walk(el.expr, "test")
    elif el.kind == "return":
        if el.expr is not None:
            b.walk(el.expr, "value")
        b.out.append(("ret", el.start))
    elif el.expr is not None:
        b.walk(el.expr, "test")
    return tuple(b.out)


# ---------------------------------------------------------------------------------------
# Values and conditions in a world

# (kind, value, constant name). Kinds: nonnull (the handle itself), const, status, ptr (a
# pointer known NULL or not), nonzero (a size: `sizeof(...)`, never 0, value unknown).
Value = tuple[str, int, str]


def _constant(e: Expr) -> Value | None:
    if e.kind == "number" and e.value is not None:
        return ("const", e.value, "")
    if e.kind == "name":
        if e.text in NULL_NAMES:
            return ("const", 0, "")
        if e.text in TRUE_NAMES:
            return ("const", 1, "")
        if e.text.startswith("STATUS_"):
            return ("status", int(e.text in SUCCESS_CODES), e.text)
    return None


class _Evaluator:
    def __init__(self, site: Site) -> None:
        self.site = site

    def is_site_call(self, e: Expr) -> bool:
        return (e.kind == "call" and e.start == self.site.call_start
                and e.callee == self.site.callee)

    def value(self, e: Expr, w: World) -> Value | None:
        e = _strip(e)
        k = e.kind
        if k == "name":
            if e.text in w.holders and w.state in (OPEN, RELEASED):
                return ("nonnull", 1, "")
            for name, kind, val, text in w.facts:
                if name == e.text:
                    return (kind, val, text)
            return _constant(e)
        if k == "number":
            return _constant(e)
        if k == "field" and e.op in (".", "->") and e.children:
            base = _plain_name(e.children[0])
            key = f"{base}.{e.text}"
            for name, kind, val, text in w.facts:
                if name == key:
                    return (kind, val, text)
            return None
        if k == "assign" and e.op == "=" and len(e.children) == 2:
            return self.value(e.children[1], w)
        if k == "comma" and e.children:
            return self.value(e.children[-1], w)
        if k == "cond" and len(e.children) == 3:
            # `NT_SUCCESS(status) ? sizeof(HANDLE) : 0`: the arm the test takes, if known.
            t = self.truth(e.children[0], w)
            return None if t is None else self.value(e.children[1 if t else 2], w)
        if k == "sizeof":
            return ("nonzero", 1, "")
        if k == "call" and self.is_site_call(e):
            for name, kind, val, text in w.facts:
                if name == RESULT:
                    return (kind, val, text)
            return None
        if k in ("call", "binary", "unary"):
            t = self.truth(e, w) if self._is_predicate(e) else None
            return None if t is None else ("const", int(t), "")
        return None

    @staticmethod
    def _is_predicate(e: Expr) -> bool:
        if e.kind == "call":
            return status_test(e.callee or "") is not None
        if e.kind == "binary":
            return e.op in COMPARISONS
        return e.kind == "unary" and e.op == "!"

    def truth(self, e: Expr, w: World) -> bool | None:
        """Whether a condition holds in a world (None: cannot tell)."""
        e = _strip(e)
        if e.kind == "unary" and e.op == "!" and e.children:
            t = self.truth(e.children[0], w)
            return None if t is None else not t
        test = status_test(e.callee or "") if e.kind == "call" and len(e.args) == 1 else None
        if test is not None:
            v = self.value(e.args[0], w)
            ok: bool | None = None
            if v is not None and v[0] == "status":
                ok = bool(v[1])
            elif v is not None and v[0] == "const":
                ok = v[1] >= 0
            if ok is None:
                return None
            return ok if test else not ok
        if e.kind == "binary" and e.op in COMPARISONS and len(e.children) == 2:
            a = self.value(e.children[0], w)
            b = self.value(e.children[1], w)
            if a is None or b is None:
                return None
            return _compare(e.op, a, b)
        if e.kind == "binary" and e.op in ("&&", "||") and len(e.children) == 2:
            x = self.truth(e.children[0], w)
            y = self.truth(e.children[1], w)
            if e.op == "&&":
                return False if x is False or y is False else (True if x and y else None)
            return True if x is True or y is True else (False if x is False and y is False
                                                        else None)
        if self._is_predicate(e):
            return None  # a malformed predicate (`NT_SUCCESS()`): value() would ask truth()
        v = self.value(e, w)
        if v is None:
            return None
        kind, val, _ = v
        if kind in ("nonnull", "ptr", "nonzero"):
            return bool(val)
        if kind == "const":
            return val != 0
        return not val  # a status used as a truth value: nonzero means it failed


def _compare(op: str, a: Value, b: Value) -> bool | None:
    if op in (">", ">=", "<", "<="):
        if a[0] == "const" and b[0] == "const":
            return {"<": a[1] < b[1], "<=": a[1] <= b[1], ">": a[1] > b[1],
                    ">=": a[1] >= b[1]}[op]
        flip = {"<": ">", ">": "<", "<=": ">=", ">=": "<="}
        if a[0] == "const" and a[1] == 0 and b[0] == "status":
            a, b, op = b, a, flip[op]
        if a[0] == "status" and b[0] == "const" and b[1] == 0:
            if op == "<":
                return not a[1]
            if op == ">=":
                return bool(a[1])
        return None
    eq = _equal(a, b)
    if eq is None:
        return None
    return eq if op == "==" else not eq


def _equal(a: Value, b: Value) -> bool | None:
    if a[0] == "const" and b[0] == "status":
        a, b = b, a
    if a[0] == "status" and b[0] == "const" and b[1] == 0:
        b = ("status", 1, "STATUS_SUCCESS")
    if a[0] == "status" and b[0] == "status":
        if a[2] and b[2]:
            return a[2] == b[2]
        exact, other = (a, b) if a[2] else (b, a)
        if not exact[2]:
            return None
        if exact[2] == "STATUS_SUCCESS":
            return bool(other[1])
        return False if exact[1] != other[1] else None
    if a[0] == "const" and b[0] == "const":
        return a[1] == b[1]
    if {a[0], b[0]} <= {"nonnull", "ptr", "nonzero", "const"}:
        p, c = (a, b) if a[0] != "const" else (b, a)
        if c[0] != "const" or c[1] != 0 or p[0] == "const":
            return None
        return not bool(p[1])  # non-null never equals NULL
    return None


# ---------------------------------------------------------------------------------------
# One site (or one parameter) through one function


class _SiteAnalysis:
    """The dataflow analysis of one site; `step` is the world-level transfer."""

    def __init__(self, owner: _FileAnalysis, fn: Function, site: Site,
                 interesting: frozenset[str], locals_: frozenset[str],
                 lambda_names: frozenset[str], shadowed: frozenset[str]) -> None:
        self.owner = owner
        self.fn = fn
        self.site = site
        self.interesting = interesting
        self.locals = locals_
        self.lambda_names = lambda_names
        self.shadowed = shadowed
        self.ev = _Evaluator(site)
        self.events: dict[int, tuple[tuple[Event, ...], tuple[bool, frozenset[str]]]] = {}
        # (id of an element, world) -> the worlds after it, while nothing is recorded
        # (`sink` None): the fixpoint brings a world to an element again on every round of
        # a loop and every join after it (on the samples nearly half of all steps, the
        # replay's included, repeat one taken before in the same analysis).
        self.stepped: dict[tuple[int, World], list[World]] = {}
        self.overflow = False
        # (kind, offset, callee, first release, variable passed)
        self.sink: list[tuple[str, int, str, int, str]] | None = None
        self.lost: list[tuple[int, World]] = []
        self.current = -1  # start of the element being replayed (for "lost" leaks)
        self.learning = True  # record what branches tell about untracked variables
        # The states at block entries, kept for traces (not the `Solution`, which holds
        # this analysis: a cycle the collector would have to find).
        self.entry_states: dict[int, State] | None = None

    def over_cap(self) -> bool:
        """Too many distinct paths (or steps in the file): the analysis gives up."""
        return self.overflow

    # -- lattice ------------------------------------------------------------------------
    def initial(self) -> State:
        if self.site.is_param:
            return frozenset({World(OPEN, frozenset({self.site.var}))})
        return frozenset({World(NONE)})

    def bottom(self) -> State:
        return None

    def join(self, a: State, b: State) -> State:
        return join_sets(a, b)

    def transfer(self, element: Element, state: State) -> State:
        if state is None:
            return None
        if self.owner.steps > MAX_STEPS_PER_FILE:
            self.overflow = True
            return state
        out: set[World] = set()
        for w in state:
            out.update(self.step(element, w))
        if len(out) > MAX_WORLDS:
            self.overflow = True
            return frozenset(sorted(out, key=repr)[:MAX_WORLDS])
        return frozenset(out)

    def edge(self, edge: Edge, state: State) -> State:
        if state is None:
            return None
        out = {w2 for w in state if (w2 := self.edge_world(edge, w)) is not None}
        return frozenset(out) if out else None

    # -- worlds -------------------------------------------------------------------------
    def edge_world(self, edge: Edge, w: World) -> World | None:
        if edge.exceptional:
            return None
        if edge.cond is not None and edge.kind in ("true", "false"):
            t = self.ev.truth(edge.cond, w)
            if t is not None and t != (edge.kind == "true"):
                return None
            if t is None and self.learning:
                w = self.learn(edge.cond, edge.kind == "true", w)
        elif edge.kind == "case" and edge.cond is not None and edge.case is not None:
            a = self.ev.value(edge.cond, w)
            b = self.ev.value(edge.case, w) or _constant(_strip(edge.case))
            if a is not None and b is not None and _equal(a, b) is False:
                return None
        elif edge.kind == "default" and edge.cond is not None:
            a = self.ev.value(edge.cond, w)
            if a is not None:
                for other in edge.src.succs:
                    if other.kind != "case" or other.case is None:
                        continue
                    b = self.ev.value(other.case, w) or _constant(_strip(other.case))
                    if b is not None and _equal(a, b) is True:
                        return None
        return _drop_result(w)

    def learn(self, cond: Expr, holds: bool, w: World) -> World:
        """What a branch tells about a variable nothing was known about (`status` after an
        unknown call, once `NT_SUCCESS(status)` was tested), so later tests agree with it."""
        e = _strip(cond)
        if e.kind == "unary" and e.op == "!" and e.children:
            return self.learn(e.children[0], not holds, w)
        fact: Fact | None = None
        test = status_test(e.callee or "") if e.kind == "call" and len(e.args) == 1 else None
        if test is not None:
            name = _value_name(e.args[0])
            ok = holds if test else not holds
            if name is not None:
                fact = (name, "status", int(ok), "")
        elif e.kind == "binary" and len(e.children) == 2 and e.op in COMPARISONS:
            left, right = _strip(e.children[0]), _strip(e.children[1])
            if left.kind != "name" or _constant(left) is not None:
                left, right = right, left
                op = {"<": ">", ">": "<", "<=": ">=", ">=": "<="}.get(e.op, e.op)
            else:
                op = e.op
            c = _constant(right)
            if left.kind == "name" and c is not None:
                name = left.text
                if op in ("==", "!="):
                    equal = holds if op == "==" else not holds
                    if equal:
                        fact = (name, c[0], c[1], c[2])
                    elif c == ("status", 1, "STATUS_SUCCESS"):
                        fact = (name, "status", 0, "")
                    elif c == ("const", 0, ""):
                        fact = (name, "nonnull", 1, "")
                elif c[0] == "const" and c[1] == 0 and op in ("<", ">="):
                    ok = holds if op == ">=" else not holds
                    fact = (name, "status", int(ok), "")
        elif e.kind == "name" and _constant(e) is None:
            fact = (e.text, "const", 0, "") if not holds else (e.text, "nonnull", 1, "")
        if fact is None or fact[0] in w.holders or fact[0] not in self.interesting:
            return w
        if any(f[0] == fact[0] for f in w.facts):
            return w
        return World(w.state, w.holders, w.facts | {fact}, w.ret, w.released_at)

    def step(self, el: Element, w: World) -> list[World]:
        self.owner.steps += 1
        key = id(el)
        cached = self.events.get(key)
        if cached is None:
            events = _element_events(el, self.lambda_names, self.owner.is_quiet,
                                     self.owner.is_opaque)
            cached = self.events[key] = (events, self._relevance(events))
        events, (opens, written) = cached
        # Worlds without the handle only care about the site's call and, before it, about
        # the variables the function tests: skip everything else.
        if (w.state in (FAILED, ESCAPED) or (w.state == RELEASED and not w.holders)) \
                and not opens:
            return [w]
        if w.state == NONE and not opens and not (written & self.interesting):
            return [w]
        recording = self.sink is not None
        if not recording:
            done = self.stepped.get((key, w))
            if done is not None:
                return done
        worlds = [w]
        for ev in events:
            nxt: list[World] = []
            for x in worlds:
                nxt.extend(self.apply(ev, x))
            worlds = nxt
        if el.kind not in ("cond", "switch"):
            worlds = [_drop_result(x) for x in worlds]
        out = [_canonical(x) for x in worlds]
        if not recording:
            self.stepped[(key, w)] = out
        return out

    def _relevance(self, events: tuple[Event, ...]) -> tuple[bool, frozenset[str]]:
        """Whether an element runs the site's call, and the variables it may change."""
        opens = False
        written: set[str] = set()
        for ev in events:
            kind = ev[0]
            if kind == "call":
                call = ev[1]
                assert isinstance(call, Expr)
                opens = opens or self.ev.is_site_call(call)
                written.update(n for a in call.args if (n := address_of_name(a)) is not None)
            elif kind == "assign" and isinstance(ev[1], str):
                written.add(ev[1])
            elif kind == "addr":
                written.add(str(ev[1]))
            elif kind == "opaque" and isinstance(ev[2], frozenset):
                written.update(str(n) for n in ev[2])
        return opens, frozenset(written)

    def apply(self, ev: Event, w: World) -> list[World]:
        kind = ev[0]
        if kind == "esc":
            name = str(ev[1])
            if name in w.holders and w.state == OPEN:
                return [World(ESCAPED)]
            return [w]
        if kind == "addr":
            name = str(ev[1])
            if name in w.holders and w.state in (OPEN, RELEASED):
                return [World(ESCAPED)]
            return [_kill_facts(w, name)]
        if kind == "opaque":
            names, written = ev[1], ev[2]
            assert isinstance(names, frozenset) and isinstance(written, frozenset)
            if w.state in (OPEN, RELEASED) and w.holders & names:
                return [World(ESCAPED)]
            for name in written:
                w = _kill_facts(w, str(name))
            return [w]
        if kind == "ret":
            if w.state == OPEN:
                return [World(w.state, w.holders, w.facts, int(str(ev[1])), w.released_at)]
            return [w]
        if kind == "assign":
            return [self.assign(w, ev)]
        if kind == "call":
            call = ev[1]
            assert isinstance(call, Expr)
            return self.call(w, call)
        return [w]

    def assign(self, w: World, ev: Event) -> World:
        _, lname, op, rhs = ev
        if op in ("decl", "decl=") and lname in self.shadowed and lname in w.holders:
            # A second variable of the same name in an inner scope: which one later code
            # means is a scope question this analysis does not answer; say nothing.
            return World(ESCAPED) if w.state == OPEN else w
        op = "=" if op == "decl=" else op
        rhs_e = rhs if isinstance(rhs, Expr) else None
        vname = _value_name(rhs_e) if rhs_e is not None and op == "=" else None
        alias = vname is not None and vname in w.holders and w.state in (OPEN, RELEASED)
        val = self.ev.value(rhs_e, w) if rhs_e is not None and op == "=" else None
        if lname is None or lname not in self.locals:
            if alias and w.state == OPEN:
                return World(ESCAPED)
            return w
        name = str(lname)
        w = self.kill(w, name)
        if w.state in (ESCAPED,):
            return w
        if alias:
            w = World(w.state, w.holders | {name}, w.facts, w.ret, w.released_at)
        if val is not None and val[0] != "nonnull" and name in self.interesting:
            w = World(w.state, w.holders, w.facts | {(name, val[0], val[1], val[2])}, w.ret,
                      w.released_at)
        return w

    def kill(self, w: World, name: str) -> World:
        """`name` gets a new value: it no longer holds the handle nor its facts."""
        w = _kill_facts(w, name)
        if name in w.holders:
            holders = w.holders - {name}
            if not holders and w.state == OPEN and not self.site.is_param:
                if self.sink is not None:
                    self.lost.append((self.current, w))
                return World(ESCAPED)
            w = World(w.state, holders, w.facts, w.ret, w.released_at)
        return w

    def call(self, w: World, call: Expr) -> list[World]:
        callee = call.callee or ""
        args = call.args
        if self.ev.is_site_call(call):
            return self.open(w, call)
        owner = self.owner
        routine = owner.routine_of(callee, call)
        # Other handle-creating calls overwrite their out variable.
        for i, a in enumerate(args):
            name = address_of_name(a)
            if name is None:
                continue
            if routine is not None and routine.handle_out_param == i:
                w = self.kill(w, name)
            elif name in w.holders and w.state in (OPEN, RELEASED):
                return [World(ESCAPED)]
            else:
                w = _kill_facts(w, name)
        if w.state not in (OPEN, RELEASED):
            return [w]
        for i, a in enumerate(args):
            name = _plain_name(a)
            if name is None or name not in w.holders:
                continue
            how = owner.param_effect(callee, call, routine, i)
            if how == "escape":
                if w.state == OPEN:
                    return [World(ESCAPED)]
                continue
            if how == "release":
                if w.state == RELEASED:
                    self.report("double", call, callee, w.released_at, name)
                    continue
                w = World(RELEASED, w.holders, w.facts, -1, owner.primary(call))
                continue
            if how == "use" and w.state == RELEASED:
                self.report("use", call, callee, w.released_at, name)
        return [w]

    def open(self, w: World, call: Expr) -> list[World]:
        site = self.site
        w = self.kill(w, site.var) if w.state in (OPEN, RELEASED) else w
        facts = frozenset(f for f in w.facts if f[0] != site.var)
        # Success of an open is taken as STATUS_SUCCESS itself (or a non-NULL pointer), so that
        # `status == STATUS_OBJECT_NAME_EXISTS` after it reads as false, as authors mean it.
        ok: Fact = (RESULT, site.status_kind, 1,
                    "STATUS_SUCCESS" if site.status_kind == "status" else "")
        # The I/O status block the open filled in says the same (`NT_SUCCESS(iosb.Status)`).
        routine = site.routine
        for i, a in enumerate(call.args):
            block = address_of_name(a)
            if block is not None and routine is not None and i < len(routine.params) and \
                    routine.params[i][0] == "IoStatusBlock" and block in self.interesting:
                facts = facts | {(f"{block}.Status", "status", 1, "STATUS_SUCCESS")}
        opened = World(OPEN, frozenset({site.var}), facts | {ok})
        return [opened, World(FAILED)]

    def report(self, kind: str, call: Expr, callee: str, released_at: int, var: str) -> None:
        if var in self.shadowed:
            return  # which of the variables of this name the call means is a scope question
        if self.sink is not None:
            self.sink.append((kind, self.owner.primary(call), callee, released_at, var))


def _kill_facts(w: World, name: str) -> World:
    if not w.facts:
        return w
    prefix = name + "."
    if any(f[0] == name or f[0].startswith(prefix) for f in w.facts):
        return World(w.state, w.holders, frozenset(
            f for f in w.facts if f[0] != name and not f[0].startswith(prefix)), w.ret,
            w.released_at)
    return w


def _drop_result(w: World) -> World:
    if w.facts and any(f[0] == RESULT for f in w.facts):
        return World(w.state, w.holders, frozenset(f for f in w.facts if f[0] != RESULT),
                     w.ret, w.released_at)
    return w


def _canonical(w: World) -> World:
    """Worlds in which nothing more can happen to the handle forget their details."""
    if w.state in (FAILED, ESCAPED) and (w.holders or w.facts or w.ret >= 0
                                         or w.released_at >= 0):
        return World(w.state)
    if w.state == RELEASED and not w.holders and (w.facts or w.released_at >= 0):
        return World(RELEASED)  # no variable names it any more: nothing can misuse it
    return w


# ---------------------------------------------------------------------------------------
# A file


@compact_pickle
@dataclass(frozen=True, slots=True)
class _FunctionShape:
    locals: frozenset[str]
    interesting: frozenset[str]
    lambda_names: frozenset[str]
    in_opaque: frozenset[tuple[int, str]]  # calls inside the arguments of header macros
    shadowed: frozenset[str]  # names declared more than once (inner scopes)
    types: dict[str, str]  # declared type of each local and parameter


class _FileAnalysis:
    def __init__(self, fir: FileIR, knowledge: Knowledge, mode: str) -> None:
        self.fir = fir
        self.knowledge = knowledge
        self.mode = mode
        self.defined: dict[str, list[Function]] = {}
        for f in fir.functions:
            if f.kind != "lambda":
                self.defined.setdefault(f.name, []).append(f)
        self.calls_by_start: dict[tuple[int, str], CallSite] = {}
        # Function id -> its calls of a routine that opens or closes a handle, with it.
        self.handle_calls: dict[int, list[tuple[CallSite, Routine]]] = {}
        for c, r in zip(fir.calls, call_routines(fir, knowledge), strict=True):
            self.calls_by_start.setdefault((c.start, c.callee), c)
            if r is not None and _starts_analysis(c, r) and c.callee not in self.defined:
                self.handle_calls.setdefault(id(c.function), []).append((c, r))
        self.summaries: dict[tuple[str, int], str] = {}
        self.in_progress: set[tuple[str, int]] = set()
        # (offset, why) of the first helper not followed, deeper than MAX_HELPER_DEPTH.
        self.too_deep: tuple[int, str] | None = None
        self.shapes: dict[int, _FunctionShape] = {}
        # Function id -> the lambdas written in it.
        self.lambdas: dict[int, list[Function]] = {}
        for f in fir.functions:
            if f.kind == "lambda" and f.parent is not None:
                self.lambdas.setdefault(id(f.parent), []).append(f)
        self.steps = 0  # world steps taken in this file (bounded by MAX_STEPS_PER_FILE)

    # -- knowledge ------------------------------------------------------------------------
    def routine_of(self, callee: str, call: Expr) -> Routine | None:
        if not callee or callee in self.defined:
            return None
        fn = call.children[0] if call.children else None
        if fn is not None and fn.kind == "field":
            return None  # obj->Fn(...): not the documented routine
        if call.scoped_callee:
            return None  # Ns::Fn(...): the namespace's own (`call_routines`)
        return self.knowledge.get(callee)

    def is_quiet(self, call: Expr) -> bool:
        routine = self.routine_of(call.callee or "", call)
        return routine is not None and routine.keeps_no_handle

    def is_opaque(self, call: Expr) -> bool:
        """A call of an upper-case name that neither the table nor the file defines: a macro
        from a header we cannot see (`IF_FAILED_ACTION_JUMP(status, ZwClose(h), Exit)`), whose
        arguments may be evaluated conditionally, repeatedly or not at all."""
        name = call.callee or ""
        if not _MACRO_NAME.match(name) or name in TRANSPARENT_MACROS or name in self.defined:
            return False
        return self.routine_of(name, call) is None

    def is_release(self, routine: Routine, index: int, call: Expr) -> bool:
        if routine.closes_handle_param != index:
            return False
        if routine.user_mode_only and self.mode != "user":
            return False
        if routine.closes_handle_flag:
            flag = routine.closes_handle_flag
            return any(n == flag for e in call.args for n in e.names())
        return True

    def param_effect(self, callee: str, call: Expr, routine: Routine | None, i: int) -> str:
        """What a call does with a handle passed as argument `i`: release, use, quiet
        (a use that is no use of the object, such as debug output), or escape."""
        if routine is not None:
            if self.is_release(routine, i, call):
                return "release"
            if routine.keeps_no_handle:
                return "quiet"
            if i < len(routine.params) and routine.params[i][1] == "in":
                return "use"
            return "escape"
        if callee in self.defined and not _is_member_call(call):
            summary = self.summary(callee, i)
            return {"release": "release", "borrow": "use"}.get(summary, "escape")
        return "escape"

    def primary(self, call: Expr) -> int:
        cs = self.calls_by_start.get((call.start, call.callee or ""))
        if cs is not None:
            return cs.name_start
        return call.children[0].start if call.children else call.start

    # -- helpers' summaries -------------------------------------------------------------
    def summary(self, name: str, index: int) -> str:
        key = (name, index)
        if key in self.summaries:
            return self.summaries[key]
        if key in self.in_progress:
            # Recursion (a registry tree copy calling itself): assume the inner call only
            # uses the handle; a body that also releases or stores it still comes out as
            # "release"/"escape" from its other paths, or mixed, which is "escape".
            return "borrow"
        if len(self.in_progress) >= MAX_HELPER_DEPTH:
            # Not kept in `summaries`: from a shallower call the helper is followed. Said
            # once a file, where it first happens (a chain of helpers cuts every 32 of them).
            fn = self.defined[name][0]
            if self.too_deep is None:
                self.too_deep = (fn.name_start, f"{fn.qualname}: a handle passed down more "
                                 f"than {MAX_HELPER_DEPTH} helpers is not followed")
            return "escape"
        self.in_progress.add(key)
        results: set[str] = set()
        for fn in self.defined.get(name, []):
            if index >= len(fn.params) or not fn.params[index].name or self.misread(fn):
                results.add("escape")
                continue
            p = fn.params[index]
            site = Site(p.name, fn.name_start)
            sol_worlds = self.run_site(fn, site, collect=False)
            if sol_worlds is None:
                results.add("escape")
                continue
            states = {w.state for w in sol_worlds[0]}
            if states <= {RELEASED} and states:
                results.add("release")
            elif states <= {OPEN} and states:
                results.add("borrow")
            else:
                results.add("escape")
        self.in_progress.discard(key)
        out = results.pop() if len(results) == 1 else "escape"
        self.summaries[key] = out
        return out

    # -- running ------------------------------------------------------------------------
    def shape(self, fn: Function) -> _FunctionShape:
        got = self.shapes.get(id(fn))
        if got is not None:
            return got
        locals_: set[str] = {p.name for p in fn.params if p.name}
        types: dict[str, str] = {p.name: p.type_text for p in fn.params if p.name}
        interesting: set[str] = set()
        copies: dict[str, set[str]] = {}
        in_opaque: set[tuple[int, str]] = set()
        shadowed: set[str] = set()
        for block in fn.cfg.blocks:
            for el in block.elements:
                if el.kind == "decl" and el.decl is not None and not el.decl.static:
                    if el.decl.name in locals_:
                        shadowed.add(el.decl.name)
                    locals_.add(el.decl.name)
                    types[el.decl.name] = el.decl.type_text
                if el.kind in ("cond", "switch") and el.expr is not None:
                    interesting.update(el.expr.names())
                for lhs, rhs in _copies(el):
                    copies.setdefault(lhs, set()).add(rhs)
                if el.expr is not None:
                    for c in el.expr.calls():
                        if self.is_opaque(c):
                            in_opaque.update((x.start, x.callee or "") for a in c.args
                                             for x in a.calls())
        # A variable copied into a tested one is tested too (`status = openStatus;`).
        todo = list(interesting)
        while todo:
            for src in copies.get(todo.pop(), ()):
                if src not in interesting:
                    interesting.add(src)
                    todo.append(src)
        lambda_names: set[str] = set()
        for f in self.lambdas.get(id(fn), ()):
            for s in f.body.walk():
                if s.expr is not None:
                    lambda_names.update(s.expr.names())
                for d in s.decls:
                    if d.init is not None:
                        lambda_names.update(d.init.names())
        got = _FunctionShape(frozenset(locals_), frozenset(interesting),
                             frozenset(lambda_names & locals_), frozenset(in_opaque),
                             frozenset(shadowed), types)
        self.shapes[id(fn)] = got
        return got

    def run_site(self, fn: Function, site: Site, collect: bool
                 ) -> tuple[frozenset[World], _SiteAnalysis, CFG] | None:
        """Solve one site; None when the analysis gave up. Returns the exit worlds."""
        if self.steps > MAX_STEPS_PER_FILE:
            return None
        shape = self.shape(fn)
        cfg = fn.cfg
        for learning in (True, False):
            an = _SiteAnalysis(self, fn, site, shape.interesting, shape.locals,
                               shape.lambda_names, shape.shadowed)
            an.learning = learning
            # Over the cap of distinct paths, this pass is thrown away: stop it there.
            sol = solve(cfg, an, exceptional=False, give_up=an.over_cap)
            if sol.complete and not an.overflow:
                break
        else:
            return None  # too many distinct paths even without learning: say nothing
        if collect:
            an.sink = []
            for block in cfg.reachable(exceptional=False):
                state = sol.entry.get(block.id)
                if state is None:
                    continue
                for el in block.elements:
                    an.current = el.start
                    state = an.transfer(el, state)
            an.entry_states = sol.entry
        exit_state = sol.entry.get(cfg.exit.id) or frozenset()
        return exit_state, an, cfg

    def analyze(self) -> HandleFacts:
        facts = HandleFacts()
        seen_misuse: set[tuple[str, int]] = set()
        out_of_steps = False
        for fn in self.fir.functions:
            calls = self.handle_calls.get(id(fn))
            if calls is None:
                continue
            sites: list[Site] = []
            released_params: set[str] = set()
            param_names = {p.name for p in fn.params if p.name}
            for c, r in calls:
                if r.handle_out_param is not None:
                    site = self.site_of(fn, c, r)
                    if site is not None:
                        sites.append(site)
                if r.closes_handle_param is not None and r.closes_handle_param < len(c.args):
                    name = _plain_name(c.args[r.closes_handle_param])
                    if name in param_names:
                        released_params.add(name or "")
            if not sites and not released_params:
                continue
            if self.misread(fn):
                facts.given_up.append(
                    (fn.name_start, f"{fn.qualname}: the parser could not read all of it"))
                continue
            facts.functions += 1
            for p in fn.params:
                if p.name in released_params:
                    sites.append(Site(p.name, fn.name_start))
            for site in sites:
                facts.sites += 1
                got = self.run_site(fn, site, collect=True)
                if got is None:
                    if self.steps > MAX_STEPS_PER_FILE:
                        # The file's limit, not this handle's paths: said once, where it
                        # was reached (a generated function opening 500 handles in a row
                        # gave 470 notices of "too many paths", one per handle).
                        if not out_of_steps:
                            out_of_steps = True
                            facts.given_up.append((fn.name_start, (
                                f"{fn.qualname} from `{site.var}` on, and in the functions "
                                f"after it: the file took the {MAX_STEPS_PER_FILE:,} steps "
                                "its handle analysis may take")))
                        continue
                    # Once per variable: a generated function opening thousands of handles
                    # in one variable gave as many notices, all on the function's name.
                    why = (fn.name_start, f"{fn.qualname}: `{site.var}` has too many paths")
                    if why not in facts.given_up:
                        facts.given_up.append(why)
                    continue
                exit_worlds, an, cfg = got
                for kind, offset, callee, rel, var in an.sink or []:
                    if (kind, offset) in seen_misuse:
                        continue
                    seen_misuse.add((kind, offset))
                    facts.misuses.append(Misuse(fn, kind, offset, callee, var, rel,
                                                site.offset))
                if site.is_param:
                    continue
                leak = self.leak_of(fn, site, an, cfg, exit_worlds)
                if leak is not None:
                    facts.leaks.append(leak)
        if self.too_deep is not None:
            facts.given_up.append(self.too_deep)
        facts.misuses.sort(key=lambda m: m.offset)
        return facts

    def misread(self, fn: Function) -> bool:
        """True when the parser could not read part of the function: its paths are guesses.
        An error node around the whole function is not one: the parser read the function
        and could not fit what is around it (in classpnp's debug.c, one ERROR node holds
        most of the file, with its complete functions)."""
        return any(s < fn.end and e > fn.body_start and not (s <= fn.start and e >= fn.end)
                   for s, e in self.fir.error_spans)

    def site_of(self, fn: Function, c: CallSite, r: Routine) -> Site | None:
        idx = r.handle_out_param
        if idx is None or idx >= len(c.args):
            return None
        var = address_of_name(c.args[idx])
        if var is None or var not in self.shape(fn).locals:
            return None  # a field, a global, a caller's pointer: not ours to release here
        if any(p.by_reference and p.name == var for p in fn.params):
            return None  # `HANDLE& h`: the caller's variable, handed back through it
        if (c.start, c.callee) in self.shape(fn).in_opaque:
            return None  # inside a header macro's arguments: when it runs is unknown
        if self.fir.language == "cpp" and \
                self.shape(fn).types.get(var, "").split()[-1:] != ["HANDLE"]:
            return None  # a C++ object (a handle wrapper with its own operator&, destructor)
        if r.handle_out_process_param is not None:
            if r.handle_out_process_param >= len(c.args):
                return None
            target = _strip(c.args[r.handle_out_process_param])
            if not (target.kind == "call" and target.callee in CURRENT_PROCESS) and not (
                    target.kind == "name" and target.text in CURRENT_PROCESS):
                return None
        kind = "status" if r.returns_status is not False else "ptr"
        return Site(var, c.name_start, c.start, c.callee, r, kind)

    def leak_of(self, fn: Function, site: Site, an: _SiteAnalysis, cfg: CFG,
                exit_worlds: frozenset[World]) -> Leak | None:
        exits: dict[int, World] = {}
        for w in exit_worlds:
            if w.state == OPEN:
                exits.setdefault(w.ret, w)
        lost = {off: w for off, w in an.lost}
        if not exits and not lost:
            return None
        end = max(fn.end - 1, fn.body_start)
        candidates: list[tuple[int, str, World]] = [
            (off if off >= 0 else end, "return" if off >= 0 else "end", w)
            for off, w in exits.items()]
        candidates += [(off, "overwrite", w) for off, w in lost.items()]
        candidates.sort(key=lambda c: c[0])
        offset, kind, _ = candidates[0]
        others = tuple(sorted({c[0] for c in candidates[1:] if c[0] != offset}))
        trace = _trace(an, cfg, site, kind, offset if kind != "end" else -1)
        return Leak(fn, site, offset, kind, others, trace)


def _copies(el: Element) -> Iterator[tuple[str, str]]:
    """(destination, source) of every plain copy `a = b` (or `T a = b;`) in an element, and
    of every flag computed from a test (`ok = NT_SUCCESS(status);`, `len = NT_SUCCESS(status)
    ? sizeof(h) : 0;`: a test of the flag is a test of what it was computed from)."""
    if el.kind == "decl" and el.decl is not None and el.expr is not None:
        yield from ((el.decl.name, src) for src in _sources(el.expr))
    if el.expr is None:
        return
    for e in el.expr.walk():
        if e.kind == "assign" and e.op == "=" and len(e.children) == 2:
            dst = _plain_name(e.children[0])
            if dst is not None:
                yield from ((dst, src) for src in _sources(e.children[1]))


def _sources(e: Expr) -> Iterator[str]:
    """The variables a stored value is taken from: a plain copy's, or those a test reads
    when the value is the test's answer (`NT_SUCCESS(status)`, `a == b`, `!x`, or a choice
    made on one of them)."""
    src = _value_name(e)
    if src is not None:
        yield src
        return
    s = _strip(e)
    if s.kind == "cond" and s.children:
        s = _strip(s.children[0])
    if _Evaluator._is_predicate(s):
        yield from s.names()


def _is_member_call(call: Expr) -> bool:
    fn = call.children[0] if call.children else None
    return fn is not None and fn.kind == "field"


# ---------------------------------------------------------------------------------------
# The path behind a leak


def _trace(an: _SiteAnalysis, cfg: CFG, site: Site, kind: str, target: int
           ) -> tuple[Step, ...]:
    """A shortest path from the site to the leaking exit, as trace steps: the open, each
    branch taken, the exit."""
    routine = site.callee or "the call"
    opened = Step(site.offset, f"`{site.var}` receives a new handle from {routine}")
    tail = _exit_step(site, kind, target, an)
    start = _find_site(cfg, site)
    if start is None:
        return (opened, tail)
    block0, idx0 = start
    entry = an.entry_states
    if entry is None:
        return (opened, tail)
    an.sink = None
    state = entry.get(block0.id) or frozenset()
    for el in block0.elements[:idx0]:
        state = an.transfer(el, state) or frozenset()
    first = [w for w0 in state for w in an.step(block0.elements[idx0], w0) if w.state == OPEN]
    # BFS over (block, element index, world).
    Node = tuple[int, int, World]
    parents: dict[Node, tuple[Node | None, Edge | None]] = {}
    queue: deque[Node] = deque()
    for w in first:
        n = (block0.id, idx0 + 1, w)
        parents[n] = (None, None)
        queue.append(n)
    blocks = {b.id: b for b in cfg.blocks}
    goal: Node | None = None
    while queue and len(parents) < MAX_TRACE_NODES:
        node = queue.popleft()
        bid, i, w = node
        block = blocks[bid]
        if kind == "overwrite" and w.state == OPEN and i < len(block.elements) and \
                block.elements[i].start == target:
            goal = node
            break
        if bid == cfg.exit.id and w.state == OPEN and w.ret == target:
            goal = node
            break
        if i < len(block.elements):
            an.current = block.elements[i].start
            for w2 in an.step(block.elements[i], w):
                if w2.state != OPEN:
                    continue
                n2 = (bid, i + 1, w2)
                if n2 not in parents:
                    parents[n2] = (node, None)
                    queue.append(n2)
            continue
        for e in block.succs:
            carried = an.edge_world(e, w)
            if carried is None:
                continue
            n2 = (e.dst.id, 0, carried)
            if n2 not in parents:
                parents[n2] = (node, e)
                queue.append(n2)
    if goal is None:
        return (opened, tail)
    edges: list[Edge] = []
    cur: Node | None = goal
    while cur is not None:
        prev, via = parents[cur]
        if via is not None:
            edges.append(via)
        cur = prev
    steps = [opened]
    for e in reversed(edges):
        if e.kind in ("true", "false") and e.cond is not None:
            steps.append(Step(e.cond.start, f"`{_short(e.cond)}` is {e.kind}"))
        elif e.kind == "case" and e.case is not None:
            steps.append(Step(e.case.start, f"case `{_short(e.case)}` is taken"))
    steps.append(tail)
    return tuple(steps)


def _exit_step(site: Site, kind: str, target: int, an: _SiteAnalysis) -> Step:
    if kind == "overwrite":
        return Step(target, f"`{site.var}` is overwritten while it holds the only copy of "
                            "the open handle")
    if kind == "return":
        return Step(target, f"returns with the handle in `{site.var}` still open")
    end = max(an.fn.end - 1, an.fn.body_start)
    return Step(end, f"leaves the function with the handle in `{site.var}` still open")


def _find_site(cfg: CFG, site: Site) -> tuple[Block, int] | None:
    for b in cfg.blocks:
        for i, el in enumerate(b.elements):
            if el.expr is None:
                continue
            for c in el.expr.calls():
                if c.start == site.call_start and c.callee == site.callee:
                    return b, i
    return None


def _short(e: Expr) -> str:
    text = e.render()
    return text if len(text) <= 60 else text[:57] + "..."


# ---------------------------------------------------------------------------------------
# Entry point, cached per file

def handle_facts(fir: FileIR, knowledge: Knowledge, mode: str) -> HandleFacts:
    """The handle analysis of a file (computed once, shared by DDI201/202/203)."""
    per: dict[tuple[int, str], HandleFacts] = fir.memo.setdefault("handles", {})
    key = (id(knowledge), mode)
    got = per.get(key)
    if got is not None:
        return got
    # The mode only changes what a user-mode-only closer (CloseHandle) does: a file that
    # calls none has one analysis for both modes (phase one runs the rules of a file
    # whose includes show no mode in both).
    same = (id(knowledge), "")
    got = per.get(same)
    if got is None:
        # Most files call nothing that opens or closes a handle: no site to start from,
        # and the analysis' per-file indexes would cost more than this scan.
        sites = [r for c, r in zip(fir.calls, call_routines(fir, knowledge), strict=True)
                 if r is not None and _starts_analysis(c, r)]
        got = (_FileAnalysis(fir, knowledge, mode).analyze() if sites else HandleFacts())
        if not any(r.user_mode_only for r in sites):
            per[same] = got
    per[key] = got
    return got


def _starts_analysis(c: CallSite, r: Routine) -> bool:
    """Whether `c`, a call of the documented routine `r`, is a direct call in a function
    that opens a handle or closes one: where the analysis of a function starts."""
    return (c.function is not None and not c.indirect
            and (r.handle_out_param is not None or r.closes_handle_param is not None))


def iter_leaks(facts: HandleFacts) -> Iterator[Leak]:
    yield from sorted(facts.leaks, key=lambda leak: leak.site.offset)


def misuses(facts: HandleFacts, kind: str) -> Iterable[Misuse]:
    return [m for m in facts.misuses if m.kind == kind]


def release_how(call: CallSite | None, knowledge: Knowledge) -> str:
    """How the release `call` released the handle, when a flag of the call did it
    (`ZwDuplicateObject` with `DUPLICATE_CLOSE_SOURCE`, which closes the source handle
    whether or not the duplication succeeds, so a failure path that closes it again closes
    it twice): " (ZwDuplicateObject with DUPLICATE_CLOSE_SOURCE closes it, even when it
    fails)"; "" for any other release."""
    r = knowledge.get(call.callee) if call is not None else None
    if call is None or r is None or not r.closes_handle_flag:
        return ""
    return f" ({call.callee} with {r.closes_handle_flag} closes it, even when it fails)"
