"""DDI401 nt-routine-in-kernel-mode: kernel-mode code calls the Nt form of a routine."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from ddilint.findings import Finding, Fix, Severity
from ddilint.hookspecs import hookimpl
from ddilint.rules.base import FileContext, Rule, rename_callee


class NtRoutineInKernelMode(Rule):
    code = "DDI401"
    name = "nt-routine-in-kernel-mode"
    severity = Severity.WARNING
    summary = "Kernel-mode code calls the Nt form of a routine that has a Zw form."
    routine = "ZwOpenProcessTokenEx"
    doc_section = "Remarks"
    requirement = (
        "Kernel-mode drivers use the Zw name: called from kernel mode, the Nt and Zw entry "
        "points do not treat their parameters the same way."
    )
    explanation = (
        "An Nt call from kernel mode keeps the caller's previous mode. When the driver runs\n"
        "in the context of a user thread (an IRP dispatch routine, a callback), the routine\n"
        "treats the call as coming from user mode: kernel buffers fail the probe, handles\n"
        "from the kernel handle table are rejected, and access checks are made against the\n"
        "user. The Zw form sets the previous mode to KernelMode."
    )
    bad_example = (
        "status = NtOpenProcessTokenEx(NtCurrentProcess(), TOKEN_QUERY,\n"
        "                              OBJ_KERNEL_HANDLE, &token);"
    )
    good_example = (
        "status = ZwOpenProcessTokenEx(NtCurrentProcess(), TOKEN_QUERY,\n"
        "                              OBJ_KERNEL_HANDLE, &token);"
    )
    fix_text = (
        "Call the Zw form (`ddilint check --fix` renames it). A release routine such as\n"
        "NtClose gets no automatic fix: a driver may close a handle that user mode gave it\n"
        "with NtClose on purpose, so that the close is checked as the user's; renaming it\n"
        "would change which handles it can close. Suppress the finding there with a comment."
    )

    def check_file(self, ctx: FileContext) -> Iterator[Finding]:
        if not ctx.has_mode("kernel"):
            return
        for call in ctx.file.calls:
            name = call.callee
            if not name.startswith("Nt") or call.indirect or call.scope:
                continue  # (`Undocumented::NtClose`: not the system service, see routine_of)
            if ctx.mode_at(call.name_start) != "kernel":
                continue  # in a branch the other mode compiles (`#ifndef KERNEL_MODE`)
            zw = ctx.knowledge.zw_twin(name)
            if zw is None or ctx.defines_function(name):
                continue
            fixes: tuple[Fix, ...] = ()
            releases = ctx.knowledge.get(zw)
            if not call.via and (releases is None or releases.closes_handle_param is None):
                fixes = (rename_callee(call, zw),)
            where = f" (through macro {call.via})" if call.via else ""
            yield ctx.finding(
                self,
                call.name_start,
                f"{name} called from kernel-mode code{where}: call {zw} instead; the Nt form "
                "keeps the caller's previous mode, so a user-mode caller's checks apply",
                fixes=fixes,
                anchor=call.anchor,
                routine=zw,
            )


@hookimpl
def ddilint_rules() -> Sequence[Rule]:
    return [NtRoutineInKernelMode()]
