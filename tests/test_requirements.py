"""The documented maximum IRQL of a call: the routine's bound, lowered when the call's own
argument shows a case the Remarks state (paged pool, a wait without time-out)."""

from __future__ import annotations

import pytest

from ddilint.analyzer.frontend import parse_file
from ddilint.analyzer.requirements import MaxIrql, documented_max_irql
from ddilint.analyzer.source import SourceText
from ddilint.knowledge import Knowledge
from tests.test_citation import IrqlRule


def _call_max(knowledge: Knowledge, call_text: str) -> MaxIrql | None:
    src = f"void F(POOL_FLAGS flags, PKEVENT e, PLARGE_INTEGER t)\n{{\n    {call_text};\n}}\n"
    fir = parse_file(SourceText("t.c", src, "utf-8"))
    (call,) = [c for c in fir.calls if knowledge.get(c.callee) is not None]
    routine = knowledge.get(call.callee)
    assert routine is not None
    return documented_max_irql(call, routine)


@pytest.mark.parametrize(
    ("call", "level", "why"),
    [
        ("ExAllocatePool2(POOL_FLAG_PAGED, 8, 'gaT')", "APC_LEVEL", "Flags is POOL_FLAG_PAGED"),
        ("ExAllocatePool2(POOL_FLAG_PAGED | POOL_FLAG_UNINITIALIZED, 8, 'gaT')", "APC_LEVEL",
         "Flags is POOL_FLAG_PAGED"),
        ("ExAllocatePool2((POOL_FLAGS)POOL_FLAG_PAGED, 8, 'gaT')", "APC_LEVEL",
         "Flags is POOL_FLAG_PAGED"),
        ("ExAllocatePool2(POOL_FLAG_NON_PAGED, 8, 'gaT')", "DISPATCH_LEVEL", ""),
        # A value the call does not show: the general bound, nothing guessed.
        ("ExAllocatePool2(flags, 8, 'gaT')", "DISPATCH_LEVEL", ""),
        ("ExAllocatePool2(x ? POOL_FLAG_PAGED : POOL_FLAG_NON_PAGED, 8, 'gaT')",
         "DISPATCH_LEVEL", ""),
        ("ExAllocatePoolWithTag(PagedPool, 8, 'gaT')", "APC_LEVEL", "PoolType is PagedPool"),
        ("ExAllocatePoolWithTag(NonPagedPoolNx, 8, 'gaT')", "DISPATCH_LEVEL", ""),
        ("KeWaitForSingleObject(e, Executive, KernelMode, FALSE, NULL)", "APC_LEVEL",
         "Timeout is NULL"),
        ("KeWaitForSingleObject(e, Executive, KernelMode, FALSE, t)", "DISPATCH_LEVEL", ""),
        ("ZwClose(h)", "PASSIVE_LEVEL", ""),
        ("KeInsertQueueDpc(d, 0, 0)", "HIGH_LEVEL", ""),
    ],
)
def test_documented_max_irql(knowledge: Knowledge, call: str, level: str, why: str) -> None:
    got = _call_max(knowledge, call)
    assert got is not None
    assert (got.level, got.why) == (level, why)
    assert got.fact == ("irql_conditions" if why else "max_irql")


def test_no_documented_maximum(knowledge: Knowledge) -> None:
    # req.irql "Any level as long as target memory is resident": conditional, unknown.
    # Its entry holds no other fact, so the table leaves it out.
    assert knowledge.get("NetExtensionGetData") is None
    # A routine with facts but no maximum (req.irql empty on its page).
    r = knowledge.get("NtOpenThreadToken")
    assert r is not None and r.max_irql is None and r.handle_out_param is not None
    fir = parse_file(SourceText("t.c", "void F(void) { NtOpenThreadToken(a, b, c, d); }", "utf-8"))
    assert documented_max_irql(fir.calls[0], r) is None


def test_condition_is_cited_from_the_remarks(knowledge: Knowledge) -> None:
    rule = IrqlRule()
    cite = rule.citation(knowledge, "ExAllocatePool2", "irql_conditions")
    assert cite.label == "ExAllocatePool2, Remarks"
    assert cite.url.endswith("nf-wdm-exallocatepool2#remarks")
    assert rule.citation(knowledge, "ExAllocatePool2").label == (
        "ExAllocatePool2, Requirements: IRQL")
