"""DDI602 storport-prohibited-ddi: a StorPort miniport calls a routine that the
HwStorPortProhibitedDDIs compliance rule lists."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from ddilint.findings import Finding, Severity
from ddilint.hookspecs import hookimpl
from ddilint.rules.base import FileContext, Pending, ProjectView, Rule

COMPLIANCE_RULE = "HwStorPortProhibitedDDIs"


class StorportProhibitedDdi(Rule):
    code = "DDI602"
    name = "storport-prohibited-ddi"
    severity = Severity.ERROR
    summary = "A StorPort miniport calls a routine the HwStorPortProhibitedDDIs compliance " \
              "rule lists."
    routine = "ZwOpenProcessTokenEx"
    doc_section = "Requirements: DDI compliance rules"
    facts = ("compliance",)
    requirement = (
        "The routine's page lists the HwStorPortProhibitedDDIs DDI compliance rule: a StorPort "
        "miniport must not call it."
    )
    explanation = (
        "A StorPort miniport runs inside the port driver's model: StorPort owns the IRPs,\n"
        "the DPCs, the timers and the memory, and the miniport talks to the system through\n"
        "StorPort* routines only. Static Driver Verifier's HwStorPortProhibitedDDIs rule\n"
        "lists the kernel routines a miniport must not call. A file belongs to a miniport\n"
        "when it (or a file of the same driver) includes storport.h or calls\n"
        "StorPortInitialize. A virtual miniport (STOR_FEATURE_VIRTUAL_MINIPORT,\n"
        "VIRTUAL_HW_INITIALIZATION_DATA) controls no hardware and may call the WDK's\n"
        "routines as a WDM driver does: the rule does not apply to it."
    )
    bad_example = "PVOID p = ExAllocatePoolWithTag(NonPagedPoolNx, size, 'pmaS');"
    good_example = "StorPortAllocatePool(DeviceExtension, size, 'pmaS', &p);"
    fix_text = "Use the StorPort routine for the job (StorPortAllocatePool, StorPortIssueDpc, " \
               "StorPortInitializeTimer, ...)."

    def check_file(self, ctx: FileContext) -> Iterator[Pending]:
        if not ctx.has_mode("kernel"):
            return
        for call, routine in ctx.calls():
            if COMPLIANCE_RULE not in routine.compliance or ctx.defines_function(call.callee):
                continue
            if ctx.mode_at(call.name_start) != "kernel":
                continue  # in a branch only user mode compiles
            # Whether the file belongs to a StorPort miniport: phase three.
            yield ctx.defer(self, call=call, data=(call.via,))

    def resolve(self, pending: Pending, view: ProjectView) -> Iterator[Finding]:
        info = view.call_info(pending.call)
        if info is None or not view.is_storport_miniport() or view.is_virtual_miniport():
            return
        (via,) = pending.data
        where = f" (through macro {via})" if via else ""
        finding = view.finding_at_call(
            self, pending.call, f"{info.callee}{where} is listed by the {COMPLIANCE_RULE} "
            "compliance rule: a StorPort miniport must not call it")
        if finding is not None:
            yield finding


@hookimpl
def ddilint_rules() -> Sequence[Rule]:
    return [StorportProhibitedDdi()]
