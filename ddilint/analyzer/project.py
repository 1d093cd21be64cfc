"""The project model: the whole-program phase, on per-file summaries only.

From the `FileSummary` of every file of the driver it builds
- the call graph, linked by name: a `static` function is seen from its own file only, a
  C++ method from its class (or by a unique name), a call through a function-pointer field
  reaches the functions some code stores into that field; where several drivers of a tree
  define the same name, the definition nearest to the caller (by folder) wins;
- the role of each function: registrations (`KeInitializeDpc`, `MajorFunction[...] =`,
  minifilter operation arrays, KMDF config macros, StorPort `HW_INITIALIZATION_DATA`
  fields, ...; the tables are in `knowledge/overlay.toml`), role typedef declarations,
  `_Function_class_`, `_Dispatch_type_`, SAL IRQL annotations and the user's config;
- exit-IRQL summaries of helpers that return at another IRQL than they were entered at,
  and the IRQL at each call site relative to the function's entry;
- the entry IRQL range of every function, iterated to a fixpoint over callers (recursion
  included), and whether every way in comes from the system process;
- the explanation: trace steps from the entry (its registration or annotation) through
  each call, the raise or lock, to the place a rule asks about.
"""

from __future__ import annotations

import os
from bisect import bisect_left
from collections import deque
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache, partial
from operator import attrgetter
from typing import Any, TypeVar

from ddilint.analyzer.budget import checkpoint
from ddilint.analyzer.context import ExecutionContext, irql_name
from ddilint.analyzer.ir import CallSite, FileIR, Function
from ddilint.analyzer.irql_solve import (
    ENTRY_STATE,
    State,
    _subst,
    solve_graph,
)
from ddilint.analyzer.mode import shared_folders
from ddilint.analyzer.pickling import compact_pickle
from ddilint.analyzer.summary import (
    ENTRY,
    Atom,
    CallInfo,
    FileSummary,
    FunctionSummary,
    Guard,
    flag_truth,
    irql_of_text,
)
from ddilint.findings import Location, TraceStep
from ddilint.knowledge import Knowledge, RoleInfo

_T = TypeVar("_T")
# A `Project.why` link: (function, its caller, call index into the caller, atom).
_Link = tuple[int, int, int, Atom | None]
_NO_STATES: dict[int, State] = {}
_NO_FACTS: dict[int, Guard] = {}
MAX_ROUNDS = 200
# Calls a story (a finding's message and trace) shows from its entry down to the function:
# the first STORY_HEAD and the last STORY_TAIL, the others counted. A chain of 2,000
# generated functions, each with a finding, wrote every chain whole: a 300 MB report.
STORY_HEAD = 4
STORY_TAIL = 12

_NULLS = frozenset({"NULL", "0", "nullptr", "(HANDLE)NULL", "(HANDLE)0", "NULL_HANDLE"})
IRP_MJ_POWER = 0x16
_IRP_MJ_POWER_NAMES = frozenset({"IRP_MJ_POWER", "0x16", "22"})


def _same_major(a: str, b: str) -> bool:
    return a == b or (a in _IRP_MJ_POWER_NAMES and b in _IRP_MJ_POWER_NAMES)


def _shared_dispatcher(sources: Sequence[RoleSource], major: str) -> bool:
    """Do role `sources` register the function for other IRP majors than `major` too? Such
    a dispatcher branches on the request's major function, and which of its calls serve
    `major` is a question of its paths: precision first, it is taken as for a dispatch
    routine set for every major in a loop (no power handler, no entry of `major`), except
    for the calls only its IRP_MJ_POWER side runs (`FunctionSummary.power_calls`, which
    DDI601 follows: `Project.nearest_entry`)."""
    return any(r.major and not _same_major(r.major, major) for r in sources)


@compact_pickle
@dataclass(frozen=True, slots=True)
class RoleSource:
    """Why a function has a role: a registration, a declaration, an annotation, config."""

    role: str
    why: str  # "KeInitializeDpc at dpc.c:40", "declared KDEFERRED_ROUTINE at dpc.c:8"
    location: Location | None
    major: str = ""  # the IRP_MJ_ code for dispatch routines, when known
    declared: bool = False  # from a declaration (role typedef, _Function_class_) only


@dataclass(slots=True)
class _Node:
    file: int
    index: int
    summary: FunctionSummary
    path: str
    roles: list[RoleSource] = field(default_factory=list)
    annotation: tuple[int, int, str, Location | None] | None = None  # lo, hi, why, where
    callers: list[tuple[int, int]] = field(default_factory=list)  # (caller node, call index)
    callees: list[tuple[int, int]] = field(default_factory=list)  # (callee node, call index)
    escapes: list[str] = field(default_factory=list)
    referenced: bool = False  # its name is used as a value somewhere (a callback)


def _elide(chain: Sequence[_T]) -> tuple[Sequence[_T], int]:
    """The calls of a story to show (`STORY_HEAD`, `STORY_TAIL`), and how many are left
    out between them."""
    if len(chain) <= STORY_HEAD + STORY_TAIL:
        return chain, 0
    return [*chain[:STORY_HEAD], *chain[-STORY_TAIL:]], len(chain) - STORY_HEAD - STORY_TAIL


def nearest_entries(callers: Sequence[Sequence[tuple[int, int]]], plain: Iterable[int],
                    side: Collection[tuple[int, int]]) -> list[int]:
    """For every node, the entry a breadth-first walk up from it over `callers` (each a
    list of (caller, call index), in order) meets first; -1 where it meets none.

    An entry is a node of `plain`, met at its distance when the walk takes it off its
    queue, or the caller of an edge (caller, call index) of `side`, met one call beyond the
    callee the walk is at when it looks at that edge: at the same distance, before the
    `plain` ones. No caller of a `side` edge is in `plain` (a dispatcher shared with other
    majors is no plain entry of one), so each entry is met first where it is nearest.
    Among equals the walk's order decides, and that is the order of the callers of the
    node asked about: the first of its callers that leads to the nearest kind of entry.

    So the entry of a node follows from those of its callers, and one multi-source walk
    down from all the entries at once, by (distance, kind), gives every node's in time
    linear in the edges."""
    size = len(callers)
    callees: list[list[int]] = [[] for _ in range(size)]
    for n, edges in enumerate(callers):
        for c, _ci in edges:
            callees[c].append(n)
    # (distance, 0: a `side` caller / 1: a `plain` entry) of the nearest entry
    key: list[tuple[int, int] | None] = [None] * size
    entry = [-1] * size
    waiting: dict[tuple[int, int], list[int]] = {}
    if plain_list := list(plain):
        waiting[(0, 1)] = plain_list
    if side and (beside := [n for n, edges in enumerate(callers)
                            if any(e in side for e in edges)]):
        waiting[(1, 0)] = beside
    while waiting:
        k = min(waiting)
        d, kind = k
        for n in waiting.pop(k):
            if key[n] is not None:
                continue
            key[n] = k
            if k == (0, 1):
                entry[n] = n
            else:
                before = (d - 1, kind)
                for e in callers[n]:
                    if k == (1, 0) and e in side:
                        entry[n] = e[0]
                        break
                    if key[e[0]] == before:
                        entry[n] = entry[e[0]]
                        break
            if nxt := [m for m in callees[n] if key[m] is None]:
                waiting.setdefault((d + 1, kind), []).extend(nxt)
    return entry


@lru_cache(maxsize=1 << 16)
def _dir(path: str) -> str:
    return os.path.dirname(path.replace("\\", "/"))


@lru_cache(maxsize=1 << 16)
def _near(a: str, b: str) -> tuple[bool, int]:
    """Can code in folder `a` call a function defined in folder `b` (the same folder, one
    inside the other, or siblings such as `drv/sys` and `drv/lib`), and how many folders
    they share. In a tree of many drivers, a name defined in a far folder is another
    driver's function."""
    la, lb = len(a.split("/")), len(b.split("/"))
    n = shared_folders(a, b)
    return n in (la, lb) or (la == lb and n == la - 1), n


def _delegates(name: str, caller: FunctionSummary | None, indirect: bool) -> bool:
    """`m_Detector.DpcRoutine()` in a method `DpcRoutine`: a call through an object of a
    method of the caller's own name forwards to another class (a recursive call is
    written `DpcRoutine()` or `this->DpcRoutine()`), so the caller's class is not what it
    reaches."""
    return indirect and caller is not None and bool(caller.class_name) and caller.name == name


def _inside(a: str, b: str) -> bool:
    """Is one of two folders the other or inside it?"""
    return a == b or a.startswith(b + "/") or b.startswith(a + "/")


def _nearest(candidates: Sequence[int], nodes: Sequence[_Node], path: str) -> list[int]:
    """The candidates defined nearest to `path`: the same file, else the near folders
    sharing the most folder names with it."""
    if not candidates:
        return []
    same = [c for c in candidates if nodes[c].path == path]
    if same:
        return same
    d = _dir(path)
    scores = []
    for c in candidates:
        ok, n = _near(d, _dir(nodes[c].path))
        if ok:
            scores.append((n, c))
    if not scores:
        return []
    best = max(s for s, _ in scores)
    return [c for s, c in scores if s == best]


# Above this many candidates, `_Places` finds the nearest by folder, not by looking at each.
FEW_CANDIDATES = 8


class _Places:
    """The folders the candidates of one name are defined in, to find those nearest to a
    file (`_nearest`) in time of what is found, not of how many there are: in a tree of
    4,000 drivers, each with its own `Helper` in another file than its caller, looking
    at every candidate for every caller took 52 s."""

    def __init__(self, candidates: Sequence[int], nodes: Sequence[_Node]) -> None:
        self.candidates = candidates
        # Positions in `candidates`, by file and by folder (its names, split).
        self.by_path: dict[str, list[int]] = {}
        self.by_dir: dict[tuple[str, ...], list[int]] = {}
        for i, c in enumerate(candidates):
            path = nodes[c].path
            self.by_path.setdefault(path, []).append(i)
            self.by_dir.setdefault(tuple(_dir(path).split("/")), []).append(i)
        self.dirs = sorted(self.by_dir)
        self.kids: dict[tuple[str, ...], list[tuple[str, ...]]] = {}
        for d in self.dirs:
            self.kids.setdefault(d[:-1], []).append(d)

    def nearest(self, path: str) -> list[int]:
        """`_nearest(candidates, nodes, path)`. The folders `_near` lets a file's code
        call into are its own and those inside it (sharing all its names: the most), its
        parent and siblings (all but one), and its other ancestors (fewer)."""
        same = self.by_path.get(path)
        if same:
            return [self.candidates[i] for i in same]
        here = tuple(_dir(path).split("/"))
        size = len(here)
        found: list[int] = []
        k = bisect_left(self.dirs, here)
        while k < len(self.dirs) and self.dirs[k][:size] == here:
            found.extend(self.by_dir[self.dirs[k]])
            k += 1
        if not found:
            for d in self.kids.get(here[:-1], ()):
                found.extend(self.by_dir[d])
            found.extend(self.by_dir.get(here[:-1], ()))
        if not found:
            for up in range(size - 2, 0, -1):
                if up_dir := self.by_dir.get(here[:up]):
                    found = up_dir
                    break
        return [self.candidates[i] for i in sorted(found)]


class Project:
    """The whole-program model of one driver (or tree of drivers)."""

    def __init__(
        self,
        summaries: Sequence[FileSummary],
        knowledge: Knowledge,
        roles: Mapping[str, str] | None = None,
        focus: Collection[str] | None = None,
        reader: Callable[[str], FileIR | None] | None = None,
    ) -> None:
        """The model of the driver made of `summaries`. With `focus` (paths), only the
        answers about the functions of those files are wanted (a pre-commit run on a few
        files, an editor's buffer): the IRQL flow is computed over their callers, direct
        and indirect (nothing else flows into them), and the exits over what those call;
        only the calls of those functions are linked, and only the references that name
        one of them looked at. The answers about the focused files are the same as in the
        whole model. `reader` gives a file's IR again (parsed as phase one did, or None),
        for the rare question about another function's code that the summaries do not
        answer (`file_ir`); without one, such questions get no answer."""
        self.knowledge = knowledge
        self._reader = reader
        self._irs: dict[str, FileIR | None] = {}
        # What the analyses that read the code again (`file_ir`) keep between questions.
        self.memo: dict[str, Any] = {}
        self.files = list(summaries)
        self.file_index = {s.path: i for i, s in enumerate(self.files)}
        self.config_roles = dict(roles or {})
        self.nodes: list[_Node] = []
        self.node_of: dict[tuple[int, int], int] = {}
        self._node_at: dict[tuple[int, int], int] = {}  # (file, start) -> node
        for fi, s in enumerate(self.files):
            for i, f in enumerate(s.functions):
                self.node_of[(fi, i)] = len(self.nodes)
                self._node_at.setdefault((fi, f.start), len(self.nodes))
                self.nodes.append(_Node(fi, i, f, s.path))
        self._index_names()
        # The functions whose IRQL the focus needs (`_upstream`), and those whose exits
        # it needs (what they call); None: every function.
        self._upstream: set[int] | None = None
        self._downstream: set[int] | None = None
        if focus is None:
            self._link_calls()
            self._find_roles()
        else:
            # Only the calls and references that can reach those functions are resolved:
            # the rest of a big tree is never linked (its functions get no callers,
            # callees or roles, and no answer is asked about them).
            wanted = {self.file_index[p] for p in focus if p in self.file_index}
            self._upstream = self._callers_of(
                [n for n, node in enumerate(self.nodes) if node.file in wanted])
            self._downstream = self._callees_of(self._upstream)
            self._link_calls(self._downstream)
            self._find_roles(self._downstream)
        self.exits: dict[int, tuple[State, tuple[tuple[int, State], ...]]] = {}
        self.call_states: dict[int, dict[int, State]] = {}
        # Per function, per call: what the tests of its parameters say on every path to
        # the call (only where the function tests a parameter: `IrqlGraph.param_tests`).
        self.call_facts: dict[int, dict[int, Guard]] = {}
        self._exit_summaries()
        self.irql_max: list[int] = [-1] * len(self.nodes)
        self.irql_min: list[int] = [5] * len(self.nodes)
        self.why: list[tuple[str, int, int, Atom | None] | None] = [None] * len(self.nodes)
        # The highest IRQL its roles give a function, and the one each call edge
        # (caller, callee, call index) brings: what a call behind a parameter test reads.
        self.role_max: list[int] = []
        self.edge_ev: dict[tuple[int, int, int], _Evaluated | None] = {}
        self._entry_irql()
        self.system: list[bool] = [False] * len(self.nodes)
        self.system_why: list[tuple[int, int] | None] = [None] * len(self.nodes)
        self._system_context()

    # -- names and the call graph -------------------------------------------------------
    def _index_names(self) -> None:
        self._resolved: dict[tuple[str, int, str, bool, bool, str], list[int]] = {}
        self._storport_dirs: dict[str, bool] = {}
        self._virtual_dirs: dict[str, bool] = {}
        self._places: dict[tuple[str, ...], _Places] = {}
        self._lists: dict[tuple[str, ...], list[int]] = {}
        self._stored: dict[str, list[int]] = {}
        self._entries: dict[tuple[str, str], list[int]] = {}
        self._why_memo: dict[int, tuple[int, int, tuple[_Link, ...]] | None] = {}
        self._system_roots: dict[int, int] = {}
        self._trees: dict[tuple[int, frozenset[int] | None], tuple[
            dict[int, tuple[int, int]], dict[int, int], dict[int, int]]] = {}
        self.by_name: dict[str, list[int]] = {}
        self.static_by_file: dict[tuple[int, str], list[int]] = {}
        self._static_names: set[str] = set()
        self.methods: dict[tuple[str, str], list[int]] = {}
        for n, node in enumerate(self.nodes):
            f = node.summary
            if f.kind == "lambda":
                continue
            if f.static and f.kind == "function":
                self.static_by_file.setdefault((node.file, f.name), []).append(n)
                self._static_names.add(f.name)
            else:
                self.by_name.setdefault(f.name, []).append(n)
            if f.class_name:
                self.methods.setdefault((f.class_name, f.name), []).append(n)
        # Function-pointer fields: `x->Callback = Fn;` / `{ .Callback = Fn }`.
        self.field_targets: dict[str, list[tuple[int, str]]] = {}
        for fi, s in enumerate(self.files):
            for r in s.refs:
                ref = r.ref
                key = ""
                if ref.kind == "field" and not ref.index:
                    key = ref.key
                elif ref.kind == "init" and ref.key.startswith("."):
                    key = ref.key[1:]
                if key:
                    self.field_targets.setdefault(key, []).append((fi, ref.name))

    def resolve_name(self, name: str, file: int, caller: FunctionSummary | None = None,
                     indirect: bool = False, scope: str = "") -> list[int]:
        """The project functions a call of `name` from `file` can reach (`scope`: the class
        or namespace the name was written with, `Cls` of `Cls::Make()`)."""
        if not self._may_reach(name, indirect):
            return []
        return self._targets(name, file, caller, indirect, scope)

    def _targets(self, name: str, file: int, caller: FunctionSummary | None,
                 indirect: bool, scope: str = "") -> list[int]:
        """`resolve_name` of a name `_may_reach` let through, memoized."""
        key = (name, file, caller.class_name if caller is not None else "", indirect,
               _delegates(name, caller, indirect), scope)
        hit = self._resolved.get(key)
        if hit is None:
            hit = self._resolved[key] = self._resolve(name, file, caller, indirect, scope)
        return hit

    def _may_reach(self, name: str, indirect: bool = False) -> bool:
        """Whether a project function can have `name` (most calls and references name a
        documented routine or a variable: they are settled by this set lookup)."""
        return name in self.by_name or name in self._static_names or (
            indirect and name in self.field_targets)

    def _closest(self, key: tuple[str, ...], candidates: list[int], path: str) -> list[int]:
        """`_nearest(candidates, ...)` to `path`; `key` names the list, whose `_Places`
        are kept for the next file that asks about it."""
        if len(candidates) <= FEW_CANDIDATES:
            return _nearest(candidates, self.nodes, path)
        places = self._places.get(key)
        if places is None:
            places = self._places[key] = _Places(candidates, self.nodes)
        return places.nearest(path)

    def _resolve(self, name: str, file: int, caller: FunctionSummary | None,
                 indirect: bool, scope: str = "") -> list[int]:
        path = self.files[file].path
        if scope and not indirect:
            # `Cls::Make()`: the methods of that class (a namespace has none: then as if
            # the name were written alone).
            named = self.methods.get((scope, name))
            if named:
                return self._closest(("method", scope, name), named, path)
        local = self.static_by_file.get((file, name))
        if local and not indirect:
            return local
        delegates = _delegates(name, caller, indirect)
        if caller is not None and caller.class_name and not delegates:
            own = self.methods.get((caller.class_name, name))
            if own:
                return self._closest(("method", caller.class_name, name), own, path)
        if not indirect:
            cands = self.by_name.get(name)
            if cands:
                return self._closest(("name", name), cands, path)
            return []
        out: list[int] = []
        skip = caller.class_name if caller is not None and delegates else ""
        key = ("methods", name, skip)
        meths = self._lists.get(key)
        if meths is None:
            meths = self._lists[key] = [c for c in self.by_name.get(name, ())
                                        if self.nodes[c].summary.class_name not in ("", skip)]
        near = self._closest(key, meths, path)
        if len({self.nodes[c].summary.class_name for c in near}) == 1:
            out.extend(near)
        stored = self._stored.get(name)
        if stored is None:
            # What code stores into a field of that name, the same for every caller.
            found: dict[int, None] = {}
            for fi, target in self.field_targets.get(name, ()):
                found.update(dict.fromkeys(self.resolve_name(target, fi)))
            stored = self._stored[name] = list(found)
        if out:
            have = set(out)
            out.extend(t for t in stored if t not in have)
            return out
        return list(stored)

    def _callers_of(self, seeds: list[int]) -> set[int]:
        """`seeds` and every function that calls one of them, directly or not: what
        `_reach(seeds, "callers")` gives once every call is linked, found by resolving
        only the calls that can reach one of them. A call reaches functions of the name
        it is written with, or (through a pointer field) of a name assigned to that field,
        and a lambda is called by the function around it."""
        nodes, files = self.nodes, self.files
        calls_of: dict[str, list[tuple[int, int]]] = {}  # name -> (caller node, call index)
        node_of = self.node_of
        for fi, s in enumerate(files):  # every call once, file by file
            for call in self._linkable(s.calls):
                if call.function >= 0:
                    calls_of.setdefault(call.callee, []).append(
                        (node_of[(fi, call.function)], call.index))
        fields_of: dict[str, set[str]] = {}  # function name -> fields it is assigned to
        for key, assigned in self.field_targets.items():
            for _fi, name in assigned:
                fields_of.setdefault(name, set()).add(key)
        seen = set(seeds)
        work = deque(seeds)
        while work:
            x = work.popleft()
            name = nodes[x].summary.name
            found = list(calls_of.get(name, ()))
            for key in fields_of.get(name, ()):
                found.extend(calls_of.get(key, ()))
            parent = self._lambda_parent(x)
            if parent >= 0:
                found.append((parent, -1))
            for n, ci in found:
                if n in seen:
                    continue
                if ci >= 0:
                    node = nodes[n]
                    call = files[node.file].calls[ci]
                    if x not in self._targets(call.callee, node.file, node.summary,
                                              call.indirect, call.scope):
                        continue
                seen.add(n)
                work.append(n)
        return seen

    def _callees_of(self, start: Collection[int]) -> set[int]:
        """`start` and every function they call, directly or not (`_reach(start,
        "callees")` once every call is linked), resolving only their calls."""
        nodes = self.nodes
        lambdas: dict[int, list[int]] = {}  # node -> the nodes of its lambdas
        for n in range(len(nodes)):
            parent = self._lambda_parent(n)
            if parent >= 0:
                lambdas.setdefault(parent, []).append(n)
        seen = set(start)
        work = deque(sorted(start))
        while work:
            n = work.popleft()
            node = nodes[n]
            reached: list[int] = list(lambdas.get(n, ()))
            for call in self._project_calls(n):
                reached.extend(self._targets(call.callee, node.file, node.summary,
                                             call.indirect, call.scope))
            for t in reached:
                if t not in seen:
                    seen.add(t)
                    work.append(t)
        return seen

    def _project_calls(self, n: int) -> Iterator[CallInfo]:
        """The calls of function node `n` that may reach a project function."""
        node = self.nodes[n]
        return self._linkable(map(self.files[node.file].calls.__getitem__,
                                  node.summary.calls))

    def _linkable(self, calls: Iterable[CallInfo]) -> Iterator[CallInfo]:
        """Those of `calls` that may reach a project function (`_may_reach`, inline: this
        is every call of the project, and most are of a documented routine or through a
        variable)."""
        by_name, static_names, fields = self.by_name, self._static_names, self.field_targets
        for call in calls:
            name = call.callee
            if name in by_name or name in static_names or (call.indirect and name in fields):
                yield call

    def _lambda_parent(self, n: int) -> int:
        """The node of the function a lambda node `n` is written in (-1: not a lambda)."""
        node = self.nodes[n]
        f = node.summary
        return self.node_of[(node.file, f.parent)] if f.kind == "lambda" and f.parent >= 0 else -1

    def _link_calls(self, only: Collection[int] | None = None) -> None:
        """Fill every function's callees and callers; with `only`, those of the functions
        in it (a set closed under callees: the callers lists then hold the callers among
        them, in the same order as in the whole model)."""
        targets_of = self._targets
        nodes = self.nodes
        for n in range(len(nodes)) if only is None else sorted(only):
            node = nodes[n]
            f = node.summary
            for call in self._project_calls(n):
                ci = call.index
                for t in targets_of(call.callee, node.file, f, call.indirect, call.scope):
                    node.callees.append((t, ci))
                    nodes[t].callers.append((n, ci))
            parent = self._lambda_parent(n)
            if parent >= 0:
                # A lambda runs where its enclosing function hands it over: same context.
                nodes[parent].callees.append((n, -1))
                node.callers.append((parent, -1))

    # -- roles --------------------------------------------------------------------------
    def _add_role(self, n: int, src: RoleSource) -> None:
        node = self.nodes[n]
        if src.role not in self.knowledge.roles:
            return
        if all((r.role, r.major, r.why) != (src.role, src.major, src.why) for r in node.roles):
            node.roles.append(src)

    def _refine_roles(self) -> None:
        for node in self.nodes:
            if not node.roles:
                continue
            if node.callers and not node.referenced and any(r.declared for r in node.roles):
                # Declared with a role type but only ever called directly (its address is
                # never taken): the type gave it a signature, the callers give its context.
                node.roles = [r for r in node.roles if not r.declared]
            have = {r.role for r in node.roles}
            drop = {generic for fine, generic in _REFINES.items() if fine in have}
            if drop:
                node.roles = [r for r in node.roles if r.role not in drop]
            if "dispatch_power" in have and _shared_dispatcher(
                    [r for r in node.roles if r.role.startswith("dispatch")], "IRP_MJ_POWER"):
                # Its other requests run at PASSIVE_LEVEL; so does all of it (see
                # `_shared_dispatcher`), not up to DISPATCH_LEVEL as a power handler
                # without DO_POWER_PAGABLE.
                node.roles = [replace(r, role="dispatch") if r.role == "dispatch_power" else r
                              for r in node.roles]

    def _find_roles(self, only: Collection[int] | None = None) -> None:
        """Roles, annotations and references of every function; with `only`, of the
        functions in it (what names them names one of them: the others are passed by)."""
        k = self.knowledge
        typedefs = k.role_typedefs
        flagged_dirs = {_dir(s.path) for s in self.files if s.power_pagable}
        names = None if only is None else {self.nodes[n].summary.name for n in only}
        for fi, s in enumerate(self.files):
            # Role typedef declarations and annotated prototypes.
            for d in s.role_decls:
                if names is not None and d.function not in names:
                    continue
                role = typedefs.get(d.typedef) or _generic_role(d.typedef)
                targets = self.resolve_name(d.function, fi)
                loc = Location(s.path, d.line, d.column)
                for t in targets:
                    if role:
                        major = _dispatch_type(d.annotations)
                        role2 = self._dispatch_role(role, major, s.path, flagged_dirs)
                        self._add_role(t, RoleSource(role2, f"declared {d.typedef} at "
                                                     f"{_short(s.path)}:{d.line}", loc, major,
                                                     declared=True))
                    self._annotate(t, d.annotations, loc)
            for name, anns in s.prototypes:
                if names is not None and name not in names:
                    continue
                for t in self.resolve_name(name, fi):
                    self._annotate(t, anns, None)
            for r in s.refs:
                if not self._may_reach(r.ref.name) or (
                        names is not None and r.ref.name not in names):
                    continue  # a variable or a routine: no Location to build
                self._registration(fi, s, r.ref, Location(s.path, r.line, r.column),
                                   flagged_dirs)
        for n, node in enumerate(self.nodes):
            f = node.summary
            if f.annotations:
                self._annotate(n, f.annotations, Location(node.path, f.line, f.column))
            if f.name == "DriverEntry" and f.kind == "function":
                self._add_role(n, RoleSource("driver_entry", "by its name",
                                             Location(node.path, f.line, f.column)))
        self._refine_roles()
        for node in self.nodes:
            f = node.summary
            cfg = self.config_roles.get(f.qualname) or self.config_roles.get(f.name)
            if cfg and cfg in self.knowledge.roles:
                # The user's word replaces what the sources suggested.
                node.roles = [RoleSource(cfg, "role set in the configuration",
                                         Location(node.path, f.line, f.column))]

    def _annotate(self, n: int, anns: Iterable[tuple[str, tuple[str, ...]]],
                  loc: Location | None) -> None:
        node = self.nodes[n]
        lo: int | None = None
        hi: int | None = None
        text = ""
        for name, args in anns:
            level = irql_of_text(args[0]) if args else None
            if name == "_Function_class_" and args:
                role = self.knowledge.role_typedefs.get(args[0].strip())
                if role:
                    where = loc or Location(node.path, node.summary.line, node.summary.column)
                    self._add_role(n, RoleSource(role, f"_Function_class_({args[0]})", where,
                                                 declared=True))
                continue
            if level is None:
                continue
            if name in ("_IRQL_requires_", "__drv_requiresIRQL"):
                lo = hi = level
            elif name in ("_IRQL_requires_max_", "__drv_maxIRQL"):
                hi = level
            elif name in ("_IRQL_requires_min_", "__drv_minIRQL"):
                lo = level
            else:
                continue
            text = f"{name}({args[0]})" if not text else f"{text} {name}({args[0]})"
        if hi is None and lo is None:
            return
        if node.annotation is not None and node.annotation[3] is not None and loc is None:
            return  # the definition's own annotation wins over a prototype's
        lo_v = lo if lo is not None else 0
        hi_v = hi if hi is not None else max(lo_v, 0)
        if hi is None:
            return  # only a minimum: no claim about how high it runs
        node.annotation = (lo_v, hi_v, text, loc)

    def _dispatch_role(self, role: str, major: str, path: str, flagged: set[str]) -> str:
        if role != "dispatch":
            return role
        if major and major not in _IRP_MJ_POWER_NAMES and major.startswith("IRP_MJ_"):
            return role
        if not major or major not in _IRP_MJ_POWER_NAMES:
            return role
        root = _dir(_dir(path))
        if not root and flagged:
            return role
        if root and any(d == root or d.startswith(root + "/") for d in flagged):
            return role
        return "dispatch_power"

    def _registration(self, fi: int, s: FileSummary, ref: object, loc: Location,
                      flagged: set[str]) -> None:
        from ddilint.analyzer.ir import FunctionRef

        assert isinstance(ref, FunctionRef)
        if ref.scope:  # `&Stream::OnDpc`: that class's method
            targets = self._closest(("method", ref.scope, ref.name),
                                    self.methods.get((ref.scope, ref.name), []), s.path)
        else:
            targets = self.resolve_name(ref.name, fi)
        if not targets:
            return
        k = self.knowledge
        where = f"{_short(s.path)}:{loc.line}"
        found: list[RoleSource] = []
        if ref.kind == "arg":
            for reg in k.registrations.get(ref.callee, ()):
                if str(reg.arg) != ref.index:
                    continue
                role = reg.role
                mentions = self._mentions(fi, ref.enclosing)
                if role == "isr" and "PassiveHandling" in mentions:
                    role = "isr_passive"
                elif (role == "dpc" and ref.callee.startswith("WDF_TIMER")
                      and "WdfExecutionLevelPassive" in mentions):
                    role = "wdf_passive_timer"
                if reg.system_if_null is not None and reg.otherwise:
                    a = ref.args[reg.system_if_null] if reg.system_if_null < len(ref.args) else ""
                    if a.replace(" ", "") not in _NULLS:
                        role = reg.otherwise
                found.append(RoleSource(role, f"{ref.callee} at {where}", loc))
        elif ref.kind == "field":
            role = k.registration_fields.get(ref.key, "") or _generic_field_role(ref.key)
            if role:
                # `MajorFunction[i] = F` in a loop: a dispatch routine for every major; it is
                # not taken as a power handler (a control device never gets power IRPs, a
                # filter copies DO_POWER_PAGABLE from below): precision first.
                major = ref.index if ref.key == "MajorFunction" else ""
                if ref.key == "MajorFunction" and not major.startswith("IRP_MJ_"):
                    major = ""
                role = self._dispatch_role(role, major, s.path, flagged)
                text = f"{ref.key}[{ref.index}]" if ref.index else ref.key
                found.append(RoleSource(role, f"{text} = {ref.name} at {where}", loc, major))
        elif ref.kind == "init":
            found.extend(self._init_roles(ref, s.path, where, loc, flagged))
        elif ref.kind == "var" and "DRIVER_DISPATCH" in ref.type_text:
            found.append(RoleSource("dispatch", f"{ref.key} = {ref.name} at {where}", loc))
        for t in targets:
            self.nodes[t].referenced = True
            if found:
                for src in found:
                    self._add_role(t, src)
            elif not (ref.kind == "arg" and ref.callee in ("sizeof", "ASSERT")):
                self.nodes[t].escapes.append(where)

    def _mentions(self, fi: int, qualname: str) -> frozenset[str]:
        for f in self.files[fi].functions:
            if f.qualname == qualname:
                return f.mentions
        return frozenset()

    def _init_roles(self, ref: object, path: str, where: str, loc: Location,
                    flagged: set[str]) -> list[RoleSource]:
        from ddilint.analyzer.ir import FunctionRef

        assert isinstance(ref, FunctionRef)
        k = self.knowledge
        t = ref.type_text
        if "FLT_OPERATION_REGISTRATION" in t:
            pos = ref.index
            major = ref.args[0] if ref.args else ""
            flags = ref.args[1] if len(ref.args) > 1 else ""
            if ref.key in (".PreOperation", ".PostOperation"):
                pos = "2" if ref.key == ".PreOperation" else "3"
                major = next((a.split("=", 1)[1].strip() for a in ref.args
                              if a.replace(" ", "").startswith(".MajorFunction=")), "")
                flags = next((a.split("=", 1)[1] for a in ref.args
                              if a.replace(" ", "").startswith(".Flags=")), "")
            if pos not in ("2", "3"):
                return []
            role = "filter_pre" if pos == "2" else "filter_post"
            skips = ""
            if major == "IRP_MJ_CREATE":
                role += "_create"
            elif role == "filter_pre" and major in _PASSIVE_REQUESTS:
                role = "filter_pre_passive"
            elif role == "filter_pre" and major in _PAGING_REQUESTS and (
                    "FLTFL_OPERATION_REGISTRATION_SKIP_PAGING_IO" in flags):
                # Only paging I/O brings a read or write at APC_LEVEL, and the filter
                # manager does not call this callback for it.
                role = "filter_pre_passive"
                skips = ", paging I/O skipped by FLTFL_OPERATION_REGISTRATION_SKIP_PAGING_IO,"
            kind = "pre" if pos == "2" else "post"
            return [RoleSource(role, f"{kind}-operation callback for {major or 'an operation'}"
                               f"{skips} in FLT_OPERATION_REGISTRATION at {where}", loc, major)]
        if "FLT_REGISTRATION" in t and ref.index in _FLT_REGISTRATION_CALLBACKS and (
                not ref.key):
            # Positional FLT_REGISTRATION: Size, Version, Flags, Contexts, Operations, then
            # the unload, instance setup and teardown callbacks.
            return [RoleSource("filter_callback", f"{_FLT_REGISTRATION_CALLBACKS[ref.index]} "
                               f"in FLT_REGISTRATION at {where}", loc)]
        if "DRIVER_DISPATCH" in t:
            major = ref.key.strip("[]") if ref.key.startswith("[") else ""
            if not major and ref.index.isdigit():
                major = "IRP_MJ_POWER" if int(ref.index) == IRP_MJ_POWER else f"#{ref.index}"
            role = self._dispatch_role("dispatch", major, path, flagged)
            return [RoleSource(role, f"PDRIVER_DISPATCH table at {where}", loc,
                               major if major.startswith("IRP_MJ_") else "")]
        if ref.key.startswith("."):
            role = (k.registration_fields.get(ref.key[1:], "")
                    or _generic_field_role(ref.key[1:]))
            if role:
                return [RoleSource(role, f"{ref.key} = {ref.name} at {where}", loc)]
        return []

    def _reach(self, seeds: list[int], way: str,
               why: list[tuple[int, int] | None] | None = None) -> set[int]:
        """`seeds` and every function reached from them through `way` ("callers" or
        "callees"), directly or not, breadth-first; with `why`, each function reached
        gets there the (function, call index) it was first reached from."""
        seen = set(seeds)
        work = deque(seeds)
        nodes = self.nodes
        while work:
            n = work.popleft()
            for t, ci in getattr(nodes[n], way):
                if t not in seen:
                    seen.add(t)
                    if why is not None:
                        why[t] = (n, ci)
                    work.append(t)
        return seen

    # -- IRQL: exit summaries and call-site states ---------------------------------------
    def _exit_summaries(self) -> None:
        within = self._downstream
        work = deque(n for n, node in enumerate(self.nodes) if node.summary.graph is not None
                     and (within is None or n in within))
        queued = set(work)
        rounds: dict[int, int] = {}
        while work:
            n = work.popleft()
            queued.discard(n)
            rounds[n] = rounds.get(n, 0) + 1
            if rounds[n] > MAX_ROUNDS:
                continue
            node = self.nodes[n]
            exit_state, outs, states = self._solve(n)
            if states:
                self.call_states[n] = states
            else:
                self.call_states.pop(n, None)
            new = (exit_state, outs)
            old = self.exits.get(n, (ENTRY_STATE, ()))
            if new == old:
                continue
            if new == (ENTRY_STATE, ()):
                self.exits.pop(n, None)
            else:
                self.exits[n] = new
            for caller, _ci in node.callers:
                if caller not in queued and (within is None or caller in within):
                    queued.add(caller)
                    work.append(caller)

    def _callee_exit(self, n: int, ci: int) -> list[tuple[State, tuple[tuple[int, State], ...]]]:
        out = []
        for t, c in self.nodes[n].callees:
            if c == ci and t in self.exits:
                out.append(self.exits[t])
        return out

    def _solve(self, n: int) -> tuple[State, tuple[tuple[int, State], ...], dict[int, State]]:
        """IRQL states in function `n`: at its exit, in out-parameters, before each call."""
        node = self.nodes[n]
        g = node.summary.graph
        states: dict[int, State] = {}
        if g is None:
            # No IRQL events of its own: calls run at entry until a callee returns raised.
            cur = ENTRY_STATE
            for ci in node.summary.calls:
                if cur != ENTRY_STATE:
                    states[ci] = cur
                for ex, _outs in self._callee_exit(n, ci):
                    cur = frozenset(_subst(ex, cur))
            return cur, (), states
        exits = self.exits
        if g.alone is not None and not any(t in exits for t, _ci in node.callees):
            # No callee changes the IRQL (yet): the solution phase one found for the
            # function alone, the same as solving it here.
            solution = g.alone
        else:
            solution = solve_graph(g, partial(self._callee_exit, n))
        if solution.facts:
            self.call_facts[n] = dict(solution.facts)
        else:
            self.call_facts.pop(n, None)
        # (ENTRY_STATE itself: a solution unpickled from phase one holds an equal copy.)
        exit_state = ENTRY_STATE if solution.exit == ENTRY_STATE else solution.exit
        return exit_state, solution.outs, dict(solution.states)

    # -- IRQL: entry ranges ---------------------------------------------------------------
    def _role_range(self, src: RoleSource) -> tuple[int, int] | None:
        info: RoleInfo | None = self.knowledge.roles.get(src.role)
        if info is None or info.irql_max is None:
            return None
        return (info.irql_min or 0, info.irql_max)

    def _entry_irql(self) -> None:
        nodes = self.nodes
        fixed: set[int] = set()
        for n, node in enumerate(nodes):
            if node.annotation is not None:
                lo, hi, _text, _loc = node.annotation
                self.irql_max[n] = hi
                self.irql_min[n] = lo
                self.why[n] = ("annotation", 0, 0, None)
                fixed.add(n)
                continue
            for i, src in enumerate(node.roles):
                rng = self._role_range(src)
                if rng is None:
                    continue
                if rng[1] > self.irql_max[n]:
                    self.irql_max[n] = rng[1]
                    self.why[n] = ("role", i, 0, None)
                self.irql_min[n] = min(self.irql_min[n], rng[0])
        self.role_max = list(self.irql_max)
        # Maxima: grow to a fixpoint over the call graph.
        def raise_max(n: int, t: int, ci: int, ev: _Evaluated | None) -> bool:
            if ev is None or ev[1] <= self.irql_max[t]:
                return False
            self.irql_max[t] = ev[1]
            self.why[t] = ("call", n, ci, ev[2])
            return True

        self._flow_to_callees(fixed, raise_max, self.edge_ev)
        # Minima: shrink to a fixpoint (functions nobody calls run at PASSIVE_LEVEL).
        for n, node in enumerate(nodes):
            if n not in fixed and not node.callers and not any(
                    self._role_range(r) for r in node.roles):
                self.irql_min[n] = 0
        irql_min = self.irql_min

        def lower_min(_n: int, t: int, _ci: int, ev: _Evaluated | None) -> bool:
            lo = ev[0] if ev is not None else 0
            if lo >= irql_min[t]:
                return False
            irql_min[t] = lo  # only ever down, at most five times per function
            return True

        self._flow_to_callees(fixed, lower_min)
        for n in range(len(nodes)):
            if self.irql_max[n] < 0:
                self.irql_max[n] = 0
            if self.irql_min[n] > self.irql_max[n]:
                self.irql_min[n] = min(self.irql_min[n], self.irql_max[n])
                self.irql_min[n] = min(self.irql_min[n], 4)

    def _flow_to_callees(
        self, fixed: set[int], update: Callable[[int, int, int, _Evaluated | None], bool],
        edges: dict[tuple[int, int, int], _Evaluated | None] | None = None,
    ) -> None:
        """Call `update(caller, callee, call index, the caller's IRQL at the call)` over
        every call edge to a callee not in `fixed`, until no callee changes: a worklist,
        where a function's calls are looked at again only when `update` changed it.

        With `edges`, keep there the IRQL each call edge brings, and take the IRQL at a
        call behind a test of a parameter from the callers whose arguments let it run
        (`_refined_range`): a function with such calls is looked at again whenever one of
        its edges changes."""
        nodes = self.nodes
        within = self._upstream
        work = deque(range(len(nodes)) if within is None else sorted(within))
        queued = set(work)
        call_facts = self.call_facts if edges is not None else {}
        while work:
            n = work.popleft()
            queued.discard(n)
            callees = nodes[n].callees
            if not callees:
                continue  # most functions call no project function
            lo_n, hi_n = self._range(n)
            states = self.call_states.get(n, _NO_STATES)
            facts = call_facts.get(n, _NO_FACTS)
            # At most calls nothing before them changed the IRQL: the entry range.
            at_entry = _evaluate(ENTRY_STATE, lo_n, hi_n)
            for t, ci in callees:
                if t in fixed or (within is not None and t not in within):
                    continue
                st = states.get(ci) if ci >= 0 else None
                f = facts.get(ci) if ci >= 0 else None
                if f:
                    lo_f, hi_f, _by = self._refined_range(n, f)
                    ev = _evaluate(st if st is not None else ENTRY_STATE, lo_f, hi_f)
                else:
                    ev = at_entry if st is None or st is ENTRY_STATE else _evaluate(
                        st, lo_n, hi_n)
                again = update(n, t, ci, ev)
                if edges is not None:
                    key = (n, t, ci)
                    if key not in edges or edges[key] != ev:
                        edges[key] = ev
                        again = again or t in call_facts
                if again and t not in queued:
                    queued.add(t)
                    work.append(t)

    def _refined_range(self, n: int, facts: Guard) -> tuple[int, int, tuple[int, int] | None]:
        """The IRQL range of function `n` at a call that runs only where `facts` hold of
        its parameters: the highest IRQL of its roles and of the callers whose constant
        arguments do not contradict them (`TRUE` passed where the call needs the
        parameter false rules that caller out). Also the (caller, call index) that gives
        the highest: None when no caller is ruled out (the function's own range holds),
        (-1, -1) when a role or no caller does."""
        lo, hi = self._range(n)
        node = self.nodes[n]
        g = node.summary.graph
        if node.annotation is not None or g is None:
            return lo, hi, None
        tests = {key: (i, op, other) for key, i, op, other in g.param_tests}
        best = self.role_max[n]  # -1: no role
        by: tuple[int, int] | None = None
        ruled_out = False
        for caller, ci in node.callers:
            ev = self.edge_ev.get((caller, n, ci))
            if ev is None:
                continue
            if ci >= 0 and not self._may_pass(caller, ci, facts, tests):
                ruled_out = True
                continue
            if ev[1] > best:
                best, by = ev[1], (caller, ci)
        if not ruled_out:
            return lo, hi, None
        hi = max(best, 0)
        if hi > node.summary.irql_cap:
            hi = 0
        return min(lo, hi), hi, by or (-1, -1)

    def _may_pass(self, caller: int, ci: int, facts: Guard,
                  tests: Mapping[str, tuple[int, str, str]]) -> bool:
        """Can the arguments of call `ci` in `caller` make every test in `facts` go the
        way it says?"""
        consts = dict(self.files[self.nodes[caller].file].calls[ci].consts)
        if not consts:
            return True
        for key, truth in facts:
            test = tests.get(key)
            if test is None or test[0] not in consts:
                continue
            i, op, other = test
            if flag_truth(op, other, str(consts[i])) is (not truth):
                return False
        return True

    def _range(self, n: int) -> tuple[int, int]:
        hi = max(self.irql_max[n], 0)
        if hi > self.nodes[n].summary.irql_cap:
            # PAGED_CODE(): the developer asserts IRQL <= APC_LEVEL where the callers or the
            # role say it can be higher; one of the two is wrong, so claim nothing.
            hi = 0
        lo = min(self.irql_min[n], hi)
        return lo, hi

    # -- system process -------------------------------------------------------------------
    def _system_context(self) -> None:
        roles = self.knowledge.roles
        nodes = self.nodes
        sys_seed: list[int] = []
        other_seed: list[int] = []
        for n, node in enumerate(nodes):
            kinds = [roles[r.role].system for r in node.roles if r.role in roles]
            if any(kinds):
                sys_seed.append(n)
            if (kinds and not all(kinds)) or node.escapes or (not kinds and not node.callers):
                other_seed.append(n)
        reach_sys = self._reach(sys_seed, "callees", self.system_why)
        reach_other = self._reach(other_seed, "callees")
        for n in range(len(nodes)):
            self.system[n] = n in reach_sys and n not in reach_other

    # -- the code itself, read again (rare questions) ----------------------------------
    def file_ir(self, path: str) -> FileIR | None:
        """The IR of a file of the project, from the `reader` (once per file), or None."""
        if path not in self._irs:
            self._irs[path] = self._reader(path) if self._reader is not None else None
        return self._irs[path]

    def function_ir(self, n: int) -> tuple[FileIR, Function] | None:
        """The IR of function node `n` (with its file's), or None."""
        node = self.nodes[n]
        fir = self.file_ir(node.path)
        if fir is None:
            return None
        at: dict[tuple[int, str], Function] | None = fir.memo.get("functions_at")
        if at is None:
            at = fir.memo["functions_at"] = {}
            for f in fir.functions:
                at.setdefault((f.start, f.name), f)
        got = at.get((node.summary.start, node.summary.name))
        return None if got is None else (fir, got)

    def call_ir(self, n: int, call: int) -> tuple[FileIR, CallSite] | None:
        """The IR of call `call` (an index into its file's calls) in function node `n`,
        or None (also when the file read again does not match its summary)."""
        node = self.nodes[n]
        fir = self.file_ir(node.path)
        calls = self.files[node.file].calls
        if fir is None or not 0 <= call < min(len(fir.calls), len(calls)):
            return None
        site = fir.calls[call]
        if (site.callee != calls[call].callee or site.function is None
                or site.function.start != node.summary.start):
            return None
        return fir, site

    # -- answers --------------------------------------------------------------------------
    def node_for(self, path: str, start: int) -> int | None:
        """The node of the function starting at byte `start` of `path`."""
        fi = self.file_index.get(path)
        return None if fi is None else self._node_at.get((fi, start))

    def function_context(self, n: int) -> ExecutionContext:
        """How function node `n` runs."""
        lo, hi = self._range(n)
        steps, summary = self._entry_story(n)
        sys_part = self._system_phrase(n)
        reason = f"runs at {_range_text(lo, hi)}: {summary}" + (f"; {sys_part}" if sys_part
                                                                  else "")
        return ExecutionContext(self.system[n], hi, lo, reason, tuple(steps))

    def call_irql_max(self, path: str, call_index: int) -> int:
        """The highest IRQL the call with index `call_index` in `path` can run at (0 when
        unknown or outside a function): `call_context(...).irql_max` without the reason
        and trace, for the many calls that turn out to be fine."""
        fi = self.file_index.get(path)
        if fi is None or call_index >= len(self.files[fi].calls):
            return 0
        call = self.files[fi].calls[call_index]
        if call.function < 0:
            return 0
        n = self.node_of[(fi, call.function)]
        lo_n, hi_n, _by = self._call_range(n, call_index)
        ev = _evaluate(self.call_states.get(n, {}).get(call_index, ENTRY_STATE), lo_n, hi_n)
        return 0 if ev is None else ev[1]

    def _call_range(self, n: int, call_index: int) -> tuple[int, int, tuple[int, int] | None]:
        """The entry IRQL range of function `n` that reaches call `call_index` in it, and
        the caller edge that decides it when tests of parameters narrow it
        (`_refined_range`)."""
        facts = self.call_facts.get(n, _NO_FACTS).get(call_index)
        if facts:
            return self._refined_range(n, facts)
        lo, hi = self._range(n)
        return lo, hi, None

    def call_context(self, path: str, call_index: int) -> ExecutionContext | None:
        """How the call with index `call_index` in `path` runs (None: not in a function)."""
        fi = self.file_index.get(path)
        if fi is None or call_index >= len(self.files[fi].calls):
            return None
        call = self.files[fi].calls[call_index]
        if call.function < 0:
            return None
        n = self.node_of[(fi, call.function)]
        lo_n, hi_n, by = self._call_range(n, call_index)
        st = self.call_states.get(n, {}).get(call_index, ENTRY_STATE)
        ev = _evaluate(st, lo_n, hi_n)
        if ev is None:
            return ExecutionContext(self.system[n], 0, 0, "IRQL at the call unknown", ())
        lo, hi, atom = ev
        sys_part = self._system_phrase(n)
        if atom is not None and atom[0] == "a" and atom[3] is not None:
            origin = atom[3]
            steps = [TraceStep(Location(origin[0], origin[1], origin[2]), origin[3])]
            fname = self.nodes[n].summary.qualname
            summary = (f"{origin[3]} ({_short(origin[0])}:{origin[1]}) on the way to this "
                       f"call in {fname}")
        else:
            steps, summary = self._entry_story(n, by)
        reason = f"runs at {_range_text(lo, hi)}: {summary}" + (f"; {sys_part}" if sys_part
                                                                  else "")
        return ExecutionContext(self.system[n], hi, lo, reason, tuple(steps))

    def _entry_story(self, n: int, first: tuple[int, int] | None = None,
                     ) -> tuple[list[TraceStep], str]:
        """Trace steps from the entry that decides `n`'s highest IRQL, and a one-line text.
        `first`: the (caller, call index) that decides it instead, where tests of
        parameters narrow the callers (`_refined_range`; a negative caller: none does)."""
        known = self._why_chain(n) if first is None else None
        if known is None:
            chain, cur = self._why_walk(n, first)
            shown, left_out = _elide(chain)
        else:
            size, cur, head = known
            if size <= STORY_HEAD + STORY_TAIL:
                shown, left_out = self._why_links(n, size), 0
            else:
                shown = [*head, *self._why_links(n, STORY_TAIL)]
                left_out = size - STORY_HEAD - STORY_TAIL
        steps: list[TraceStep] = []
        parts: list[str] = []
        entry = self.nodes[cur]
        first_atom = shown[0][3] if shown else None
        if first_atom is not None and first_atom[0] == "a" and first_atom[3] is not None:
            o = first_atom[3]
            steps.append(TraceStep(Location(o[0], o[1], o[2]),
                                   f"{o[3]} in {entry.summary.qualname}"))
            parts.append(f"{o[3]} in {entry.summary.qualname} ({_short(o[0])}:{o[1]})")
        else:
            step, text = self._origin_step(cur)
            if step is not None:
                steps.append(step)
            parts.append(text)
        for i, (node_n, caller, ci, _atom) in enumerate(shown):
            if i == STORY_HEAD and left_out:
                parts.append(f"... {left_out} more calls ...")
            target = self.nodes[node_n].summary
            caller_node = self.nodes[caller]
            if ci >= 0:
                call = self.files[caller_node.file].calls[ci]
                steps.append(TraceStep(Location(caller_node.path, call.line, call.column),
                                       f"calls {target.qualname}"))
                parts.append(f"{target.qualname} ({_short(caller_node.path)}:{call.line})")
            else:
                parts.append(target.qualname)
        return steps, " -> ".join(parts)

    def _why_walk(self, n: int, first: tuple[int, int] | None,
                  ) -> tuple[list[_Link], int]:
        """The `why` links from the function that decides `n`'s highest IRQL down to `n`
        (with `first`, the call that decides it instead), and that function: up the links
        until one names no caller, brings a raise (an "a" atom), or comes back round."""
        chain: list[_Link] = []
        seen = {n}
        cur = n
        while True:
            why = self.why[cur]
            if first is not None and cur == n and not chain:
                if first[0] < 0:
                    break
                edge = self.edge_ev.get((first[0], n, first[1]))
                why = ("call", first[0], first[1], edge[2] if edge is not None else None)
            if why is None or why[0] != "call":
                break
            caller, ci, atom = why[1], why[2], why[3]
            chain.append((cur, caller, ci, atom))
            if atom is not None and atom[0] == "a":
                cur = caller
                break
            if caller in seen:
                cur = caller
                break
            seen.add(caller)
            cur = caller
        chain.reverse()
        return chain, cur

    def _why_chain(self, n: int) -> tuple[int, int, tuple[_Link, ...]] | None:
        """What `_why_walk(n, None)` finds, without walking it each time: how many links,
        the function it ends at, and its first `STORY_HEAD` links. None where the walk
        comes back round (to be walked: where it stops depends on where it starts).
        Remembered for every function passed, so the stories of a chain of n functions
        take n steps, not n * n / 2."""
        memo = self._why_memo
        path: list[_Link] = []
        on_path: set[int] = set()
        cur = n
        while cur not in memo:
            why = self.why[cur]
            if why is None or why[0] != "call":
                memo[cur] = (0, cur, ())
                break
            link = (cur, why[1], why[2], why[3])
            if link[3] is not None and link[3][0] == "a":
                memo[cur] = (1, link[1], (link,))
                break
            on_path.add(cur)
            if link[1] in on_path:
                memo[cur] = None
                break
            path.append(link)
            cur = link[1]
        known = memo[cur]
        for link in reversed(path):
            if known is not None:
                size, origin, head = known
                known = (size + 1, origin, head if size >= STORY_HEAD else (*head, link))
            memo[link[0]] = known
        return known

    def _why_links(self, n: int, count: int) -> list[_Link]:
        """The last `count` links of `n`'s `why` walk (which has at least that many and
        does not come back round), in order."""
        out: list[_Link] = []
        cur = n
        for _ in range(count):
            why = self.why[cur]
            assert why is not None
            out.append((cur, why[1], why[2], why[3]))
            cur = why[1]
        out.reverse()
        return out

    def _origin_step(self, n: int) -> tuple[TraceStep | None, str]:
        node = self.nodes[n]
        f = node.summary
        why = self.why[n]
        here = Location(node.path, f.line, f.column)
        if why is not None and why[0] == "annotation" and node.annotation is not None:
            _lo, _hi, text, loc = node.annotation
            return (TraceStep(loc or here, f"{f.qualname} is annotated {text}"),
                    f"{f.qualname} is annotated {text}")
        if why is not None and why[0] == "role":
            src = node.roles[why[1]]
            label = self.knowledge.roles[src.role].label
            return (TraceStep(src.location or here, f"{f.qualname} is {label} ({src.why})"),
                    f"{f.qualname} is {label} ({src.why})")
        if node.roles:
            src = node.roles[0]
            label = self.knowledge.roles[src.role].label
            text = f"{f.qualname} is {label} ({src.why})"
            if not node.callers:
                text += ", whose IRQL the pages do not fix: taken as PASSIVE_LEVEL"
            return TraceStep(src.location or here, text), text
        if not node.callers:
            return (TraceStep(here, f"{f.qualname} has no known caller and no role"),
                    f"{f.qualname} has no known caller and no role (taken as PASSIVE_LEVEL)")
        return TraceStep(here, f"{f.qualname}"), f"{f.qualname} is called at PASSIVE_LEVEL"

    def _system_phrase(self, n: int) -> str:
        if not self.system[n]:
            return ""
        root = self._system_root(n)
        entry = self.nodes[root]
        label = next((self.knowledge.roles[r.role].label for r in entry.roles
                      if self.knowledge.roles.get(r.role) and
                      self.knowledge.roles[r.role].system), "a system entry")
        if root == n:
            return f"system process: it is {label}"
        return f"system process: every way in comes from {entry.summary.qualname} ({label})"

    def _system_root(self, n: int) -> int:
        """The system entry the `system_why` links from `n` lead to. They are the tree of
        a breadth-first walk from the entries (`_reach`), so they never come back round.
        Remembered for every function passed: the phrases of a chain of n functions take
        n steps, not n * n / 2."""
        memo = self._system_roots
        path: list[int] = []
        cur = n
        while cur not in memo and (prev := self.system_why[cur]) is not None:
            path.append(cur)
            cur = prev[0]
            if len(path) > len(self.nodes):
                break  # not a tree after all: stop rather than go round for ever
        root = memo.get(cur, cur)
        for m in path:
            memo[m] = root
        memo[cur] = root
        return root

    def role_rows(self) -> list[tuple[FunctionSummary, str, ExecutionContext, str]]:
        """For `ddilint roles`: each function with its roles (text), context and path."""
        out = []
        for n, node in enumerate(self.nodes):
            role = ", ".join(sorted({r.role + (f"({r.major})" if r.major else "")
                                     for r in node.roles}))
            out.append((node.summary, role, self.function_context(n), node.path))
        return out

    def roles_of(self, n: int) -> list[RoleSource]:
        """The roles of node `n` and why it has them."""
        return list(self.nodes[n].roles)

    def nearest_entry(self, n: int, role: str, major: str = "", call: int = -1) -> int | None:
        """The entry function with `role` (and IRP major `major`) nearest to node `n` going
        up its callers (`call`: asked at that call of `n`, an index into its file's
        calls), or None when none reaches it. A dispatcher shared by `major` and other
        majors is no entry of `major` (`_shared_dispatcher`), but for IRP_MJ_POWER one
        that reaches `n` through a call on its IRP_MJ_POWER side
        (`FunctionSummary.power_calls`) is. Ties go as `nearest_entries` says."""
        if self._on_major_side(n, call, role, major):
            return n
        table = self._entries.get((role, major))
        if table is None:
            # Once per question for the whole project: asking per call walked all the
            # callers of each, quadratic on a long chain (3,000 functions: 6.7 s).
            table = self._entries[(role, major)] = self._entry_table(role, major)
        e = table[n]
        return e if e >= 0 else None

    def _entry_table(self, role: str, major: str) -> list[int]:
        """`nearest_entries` of every node for `role` and `major`."""
        checkpoint()
        plain: list[int] = []
        side: set[tuple[int, int]] = set()
        for m, node in enumerate(self.nodes):
            if not node.roles:
                continue
            sources = [r for r in node.roles if r.role.startswith(role)]
            if any(not major or r.major == major for r in sources) and not (
                    major and _shared_dispatcher(sources, major)):
                plain.append(m)
            side.update((m, ci) for ci in node.summary.power_calls
                        if self._on_major_side(m, ci, role, major))
        return nearest_entries([node.callers for node in self.nodes], plain, side)

    def _on_major_side(self, n: int, call: int, role: str, major: str) -> bool:
        """Whether node `n` is a dispatcher with `role` shared by `major` and other majors,
        and its call `call` runs only on the `major` side of its test of the request's
        major function (known for IRP_MJ_POWER: `FunctionSummary.power_calls`)."""
        if call < 0 or major != "IRP_MJ_POWER" or call not in self.nodes[n].summary.power_calls:
            return False
        sources = [r for r in self.nodes[n].roles if r.role.startswith(role)]
        return any(r.major == major for r in sources) and _shared_dispatcher(sources, major)

    def entry_story(self, entry: int, n: int, role: str = "",
                    major: str = "") -> tuple[str, tuple[TraceStep, ...]]:
        """One line and trace steps for the way from entry function `entry` down to `n`
        (`role`, `major`: what `nearest_entry` found it for; a dispatcher shared
        with other majors is followed from its calls on the `major` side only)."""
        node = self.nodes[entry]
        f = node.summary
        src = node.roles[0] if node.roles else None
        side: frozenset[int] | None = None
        sources = [r for r in node.roles if role and r.role.startswith(role)]
        if major == "IRP_MJ_POWER" and _shared_dispatcher(sources, major):
            side = frozenset(f.power_calls)
            src = next((r for r in sources if r.major == major), src)
        label = self.knowledge.roles[src.role].label if src is not None else "an entry"
        here = Location(node.path, f.line, f.column)
        first = f"{f.qualname} is {label}" + (f" ({src.why})" if src is not None else "")
        if side is not None:
            first += f", on its {major} path"
        steps = [TraceStep(src.location if src is not None and src.location else here, first)]
        parts = [first]
        shown, left_out = self.story_calls(entry, n, side)
        for i, (callee, caller, ci) in enumerate(shown):
            if i == STORY_HEAD and left_out:
                parts.append(f"... {left_out} more calls ...")
            target = self.nodes[callee].summary
            if ci < 0:
                parts.append(target.qualname)
                continue
            loc = self.call_location(caller, ci)
            steps.append(TraceStep(loc, f"calls {target.qualname}"))
            parts.append(f"{target.qualname} ({_short(loc.path)}:{loc.line})")
        return " -> ".join(parts), tuple(steps)

    def is_storport(self, path: str) -> bool:
        """Is the file part of a StorPort miniport: it, or a file of its driver (a near
        folder), includes storport.h or calls StorPortInitialize?"""
        return self._driver_has(path, self._storport_dirs, _STORPORT)

    def is_virtual_miniport(self, path: str) -> bool:
        """Is the file part of a StorPort virtual miniport: it, or a file of its driver (a
        near folder, a sibling folder included: OpenZFS declares its virtual miniport in
        `windows/zfs/` and its locks live in `windows/spl/`), declares one
        (`STOR_FEATURE_VIRTUAL_MINIPORT`, `VIRTUAL_HW_INITIALIZATION_DATA`)? The wider
        reach only takes findings away (DDI602 leaves virtual miniports alone)."""
        return self._driver_has(path, self._virtual_dirs, _VIRTUAL, siblings=True)

    def _driver_has(self, path: str, memo: dict[str, bool],
                    has: Callable[[FileSummary], bool], siblings: bool = False) -> bool:
        """Does a file of the driver of `path` (its folder, or one inside or around it;
        with `siblings`, also a folder beside it) have `has`? Remembered per folder in
        `memo`."""
        d = _dir(path)
        hit = memo.get(d)
        if hit is None:
            hit = memo[d] = any(
                has(s) and (_near(d, _dir(s.path))[0] if siblings else _inside(d, _dir(s.path)))
                for s in self.files)
        return hit

    def story_calls(self, entry: int, n: int, first: frozenset[int] | None = None,
                    ) -> tuple[list[tuple[int, int, int]], int]:
        """The calls of a shortest chain from `entry` down to `n` that a story shows
        (`_elide`): (callee, caller, call index into the caller) triples, and how many
        are left out between them; with `first`, through one of those calls of `entry`.
        The chain is the one a breadth-first walk down the callees, in order, finds
        first."""
        tree = self._trees.get((entry, first))
        if tree is None:
            # One walk per entry: walking again for each finding it reaches made the
            # findings of a long chain quadratic.
            tree = self._trees[(entry, first)] = self._call_tree(entry, first)
        prev, depth, anchor = tree
        size = depth.get(n, 0)

        def up(cur: int, count: int) -> list[tuple[int, int, int]]:
            out = []
            for _ in range(count):
                m, ci = prev[cur]
                out.append((cur, m, ci))
                cur = m
            out.reverse()
            return out

        if size <= STORY_HEAD + STORY_TAIL:
            return up(n, size), 0
        return up(anchor[n], STORY_HEAD) + up(n, STORY_TAIL), size - STORY_HEAD - STORY_TAIL

    def _call_tree(self, entry: int, first: frozenset[int] | None,
                   ) -> tuple[dict[int, tuple[int, int]], dict[int, int], dict[int, int]]:
        """The breadth-first tree of the calls from `entry` (with `first`, through those
        calls of it): each node's (caller, call index) in it, its depth, and, below depth
        `STORY_HEAD`, its ancestor at that depth."""
        checkpoint()
        prev: dict[int, tuple[int, int]] = {}
        depth = {entry: 0}
        anchor: dict[int, int] = {}
        work = deque([entry])
        while work:
            m = work.popleft()
            d = depth[m] + 1
            for t, ci in self.nodes[m].callees:
                if m == entry and first is not None and ci not in first:
                    continue
                if t not in depth:
                    depth[t] = d
                    prev[t] = (m, ci)
                    if d >= STORY_HEAD:
                        anchor[t] = t if d == STORY_HEAD else anchor[m]
                    work.append(t)
        return prev, depth, anchor

    def call_location(self, caller: int, ci: int) -> Location:
        """Where call `ci` of node `caller` is."""
        node = self.nodes[caller]
        call = self.files[node.file].calls[ci]
        return Location(node.path, call.line, call.column)


# Requests the I/O manager sends from the caller's thread at PASSIVE_LEVEL: their minifilter
# pre-operation callbacks do not run at APC_LEVEL (that is paging I/O and the memory
# manager's callbacks: reads, writes, information and section synchronization).
_PASSIVE_REQUESTS = frozenset({
    "IRP_MJ_CREATE_NAMED_PIPE", "IRP_MJ_CREATE_MAILSLOT", "IRP_MJ_CLEANUP",
    "IRP_MJ_DIRECTORY_CONTROL", "IRP_MJ_QUERY_VOLUME_INFORMATION",
    "IRP_MJ_SET_VOLUME_INFORMATION", "IRP_MJ_QUERY_EA", "IRP_MJ_SET_EA",
    "IRP_MJ_QUERY_SECURITY", "IRP_MJ_SET_SECURITY", "IRP_MJ_DEVICE_CONTROL",
    "IRP_MJ_LOCK_CONTROL", "IRP_MJ_SHUTDOWN", "IRP_MJ_PNP", "IRP_MJ_NETWORK_QUERY_OPEN",
    "IRP_MJ_QUERY_OPEN",
})

# Requests whose pre-operation callbacks run at APC_LEVEL only for paging I/O: with
# FLTFL_OPERATION_REGISTRATION_SKIP_PAGING_IO the filter manager never calls them for it.
_PAGING_REQUESTS = frozenset({"IRP_MJ_READ", "IRP_MJ_WRITE"})

_FLT_REGISTRATION_CALLBACKS = {
    "5": "FilterUnloadCallback", "6": "InstanceSetupCallback",
    "7": "InstanceQueryTeardownCallback", "8": "InstanceTeardownStartCallback",
    "9": "InstanceTeardownCompleteCallback",
}

# A role found from a registration that refines a declared one replaces it.
_REFINES = {"isr_passive": "isr", "wdf_passive_timer": "dpc"}


def _generic_role(typedef: str) -> str:
    """Any other KMDF event callback type: a KMDF callback (no IRQL claim)."""
    return "wdf_callback" if typedef.startswith(("EVT_WDF", "EVT_WDFDEVICE")) else ""


def _generic_field_role(field_name: str) -> str:
    """Any other `Evt...` field of a KMDF config structure holds a KMDF callback."""
    return "wdf_callback" if field_name.startswith("Evt") and field_name[3:4].isupper() else ""


def _dispatch_type(anns: Iterable[tuple[str, tuple[str, ...]]]) -> str:
    for name, args in anns:
        if name in ("_Dispatch_type_", "__drv_dispatchType") and args:
            return args[0].strip()
    return ""


def _short(path: str) -> str:
    return os.path.basename(path)


def _range_text(lo: int, hi: int) -> str:
    if lo == hi:
        return irql_name(hi)
    return f"up to {irql_name(hi)}"


_STORPORT: Callable[[FileSummary], bool] = attrgetter("storport")
_VIRTUAL: Callable[[FileSummary], bool] = attrgetter("virtual_miniport")


def _atom_key(a: Atom) -> tuple[int, str, int, int, str]:
    o = a[3]
    kind = 0 if a[0] == "a" else 1
    return (kind, o[0], o[1], o[2], o[3]) if o is not None else (kind, "", 0, 0, "")


_Evaluated = tuple[int, int, Atom | None]  # lowest, highest IRQL, the atom of the highest


def _evaluate(st: State, emin: int, emax: int) -> _Evaluated | None:
    """(lowest, highest, the atom giving the highest) IRQL of a state, given the entry
    range; None when nothing is known."""
    if st is ENTRY_STATE:  # most calls: no raise or lock before them
        lo, hi = max(emin, 0), min(emax, 4)
        return (lo, hi, ENTRY) if lo <= hi else None
    lo_all: int | None = None
    hi_all = -1
    best: Atom | None = None
    for a in st:
        if a[0] == "a":
            lo, hi = a[1], a[1]
        elif a[0] == "e":
            lo, hi = max(emin, a[1]), min(emax, a[2])
            if lo > hi:
                continue
        else:
            continue
        # On a tie an absolute level beats the entry range, then the first origin in the
        # sources: never the frozenset's order, which changes with the hash seed.
        if hi > hi_all or (hi == hi_all and best is not None and _atom_key(a) < _atom_key(best)):
            hi_all = hi
            best = a
        lo_all = lo if lo_all is None else min(lo_all, lo)
    if lo_all is None:
        return None
    return lo_all, hi_all, best
