"""DDI402 zw-routine-in-user-mode: user-mode code calls the Zw form of a routine."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from ddilint.findings import Finding, Fix, Severity
from ddilint.hookspecs import hookimpl
from ddilint.rules.base import FileContext, Rule, rename_callee


class ZwRoutineInUserMode(Rule):
    code = "DDI402"
    name = "zw-routine-in-user-mode"
    severity = Severity.WARNING
    summary = "User-mode code calls the Zw form of a routine; use the Nt name."
    routine = "ZwOpenProcessTokenEx"
    doc_section = "Remarks"
    requirement = (
        "When the call is made from user mode, use the Nt name of the routine "
        "(NtOpenProcessTokenEx, not ZwOpenProcessTokenEx)."
    )
    explanation = (
        "The Zw entry points are the kernel-mode side of the native services. User-mode\n"
        "code (a service, a test tool, a UMDF driver) is documented to call the Nt names;\n"
        "in user mode both reach the same system call, so the Zw spelling only misleads\n"
        "readers into thinking the code runs in the kernel with its rules."
    )
    bad_example = "status = ZwOpenProcessTokenEx(GetCurrentProcess(), TOKEN_QUERY, 0, &token);"
    good_example = "status = NtOpenProcessTokenEx(GetCurrentProcess(), TOKEN_QUERY, 0, &token);"
    fix_text = "Call the Nt form (`ddilint check --fix` renames it)."

    def check_file(self, ctx: FileContext) -> Iterator[Finding]:
        if not ctx.has_mode("user"):
            return
        for call in ctx.file.calls:
            name = call.callee
            if not name.startswith("Zw") or call.indirect:
                continue
            if ctx.mode_at(call.name_start) != "user":
                continue  # in a branch the other mode compiles (`#ifndef KERNEL_MODE`)
            nt = ctx.knowledge.nt_twin(name)
            if nt is None or ctx.defines_function(name):
                continue
            fixes: tuple[Fix, ...] = ()
            if not call.via:
                fixes = (rename_callee(call, nt),)
            where = f" (through macro {call.via})" if call.via else ""
            yield ctx.finding(
                self,
                call.name_start,
                f"{name} called from user-mode code{where}: call {nt} instead; the page says "
                "user-mode callers use the Nt name",
                fixes=fixes,
                anchor=call.anchor,
                routine=name,
            )


@hookimpl
def ddilint_rules() -> Sequence[Rule]:
    return [ZwRoutineInUserMode()]
