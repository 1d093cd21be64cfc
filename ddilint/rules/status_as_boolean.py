"""DDI504 status-as-boolean: an NTSTATUS is tested as a truth value."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from functools import partial

from ddilint.analyzer.ir import Expr, Function
from ddilint.analyzer.status import callee_start, truth_tests
from ddilint.analyzer.values import file_values
from ddilint.findings import Finding, Severity
from ddilint.hookspecs import hookimpl
from ddilint.knowledge import Routine
from ddilint.rules.base import FileContext, Rule


class StatusAsBoolean(Rule):
    code = "DDI504"
    name = "status-as-boolean"
    severity = Severity.ERROR
    summary = "An NTSTATUS is tested as a truth value; success is 0, so the test is inverted."
    routine = "ZwOpenProcessTokenEx"
    doc_section = "Returns"
    facts = ("returns_status",)
    requirement = (
        "The routine returns STATUS_SUCCESS (0) or an error status: test it with NT_SUCCESS, "
        "not as a boolean."
    )
    explanation = (
        "`if (status)` and `if (!ZwOpenProcessTokenEx(...))` read as \"if it worked\" but mean\n"
        "the opposite: STATUS_SUCCESS is 0. The success path then leaks the handle and the\n"
        "failure path uses a handle that was never written. Informational and warning\n"
        "statuses are not 0 either."
    )
    bad_example = (
        "status = ZwOpenProcessTokenEx(process, TOKEN_QUERY, OBJ_KERNEL_HANDLE, &token);\n"
        "if (status) {\n"
        "    ZwQueryInformationToken(token, ...);\n"
        "}"
    )
    good_example = (
        "status = ZwOpenProcessTokenEx(process, TOKEN_QUERY, OBJ_KERNEL_HANDLE, &token);\n"
        "if (NT_SUCCESS(status)) {\n"
        "    ZwQueryInformationToken(token, ...);\n"
        "}"
    )
    fix_text = "Use NT_SUCCESS(status) (or compare with a STATUS_ value)."

    def check_file(self, ctx: FileContext) -> Iterator[Finding]:
        fv = file_values(ctx.file, ctx.knowledge)

        def is_status(call: Expr) -> Routine | None:
            r = fv.routine(call.callee or "")
            return r if r is not None and r.returns_status is True else None

        functions: dict[int, Function] = {}
        for call, routine in ctx.calls():
            if call.function is not None and routine.returns_status is True:
                functions.setdefault(id(call.function), call.function)
        for fn in functions.values():
            for t in truth_tests(fn, partial(fv.function, fn), is_status):
                tested = t.tested.strip()
                direct = tested.kind == "call"
                at = callee_start(t.call) if direct else t.tested.start
                if direct:
                    text = f"{t.routine.name}(...)"
                elif tested.kind == "assign" and tested.children:
                    text = f"{tested.children[0].render()} = {t.routine.name}(...)"
                else:
                    text = t.tested.render()
                where = {"condition": "as a condition", "!": "with `!`",
                         "&&": "as an operand of `&&`", "||": "as an operand of `||`",
                         "?:": "as the test of `?:`"}.get(t.how, f"with `{t.how}`")
                yield ctx.finding(
                    self,
                    at,
                    f"the NTSTATUS of {t.routine.name} is tested as a truth value ({text} "
                    f"{where}): STATUS_SUCCESS is 0, so the test means the opposite of what "
                    "it reads; use NT_SUCCESS()",
                    trace=[ctx.step(callee_start(t.call), f"status returned by "
                                    f"{t.routine.name}")] if not direct else [],
                    anchor=f"{fn.qualname}:{t.routine.name}:{t.how}",
                    routine=t.routine,
                )


@hookimpl
def ddilint_rules() -> Sequence[Rule]:
    return [StatusAsBoolean()]
