"""DDI202 double-close: a handle is released twice on one path (at the second release)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from ddilint.analyzer.handles import handle_facts, misuses, release_how
from ddilint.findings import Finding, Severity
from ddilint.hookspecs import hookimpl
from ddilint.rules.base import FileContext, Rule


class DoubleClose(Rule):
    code = "DDI202"
    name = "double-close"
    severity = Severity.ERROR
    summary = "A handle is released twice on one path."
    routine = "ZwClose"
    doc_section = "Remarks"
    requirement = "Closing a handle makes it invalid: the same value must not be closed again."
    explanation = (
        "After the first release the handle value is free: the system may already have\n"
        "given it to another open, in this driver or elsewhere in the process, so the\n"
        "second release closes someone else's object (or bug-checks with a kernel handle\n"
        "under Driver Verifier)."
    )
    bad_example = "ZwClose(key);\n...\nif (key != NULL) ZwClose(key);"
    good_example = "ZwClose(key);\nkey = NULL;\n...\nif (key != NULL) ZwClose(key);"
    fix_text = "Set the variable to NULL after releasing it, or release it in one place."

    def check_file(self, ctx: FileContext) -> Iterator[Finding]:
        facts = handle_facts(ctx.file, ctx.knowledge, ctx.mode)
        for m in misuses(facts, "double"):
            first = ctx.location(m.released_at).line
            how = release_how(ctx.call_at(m.released_at), ctx.knowledge)
            yield ctx.finding(
                self, m.offset,
                f"`{m.var}` is released again by {m.callee}; it was already released on "
                f"line {first} on this path{how}",
                trace=[ctx.step(m.released_at, f"`{m.var}` is released{how}"),
                       ctx.step(m.offset, "released again")],
                anchor=f"{m.function.qualname}:{m.callee}:{m.var}",
                routine=_release_page(ctx, m.callee),
            )


def _release_page(ctx: FileContext, callee: str) -> str:
    """The release routine whose page says a closed handle is invalid: the one called
    when it is documented as a release, else ZwClose."""
    r = ctx.knowledge.get(callee)
    if r is not None and r.closes_handle_param is not None and r.url:
        return callee
    return "ZwClose"


@hookimpl
def ddilint_rules() -> Sequence[Rule]:
    return [DoubleClose()]
