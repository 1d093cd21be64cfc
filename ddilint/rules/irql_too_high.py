"""DDI301 irql-too-high: a call that can run above the routine's documented maximum IRQL."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from ddilint.analyzer.context import HIGH, irql_name
from ddilint.analyzer.requirements import documented_max_irql
from ddilint.findings import Finding, Severity
from ddilint.hookspecs import hookimpl
from ddilint.knowledge import Routine, irql_rank
from ddilint.rules.base import FileContext, Pending, ProjectView, Rule


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

    def check_file(self, ctx: FileContext) -> Iterator[Pending]:
        if not ctx.has_mode("kernel"):
            return
        # Calls that reach a project function with an IRQL annotation: which ones they are
        # is a whole-program answer, so the file's pending without a call stands for them;
        # its data, the calls in branches only user mode compiles (most files have none).
        if any(c.function is not None and not c.indirect for c in ctx.file.calls):
            user = tuple(i for i, c in enumerate(ctx.file.calls)
                         if ctx.mode_at(c.name_start) != "kernel") if (
                ctx.file.mode_regions) else ()
            yield ctx.defer(self, data=(user,))
        for call, routine in ctx.calls():
            if call.function is None or ctx.defines_function(call.callee):
                continue
            if ctx.mode_at(call.name_start) != "kernel":
                continue  # in a branch only user mode compiles
            bound = documented_max_irql(call, routine)
            limit = irql_rank(bound.level) if bound is not None else None
            if bound is None or limit is None or limit >= HIGH:
                continue  # no bound, or one no call can run above
            # The IRQL the call runs at: phase three.
            yield ctx.defer(self, call=call, data=(limit, bound.why, bound.fact))

    def resolve(self, pending: Pending, view: ProjectView) -> Iterator[Finding]:
        annotated = view.project_routines()
        if pending.call < 0:
            user = frozenset(pending.data[0]) if pending.data else frozenset()
            for ci, routine in sorted(annotated.items()):
                if ci in user:
                    continue
                limit = irql_rank(routine.max_irql) if routine.max_irql else None
                if limit is not None:
                    yield from self._check(view, ci, routine, limit, "", "max_irql")
            return
        if pending.call in annotated:
            return  # the annotation of the project function the call reaches decides
        info = view.call_info(pending.call)
        documented = view.knowledge.routines.get(info.callee) if info is not None else None
        if documented is not None:
            limit, why, fact = pending.data
            yield from self._check(view, pending.call, documented, limit, why, fact)

    def _check(self, view: ProjectView, ci: int, routine: Routine, limit: int, why: str,
               fact: str) -> Iterator[Finding]:
        info = view.call_info(ci)
        if info is None or info.function < 0 or view.call_irql_max(ci) <= limit:
            return
        cc = view.call_context(ci)  # the same IRQL, with its reason and trace
        where = f" (through macro {info.via})" if info.via else ""
        if routine.project:
            short = routine.page.replace("\\", "/").rsplit("/", 1)[-1]
            rule_text = f"is annotated {routine.irql_text} ({short})"
        else:
            rule_text = f"may be called at IRQL <= {irql_name(limit)}"
            if why:
                rule_text += f" when {why}"
        finding = view.finding_at_call(
            self, ci, f"{info.callee}{where} {rule_text} but can run at {cc.irql_max_name} "
            f"here; {cc.reason}", trace=cc.trace, routine=routine, fact=fact)
        if finding is not None:
            yield finding


@hookimpl
def ddilint_rules() -> Sequence[Rule]:
    return [IrqlTooHigh()]
