"""What happens to the NTSTATUS a routine returns: lost, or tested as a truth value.

Built on the reaching definitions of `values.py` and the shared dataflow solver:
- `lost_statuses`: the status of a call is thrown away: the call is an expression statement
  (`ZwOpenKey(...);`), cast to void, or stored in a local that is overwritten before any
  read, or never read, on some path (a forward "unread stores" analysis: a store stays
  pending until a read of its variable; a new store to the variable, or the function's
  exit, while it is pending loses it).
- `truth_tests`: a status used as a truth value (`if (status)`, `!ZwX(...)`, an operand of
  `&&`/`||` or `?:`, `status == TRUE`), where success (0) reads as false.

Which calls count is the caller's question (`StatusRoutine`): usually "a documented routine
that returns NTSTATUS", narrowed by DDI501 to routines whose outputs are valid only on
success.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from ddilint.analyzer.cfg import Edge, Element
from ddilint.analyzer.dataflow import join_reached, solve
from ddilint.analyzer.ir import Expr, Function, tested_name
from ddilint.analyzer.requirements import is_null
from ddilint.analyzer.values import Def, FunctionValues, Read, State, lvalue_key
from ddilint.knowledge import Routine

StatusRoutine = Callable[[Expr], Routine | None]
"""For a call expression: the routine whose status it returns, or None if not of interest."""

_BOOL_NAMES = {"TRUE": 1, "FALSE": 0, "true": 1, "false": 0}


# An I/O status block is a second status, not a result the caller goes on with.
_STATUS_OUTPUTS = frozenset({"IoStatusBlock"})


def _output_params(routine: Routine) -> list[tuple[int, str]]:
    """(position, name) of the results a routine writes through [out] parameters (its
    handle out-parameter and other [out] parameters; an I/O status block is a status, not
    a result)."""
    return [(i, name) for i, (name, direction) in enumerate(routine.params)
            if (direction == "out" or i == routine.handle_out_param)
            and name not in _STATUS_OUTPUTS]


def status_outputs(routine: Routine) -> list[str]:
    """The names of the results a routine writes through [out] parameters."""
    return [name for _i, name in _output_params(routine)]


def asks_for_outputs(call: Expr, routine: Routine) -> bool:
    """Does the call pass somewhere to write a result: not NULL for every output of
    `status_outputs` (`ZwFsControlFile(h, ..., FSCTL_UNLOCK_VOLUME, NULL, 0, NULL, 0)`)?
    A call whose outputs are all NULL gets no result that is valid only on success.
    Nor does a size query: NULL for every output but the lengths (`ZwQueryKey(key,
    KeyNameInformation, NULL, 0, &length)`). It is made to fail, and the length it asks
    for is written when the buffer is too small, which is how the caller learns the size
    to allocate."""
    args = call.args
    outputs = _output_params(routine)
    asked = [not (i < len(args) and is_null(args[i])) for i, _name in outputs]
    results = [a for a, (_i, name) in zip(asked, outputs, strict=True)
               if not _LENGTH_OUTPUT.search(name)]
    if results and len(results) < len(asked) and not any(results):
        return False  # a size query
    return any(asked)


# The [out] parameter that tells how many bytes the result needs (`ReturnLength`,
# `ResultLength`, `LengthNeeded`): written also when the buffer is too small.
_LENGTH_OUTPUT = re.compile(r"(?:Length|Size)(?:Needed|Required)?$")


def outputs_valid_on_success(routine: Routine) -> bool:
    """A routine that returns NTSTATUS and writes a handle or other result through an
    [out] parameter (knowledge table: `returns_status`, `handle_out_param`, directions)."""
    return routine.returns_status is True and bool(status_outputs(routine))


def callee_start(call: Expr) -> int:
    """Byte offset of the callee's name in a call (the primary location of findings)."""
    fn = call.children[0] if call.children else call
    if fn.kind == "field" and fn.end - len(fn.text) >= fn.start:
        return fn.end - len(fn.text)
    return fn.start


@dataclass(slots=True)
class StatusLoss:
    """A status thrown away. how: statement, void, overwritten, unread."""

    call: Expr
    routine: Routine
    how: str
    var: str = ""
    stored_at: int = 0
    lost_at: int = 0


def _status_call(e: Expr | None, is_status: StatusRoutine) -> tuple[Expr, Routine] | None:
    if e is None:
        return None
    s = e.strip()
    if s.kind == "call":
        r = is_status(s)
        if r is not None:
            return s, r
    return None


def lost_statuses(fv: FunctionValues, is_status: StatusRoutine) -> list[StatusLoss]:
    """Every status of an interesting call that `fv`'s function throws away."""
    out: list[StatusLoss] = []
    cfg = fv.fn.cfg
    reachable = {b.id for b in cfg.reachable(exceptional=False)}
    for block in cfg.blocks:
        if block.id not in reachable:
            continue
        for el in block.elements:
            if el.kind != "expr" or el.expr is None:
                continue
            top = el.expr
            void = top.kind == "cast" and top.text.replace(" ", "") in ("void", "VOID")
            found = _status_call(top, is_status)
            if found is not None:
                out.append(StatusLoss(found[0], found[1], "void" if void else "statement"))
    analysis = _UnreadStores(fv, is_status)
    sol = solve(cfg, analysis, exceptional=False)
    seen: set[int] = set()
    for block in cfg.blocks:
        if block.id not in sol.entry:
            continue
        for el, state in sol.before_each(block):
            if state is None:
                continue
            pending = {d for d, _guard in state[0]}
            for ev in fv.events(el):
                if isinstance(ev, Read):
                    pending = {d for d in pending if d.var != ev.var}
                    continue
                lost = [d for d in pending if d.var == ev.var]
                for d in lost:
                    if id(d) in seen:
                        continue
                    seen.add(id(d))
                    call, routine = analysis.stores[id(d)]
                    out.append(StatusLoss(call, routine, "overwritten", d.var, d.start,
                                          ev.start))
                pending = {d for d in pending if d.var != ev.var}
                if analysis.relevant(el, ev):
                    pending.add(ev)
    at_exit = sol.entry.get(cfg.exit.id)
    for d in sorted({d for d, _guard in at_exit[0]} if at_exit else (), key=lambda d: d.start):
        if id(d) in seen:
            continue
        seen.add(id(d))
        call, routine = analysis.stores[id(d)]
        out.append(StatusLoss(call, routine, "unread", d.var, d.start, 0))
    return out


# The flags a path has tested: (local variable, the value its test found).
Facts = frozenset[tuple[str, bool]]
# Stores of a status not read yet, each with the flags tested on the way to it (on every
# path), and the flags tested on the path so far; as a state, None: not reached.
PendingStores = tuple[frozenset[tuple[Def, Facts]], Facts]
PendingState = PendingStores | None


def _merge_pending(a: PendingStores, b: PendingStores) -> PendingStores:
    """Two different reached states of `_UnreadStores`: a store pending on both sides
    keeps only the flags tested on both ways to it."""
    guards: dict[int, tuple[Def, Facts]] = {id(d): (d, g) for d, g in a[0]}
    for d, g in b[0]:
        known = guards.get(id(d))
        guards[id(d)] = (d, g if known is None else known[1] & g)
    return frozenset(guards.values()), a[1] & b[1]


class _UnreadStores:
    """Forward analysis: stores of a status not yet read (on some path).

    A store made where a local flag was tested one way is not pending on a path that then
    finds the flag the other way, the flag unchanged: `if (Debugged) { s = ZwX(...); }`
    and later `if (Debugged && NT_SUCCESS(s))` read it on every path that stored it. (The
    flag's second test would otherwise be a way around the read that no run takes.)"""

    def __init__(self, fv: FunctionValues, is_status: StatusRoutine) -> None:
        self.fv = fv
        self.is_status = is_status
        self.stores: dict[int, tuple[Expr, Routine]] = {}
        # The variables whose tests say something of the path: the function's locals and
        # parameters passed by value, when no address of theirs is taken.
        self.flags = (fv.declared | {p.name for p in fv.fn.params if "&" not in p.type_text}
                      ) - fv.escaped

    def relevant(self, el: Element, d: Def) -> bool:
        """A store of an interesting status into a plain local whose value is not used by
        the enclosing expression."""
        if id(d) in self.stores:
            return True
        if d.var not in self.fv.declared or d.var in self.fv.escaped:
            return False  # parameters (C++ references, out-values) and fields outlive it
        if d.kind == "decl":
            found = _status_call(d.rhs, self.is_status)
        elif d.kind == "assign" and d.op == "=":
            top = el.expr
            if (el.kind != "expr" or top is None or top.kind != "assign"
                    or top.start != d.start or top.end != d.end):
                return False  # the assignment's value is used (`if ((s = ZwX()))`)
            found = _status_call(d.rhs, self.is_status)
        else:
            return False
        if found is None:
            return False
        self.stores[id(d)] = found
        return True

    def initial(self) -> PendingState:
        return frozenset(), frozenset()

    def bottom(self) -> PendingState:
        return None

    def join(self, a: PendingState, b: PendingState) -> PendingState:
        return join_reached(a, b, _merge_pending)

    def transfer(self, element: Element, state: PendingState) -> PendingState:
        if state is None:
            return None
        events = self.fv.events(element)
        if not events:
            return state
        pending, facts = state
        for ev in events:
            var = ev.var
            pending = frozenset(p for p in pending if p[0].var != var)
            if isinstance(ev, Def):
                # A flag written again says nothing more about the paths before.
                if any(f[0] == var for f in facts):
                    facts = frozenset(f for f in facts if f[0] != var)
                if any(f[0] == var for _d, g in pending for f in g):
                    pending = frozenset((d, frozenset(f for f in g if f[0] != var))
                                        for d, g in pending)
                if self.relevant(element, ev):
                    pending = pending | {(ev, facts)}
        return pending, facts

    def edge(self, edge: Edge, state: PendingState) -> PendingState:
        if state is None or edge.kind not in ("true", "false") or edge.cond is None:
            return state
        tested = tested_name(edge.cond)
        if tested is None:
            return state
        var, value = tested
        if var not in self.flags:
            return state
        value = value == (edge.kind == "true")
        pending, facts = state
        pending = frozenset(p for p in pending if (var, not value) not in p[1])
        return pending, facts | {(var, value)}


@dataclass(slots=True)
class TruthTest:
    """A status used as a truth value. `tested` is the expression tested; `call` the call
    whose status it is; `how` says in what position (condition, !, &&, ||, ?:, == TRUE)."""

    tested: Expr
    call: Expr
    routine: Routine
    how: str


def truth_tests(fn: Function, values: Callable[[], FunctionValues],
                is_status: StatusRoutine) -> list[TruthTest]:
    """Every place where `fn` tests an interesting status as a truth value, in a block that
    a path from the entry reaches. `values()` gives the function's reaching definitions;
    it is asked only when a variable tested is one that the function stores a status in.
    Most functions test their statuses with NT_SUCCESS and never need it (the values of a
    function are the dearest part of the rule)."""
    out: list[TruthTest] = []
    seen: set[int] = set()
    cfg = fn.cfg
    reachable = {b.id for b in cfg.reachable()}
    stores: set[str] | None = None
    fv: FunctionValues | None = None
    for block in cfg.blocks:
        if block.id not in reachable:
            continue
        for el in block.elements:
            if el.expr is None:
                continue
            for tested, how in _truth_positions(el):
                if tested.start in seen:
                    continue
                s = tested.strip()
                while s.kind == "comma" and s.children:
                    s = s.children[-1].strip()
                if s.kind == "call":
                    found = _status_call(s, is_status)
                elif s.kind == "assign" and s.op == "=" and len(s.children) == 2:
                    found = _status_call(s.children[1], is_status)
                else:
                    key = lvalue_key(s) if s.kind == "name" else None
                    if key is None:
                        continue
                    if stores is None:
                        stores = _status_stores(fn, is_status)
                    if key not in stores:
                        continue
                    if fv is None:
                        fv = values()
                    found = _stored_status(fv, key, fv.state_before(el), is_status)
                if found is not None:
                    seen.add(tested.start)
                    out.append(TruthTest(tested, found[0], found[1], how))
    return out


def _status_stores(fn: Function, is_status: StatusRoutine) -> set[str]:
    """The variables that `fn` stores the status of an interesting call in anywhere
    (`s = ZwX(...)`, `NTSTATUS s = ZwX(...)`): a superset of the variables whose reaching
    definitions can hold one."""
    out: set[str] = set()
    for block in fn.cfg.blocks:
        for el in block.elements:
            roots = [el.expr]
            if el.decl is not None:
                roots.append(el.decl.init)
                if _status_call(el.decl.init, is_status) is not None:
                    out.add(el.decl.name)
            for root in roots:
                if root is None:
                    continue
                for node in root.walk():
                    if (node.kind == "assign" and node.op == "=" and len(node.children) == 2
                            and _status_call(node.children[1], is_status) is not None):
                        key = lvalue_key(node.children[0])
                        if key is not None:
                            out.add(key)
    return out


def _truth_positions(el: Element) -> Iterator[tuple[Expr, str]]:
    e = el.expr
    if e is None:
        return
    if el.kind == "cond":
        yield e, "condition"
    for node in e.walk():
        if node.kind == "unary" and node.op == "!" and node.children:
            yield node.children[0], "!"
        elif node.kind == "binary" and node.op in ("&&", "||") and len(node.children) == 2:
            yield node.children[0], node.op
            yield node.children[1], node.op
        elif node.kind == "cond" and node.children:
            yield node.children[0], "?:"
        elif node.kind == "binary" and node.op in ("==", "!=") and len(node.children) == 2:
            left, right = node.children[0].strip(), node.children[1].strip()
            # tree-sitter reads TRUE/FALSE as boolean literals (`number`), or names.
            if right.kind in ("name", "number") and right.text in _BOOL_NAMES:
                yield node.children[0], f"{node.op} {right.text}"
            elif left.kind in ("name", "number") and left.text in _BOOL_NAMES:
                yield node.children[1], f"{node.op} {left.text}"


def _stored_status(fv: FunctionValues, key: str, state: State,
                   is_status: StatusRoutine) -> tuple[Expr, Routine] | None:
    """The interesting call whose status the variable `key` holds in `state`, if any."""
    if not fv.tracked(key) or key in fv.escaped:
        return None
    for d in sorted(fv.defs_of(key, state), key=lambda d: d.start):
        if d.kind in ("assign", "decl") and d.op == "=":
            found = _status_call(d.rhs, is_status)
            if found is not None:
                return found
    return None
