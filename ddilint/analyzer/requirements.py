"""The documented requirements of one call: what the knowledge table says, applied to the
arguments the call passes.

This module owns one engine question that every IRQL rule asks: "what is the highest IRQL
this call may run at, and which documented fact says so?". Most routines have one
maximum (`Routine.max_irql`); some pages lower it for certain arguments
(`Routine.irql_conditions`: ExAllocatePool2 with `POOL_FLAG_PAGED`, KeWaitForSingleObject
with a NULL timeout). A condition counts only when the argument shows it in the call
itself (a flag OR-ed into the argument, the enumeration value, a NULL literal): an
argument the call site does not show keeps the routine's general maximum, so nothing is
guessed.
"""

from __future__ import annotations

from dataclasses import dataclass

from ddilint.analyzer.ir import CallSite, Expr
from ddilint.analyzer.pickling import compact_pickle
from ddilint.knowledge import IrqlCondition, Routine, irql_rank

_NULL_NAMES = frozenset({"NULL", "nullptr", "FALSE"})


@compact_pickle
@dataclass(frozen=True, slots=True)
class MaxIrql:
    """The maximum IRQL documented for one call.

    `fact` is the knowledge fact it comes from ("max_irql", or "irql_conditions" when an
    argument selects a lower bound; use it with `Rule.citation(..., fact=...)`), `why` a
    short reason for messages ("Flags has POOL_FLAG_PAGED"), empty for the general bound.
    """

    level: str
    fact: str = "max_irql"
    why: str = ""


def _flag_names(arg: Expr) -> set[str] | None:
    """Names OR-ed together in `arg` (casts and parentheses skipped), or None when the
    argument is anything else (a variable's value, a call, a conditional)."""
    names: set[str] = set()
    stack = [arg]
    while stack:
        e = stack.pop().strip()
        if e.kind == "name":
            names.add(e.text)
        elif e.kind == "number":
            continue
        elif e.kind == "binary" and e.op == "|" and len(e.children) == 2:
            stack.extend(e.children)
        else:
            return None
    return names


def is_null(arg: Expr) -> bool:
    """Is the argument written as a null constant (`NULL`, `nullptr`, `FALSE`, `0`, cast or
    not)?"""
    e = arg.strip()
    if e.kind == "name":
        return e.text in _NULL_NAMES
    return e.kind == "number" and e.value == 0


def condition_holds(condition: IrqlCondition, call: CallSite) -> bool:
    """Does the call's argument show the condition's case?"""
    args = call.args
    if condition.param >= len(args):
        return False
    arg = args[condition.param]
    if condition.null and is_null(arg):
        return True
    if condition.names:
        names = _flag_names(arg)
        return names is not None and bool(names & set(condition.names))
    return False


def documented_max_irql(call: CallSite, routine: Routine) -> MaxIrql | None:
    """The highest IRQL the documentation allows for this call, or None when the table
    has no maximum for the routine."""
    best: MaxIrql | None = None
    if routine.max_irql is not None:
        best = MaxIrql(routine.max_irql)
    for condition in routine.irql_conditions:
        if not condition_holds(condition, call):
            continue
        rank = irql_rank(condition.max_irql)
        if rank is None:
            continue
        if best is None or rank < (irql_rank(best.level) or 0):
            param = routine.param_name(condition.param) or f"argument {condition.param + 1}"
            shown = "NULL" if condition.null else "/".join(sorted(
                set(condition.names) & (_flag_names(call.args[condition.param]) or set())))
            best = MaxIrql(condition.max_irql, "irql_conditions", f"{param} is {shown}")
    return best
