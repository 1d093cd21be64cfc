"""`ddilint knowledge show NAME`: every fact the table holds about a routine, each with the
page and section it comes from.

This module owns the text of that report (the command line only prints it). A fact
without a page source is marked as what it is: a hand-kept overlay entry, or a fact of the
analyzed project.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from ddilint.knowledge import IrqlEffect, Knowledge, Routine

# The routine facts in the order they are shown, with a human name.
_INDEX_FACTS: tuple[tuple[str, str], ...] = (
    ("handle_out_param", "handle out-parameter"),
    ("attributes_param", "handle attributes parameter"),
    ("object_attributes_param", "OBJECT_ATTRIBUTES parameter"),
    ("access_param", "desired access parameter"),
    ("process_handle_param", "process handle parameter"),
    ("closes_handle_param", "closes the handle in"),
)


def _where(r: Routine, fact: str) -> str:
    source = r.source(fact)
    return f"    [{source}]" if source else ""


def _effect(effect: IrqlEffect, r: Routine) -> str:
    parts = [effect.kind]
    if effect.level:
        parts.append(f"to {effect.level}")
    if effect.saved_param is not None:
        parts.append(f"old IRQL saved in {r.param_name(effect.saved_param)}")
    elif effect.kind == "raise":
        parts.append("old IRQL returned")
    if effect.restore_param is not None:
        parts.append(f"IRQL from {r.param_name(effect.restore_param)}")
    if effect.key_param is not None:
        parts.append(f"lock in {r.param_name(effect.key_param)}")
    if effect.conditional:
        parts.append("when it succeeds")
    return ", ".join(parts)


def describe_routine(
    r: Routine, rule_facts: Iterable[tuple[str, tuple[str, ...]]] = ()
) -> list[str]:
    """Lines describing `r`: the page, then each fact with "[page#section]".

    `rule_facts`: (rule code, facts the rule reads) of the installed rules, to say which
    rules apply to the routine.
    """
    lines = [r.name + (f" ({r.header})" if r.header else "")]
    if r.page:
        lines.append(f"  page: {r.page}")
    if r.url:
        lines.append(f"  url: {r.url}")
    if r.irql_text is not None or r.max_irql is not None or r.min_irql is not None:
        said = f' (the page says "{r.irql_text}")' if r.irql_text else ""
        if r.max_irql is not None:
            lines.append(f"  max IRQL: {r.max_irql}{said}{_where(r, 'max_irql')}")
        elif r.irql_text:
            lines.append(f"  max IRQL: unknown{said}{_where(r, 'irql_text')}")
        if r.min_irql is not None:
            lines.append(f"  min IRQL: {r.min_irql}{_where(r, 'min_irql')}")
    for condition in r.irql_conditions:
        param = r.param_name(condition.param)
        case = "is NULL" if condition.null else "names " + " or ".join(condition.names)
        lines.append(f"  max IRQL when {param} {case}: {condition.max_irql}"
                     f"{_where(r, 'irql_conditions')}")
    if r.irql is not None:
        lines.append(f"  changes the IRQL: {_effect(r.irql, r)}{_where(r, 'irql')}")
    if r.params:
        lines.append(f"  parameters:{_where(r, 'params')}")
        for i, (name, direction) in enumerate(r.params):
            lines.append(f"    {i + 1}. {name}" + (f" [{direction}]" if direction else ""))
    for fact, label in _INDEX_FACTS:
        index = getattr(r, fact)
        if index is not None:
            lines.append(f"  {label}: {r.param_name(index)} (argument {index + 1})"
                         f"{_where(r, fact)}")
    if r.release:
        lines.append(f"  release with: {', '.join(r.release)}{_where(r, 'release')}")
    if r.returns_status is not None:
        value = "yes" if r.returns_status else "no"
        lines.append(f"  returns an NTSTATUS: {value}{_where(r, 'returns_status')}")
    if r.compliance:
        lines.append(f"  DDI compliance rules: {', '.join(r.compliance)}"
                     f"{_where(r, 'compliance')}")
    if r.twin:
        lines.append(f"  Zw/Nt twin: {r.twin}{_where(r, 'twin')}")
    if r.user_mode_only:
        lines.append(f"  user-mode only{_where(r, 'user_mode_only')}")
    used = [code for code, facts in rule_facts
            if any(getattr(r, f, None) not in (None, (), "", False) for f in facts)]
    if used:
        lines.append(f"  rules that use these facts: {', '.join(sorted(used))}")
    return lines


def suggestions(knowledge: Knowledge, name: str, limit: int = 5) -> list[str]:
    """Routine names close to `name` (case-insensitive first), for a name not in the table."""
    lowered = {n.lower(): n for n in knowledge.routines}
    exact = lowered.get(name.lower())
    if exact is not None:
        return [exact]
    close = difflib.get_close_matches(name.lower(), list(lowered), n=limit, cutoff=0.75)
    return [lowered[c] for c in close]
