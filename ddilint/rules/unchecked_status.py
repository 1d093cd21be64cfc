"""DDI501 unchecked-status: the NTSTATUS of a routine whose outputs are valid only on
success is thrown away."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from ddilint.analyzer.ir import Expr, Function
from ddilint.analyzer.status import (
    asks_for_outputs,
    callee_start,
    lost_statuses,
    outputs_valid_on_success,
    status_outputs,
)
from ddilint.analyzer.values import file_values
from ddilint.findings import Finding, Severity
from ddilint.hookspecs import hookimpl
from ddilint.knowledge import Routine
from ddilint.rules.base import FileContext, Rule


class UncheckedStatus(Rule):
    code = "DDI501"
    name = "unchecked-status"
    severity = Severity.WARNING
    summary = ("The NTSTATUS of a routine whose outputs are valid only on success is thrown "
               "away.")
    routine = "ZwOpenProcessTokenEx"
    doc_section = "Returns"
    facts = ("returns_status",)
    requirement = (
        "The routine returns STATUS_SUCCESS or an error status; what it writes through its "
        "[out] parameters (the token handle) exists only when it succeeded."
    )
    explanation = (
        "When the status is not looked at, the code goes on with an output that was never\n"
        "written on failure: an uninitialised handle is used or closed, a buffer is read\n"
        "that holds garbage. Storing the status and overwriting it with the next call's\n"
        "before testing it is the same bug."
    )
    bad_example = (
        "status = ZwOpenKey(&key, KEY_READ, &oa);\n"
        "status = ZwQueryValueKey(key, &name, KeyValuePartialInformation, buf, len, &len);"
    )
    good_example = (
        "status = ZwOpenKey(&key, KEY_READ, &oa);\n"
        "if (!NT_SUCCESS(status)) {\n"
        "    return status;\n"
        "}"
    )
    fix_text = "Test the status with NT_SUCCESS before using the outputs."

    def check_file(self, ctx: FileContext) -> Iterator[Finding]:
        fv = file_values(ctx.file, ctx.knowledge)

        def is_status(call: Expr) -> Routine | None:
            r = fv.routine(call.callee or "")
            return r if r is not None and outputs_valid_on_success(r) else None

        functions: dict[int, Function] = {}
        for call, routine in ctx.calls():
            if call.function is not None and outputs_valid_on_success(routine):
                functions.setdefault(id(call.function), call.function)
        seen: set[tuple[int, str]] = set()
        for fn in functions.values():
            for loss in lost_statuses(fv.function(fn), is_status):
                if not asks_for_outputs(loss.call, loss.routine):
                    continue  # NULL for every output: no result to trust on failure
                at = callee_start(loss.call)
                if (at, loss.how) in seen:
                    continue
                seen.add((at, loss.how))
                name = loss.routine.name
                outs = status_outputs(loss.routine)
                what = f"its outputs ({', '.join(outs)}) are valid only on success"
                if loss.how == "statement":
                    how = "the call is a statement of its own"
                elif loss.how == "void":
                    how = "the call is cast to void"
                elif loss.how == "overwritten":
                    line = ctx.file.position(loss.lost_at)[0]
                    how = (f"it is stored in `{loss.var}` and overwritten at line {line} "
                           "before it is read")
                else:
                    how = (f"it is stored in `{loss.var}`, which is never read afterwards on "
                           "some path")
                trace = []
                if loss.how == "overwritten":
                    trace.append(ctx.step(loss.lost_at, f"`{loss.var}` overwritten here"))
                yield ctx.finding(
                    self,
                    at,
                    f"the NTSTATUS of {name} is not checked: {how}; {what}",
                    trace=trace,
                    anchor=f"{fn.qualname}:{name}:{loss.how}",
                    routine=loss.routine,
                )


@hookimpl
def ddilint_rules() -> Sequence[Rule]:
    return [UncheckedStatus()]
