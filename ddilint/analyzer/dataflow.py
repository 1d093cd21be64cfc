"""One generic forward dataflow solver that every analysis shares.

An analysis supplies a lattice (initial state, bottom, join) and transfer functions for
elements and edges (edges let it refine its state on the true/false side of a branch:
that is where `NT_SUCCESS(status)` splits "opened" from "not opened"). States must be
immutable and comparable with `==`. The solver is a worklist over reverse post-order with a
visit cap per block, so it always terminates and reports when it gave up.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from typing import Generic, Protocol, TypeVar

from ddilint.analyzer.budget import checkpoint
from ddilint.analyzer.cfg import CFG, Block, Edge, Element

S = TypeVar("S")

MAX_VISITS_PER_BLOCK = 64
# The solver looks at the file's time budget every 1,024 block visits (a mask of the count).
CHECK_MASK = 1023

T = TypeVar("T")


def join_sets(a: frozenset[T] | None, b: frozenset[T] | None) -> frozenset[T] | None:
    """The join of a powerset lattice whose bottom (a state no path reaches) is None."""
    if a is None:
        return b
    if b is None:
        return a
    return a | b


def join_reached(a: T | None, b: T | None, merge: Callable[[T, T], T]) -> T | None:
    """The join of two states of a lattice whose bottom (a state no path reaches) is None:
    the one reached when the other is not, either when they are equal, else `merge`."""
    if a is None:
        return b
    if b is None or a == b:
        return a
    return merge(a, b)


class Analysis(Protocol[S]):
    """What an analysis tells the solver."""

    def initial(self) -> S:
        """State at the function's entry."""
        ...

    def bottom(self) -> S:
        """State of a block no path reaches (the identity of `join`)."""
        ...

    def join(self, a: S, b: S) -> S:
        """Merge the states of two paths."""
        ...

    def transfer(self, element: Element, state: S) -> S:
        """State after evaluating `element`."""
        ...

    def edge(self, edge: Edge, state: S) -> S:
        """State along `edge` (refine on branch conditions; return `state` to do nothing)."""
        ...


class Solution(Generic[S]):
    """States at block entries and exits; `complete` is False if the visit cap was hit.
    (A plain class: mypyc cannot compile a generic dataclass.)"""

    __slots__ = ("analysis", "cfg", "complete", "entry", "exit")

    def __init__(self, cfg: CFG, analysis: Analysis[S]) -> None:
        self.cfg = cfg
        self.analysis = analysis
        self.entry: dict[int, S] = {}
        self.exit: dict[int, S] = {}
        self.complete = True

    def before_each(self, block: Block) -> list[tuple[Element, S]]:
        """The state just before each element of `block` (replayed from its entry state)."""
        state = self.entry.get(block.id, self.analysis.bottom())
        out: list[tuple[Element, S]] = []
        for el in block.elements:
            out.append((el, state))
            state = self.analysis.transfer(el, state)
        return out

    def along(self, edge: Edge) -> S:
        """The state carried along an edge."""
        return self.analysis.edge(edge, self.exit.get(edge.src.id, self.analysis.bottom()))


def solve(cfg: CFG, analysis: Analysis[S], exceptional: bool = True,
          give_up: Callable[[], bool] | None = None) -> Solution[S]:
    """Run `analysis` forward over `cfg` to a fixpoint (or the visit cap). `give_up` is
    asked after each block: when it says so the solution stops there, incomplete (an
    analysis whose result would be thrown away anyway, such as one over its state cap)."""
    order = cfg.reachable(exceptional)
    rank = {b.id: i for i, b in enumerate(order)}
    bottom = analysis.bottom()
    sol: Solution[S] = Solution(cfg, analysis)
    sol.entry[cfg.entry.id] = analysis.initial()
    visits: dict[int, int] = {}
    # The queued block first in reverse post-order: a block then waits for all of its
    # forward predecessors, so outside loops it is visited once with every path's state
    # (first-in first-out visited a join once per branch as each arrived).
    work = [rank[cfg.entry.id]]  # ranks: a block is order[its rank]
    queued = {cfg.entry.id}
    # The file's time budget (`budget.checkpoint`), at the start (many small solves, each
    # of a helper of the last) and every 1,024 visits (one large one).
    checkpoint()
    steps = 0
    while work:
        steps += 1
        if not steps & CHECK_MASK:
            checkpoint()
        block = order[heapq.heappop(work)]
        queued.discard(block.id)
        visits[block.id] = visits.get(block.id, 0) + 1
        if visits[block.id] > MAX_VISITS_PER_BLOCK:
            sol.complete = False
            continue
        state = sol.entry.get(block.id, bottom)
        for el in block.elements:
            state = analysis.transfer(el, state)
        if give_up is not None and give_up():
            sol.complete = False
            break
        if block.id in sol.exit and sol.exit[block.id] == state:
            continue
        sol.exit[block.id] = state
        for edge in block.succs:
            if not exceptional and edge.exceptional:
                continue
            dst = edge.dst
            if dst.id not in rank:
                continue
            carried = analysis.edge(edge, state)
            old = sol.entry.get(dst.id)
            new = carried if old is None else analysis.join(old, carried)
            if old is None or new != old:
                sol.entry[dst.id] = new
                if dst.id not in queued:
                    queued.add(dst.id)
                    heapq.heappush(work, rank[dst.id])
    return sol
