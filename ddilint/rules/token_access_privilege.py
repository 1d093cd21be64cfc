"""DDI503 token-access-privilege: the desired access asks for ACCESS_SYSTEM_SECURITY."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from ddilint.analyzer.values import describe_origin, file_values
from ddilint.findings import Finding, Severity
from ddilint.hookspecs import hookimpl
from ddilint.rules.base import FileContext, Rule


class TokenAccessPrivilege(Rule):
    code = "DDI503"
    name = "token-access-privilege"
    severity = Severity.WARNING
    summary = ("The desired access asks for ACCESS_SYSTEM_SECURITY, which needs "
               "SeSecurityPrivilege.")
    routine = "ZwOpenProcessTokenEx"
    doc_section = "Returns"
    facts = ("returns_status",)
    requirement = (
        "Opening the token with some access needs SeSecurityPrivilege; without it the routine "
        "fails with STATUS_PRIVILEGE_NOT_HELD."
    )
    explanation = (
        "ACCESS_SYSTEM_SECURITY (access to the SACL) is granted only when the caller's token\n"
        "has SeSecurityPrivilege enabled. A driver seldom needs the SACL of a token; asking\n"
        "for it makes the open fail depending on who the current thread belongs to."
    )
    bad_example = ("ZwOpenProcessTokenEx(process, TOKEN_QUERY | ACCESS_SYSTEM_SECURITY,\n"
                   "                     OBJ_KERNEL_HANDLE, &token);")
    good_example = "ZwOpenProcessTokenEx(process, TOKEN_QUERY, OBJ_KERNEL_HANDLE, &token);"
    fix_text = "Drop ACCESS_SYSTEM_SECURITY from the desired access."

    def check_file(self, ctx: FileContext) -> Iterator[Finding]:
        fv = None
        for call, routine in ctx.calls():
            index = routine.access_param
            if (index is None or not routine.privileged_access or call.indirect
                    or ctx.defines_function(call.callee)):
                continue
            fv = fv or file_values(ctx.file, ctx.knowledge)
            cv = fv.at_call(call)
            if cv is None or index >= len(cv.call.args):
                continue
            values = cv.values(cv.call.args[index])
            for right in routine.privileged_access:
                bit = fv.constants.get(right) or 0
                having = [b for b in values if b.has(bit)]
                if not having:
                    continue
                origin = having[0].origin
                for o in having[0].origins:  # the place that wrote the right, if one did
                    if o.expr is not None and any(
                            b.has(bit) for b in fv.constant_values(o.expr)):
                        origin = o
                        break
                yield ctx.finding(
                    self,
                    call.name_start,
                    f"{call.callee}: {routine.param_name(index)} asks for {right} "
                    f"({describe_origin(origin, ctx.file)}), which needs SeSecurityPrivilege; "
                    "without it the call fails with STATUS_PRIVILEGE_NOT_HELD",
                    trace=[ctx.step(origin.start, describe_origin(origin, ctx.file))],
                    anchor=call.anchor,
                    routine=routine,
                )
                break


@hookimpl
def ddilint_rules() -> Sequence[Rule]:
    return [TokenAccessPrivilege()]
