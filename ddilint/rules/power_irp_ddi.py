"""DDI601 power-irp-ddi: a PowerIrpDDis routine reached from an IRP_MJ_POWER dispatch
routine."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from ddilint.findings import Finding, Severity
from ddilint.hookspecs import hookimpl
from ddilint.rules.base import FileContext, Pending, ProjectView, Rule

COMPLIANCE_RULE = "PowerIrpDDis"


class PowerIrpDdi(Rule):
    code = "DDI601"
    name = "power-irp-ddi"
    severity = Severity.ERROR
    summary = "A routine the PowerIrpDDis compliance rule lists is reached from an IRP_MJ_POWER " \
              "dispatch routine."
    routine = "ZwOpenProcessTokenEx"
    doc_section = "Requirements: DDI compliance rules"
    facts = ("compliance",)
    requirement = (
        "The routine's page lists the PowerIrpDDis DDI compliance rule: it must not be called "
        "while the driver handles an IRP_MJ_POWER request."
    )
    explanation = (
        "Power IRPs are handled on paths where the system may be changing power state:\n"
        "a dispatch routine for IRP_MJ_POWER can run at DISPATCH_LEVEL (unless the driver\n"
        "sets DO_POWER_PAGABLE) and must not block the power path. The PowerIrpDDis rule\n"
        "of Static Driver Verifier lists the routines that must not be called there\n"
        "(opening files, registry keys, tokens, symbolic links, ...). ddilint reports a call\n"
        "of a listed routine in a function that an IRP_MJ_POWER dispatch routine reaches,\n"
        "with the chain of calls."
    )
    bad_example = (
        "NTSTATUS DispatchPower(PDEVICE_OBJECT Dev, PIRP Irp) {\n"
        "    ZwOpenProcessTokenEx(ZwCurrentProcess(), TOKEN_QUERY, OBJ_KERNEL_HANDLE, &t);\n"
        "    ...\n"
        "DriverObject->MajorFunction[IRP_MJ_POWER] = DispatchPower;"
    )
    good_example = (
        "NTSTATUS DispatchPower(PDEVICE_OBJECT Dev, PIRP Irp) {\n"
        "    PoStartNextPowerIrp(Irp);\n"
        "    IoSkipCurrentIrpStackLocation(Irp);\n"
        "    return PoCallDriver(Ext->LowerDevice, Irp);\n"
        "}"
    )
    fix_text = "Do the work outside the power path (at device start, or in a work item queued " \
               "after the power IRP completes)."

    def check_file(self, ctx: FileContext) -> Iterator[Pending]:
        if not ctx.has_mode("kernel"):
            return
        for call, routine in ctx.calls():
            if COMPLIANCE_RULE not in routine.compliance or call.function is None:
                continue
            if ctx.defines_function(call.callee) or ctx.mode_at(call.name_start) != "kernel":
                continue
            # Whether an IRP_MJ_POWER dispatch routine reaches the call: phase three.
            yield ctx.defer(self, function=call.function, call=call)

    def resolve(self, pending: Pending, view: ProjectView) -> Iterator[Finding]:
        info = view.call_info(pending.call)
        way = view.reached_from(pending.function, "dispatch", "IRP_MJ_POWER", pending.call)
        if info is None or way is None:
            return
        text, trace = way
        finding = view.finding_at_call(
            self, pending.call, f"{info.callee} is listed by the {COMPLIANCE_RULE} compliance "
            f"rule and must not be called while handling IRP_MJ_POWER; reached from {text}",
            trace=trace)
        if finding is not None:
            yield finding


@hookimpl
def ddilint_rules() -> Sequence[Rule]:
    return [PowerIrpDdi()]
