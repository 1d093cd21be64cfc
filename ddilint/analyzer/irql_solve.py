"""The IRQL flow inside one function: its IRQL graph (`summary.IrqlGraph`) solved to the
states at its exit, in its out-parameters and before each call.

A state is a set of atoms (`summary.Atom`): the entry IRQL within a range, an absolute
level with where it was set, or unknown. A call of a project function whose exit changes
the IRQL brings that exit in (`callee_exit`); with no such callee a graph's solution
depends on the function alone, so phase one solves it (`IrqlGraph.alone`) and the project
model solves again only the functions some callee changes the IRQL for.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from typing import NamedTuple

from ddilint.analyzer.summary import (
    ENTRY,
    NO_GUARD,
    Atom,
    Guard,
    IrqlGraph,
    Origin,
)

State = frozenset[Atom]
ENTRY_STATE: State = frozenset({ENTRY})
UNKNOWN: Atom = ("u", 0, 0, None, NO_GUARD)
Exit = tuple[State, tuple[tuple[int, State], ...]]  # exit state, out-parameter states
# Call index -> the exits of the project functions that call reaches.
CalleeExit = Callable[[int], Sequence[Exit]]


class Solution(NamedTuple):
    """What `solve_graph` finds in one function."""

    exit: State  # at its exit, relative to its entry (ENTRY_STATE: as it entered)
    outs: tuple[tuple[int, State], ...]  # (parameter position, what it holds at the exit)
    # (A tuple, not a dict, each: a graph that holds its solution stays hashable.)
    states: tuple[tuple[int, State], ...]  # call index, the IRQL before it (not the entry's)
    facts: tuple[tuple[int, Guard], ...]  # call index, what the tests of parameters say


# What the walk carries: the state, the variables' states, the tests on the way.
_Vars = frozenset[tuple[str, State]]
_Flow = tuple[State, _Vars, Guard]


def no_callee_exit(_ci: int) -> Sequence[Exit]:
    """The `callee_exit` of a function alone: no call changes the IRQL."""
    return ()


def solve_graph(g: IrqlGraph, callee_exit: CalleeExit) -> Solution:
    """IRQL states in a function whose graph is `g`: at its exit, in its out-parameters,
    before each call, and what the tests of its parameters say at each call (only where
    it tests one: `IrqlGraph.param_tests`). `callee_exit(ci)`: the exits of the project
    functions call `ci` reaches (none: the call leaves the IRQL as it is)."""
    states: dict[int, State] = {}
    entry_vars: _Vars = frozenset()
    init: _Flow = (ENTRY_STATE, entry_vars, NO_GUARD)
    succs: dict[int, list[tuple[int, int, int, str, bool, str]]] = {}
    for src, dst, lo, hi, key, truth, tested in g.edges:
        succs.setdefault(src, []).append((dst, lo, hi, key, truth, tested))
    at: dict[int, _Flow] = {g.entry: init}
    out_state: dict[int, _Flow] = {}
    work = deque([g.entry])
    visits: dict[int, int] = {}
    while work:
        b = work.popleft()
        visits[b] = visits.get(b, 0) + 1
        if visits[b] > 64:
            continue
        cur, vs, assumed = at[b]
        cur, vs, assumed = transfer(callee_exit, g.events[b], cur, vs, assumed, None)
        if out_state.get(b) == (cur, vs, assumed):
            continue
        out_state[b] = (cur, vs, assumed)
        for dst, lo, hi, key, truth, tested in succs.get(b, ()):
            carried_vs = vs
            if tested:
                carried, carried_vs = _saved_test(cur, vs, tested, lo, hi)
            else:
                carried = _clamp_state(cur, lo, hi) if (lo, hi) != (0, 4) else cur
            path = assumed
            if key:
                carried = frozenset(a for a in carried if (key, not truth) not in a[4])
                path = assumed | {(key, truth)}
            if not carried:
                continue
            old = at.get(dst)
            new: _Flow = (carried, carried_vs, path) if old is None else (
                _join(old[0], carried), _join_vars(old[1], carried_vs), old[2] & path)
            if old is None or new != old:
                at[dst] = new
                work.append(dst)
    # Replay each reached block once more to record the state before each call (and
    # what the tests of parameters said on the way).
    facts: dict[int, Guard] | None = {} if g.param_tests else None
    for b, (cur, vs, assumed) in at.items():
        transfer(callee_exit, g.events[b], cur, vs, assumed, states, facts)
    kept: dict[int, Guard] = {}
    if facts is not None:
        param_keys = {key for key, _i, _op, _other in g.param_tests}
        kept = {ci: f for ci, f in ((ci, frozenset(x for x in f if x[0] in param_keys))
                                    for ci, f in facts.items()) if f}
    exit_state, exit_vars, _assumed = at.get(g.exit, (ENTRY_STATE, entry_vars, NO_GUARD))
    if any(a[0] == "e" for a in exit_state):
        # It may return at its entry IRQL on some path: callers assume it does (the
        # other paths are often tied to a test the caller cannot see).
        exit_state = ENTRY_STATE
    else:
        exit_state = frozenset(_unguarded(a) for a in exit_state)
    var_map = dict(exit_vars)
    outs = tuple((i, frozenset(_unguarded(a) for a in var_map[p]))
                 for i, p in enumerate(g.params) if p in var_map)
    for k in list(states):
        if states[k] == ENTRY_STATE:
            del states[k]
    return Solution(exit_state, outs, tuple(states.items()), tuple(kept.items()))


def transfer(
    callee_exit: CalleeExit, events: Sequence[tuple[object, ...]], cur: State,
    vs: frozenset[tuple[str, State]], assumed: Guard, record: dict[int, State] | None,
    facts: dict[int, Guard] | None = None,
) -> tuple[State, frozenset[tuple[str, State]], Guard]:
    var = dict(vs)
    for ev in events:
        kind = ev[0]
        if kind == "call":
            ci = ev[1]
            assert isinstance(ci, int)
            if record is not None:
                record[ci] = record[ci] | cur if ci in record else cur
            if facts is not None:
                facts[ci] = facts[ci] & assumed if ci in facts else assumed
            exits = callee_exit(ci)
            if exits:
                before = cur
                new_cur: set[Atom] = set()
                arg_keys = ev[2]
                assert isinstance(arg_keys, tuple)
                for ex, outs in exits:
                    new_cur |= _subst(ex, before)
                    for idx, st in outs:
                        if idx < len(arg_keys) and arg_keys[idx]:
                            var[str(arg_keys[idx])] = frozenset(_subst(st, before))
                cur = frozenset(new_cur)
        elif kind == "raise":
            _, level, save, ret, origin = ev
            if save:
                var[str(save)] = cur
            if ret:
                var[str(ret)] = cur
            cur = frozenset({_abs(level, origin, assumed)})
        elif kind == "restore":
            _, key, level, origin = ev
            if key and str(key) in var:
                cur = var[str(key)]
            elif isinstance(level, int) and level >= 0:
                cur = frozenset({_abs(level, origin, assumed)})
            else:
                cur = frozenset({UNKNOWN})
        elif kind == "acquire":
            _, key, level, origin = ev
            var["lock:" + str(key)] = cur
            cur = frozenset({_abs(level, origin, assumed)})
        elif kind == "release":
            key = "lock:" + str(ev[1])
            cur = var.pop(key, frozenset({UNKNOWN}))
        elif kind in ("assume", "unassume"):
            # A flag set to a constant: what a later test of it answers holds on this
            # path (the guards of the atoms, as a branch's condition does), until the
            # flag is written again.
            key = str(ev[1])
            fact = (key, bool(ev[2])) if kind == "assume" else None
            cur = frozenset(_regard(a, key, fact) for a in cur)
            for k, st in var.items():
                var[k] = frozenset(_regard(a, key, fact) for a in st)
            assumed = frozenset(x for x in assumed if x[0] != key)
            if fact is not None:
                assumed = assumed | {fact}
        elif kind == "save":
            var[str(ev[1])] = cur
        elif kind == "forget":
            var[str(ev[1])] = _FORGOTTEN
        elif kind == "at":
            if record is not None:
                ci = ev[1]
                assert isinstance(ci, int)
                record[ci] = record[ci] | cur if ci in record else cur
                if facts is not None:
                    facts[ci] = facts[ci] & assumed if ci in facts else assumed
        elif kind == "narrow":
            lo, hi = ev[1], ev[2]
            assert isinstance(lo, int) and isinstance(hi, int)
            narrowed = _clamp_state(cur, lo, hi)
            cur = narrowed if narrowed else cur
    return cur, frozenset(var.items()), assumed


def _abs(level: object, origin: object, guard: Guard = NO_GUARD) -> Atom:
    if not isinstance(level, int) or level < 0:
        return UNKNOWN
    o = origin if isinstance(origin, tuple) else None
    return ("a", level, level, o, guard)


def _unguarded(a: Atom) -> Atom:
    return a if not a[4] else (a[0], a[1], a[2], a[3], NO_GUARD)


def _clamp_atom(a: Atom, lo: int, hi: int) -> Atom | None:
    kind = a[0]
    if kind == "a":
        return a if lo <= a[1] <= hi else None
    if kind == "e":
        nlo, nhi = max(a[1], lo), min(a[2], hi)
        return ("e", nlo, nhi, None, a[4]) if nlo <= nhi else None
    return a


def _regard(a: Atom, key: str, fact: tuple[str, bool] | None) -> Atom:
    """`a` with what its guard says about the condition `key` replaced by `fact` (or
    dropped, for None). Unknown atoms carry no guard."""
    if a[0] == "u":
        return a
    guard = frozenset(x for x in a[4] if x[0] != key)
    if fact is not None:
        guard = guard | {fact}
    return a if guard == a[4] else (a[0], a[1], a[2], a[3], guard)


def _clamp_state(st: State, lo: int, hi: int) -> State:
    if lo > hi:
        return frozenset()
    out = set()
    for a in st:
        c = _clamp_atom(a, lo, hi)
        if c is not None:
            out.add(c)
    return frozenset(out)


# What a variable that held an IRQL holds once it is written otherwise.
_FORGOTTEN: State = frozenset({UNKNOWN})


def _saved_test(cur: State, vs: frozenset[tuple[str, State]], tested: str, lo: int,
                hi: int) -> tuple[State, frozenset[tuple[str, State]]]:
    """Along an edge where the IRQL saved in the variable `tested` lies in [lo, hi]: the
    current state (limited too when it is still the saved IRQL) and the variables (the
    saved state limited). The current IRQL is the saved one when both states are the same,
    or both hold entry atoms only: each is then the function's entry IRQL on every path,
    however the tests on the way split its range. No state left: no path takes the edge
    (as with a test of `KeGetCurrentIrql()`).

    Nothing changes unless every path here saved an IRQL in the variable: a path that
    wrote it otherwise (assigned it, gave its address to a call) joins an unknown atom in."""
    held = dict(vs).get(tested)
    if held is None or any(a[0] == "u" for a in held):
        return cur, vs
    narrowed = _clamp_state(held, lo, hi)
    if not narrowed:
        return frozenset(), vs
    same = cur == held or (all(a[0] == "e" for a in cur) and all(a[0] == "e" for a in held))
    carried = _clamp_state(cur, lo, hi) if same else cur
    return carried, frozenset({**dict(vs), tested: narrowed}.items())


def _subst(ex: State, before: State) -> set[Atom]:
    """A callee's exit state (relative to its entry) seen from the caller."""
    out: set[Atom] = set()
    for a in ex:
        if a[0] == "e":
            out |= _clamp_state(before, a[1], a[2])
        else:
            out.add(a)
    return out


def _join(a: State, b: State) -> State:
    """The state where paths in `a` and in `b` meet. Atoms that differ only in their
    guards become one, guarded by what both guards say: the conditions known on every
    path that reaches it. Keeping them apart would keep every combination of the flags a
    function sets (one function of classpnp reached 2,937 atoms in one state, and took
    1.4 s); one atom per IRQL and origin is what the checks read, and a test of a flag
    still drops an atom whose every path set the flag otherwise."""
    if b <= a:
        return a
    u = a | b
    guards: dict[tuple[str, int, int, Origin | None], Guard] = {}
    for atom in u:
        base = atom[:4]
        g = guards.get(base)
        guards[base] = atom[4] if g is None else g & atom[4]
    if len(guards) == len(u):
        return u
    return frozenset((*base, g) for base, g in guards.items())


def _join_vars(a: frozenset[tuple[str, State]],
               b: frozenset[tuple[str, State]]) -> frozenset[tuple[str, State]]:
    if a == b:
        return a
    da, db = dict(a), dict(b)
    out = dict(da)
    for k, v in db.items():
        out[k] = _join(out[k], v) if k in out else v
    return frozenset(out.items())
