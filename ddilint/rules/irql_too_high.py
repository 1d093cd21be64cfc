"""DDI301 irql-too-high: a call that can run above the routine's documented maximum IRQL."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from ddilint.analyzer.context import irql_name
from ddilint.analyzer.requirements import documented_max_irql
from ddilint.findings import Finding, Severity
from ddilint.hookspecs import hookimpl
from ddilint.knowledge import irql_rank
from ddilint.rules.base import FileContext, Rule


class IrqlTooHigh(Rule):
    code = "DDI301"
    name = "irql-too-high"
    severity = Severity.ERROR
    summary = "The call can run above the routine's documented maximum IRQL."
    routine = "ZwOpenProcessTokenEx"
    doc_section = "Requirements: IRQL"
    facts = ("max_irql",)
    requirement = "ZwOpenProcessTokenEx is called at IRQL = PASSIVE_LEVEL (the page's IRQL "
    "requirement); every routine's page states the highest IRQL it may be called at."
    explanation = (
        "Above its maximum IRQL a routine may touch pageable memory or wait, which at\n"
        "DISPATCH_LEVEL or higher crashes the system (IRQL_NOT_LESS_OR_EQUAL) or deadlocks.\n"
        "The IRQL a call runs at is decided by the way in: a DPC, a timer, a completion\n"
        "routine or an ISR runs raised, a spin lock or KeRaiseIrql raises the code after it,\n"
        "and the IRQL flows from callers into helpers across files. ddilint follows those\n"
        "ways in and reports the chain: the entry and why it runs raised, each call on the\n"
        "way, the lock or raise."
    )
    bad_example = (
        "VOID OnDpc(PKDPC Dpc, PVOID Ctx, PVOID A1, PVOID A2) {\n"
        "    ZwOpenProcessTokenEx(ZwCurrentProcess(), TOKEN_QUERY, OBJ_KERNEL_HANDLE, &t);\n"
        "}\n"
        "...\n"
        "KeInitializeDpc(&ext->Dpc, OnDpc, ext);"
    )
    good_example = (
        "VOID OnDpc(PKDPC Dpc, PVOID Ctx, PVOID A1, PVOID A2) {\n"
        "    IoQueueWorkItem(ext->WorkItem, OpenTokenAtPassive, DelayedWorkQueue, ext);\n"
        "}"
    )
    fix_text = (
        "Move the call to code that runs at or below the routine's maximum IRQL (a work\n"
        "item, a system thread, the dispatch routine), or release the lock first."
    )

    def check_file(self, ctx: FileContext) -> Iterator[Finding]:
        if ctx.mode != "kernel":
            return
        for call, routine in ctx.calls():
            if call.function is None:
                continue
            if not routine.project and ctx.defines_function(call.callee):
                continue
            bound = documented_max_irql(call, routine)
            limit = irql_rank(bound.level) if bound is not None else None
            if bound is None or limit is None:
                continue
            cc = ctx.call_context(call)
            if cc.irql_max <= limit:
                continue
            where = f" (through macro {call.via})" if call.via else ""
            if routine.project:
                short = routine.page.replace("\\", "/").rsplit("/", 1)[-1]
                rule_text = f"is annotated {routine.irql_text} ({short})"
            else:
                rule_text = f"may be called at IRQL <= {irql_name(limit)}"
                if bound.why:
                    rule_text += f" when {bound.why}"
            yield ctx.finding(
                self,
                call.name_start,
                f"{call.callee}{where} {rule_text} but can run at {cc.irql_max_name} here; "
                f"{cc.reason}",
                trace=cc.trace,
                anchor=f"{call.function.qualname}:{call.callee}",
                routine=routine,
                fact=bound.fact,
            )


@hookimpl
def ddilint_rules() -> Sequence[Rule]:
    return [IrqlTooHigh()]
