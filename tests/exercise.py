"""Touch every lazy part of a file's IR, the way the hungriest rule would.

Rules build function bodies, CFGs, dataflow solutions, call arguments and assignments on
demand; the robustness and fuzz tests call `exercise` so that those layers are tested on
hostile input even when no built-in rule happens to look at them.
"""

from __future__ import annotations

from collections.abc import Iterable

from ddilint.analyzer.cfg import Edge, Element
from ddilint.analyzer.dataflow import solve
from ddilint.analyzer.ir import Expr, FileIR
from ddilint.findings import Finding, Severity
from ddilint.rules.base import FileContext, Rule


class _Reached:
    """A trivial analysis: is the point reachable (True) or not (False)."""

    def initial(self) -> bool:
        return True

    def bottom(self) -> bool:
        return False

    def join(self, a: bool, b: bool) -> bool:
        return a or b

    def transfer(self, element: Element, state: bool) -> bool:
        return state

    def edge(self, edge: Edge, state: bool) -> bool:
        return state


def exercise(fir: FileIR) -> int:
    """Build and walk everything lazily built in `fir`; returns how many nodes were seen."""
    seen = 0

    def touch(e: Expr | None) -> None:
        nonlocal seen
        if e is None:
            return
        e.render()
        for sub in e.walk():
            seen += 1
            _ = sub.callee, sub.args, sub.strip()
        for _call in e.calls():
            seen += 1
        for _name in e.names():
            seen += 1

    for fn in fir.functions:
        for st in fn.body.walk():
            seen += 1
            touch(st.expr)
            touch(st.update)
            for d in st.decls:
                touch(d.init)
        cfg = fn.cfg
        sol = solve(cfg, _Reached())
        for block in cfg.reachable():
            for el, _state in sol.before_each(block):
                touch(el.expr)
        list(cfg.returns())
    for call in fir.calls:
        touch(call.expr)
        for arg in call.args:
            arg.render()
        fir.position(call.name_start)
    for expr, _fn in fir.assignments:
        touch(expr)
    return seen


class ExerciseRule(Rule):
    """A rule that finds nothing but builds and walks every lazy part of the IR."""

    code, name, severity = "XEXERCISE", "exercise-engine", Severity.NOTE

    def check_file(self, ctx: FileContext) -> Iterable[Finding]:
        exercise(ctx.file)
        return ()
