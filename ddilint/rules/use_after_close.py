"""DDI203 use-after-close: a released handle is passed to a routine again (at that call)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from ddilint.analyzer.handles import handle_facts, misuses, release_how
from ddilint.findings import Finding, Severity
from ddilint.hookspecs import hookimpl
from ddilint.rules.base import FileContext, Rule


class UseAfterClose(Rule):
    code = "DDI203"
    name = "use-after-close"
    severity = Severity.ERROR
    summary = "A released handle is passed to a routine again on one path."
    routine = "ZwClose"
    doc_section = "Remarks"
    requirement = "Closing a handle makes it invalid: no routine may be given it afterwards."
    explanation = (
        "After the release the handle value may already name another object, so the call\n"
        "works on the wrong object, or fails with STATUS_INVALID_HANDLE (a bug check for a\n"
        "kernel handle under Driver Verifier)."
    )
    bad_example = (
        "ZwClose(token);\n"
        "status = ZwQueryInformationToken(token, TokenUser, buf, len, &len);"
    )
    good_example = (
        "status = ZwQueryInformationToken(token, TokenUser, buf, len, &len);\n"
        "ZwClose(token);"
    )
    fix_text = "Move the release after the last use."

    def check_file(self, ctx: FileContext) -> Iterator[Finding]:
        facts = handle_facts(ctx.file, ctx.knowledge, ctx.mode)
        for m in misuses(facts, "use"):
            first = ctx.location(m.released_at).line
            how = release_how(ctx.call_at(m.released_at), ctx.knowledge)
            yield ctx.finding(
                self, m.offset,
                f"`{m.var}` is passed to {m.callee} after it was released on line {first} "
                f"on this path{how}",
                trace=[ctx.step(m.released_at, f"`{m.var}` is released{how}"),
                       ctx.step(m.offset, "used after the release")],
                anchor=f"{m.function.qualname}:{m.callee}:{m.var}",
                routine="ZwClose",  # its Remarks: closing a handle makes it invalid
            )


@hookimpl
def ddilint_rules() -> Sequence[Rule]:
    return [UseAfterClose()]
