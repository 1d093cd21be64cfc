"""The shared dataflow solver, with a small analysis written for the test: which
constants can a variable hold at each point (a join of sets, refined on branches)."""

from __future__ import annotations

from ddilint.analyzer.cfg import Edge, Element
from ddilint.analyzer.dataflow import solve
from tests.conftest import parse_text

State = frozenset[int] | None  # None: unreachable


class ValuesOfX:
    def initial(self) -> State:
        return frozenset()

    def bottom(self) -> State:
        return None

    def join(self, a: State, b: State) -> State:
        if a is None:
            return b
        if b is None:
            return a
        return a | b

    def transfer(self, element: Element, state: State) -> State:
        if state is None or element.expr is None:
            return state
        e = element.expr
        if e.kind == "assign" and e.children[0].text == "x" and e.children[1].kind == "number":
            return frozenset({e.children[1].value or 0})
        return state

    def edge(self, edge: Edge, state: State) -> State:
        # On `x == N`'s true edge, x is N.
        c = edge.cond
        if state is None or c is None or edge.kind != "true" or c.op != "==":
            return state
        value = c.children[1].value
        return frozenset({value}) & state if value is not None else state


def test_values_join_and_refine() -> None:
    fir = parse_text("void F(int p) { if (p) x = 1; else x = 2; if (x == 2) A(); B(); }")
    cfg = fir.functions[0].cfg
    sol = solve(cfg, ValuesOfX())
    at: dict[str, State] = {}
    for block in cfg.blocks:
        for el, state in sol.before_each(block):
            if el.expr is not None and el.expr.kind == "call":
                at[el.expr.callee or ""] = state
    assert at["A"] == frozenset({2})
    assert at["B"] == frozenset({1, 2})
    assert sol.complete


def test_loops_reach_a_fixpoint() -> None:
    fir = parse_text("void F(int p) { x = 0; while (p) { x = 1; if (q) x = 2; } A(); }")
    cfg = fir.functions[0].cfg
    sol = solve(cfg, ValuesOfX())
    states = [s for b in cfg.blocks for el, s in sol.before_each(b)
              if el.expr is not None and el.expr.callee == "A"]
    assert states == [frozenset({0, 1, 2})]


class CountingVisits(ValuesOfX):
    """ValuesOfX that counts how often each call's element is evaluated."""

    def __init__(self) -> None:
        self.seen: dict[str, int] = {}

    def transfer(self, element: Element, state: State) -> State:
        if element.expr is not None and element.expr.kind == "call":
            name = element.expr.callee or ""
            self.seen[name] = self.seen.get(name, 0) + 1
        return super().transfer(element, state)


def test_a_join_waits_for_every_branch() -> None:
    # The then-branch is three blocks long, the else-branch one: visited first in, first
    # out, the join after them ran once when the short branch arrived and again for the
    # long one. In reverse post-order it runs once, with both.
    fir = parse_text("void F(int p, int q, int r) {"
                     " if (p) { if (q) x = 1; if (r) x = 3; } else x = 2;"
                     " Join(); }")
    counting = CountingVisits()
    sol = solve(fir.functions[0].cfg, counting)
    assert counting.seen == {"Join": 1}
    assert sol.complete
