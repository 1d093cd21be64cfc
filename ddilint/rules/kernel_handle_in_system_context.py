"""DDI102 kernel-handle-in-system-context: handle attributes without OBJ_KERNEL_HANDLE
where every way to the call runs in the system process."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from ddilint.analyzer.handle_attributes import missing_kernel_handle
from ddilint.findings import Finding, Severity
from ddilint.hookspecs import hookimpl
from ddilint.rules.base import FileContext, Pending, ProjectView, Rule
from ddilint.rules.missing_kernel_handle import (
    attribute_completed,
    attribute_finding,
    for_the_requester,
)


class KernelHandleInSystemContext(Rule):
    code = "DDI102"
    name = "kernel-handle-in-system-context"
    severity = Severity.WARNING
    summary = ("Handle attributes lack OBJ_KERNEL_HANDLE; every way to the call runs in the "
               "system process, where the page still asks for it.")
    routine = "ZwOpenProcessTokenEx"
    doc_section = "Parameters: HandleAttributes"
    facts = ("attributes_param", "object_attributes_param")
    requirement = (
        "OBJ_KERNEL_HANDLE is the only handle attribute the token routines support; handles "
        "that drivers create are meant to be kernel handles."
    )
    explanation = (
        "In DriverEntry, AddDevice, DriverUnload, system threads and system work items the\n"
        "handle lands in the system process's table, which user code cannot reach, so this\n"
        "is not the user-process hole of DDI101. But the code is one refactoring away from\n"
        "running in a dispatch routine, and the token routines document OBJ_KERNEL_HANDLE as\n"
        "the only supported attribute."
    )
    bad_example = (
        "/* DriverEntry */\n"
        "InitializeObjectAttributes(&oa, RegistryPath, OBJ_CASE_INSENSITIVE, NULL, NULL);\n"
        "status = ZwOpenKey(&key, KEY_READ, &oa);"
    )
    good_example = (
        "InitializeObjectAttributes(&oa, RegistryPath,\n"
        "                           OBJ_CASE_INSENSITIVE | OBJ_KERNEL_HANDLE, NULL, NULL);\n"
        "status = ZwOpenKey(&key, KEY_READ, &oa);"
    )
    fix_text = "Add OBJ_KERNEL_HANDLE to the attributes."

    def check_file(self, ctx: FileContext) -> Iterator[Pending]:
        if not ctx.has_mode("kernel"):
            return
        for m in missing_kernel_handle(ctx.file, ctx.knowledge):
            if ctx.mode_at(m.site.name_start) != "kernel":
                continue  # in a branch only user mode compiles
            fn = m.site.function.qualname if m.site.function else ""
            # Whether every way in is from the system process: phase three.
            yield ctx.defer(self, function=m.site.function, finding=attribute_finding(
                self, ctx, m, f"{m.lacking_text(ctx.file)}; {fn} runs only in the system "
                "process ("), data=(
                    "), so the handle is not exposed to a user process, but "
                    f"{m.requirement()}: make it a kernel handle", m.through))

    def resolve(self, pending: Pending, view: ProjectView) -> Iterator[Finding]:
        context = view.execution_context(pending.function)
        if not context.system_only or pending.finding is None or (
                for_the_requester(pending, view)):
            return
        yield attribute_completed(pending, context.reason, context.trace)

@hookimpl
def ddilint_rules() -> Sequence[Rule]:
    return [KernelHandleInSystemContext()]
