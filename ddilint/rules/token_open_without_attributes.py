"""DDI103 token-open-without-attributes: Zw/NtOpenProcessToken or Zw/NtOpenThreadToken,
which cannot take OBJ_KERNEL_HANDLE, in kernel code that can run outside the system process."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from ddilint.analyzer.handle_attributes import KERNEL_HANDLE_FLAG, attributes_form
from ddilint.analyzer.ir import CallSite
from ddilint.findings import Finding, Fix, Severity, TextEdit
from ddilint.hookspecs import hookimpl
from ddilint.knowledge import call_routines
from ddilint.rules.base import FileContext, Pending, ProjectView, Rule, complete


class TokenOpenWithoutAttributes(Rule):
    code = "DDI103"
    name = "token-open-without-attributes"
    severity = Severity.ERROR
    summary = ("Zw/NtOpenProcessToken or Zw/NtOpenThreadToken, which cannot take "
               "OBJ_KERNEL_HANDLE, in code that can run outside the system process.")
    routine = "NtOpenProcessToken"
    doc_section = "Remarks"
    requirement = (
        "The handle these routines return can be used by the process in whose context the "
        "driver runs; to give the handle attributes (OBJ_KERNEL_HANDLE), use the Ex routine."
    )
    explanation = (
        "Called from a dispatch routine or a callback, the token handle goes into the user\n"
        "process's handle table. The process can use it, close it, or replace the object\n"
        "behind the handle value before the driver looks the handle up again: the driver\n"
        "then works on a token of the process's choosing."
    )
    bad_example = "status = ZwOpenProcessToken(NtCurrentProcess(), TOKEN_QUERY, &token);"
    good_example = (
        "status = ZwOpenProcessTokenEx(NtCurrentProcess(), TOKEN_QUERY, OBJ_KERNEL_HANDLE,\n"
        "                              &token);"
    )
    fix_text = ("Call the Ex form and pass OBJ_KERNEL_HANDLE as HandleAttributes (`--fix` "
                "does it for calls written outside macros).")

    def check_file(self, ctx: FileContext) -> Iterator[Pending]:
        if not ctx.has_mode("kernel"):
            return
        routines = call_routines(ctx.file, ctx.knowledge)
        for call, documented in zip(ctx.file.calls, routines, strict=True):
            if documented is None or call.indirect or call.function is None:
                continue
            ex = attributes_form(ctx.knowledge, call.callee)
            if ex is None or ctx.defines_function(call.callee):
                continue
            if ctx.mode_at(call.name_start) != "kernel":
                continue  # in a branch only user mode compiles
            where = f" (through macro {call.via})" if call.via else ""
            fn = call.function.qualname
            # Whether the function can run outside the system process: phase three.
            yield ctx.defer(self, function=call.function, finding=ctx.finding(
                self,
                call.name_start,
                f"{call.callee}{where} cannot take OBJ_KERNEL_HANDLE, and {fn} can run outside "
                "the system process (",
                fixes=_ex_fix(ctx, call, ex),
                anchor=f"{fn}:{call.callee}",
                routine=call.callee,
            ), data=("): the token handle lands in the current process's handle table; to "
                     "give a token handle attributes the documentation says to use "
                     f"{ex}: call it with OBJ_KERNEL_HANDLE",))

    def resolve(self, pending: Pending, view: ProjectView) -> Iterator[Finding]:
        context = view.execution_context(pending.function)
        if context.system_only or pending.finding is None:
            return
        (rest,) = pending.data
        yield complete(pending.finding, f"{pending.finding.message}{context.reason}{rest}",
                       context.trace)


def _ex_fix(ctx: FileContext, call: CallSite, ex: str) -> tuple[Fix, ...]:
    """Rename to the Ex form and insert OBJ_KERNEL_HANDLE where the Ex form takes its
    HandleAttributes (the arguments before it are the same in both forms)."""
    routine = ctx.knowledge.get(ex)
    if call.via or routine is None or routine.attributes_param is None:
        return ()
    args = call.args
    at = routine.attributes_param
    if at >= len(args) or len(args) + 1 != len(routine.params) or args[at].via:
        return ()
    return (Fix(f"Call {ex} with {KERNEL_HANDLE_FLAG}", (
        TextEdit(call.name_start, call.name_start + len(call.callee), ex),
        TextEdit(args[at].start, args[at].start, f"{KERNEL_HANDLE_FLAG}, "),
    )),)


@hookimpl
def ddilint_rules() -> Sequence[Rule]:
    return [TokenOpenWithoutAttributes()]
