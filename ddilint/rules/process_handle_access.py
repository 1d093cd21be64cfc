"""DDI502 process-handle-access: the process handle given to a token open was opened
without a query right."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from ddilint.analyzer.status import callee_start
from ddilint.analyzer.values import describe_value, file_values
from ddilint.findings import Finding, Severity
from ddilint.hookspecs import hookimpl
from ddilint.rules.base import FileContext, Rule

# Names used to spell an access mask in messages.
_ACCESS_NAMES = ("PROCESS_", "GENERIC_", "DELETE", "READ_CONTROL", "WRITE_DAC", "WRITE_OWNER",
                 "SYNCHRONIZE", "MAXIMUM_ALLOWED", "ACCESS_SYSTEM_SECURITY")


class ProcessHandleAccess(Rule):
    code = "DDI502"
    name = "process-handle-access"
    severity = Severity.ERROR
    summary = ("The process handle given to Zw/NtOpenProcessTokenEx was opened without query "
               "access.")
    routine = "ZwOpenProcessTokenEx"
    doc_section = "Parameters: ProcessHandle"
    facts = ("process_handle_param",)
    requirement = "The process handle must have PROCESS_QUERY_INFORMATION access."
    explanation = (
        "The token open fails with STATUS_ACCESS_DENIED when the process handle grants no\n"
        "query right. The failure shows up only at run time, usually on a path that was\n"
        "never tested because the open of the process succeeded."
    )
    bad_example = (
        "ZwOpenProcess(&process, PROCESS_VM_READ, &oa, &clientId);\n"
        "ZwOpenProcessTokenEx(process, TOKEN_QUERY, OBJ_KERNEL_HANDLE, &token);"
    )
    good_example = (
        "ZwOpenProcess(&process, PROCESS_QUERY_LIMITED_INFORMATION, &oa, &clientId);\n"
        "ZwOpenProcessTokenEx(process, TOKEN_QUERY, OBJ_KERNEL_HANDLE, &token);"
    )
    fix_text = ("Open the process with PROCESS_QUERY_LIMITED_INFORMATION (or "
                "PROCESS_QUERY_INFORMATION).")

    def check_file(self, ctx: FileContext) -> Iterator[Finding]:
        fv = None
        for call, routine in ctx.calls():
            index = routine.process_handle_param
            if (index is None or not routine.process_access or call.indirect
                    or ctx.defines_function(call.callee)):
                continue
            fv = fv or file_values(ctx.file, ctx.knowledge)
            rights = [v for v in (fv.constants.get(r) for r in routine.process_access) if v]
            cv = fv.at_call(call)
            if cv is None or index >= len(cv.call.args) or not rights:
                continue
            for opened in cv.handle_opens(cv.call.args[index]):
                # A right is surely not granted when one of its bits is surely clear.
                bad = [b for b in opened.access if all(b.zeros & r for r in rights)]
                if not bad:
                    continue
                line = ctx.file.position(callee_start(opened.call))[0]
                access = describe_value(bad[0], ctx.file, fv.constants, _ACCESS_NAMES)
                names = " nor ".join(routine.process_access[:2])
                yield ctx.finding(
                    self,
                    call.name_start,
                    f"{call.callee}: the {routine.param_name(index)} comes from "
                    f"{opened.routine.name} at line {line} with DesiredAccess {access}, which "
                    f"grants neither {names} (nor any right that includes one); the token "
                    "open fails with STATUS_ACCESS_DENIED",
                    trace=[ctx.step(callee_start(opened.call),
                                    f"process handle opened here with {access}")],
                    anchor=call.anchor,
                    routine=routine,
                )
                break


@hookimpl
def ddilint_rules() -> Sequence[Rule]:
    return [ProcessHandleAccess()]
