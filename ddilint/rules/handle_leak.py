"""DDI201 handle-leak: a handle a call created is not released on some path on which the
call succeeded, and was not handed to someone else."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from ddilint.analyzer.engine import notice
from ddilint.analyzer.handles import handle_facts, iter_leaks
from ddilint.findings import Finding, Severity
from ddilint.hookspecs import hookimpl
from ddilint.rules.base import FileContext, Rule


class HandleLeak(Rule):
    code = "DDI201"
    name = "handle-leak"
    severity = Severity.ERROR
    summary = ("A handle that the call created is not released on some path on which the "
               "call succeeded.")
    routine = "ZwOpenProcessTokenEx"
    doc_section = "Remarks"
    facts = ("release", "handle_out_param")
    requirement = (
        "When the handle is no longer needed, the driver closes it with ZwClose "
        "(ObCloseHandle, FltClose for Filter Manager opens; CloseHandle in user mode)."
    )
    explanation = (
        "A kernel handle that is never closed keeps its object alive for as long as the\n"
        "process (for kernel handles: the system) lives. A leak on an error path is the\n"
        "classic case: the open succeeded, a later call failed, and the function returned\n"
        "before reaching the ZwClose. ddilint follows the status of the open, NULL checks\n"
        "and copies of the handle, and stays silent when the handle is stored where it\n"
        "outlives the function (a context structure, a global, a caller's pointer), is\n"
        "returned, or is given to a routine it does not know."
    )
    bad_example = (
        "status = ZwOpenKey(&key, KEY_READ, &attributes);\n"
        "if (!NT_SUCCESS(status)) return status;\n"
        "status = ZwQueryValueKey(key, &name, KeyValuePartialInformation, buf, len, &len);\n"
        "if (!NT_SUCCESS(status)) return status;   /* key leaks */\n"
        "ZwClose(key);"
    )
    good_example = (
        "status = ZwOpenKey(&key, KEY_READ, &attributes);\n"
        "if (!NT_SUCCESS(status)) return status;\n"
        "status = ZwQueryValueKey(key, &name, KeyValuePartialInformation, buf, len, &len);\n"
        "ZwClose(key);\n"
        "return status;"
    )
    fix_text = "Release the handle on the path the trace shows (a `goto` cleanup label helps)."

    def check_file(self, ctx: FileContext) -> Iterator[Finding]:
        facts = handle_facts(ctx.file, ctx.knowledge, ctx.mode)
        for offset, why in facts.given_up:
            loc = ctx.location(offset)
            # Said once (by DDI201) for DDI201/202/203: their analysis is shared.
            yield notice("DDI905", ctx.path, f"handles not checked in {why}", loc.line,
                         loc.column)
        for leak in iter_leaks(facts):
            site = leak.site
            line = ctx.location(leak.exit_offset).line
            release = ", ".join(_in_mode(ctx, name, ctx.mode_at(site.offset))
                                for name in (site.routine.release if site.routine
                                             and site.routine.release else ("ZwClose",)))
            if leak.exit_kind == "overwrite":
                where = f"is lost when `{site.var}` is overwritten on line {line}"
            elif leak.exit_kind == "return":
                where = f"leaks at the return on line {line}"
            else:
                where = f"leaks where the function ends on line {line}"
            more = ""
            if leak.other_exits:
                lines = sorted({ctx.location(o).line for o in leak.other_exits} - {line})
                if lines:
                    more = f" (also line{'s' if len(lines) > 1 else ''} " \
                           f"{', '.join(str(n) for n in lines)})"
            message = (f"the handle {site.callee} opens in `{site.var}` {where}{more} "
                       f"on a path where the call succeeded; release it with {release}")
            yield ctx.finding(
                self, site.offset, message,
                trace=[ctx.step(s.offset, s.message) for s in leak.trace],
                anchor=f"{leak.function.qualname}:{site.callee}:{site.var}",
            )


def _in_mode(ctx: FileContext, name: str, mode: str) -> str:
    """A release routine as the code's mode calls it: the page may name `ZwClose` or
    `NtClose`; kernel-mode code calls the `Zw` form, user-mode code the `Nt` form (what
    DDI401/DDI402 ask)."""
    twin = ctx.knowledge.nt_twin(name) if mode == "user" else ctx.knowledge.zw_twin(name)
    return twin or name


@hookimpl
def ddilint_rules() -> Sequence[Rule]:
    return [HandleLeak()]
