"""Per-file summaries: the first of the engine's two phases.

`summarize` turns one file's IR into a small `FileSummary` made of plain tuples, strings
and ints (picklable, no tree-sitter objects, no closures), so that it can be computed in a
worker process and cached by the file's content hash. It holds what the whole-program
phase (`project.py`) needs: the functions with their annotations, every call site, every
name used as a function-pointer value (registrations), role declarations, and, only for
the few functions that change or test the IRQL, a compact IRQL event graph built from the
function's CFG.

IRQL atoms (the values of the IRQL analysis) are tuples `(kind, lo, hi, origin, guard)`:
"a" an absolute rank `lo` set by a raise or a lock (origin: where; guard: the branch
conditions the path took to the raise, so that `if (c) acquire; ... if (c) release;` does
not leave a raised path behind the release), "e" the function's entry IRQL limited to
[lo, hi] by `KeGetCurrentIrql()` checks, "u" unknown (an IRQL restored from a value we
cannot follow: it never makes a finding).
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from functools import partial
from operator import attrgetter
from typing import TYPE_CHECKING, Any, NamedTuple

from ddilint.analyzer.cfg import Block, Edge, assertion
from ddilint.analyzer.ir import (
    Expr,
    FileIR,
    Function,
    FunctionRef,
    tested_name,
)
from ddilint.analyzer.mode import call_mode, own_mode
from ddilint.analyzer.pickling import compact_pickle
from ddilint.analyzer.preprocess import blank, int_value, split_macro_args
from ddilint.knowledge import IRQL_ORDER, Knowledge, call_routines

if TYPE_CHECKING:
    from ddilint.analyzer.irql_solve import Solution

Origin = tuple[str, int, int, str]  # path, line, column, what happened there
# A branch condition the path took to reach a raise: (condition text, truth value).
Guard = frozenset[tuple[str, bool]]
Atom = tuple[str, int, int, Origin | None, Guard]

NO_GUARD: Guard = frozenset()
ENTRY: Atom = ("e", 0, 4, None, NO_GUARD)

# Events of an IRQL graph (tuples so that they pickle small):
#   ("call", call_index, arg_keys)               a call of a (possibly) project function
#   ("raise", level, save_key, ret_key, origin)  level -1 when unknown
#   ("restore", key, level, origin)              back to the IRQL saved in `key` (or level)
#   ("acquire", lock_key, level, origin) / ("release", lock_key, origin)
#   ("narrow", lo, hi)                           an assertion on KeGetCurrentIrql()
#   ("at", call_index)                           the call of the routine whose raise,
#                                                restore, acquire or release follows
#   ("save", key)                                `key = KeGetCurrentIrql()`
#   ("forget", key)                              such a `key` written otherwise (assigned,
#                                                its address given to a call)
#   ("assume", cond, truth) / ("unassume", cond) a constant stored in a variable that the
#                                                branch condition `cond` tests, which it
#                                                makes `truth`; another write of it
Event = tuple[object, ...]

_IRQL_WORDS = {
    **IRQL_ORDER,
    "LOW_LEVEL": 0,
    "DISPATCH": 2,
    "CMCI_LEVEL": 3,
    "PROFILE_LEVEL": 3,
    "CLOCK_LEVEL": 3,
    "CLOCK1_LEVEL": 3,
    "CLOCK2_LEVEL": 3,
    "IPI_LEVEL": 3,
    "POWER_LEVEL": 3,
    "SYNCH_LEVEL": 3,
    "DRS_LEVEL": 3,
}
# Words whose presence in a function changes what its registrations mean: a KMDF timer or
# work item created with a passive execution level, an interrupt with PassiveHandling.
_MENTIONS = (b"WdfExecutionLevelPassive", b"PassiveHandling")
# Assertions that state the IRQL (`PAGED_CODE()` asserts IRQL <= APC_LEVEL in checked builds).
_PAGED = frozenset({"PAGED_CODE", "PAGED_CODE_LOCKED"})
_STORPORT_HEADERS = ("storport.h",)


def irql_of_text(text: str) -> int | None:
    """The rank of an IRQL written as a name or number (`DISPATCH_LEVEL`, `2`)."""
    t = text.strip().strip("()")
    if t in _IRQL_WORDS:
        return _IRQL_WORDS[t]
    if re.fullmatch(r"\d+", t):
        n = int(t)
        return n if n <= 2 else (4 if n in (15, 31) else 3)
    return None


class CallInfo(NamedTuple):
    """A call site: its index in `FileIR.calls`, callee, where it is.

    A named tuple, not a dataclass: a project has a hundred thousand of them, and the
    main process unpickles every one (a frozen dataclass's `__init__` each was 0.26 s of
    the 0.44 s it spent unpickling Windows-driver-samples; see `FileSummary.__reduce__`).
    """

    index: int  # type: ignore[assignment]  # a field, where tuple has a method
    callee: str
    name_start: int
    line: int
    column: int
    indirect: bool
    via: str
    function: int  # index of the enclosing function in FileSummary.functions, -1 if none
    scope: str = ""  # `Cls` of `Cls::Make(...)` (CallSite.scope)
    # The arguments written as a flag or IRQL constant (`TRUE`, `false`, `DISPATCH_LEVEL`):
    # (position, value). Only for calls of what may be a project function (not a routine
    # the knowledge table has, not through a macro).
    consts: tuple[tuple[int, int], ...] = ()


@compact_pickle
@dataclass(frozen=True, slots=True)
class IrqlGraph:
    """A function's CFG reduced to what changes or tests the IRQL."""

    entry: int
    exit: int
    events: tuple[tuple[Event, ...], ...]
    # src, dst, IRQL lo, hi allowed on the edge, condition text ("" if none), truth value,
    # and the variable tested ("" if none): then lo, hi are the range of the IRQL that
    # variable holds (saved by `("save", key)`), not of the current one.
    edges: tuple[tuple[int, int, int, int, str, bool, str], ...]
    params: tuple[str, ...]
    # The branch conditions that test a parameter the function never writes: (condition
    # text, the parameter's position, how it is tested (`flag_tests`)). What a caller
    # passes there as a constant tells which way such a test goes.
    param_tests: tuple[tuple[str, int, str, str], ...] = ()
    # The graph solved for the function alone, as if no callee changed the IRQL
    # (`irql_solve.solve_graph`): what the project model takes unless one does.
    alone: Solution | None = None


class FunctionSummary(NamedTuple):
    """One function of the file (a named tuple, as `CallInfo` is)."""

    name: str
    qualname: str
    kind: str
    class_name: str
    static: bool
    start: int
    name_start: int
    line: int
    column: int
    parent: int  # enclosing function's index (lambdas), -1 if none
    annotations: tuple[tuple[str, tuple[str, ...]], ...]
    calls: tuple[int, ...]  # indices into FileSummary.calls
    graph: IrqlGraph | None
    mentions: frozenset[str]
    irql_cap: int = 4  # PAGED_CODE(): the developer asserts IRQL <= APC_LEVEL on entry
    # The calls (indices into FileSummary.calls) that run only on the IRP_MJ_POWER side
    # of a test of the request's major function (`case IRP_MJ_POWER:` of a switch on
    # `MajorFunction`): in a dispatcher shared by several majors, what serves power.
    power_calls: tuple[int, ...] = ()


class RefInfo(NamedTuple):
    """A `FunctionRef` with its position."""

    ref: FunctionRef
    line: int
    column: int


class RoleDeclInfo(NamedTuple):
    """`DRIVER_DISPATCH Foo;` with its annotations."""

    function: str
    typedef: str
    annotations: tuple[tuple[str, tuple[str, ...]], ...]
    line: int
    column: int


@compact_pickle
@dataclass(frozen=True, slots=True)
class FileSummary:
    """Everything the whole-program phase needs from one file."""

    path: str
    functions: tuple[FunctionSummary, ...]
    calls: tuple[CallInfo, ...]
    refs: tuple[RefInfo, ...]
    role_decls: tuple[RoleDeclInfo, ...]
    prototypes: tuple[tuple[str, tuple[tuple[str, tuple[str, ...]], ...]], ...]
    storport: bool
    power_pagable: bool
    # Its `#include` targets as written, but those in a branch on the build's mode (see
    # `mode_includes`); the mode they show and the mode what it defines and calls shows
    # ("kernel", "user", "" for none): see `ddilint.analyzer.mode`.
    includes: tuple[str, ...] = ()
    header_mode: str = ""
    call_mode: str = ""
    # It declares a StorPort virtual miniport (`STOR_FEATURE_VIRTUAL_MINIPORT`,
    # `VIRTUAL_HW_INITIALIZATION_DATA`), in code that is compiled.
    virtual_miniport: bool = False
    # Its includes in a branch only one mode compiles: (target as written, the mode).
    sided_includes: tuple[tuple[str, str], ...] = ()

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        # The records as plain tuples, made named tuples again without a Python-level
        # `__new__` call each.
        return _file_summary, (
            self.path, tuple(map(tuple, self.functions)), tuple(map(tuple, self.calls)),
            tuple((tuple(r.ref), r.line, r.column) for r in self.refs),
            tuple(map(tuple, self.role_decls)), self.prototypes, self.storport,
            self.power_pagable, self.includes, self.header_mode, self.call_mode,
            self.virtual_miniport, self.sided_includes)


_as_call = partial(tuple.__new__, CallInfo)
_as_function = partial(tuple.__new__, FunctionSummary)
_as_ref = partial(tuple.__new__, FunctionRef)
_as_role_decl = partial(tuple.__new__, RoleDeclInfo)
_as_ref_info = partial(tuple.__new__, RefInfo)


def _file_summary(path: str, functions: tuple[tuple[Any, ...], ...],
                  calls: tuple[tuple[Any, ...], ...],
                  refs: tuple[tuple[tuple[Any, ...], int, int], ...],
                  role_decls: tuple[tuple[Any, ...], ...], *rest: Any) -> FileSummary:
    return FileSummary(path, tuple(map(_as_function, functions)), tuple(map(_as_call, calls)),
                       tuple(_as_ref_info((_as_ref(r), line, column)) for r, line, column in refs),
                       tuple(map(_as_role_decl, role_decls)), *rest)


_KEEP_ANNOTATIONS = frozenset({
    "_IRQL_requires_", "_IRQL_requires_max_", "_IRQL_requires_min_", "_Function_class_",
    "_Dispatch_type_", "__drv_dispatchType", "__drv_maxIRQL", "__drv_requiresIRQL",
    "__drv_minIRQL",
})


def _anns(anns: object) -> tuple[tuple[str, tuple[str, ...]], ...]:
    out: list[tuple[str, tuple[str, ...]]] = []
    for a in anns:  # type: ignore[attr-defined]
        if a.name in _KEEP_ANNOTATIONS:
            out.append((a.name, tuple(a.args)))
    return tuple(out)


def summarize(fir: FileIR, knowledge: Knowledge) -> FileSummary:
    """The summary of one parsed file."""
    path = fir.path
    pos = _positioner(fir)
    fn_index = {id(f): i for i, f in enumerate(fir.functions)}
    calls: list[CallInfo] = []
    by_fn: dict[int, list[int]] = {}
    data = fir.source.data
    routines = knowledge.routines
    told_calls = _calls_told(fir)
    for i, c in enumerate(fir.calls):
        line, col = pos(c.name_start)
        fi = fn_index.get(id(c.function), -1) if c.function is not None else -1
        consts: tuple[tuple[int, int], ...] = ()
        if i in told_calls and not c.via and c.callee not in routines:
            consts = _constant_args(data[c.name_start:c.end])
        calls.append(CallInfo(i, c.callee, c.name_start, line, col, c.indirect, c.via, fi,
                              c.scope, consts))
        if fi >= 0:
            by_fn.setdefault(fi, []).append(i)
    mentions: dict[int, set[str]] = {}
    code = _without_comments(data) if any(w in data for w in _MENTIONS) or (
        b"DO_POWER_PAGABLE" in data or b"VIRTUAL_" in data) else b""
    for word in _MENTIONS:
        for m in re.finditer(re.escape(word), code):
            for i, f in enumerate(fir.functions):
                if f.start <= m.start() < f.end:
                    mentions.setdefault(i, set()).add(word.decode())
    functions: list[FunctionSummary] = []
    tests_power = b"IRP_MJ_POWER" in data  # (before looking in each function)
    for i, f in enumerate(fir.functions):
        line, col = pos(f.name_start)
        own = by_fn.get(i, [])
        graph = None
        if _needs_graph(fir, f, own, knowledge) or (
                data.find(b"IRP_MJ_CREATE", f.body_start, f.end) >= 0
                and data.find(b"MajorFunction", f.body_start, f.end) >= 0):
            graph = build_graph(fir, f, own, knowledge)
        parent = fn_index.get(id(f.parent), -1) if f.parent is not None else -1
        cap = 1 if any(fir.calls[c].callee in _PAGED for c in own) else 4
        power: tuple[int, ...] = ()
        if own and tests_power and data.find(b"IRP_MJ_POWER", f.body_start, f.end) >= 0 and (
                data.find(b"MajorFunction", f.body_start, f.end) >= 0):
            power = major_only_calls(fir, f, own, "IRP_MJ_POWER")
        functions.append(FunctionSummary(
            f.name, f.qualname, f.kind, f.class_name, f.is_static, f.start, f.name_start,
            line, col, parent, _anns(f.annotations), tuple(own), graph,
            frozenset(mentions.get(i, ())), cap, power))
    refs = []
    for r in fir.refs:
        line, col = pos(r.offset)
        refs.append(RefInfo(r, line, col))
    role_decls = []
    for d in fir.role_decls:
        line, col = pos(d.start)
        role_decls.append(RoleDeclInfo(d.function, d.typedef, _anns(d.annotations), line, col))
    prototypes = tuple((name, _anns(anns)) for name, anns in fir.prototypes.items()
                       if _anns(anns))
    storport = any(inc.lower().rsplit("/", 1)[-1] in _STORPORT_HEADERS for inc in fir.includes)
    storport = storport or any(c.callee == "StorPortInitialize" for c in fir.calls)
    told = mode_includes(fir)
    shown = own_mode(told, (f.name for f in fir.functions if f.kind == "function")) or ""
    return FileSummary(path, tuple(functions), tuple(calls), tuple(refs), tuple(role_decls),
                       prototypes, storport, b"DO_POWER_PAGABLE" in code,
                       tuple(told), shown, file_call_mode(fir) or "",
                       _declares_virtual_miniport(code, fir.inactive),
                       tuple(fir.sided_includes))


_VIRTUAL_MINIPORT = re.compile(
    rb"\b(?:STOR_FEATURE_VIRTUAL_MINIPORT|VIRTUAL_HW_INITIALIZATION_DATA)\b")


def _declares_virtual_miniport(code: bytes, inactive: list[tuple[int, int]]) -> bool:
    """Does the file (`code`: its text without comments) name what only a StorPort virtual
    miniport uses, outside the `inactive` branches? A virtual miniport controls no hardware
    and may call the WDK's routines as any WDM driver does; the StorPort-only restriction
    is a physical one's."""
    return any(not any(s <= m.start() < e for s, e in inactive)
               for m in _VIRTUAL_MINIPORT.finditer(code))


def mode_includes(fir: FileIR) -> list[str]:
    """The file's includes that say what mode it is built for: all but those in a branch
    on the build's mode (`#if !defined(_KERNEL_MODE)`, in a file built for both)."""
    if not fir.mode_includes:
        return fir.includes
    dual = set(fir.mode_includes)
    return [i for i in fir.includes if i not in dual]


def file_call_mode(fir: FileIR) -> str | None:
    """The mode what the file defines and calls shows (None: none)."""
    return call_mode((f.name for f in fir.functions if f.kind != "lambda"),
                     (c.callee for c in fir.calls if not c.indirect))


_COMMENT = re.compile(rb"//[^\n]*|/\*.*?\*/", re.S)


def _without_comments(data: bytes) -> bytes:
    """The text with comments blanked (offsets kept), for word searches."""
    return _COMMENT.sub(lambda m: blank(m.group(0)), data)


def _positioner(fir: FileIR) -> Callable[[int], tuple[int, int]]:
    """A fast (line, column) of byte offsets for one file (the summary asks for many)."""
    starts = fir.source.line_starts
    data = fir.source.data
    size = len(data)
    find = bisect.bisect_right
    if data.isascii():  # a byte is a column: no slicing
        def ascii_position(offset: int) -> tuple[int, int]:
            offset = 0 if offset < 0 else (size if offset > size else offset)
            i = find(starts, offset) - 1
            return i + 1, offset - starts[i] + 1

        return ascii_position

    return fir.source.position  # (which keeps which lines are ASCII)


def _needs_graph(fir: FileIR, fn: Function, own: list[int], knowledge: Knowledge) -> bool:
    """Does the IRQL analysis need `fn`'s graph: does it change, read or test the IRQL,
    or call a routine of a low IRQL behind a test of a parameter (a caller passing a
    constant there may rule the call out: `IrqlGraph.param_tests`)?"""
    routines = call_routines(fir, knowledge)
    calls = fir.calls
    low = False
    for i in own:
        if calls[i].callee == "KeGetCurrentIrql":
            return True
        r = routines[i]
        if r is not None:
            if r.irql is not None:
                return True
            low = low or IRQL_ORDER.get(r.max_irql or "", 9) <= 1 or bool(r.irql_conditions)
    return low and _tests_a_parameter(fir.source.data, fn)


def _tests_a_parameter(data: bytes, fn: Function) -> bool:
    """Does `fn`'s body hold `if (Param)`, `if (!Param)` or `if (Param == ...)` (`!=`)
    for one of its parameters of a flag's or an IRQL's type?"""
    names = {p.name.encode() for p in fn.params
             if p.name and (p.type_text.split() or [""])[-1] in _FLAG_TYPES}
    return bool(names) and any(m.group(1) in names
                               for m in _FLAG_IF.finditer(data, fn.body_start, fn.end))


_FLAG_IF = re.compile(rb"\bif\s*\(\s*!?\s*([A-Za-z_]\w*)\s*(?:\)|[=!]=)")
# The declared types of a parameter that says how to run (a flag, an IRQL); not pointers,
# whose tests against NULL most functions start with.
_FLAG_TYPES = frozenset({"BOOLEAN", "BOOL", "bool", "LOGICAL", "KIRQL", "ULONG", "UINT",
                         "UCHAR", "int", "unsigned", "DWORD"})


# --------------------------------------------------------------------------- IRQL graph


def var_key(e: Expr | None) -> str:
    """A stable name for the place an IRQL is saved in (`&old` and `old` are the same)."""
    if e is None:
        return ""
    e = e.strip()
    while e.kind == "unary" and e.op in ("&", "*") and e.children:
        e = e.children[0].strip()
    return "".join(e.render().split())


def build_graph(fir: FileIR, fn: Function, own: list[int], knowledge: Knowledge) -> IrqlGraph:
    """The IRQL event graph of `fn` (whose calls are `own`, indices into fir.calls)."""
    by_start = calls_by_place(fir, own)
    cfg = fn.cfg
    path = fir.path
    ids = {b.id: n for n, b in enumerate(cfg.blocks)}
    edges: list[tuple[int, int, int, int, str, bool, str]] = []
    # Per block, per element: its events, the variables it writes (assigns, changes, or
    # gives the address of), and the constant it stores in its target, if it does.
    blocks: list[list[tuple[list[Event], set[str], str, str | None]]] = []
    held: set[str] = set()  # the variables an IRQL is saved in somewhere in the function
    # Flags that hold the answer of a test of the IRQL (`wait = KeGetCurrentIrql() <
    # DISPATCH_LEVEL;`): the test, for the branches on the flag (None: set by two tests).
    irql_flags: dict[str, Expr | None] = {}
    for b in cfg.blocks:
        items: list[tuple[list[Event], set[str], str, str | None]] = []
        for el in b.elements:
            target = ""
            value: Expr | None = None
            expr = el.expr
            if el.kind == "decl" and el.decl is not None:
                target, value = el.decl.name, el.decl.init
            elif expr is not None and expr.kind == "assign" and expr.op == "=":
                target, value = var_key(expr.children[0]), expr.children[1]
            written = {target} if target else set()
            evs: list[Event] = []
            if target and value is not None and _irql_ranges(value.strip(), True) != _ANY:
                # The flag holds the IRQL as the test saw it: a branch on the flag is a
                # test of that saved IRQL (`_saved_irql_test`).
                evs.append(("save", target))
                held.add(target)
                seen = irql_flags.setdefault(target, value)
                if seen is not value and (seen is None or seen.render() != value.render()):
                    irql_flags[target] = None
            if expr is not None:
                written.update(var_key(n.children[0]) for n in expr.walk() if n.children and (
                    n.kind == "assign" or (n.kind in ("unary", "postfix")
                                           and n.op in ("&", "++", "--"))))
                for ce in expr.calls():
                    ev = _call_event(ce, expr, target, knowledge, by_start, fir, path)
                    if ev is None:
                        continue
                    if ev[0] in _EFFECTS:
                        # The IRQL the routine itself is called at (its own maximum
                        # applies there): the state before the change.
                        idx = _call_index(ce, by_start)
                        if idx is not None:
                            evs.append(("at", idx))
                    evs.append(ev)
                    if ev[0] == "raise":
                        held.update(str(k) for k in ev[2:4] if k)
                    if target and _is_current_irql(ce) and _is_value_of(ce, expr):
                        evs.append(("save", target))  # `irql = KeGetCurrentIrql();`
                        held.add(target)
            items.append((evs, written, target, _constant(value)))
        blocks.append(items)
    # The edges once every block is read (a flag's test may come before its assignment in
    # the order of the blocks: a loop).
    for b in cfg.blocks:
        for edge in b.succs:
            ranges = _narrowing(edge)
            tested = ""
            if ranges == _ANY:
                tested, ranges = _saved_irql_test(edge, irql_flags)
            key = _condition_key(edge.cond) if edge.kind in ("true", "false") else ""
            # A range with a hole (`!= DISPATCH_LEVEL`) is an edge per part: what each
            # carries joins again where they lead.
            for lo, hi in ranges:
                edges.append((ids[b.id], ids[edge.dst.id], lo, hi, key, edge.kind == "true",
                              tested))
    flags = flag_tests({e[4] for e in edges if e[4]})
    events: list[tuple[Event, ...]] = []
    for items in blocks:
        flat: list[Event] = []
        for evs, written, target, constant in items:
            flat.extend(evs)
            saved = {str(ev[1]) for ev in evs if ev[0] == "save"}
            saved.update(str(k) for ev in evs if ev[0] == "raise" for k in ev[2:4] if k)
            # Any other value in a variable that holds an IRQL elsewhere (assigned, or its
            # address given to a call): its saved IRQL is gone (a later restore or test of
            # it knows nothing).
            flat.extend(("forget", key) for key in sorted(written & held - saved))
            # A variable a branch tests (`if (locked)`, `if (old == HIGH_LEVEL)`): a
            # constant stored in it tells how the test goes; any other write, nothing.
            for var in sorted(written & flags.keys()):
                for key, op, other in flags[var]:
                    truth = flag_truth(op, other, constant) if var == target else None
                    flat.append(("assume", key, truth) if truth is not None else
                                ("unassume", key))
        events.append(tuple(flat))
    params = tuple(p.name for p in fn.params)
    written_anywhere = {v for items in blocks for _evs, written, _t, _c in items
                        for v in written}
    param_tests = tuple(sorted(
        (key, params.index(var), op, other) for var, tests in flags.items()
        if var in params and var not in written_anywhere for key, op, other in tests))
    graph = IrqlGraph(ids[cfg.entry.id], ids[cfg.exit.id], tuple(events), tuple(edges),
                      params, param_tests)
    # Solved here, in phase one (in parallel): the project model's solve of most graphs.
    # (Imported here: irql_solve imports this module.)
    from ddilint.analyzer.irql_solve import no_callee_exit, solve_graph

    return replace(graph, alone=solve_graph(graph, no_callee_exit))


def _call_event(
    c: Expr, whole: Expr, target: str, knowledge: Knowledge,
    by_start: dict[int | tuple[int, str], int],
    fir: FileIR, path: str,
) -> Event | None:
    name = c.callee
    if name is None:
        return None
    r = None if c.scoped_callee else knowledge.routines.get(name)
    args = c.args
    line, col = fir.position(c.children[0].start if c.children else c.start)
    eff = r.irql if r is not None else None
    # An assertion inside an expression (as a statement the flow graph branches on it).
    asserted = assertion(c)
    if asserted is not None:
        lo, hi = _irql_test(asserted.strip(), True)
        if (lo, hi) != (0, 4):
            return ("narrow", lo, hi)
    if eff is None:
        idx = _call_index(c, by_start)
        if idx is None:
            return None
        return ("call", idx, tuple(var_key(a) for a in args))

    def arg(i: int | None) -> Expr | None:
        return args[i] if i is not None and 0 <= i < len(args) else None

    if eff.kind == "raise":
        level = irql_of_text(eff.level) if eff.level else None
        if level is None and eff.restore_param is not None:
            a = arg(eff.restore_param)
            level = irql_of_text(a.render()) if a is not None else None
        save = var_key(arg(eff.saved_param)) if eff.saved_param is not None else ""
        ret = target if eff.saved_param is None and _is_value_of(c, whole) else ""
        origin = (path, line, col, f"{name} raises to {_name(level)}")
        return ("raise", -1 if level is None else level, save, ret, origin)
    if eff.kind in ("restore", "lower"):
        a = arg(eff.restore_param)
        level = irql_of_text(a.render()) if a is not None else None
        origin = (path, line, col, f"{name} restores the IRQL")
        return ("restore", var_key(a), -1 if level is None else level, origin)
    if eff.kind == "acquire":
        level = irql_of_text(eff.level) if eff.level else None
        origin = (path, line, col, f"{name} raises to {_name(level)}")
        return ("acquire", var_key(arg(eff.key_param)), -1 if level is None else level, origin)
    if eff.kind == "release":
        origin = (path, line, col, f"{name} restores the IRQL")
        return ("release", var_key(arg(eff.key_param)), origin)
    return None


_FLAG_TEST = re.compile(
    r"^(!?)([A-Za-z_]\w*)$|^([A-Za-z_]\w*|\d\w*)(==|!=)([A-Za-z_]\w*|\d\w*)$")
_CONSTANT_NAME = re.compile(r"^(?:[A-Z][A-Z0-9_]*|true|false|nullptr)$")
_NAMED_VALUES = {"TRUE": 1, "true": 1, "FALSE": 0, "false": 0, "NULL": 0, "nullptr": 0,
                 **IRQL_ORDER}


# The constants worth keeping: the values of flags and IRQLs (every number, or NULL,
# would be most calls, for tests written of flags).
_CONSTANT_ARG = re.compile(r"TRUE|FALSE|true|false|[A-Z]+_LEVEL")


def _calls_told(fir: FileIR) -> set[int]:
    """The indices of the calls that have a flag or IRQL constant in their arguments (the
    innermost call around each of `fir.constant_marks`). Finding them from the few marks
    is cheap; looking into the text of every call was 2% of phase one."""
    marks = fir.constant_marks
    if not marks:
        return set()
    calls = fir.calls  # in the order of their names (`frontend._CALL_ORDER`)
    out: set[int] = set()
    for m in marks:
        # The innermost call around the mark is the last one named before it that ends
        # after it: back over those nested in an earlier argument, a few at most (a mark
        # outside every call would walk the whole file).
        last = bisect.bisect_right(calls, m, key=_NAME_START) - 1
        for k in range(last, max(last - 16, -1), -1):
            if calls[k].end > m:
                out.add(k)
                break
    return out


_NAME_START = attrgetter("name_start")


def _constant_args(seg: bytes) -> tuple[tuple[int, int], ...]:
    """The arguments of the call written `seg` (from its name to its `)`) that are a
    constant with a known value (`_CONSTANT_ARG`): (position, value)."""
    open_ = seg.find(b"(")
    if open_ < 0 or not seg.endswith(b")"):
        return ()
    body = seg[open_ + 1:-1]
    if b"/" in body or b'"' in body or b"'" in body or b"#" in body:
        return ()  # a comment, string or directive among the arguments: not worth it
    out = []
    for i, text in enumerate(split_macro_args(body.decode("utf-8", "replace"))):
        if _CONSTANT_ARG.fullmatch(text):
            value = _constant_value(text)
            if value is not None:
                out.append((i, value))
    return tuple(out)


def flag_tests(keys: set[str]) -> dict[str, list[tuple[str, str, str]]]:
    """Variable -> the branch conditions that test it: (condition key, "" / "!" / "==" /
    "!=", the other side of a comparison)."""
    out: dict[str, list[tuple[str, str, str]]] = {}
    for key in sorted(keys):
        m = _FLAG_TEST.match(key)
        if m is None:
            continue
        if m.group(2):
            out.setdefault(m.group(2), []).append((key, m.group(1), ""))
            continue
        left, op, right = m.group(3), m.group(4), m.group(5)
        for var, other in ((left, right), (right, left)):
            if not _CONSTANT_NAME.match(var) and not var[0].isdigit():
                out.setdefault(var, []).append((key, op, other))
    return out


def _constant(e: Expr | None) -> str | None:
    """The text of a constant (`TRUE`, `0`, `HIGH_LEVEL`) that `e` is, if it is one."""
    if e is None:
        return None
    s = e.strip()
    if s.kind == "number" or (s.kind == "name" and _CONSTANT_NAME.match(s.text)):
        return s.text
    return None


def _constant_value(text: str) -> int | None:
    return _NAMED_VALUES[text] if text in _NAMED_VALUES else int_value(text)


def flag_truth(op: str, other: str, constant: str | None) -> bool | None:
    """Whether the test (`op`, `other`) of a variable holds once `constant` is stored in
    it; None when that is not known."""
    if constant is None:
        return None
    value = _constant_value(constant)
    if op in ("", "!"):
        return None if value is None else (value != 0) == (op == "")
    if constant == other:
        equal: bool | None = True
    else:
        theirs = _constant_value(other)
        equal = None if value is None or theirs is None else value == theirs
    return None if equal is None else equal == (op == "==")


# Events of the routines that change the IRQL (an `("at", call_index)` goes before each).
_EFFECTS = frozenset({"raise", "restore", "acquire", "release"})


def _call_index(c: Expr, by_start: dict[int | tuple[int, str], int]) -> int | None:
    """The index in `FileIR.calls` of the call expression `c`, if it is one of them (the
    call of its callee at its place first: see `calls_by_place`)."""
    starts = (c.start, c.children[0].start) if c.children else (c.start,)
    callee = c.callee or ""
    for at in starts:
        idx = by_start.get((at, callee))
        if idx is not None:
            return idx
    for at in starts:
        idx = by_start.get(at)
        if idx is not None:
            return idx
    return None


def _condition_key(cond: Expr | None) -> str:
    """The text of a branch condition that can be matched with a later test of the same
    condition (no calls in it, short); "" otherwise."""
    if cond is None:
        return ""
    for e in cond.walk():
        if e.kind == "call" and e.callee != "KeGetCurrentIrql":
            return ""
        if e.kind in ("assign", "postfix") or (e.kind == "unary" and e.op in ("++", "--")):
            return ""
    text = "".join(cond.strip().render().split())
    return text if len(text) <= 120 else ""


def _is_value_of(c: Expr, whole: Expr) -> bool:
    """Is the call `c` the value assigned by `whole` (or `whole` itself)?"""
    if whole is c:
        return True
    if whole.kind == "assign" and len(whole.children) == 2:
        return whole.children[1].strip() is c
    return whole.strip() is c


def _name(level: int | None) -> str:
    from ddilint.analyzer.context import irql_name

    return "an unknown IRQL" if level is None else irql_name(level)


_FLIP = {"<": ">", ">": "<", "<=": ">=", ">=": "<=", "==": "==", "!=": "!="}
# IRQL ranges an edge allows: one, or two around a level a test rules out.
Ranges = tuple[tuple[int, int], ...]
_ANY: Ranges = ((0, 4),)


def _narrowing(edge: Edge) -> Ranges:
    """The IRQL ranges a true/false edge on a `KeGetCurrentIrql()` test allows; also the
    IRP_MJ_CREATE side of a test of the request's major function (creates are sent at
    PASSIVE_LEVEL: dispatch routines, minifilter pre- and post-create callbacks)."""
    if _major_side(edge, "IRP_MJ_CREATE"):
        return ((0, 0),)
    if edge.kind not in ("true", "false") or edge.cond is None:
        return _ANY
    return _irql_ranges(edge.cond.strip(), edge.kind == "true")


def calls_by_place(fir: FileIR, own: list[int]) -> dict[int | tuple[int, str], int]:
    """The calls `own` (indices into fir.calls) by where they start (or their name does),
    and by that and their callee, for `_call_index`: the calls a macro's expansion makes
    all start where the macro is used (`if (fast) Unlock(...); else
    KeReleaseSpinLock(...)` in one macro are two calls at one place)."""
    by_start: dict[int | tuple[int, str], int] = {}
    for i in own:
        site = fir.calls[i]
        by_start.setdefault(site.start, i)
        by_start.setdefault(site.name_start, i)
        by_start.setdefault((site.start, site.callee), i)
        by_start.setdefault((site.name_start, site.callee), i)
    return by_start


def major_only_calls(fir: FileIR, fn: Function, own: list[int], major: str) -> tuple[int, ...]:
    """The calls of `fn` (of `own`, indices into fir.calls) in blocks that only the `major`
    side of a test of the request's major function reaches: a `case` of a switch on
    `MajorFunction`, or the side of `MajorFunction == major` (`!=`) where it holds. A case
    that falls through into the next keeps the next one's calls out (others reach them)."""
    cfg = fn.cfg
    sides = [e for b in cfg.blocks for e in b.succs if _major_side(e, major)]
    if not sides:
        return ()
    cut = {id(e) for e in sides}

    def reach(starts: list[Block], skip: set[int]) -> set[int]:
        seen = {id(b) for b in starts}
        work = list(starts)
        while work:
            b = work.pop()
            for e in b.succs:
                if id(e) not in skip and id(e.dst) not in seen:
                    seen.add(id(e.dst))
                    work.append(e.dst)
        return seen

    only = reach([e.dst for e in sides], set()) - reach([cfg.entry], cut)
    if not only:
        return ()
    by_start = calls_by_place(fir, own)
    out: set[int] = set()
    for b in cfg.blocks:
        if id(b) not in only:
            continue
        for el in b.elements:
            for e in (el.expr, el.decl.init if el.decl is not None else None):
                if e is None:
                    continue
                for c in e.calls():
                    idx = _call_index(c, by_start)
                    if idx is not None:
                        out.add(idx)
    return tuple(sorted(out))


def _major_side(edge: Edge, major: str) -> bool:
    """Whether `edge` is the `major` side of a test of the request's major function."""
    cond = edge.cond
    if cond is None:
        return False
    if edge.kind == "case":
        return (edge.case is not None and _is_major_function(cond.strip())
                and edge.case.strip().render() == major)
    if edge.kind not in ("true", "false"):
        return False
    e = cond.strip()
    if e.kind != "binary" or e.op not in ("==", "!=") or len(e.children) != 2:
        return False
    left, right = e.children[0].strip(), e.children[1].strip()
    if _is_major_function(right):
        left, right = right, left
    return (_is_major_function(left) and right.render() == major
            and (e.op == "==") == (edge.kind == "true"))


def _is_major_function(e: Expr) -> bool:
    """`Data->Iopb->MajorFunction`, `irpSp->MajorFunction`, `MajorFunction`."""
    return (e.kind == "field" and e.text == "MajorFunction") or (
        e.kind == "name" and e.text == "MajorFunction")


def _saved_irql_test(edge: Edge, flags: Mapping[str, Expr | None]) -> tuple[str, Ranges]:
    """For a true/false edge on a test of a variable against an IRQL (`irql < DISPATCH_LEVEL`
    where `irql = KeGetCurrentIrql()` before), or on a flag that holds such a test's answer
    (`flags`: `if (wait)` where `wait = KeGetCurrentIrql() < DISPATCH_LEVEL`): the variable
    and the ranges of the saved IRQL on the edge; ("", _ANY) otherwise. Whether the
    variable holds an IRQL is the project phase's question (the variables `("save", key)`
    and raises gave a state)."""
    cond = edge.cond
    if edge.kind not in ("true", "false") or cond is None:
        return "", _ANY
    e = cond.strip()
    tested = tested_name(e)
    test = flags.get(tested[0]) if tested is not None else None
    if tested is not None and test is not None:
        ranges = _irql_ranges(test.strip(), tested[1] == (edge.kind == "true"))
        return ("", _ANY) if ranges == _ANY else (tested[0], ranges)
    if e.kind != "binary" or len(e.children) != 2:
        return "", _ANY
    left, right = e.children[0].strip(), e.children[1].strip()
    if right.kind == "name" and irql_of_text(left.render()) is not None:
        left, right = right, left  # `PASSIVE_LEVEL == irql`
    if left.kind != "name" or irql_of_text(right.render()) is None:
        return "", _ANY
    ranges = _irql_ranges(e, edge.kind == "true", lambda x: x.strip() is left)
    return ("", _ANY) if ranges == _ANY else (var_key(left), ranges)


def _irql_test(e: Expr, holds: bool) -> tuple[int, int]:
    """The IRQL range in which the test `e` of `KeGetCurrentIrql()` has the truth value
    `holds` (all of them when it rules out a level in the middle)."""
    ranges = _irql_ranges(e, holds)
    return ranges[0] if len(ranges) == 1 else (0, 4)


def _irql_ranges(e: Expr, holds: bool,
                 subject: Callable[[Expr], bool] | None = None) -> Ranges:
    """The IRQL ranges in which the test `e` has the truth value `holds`: a comparison of
    `subject` (by default `KeGetCurrentIrql()`) with an IRQL. `!= DISPATCH_LEVEL` is two."""
    if e.kind != "binary" or e.op not in _FLIP or len(e.children) != 2:
        return _ANY
    left, right = e.children[0].strip(), e.children[1].strip()
    op = e.op
    about = subject or _is_current_irql
    if about(right) and not about(left):
        left, right, op = right, left, _FLIP[op]
    if not about(left):
        return _ANY
    k = irql_of_text(right.render())
    if k is None:
        return _ANY
    if not holds:
        op = {"<": ">=", ">": "<=", "<=": ">", ">=": "<", "==": "!=", "!=": "=="}[op]
    if op == "==":
        return ((k, k),)
    if op == "!=":
        if k == 0:
            return ((1, 4),)
        if k == 4:
            return ((0, 3),)
        return ((0, k - 1), (k + 1, 4))
    if op == "<":
        return ((0, k - 1),)
    if op == "<=":
        return ((0, k),)
    if op == ">":
        return ((k + 1, 4),)
    return ((k, 4),)


def _is_current_irql(e: Expr) -> bool:
    return e.kind == "call" and e.callee == "KeGetCurrentIrql"
