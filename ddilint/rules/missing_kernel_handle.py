"""DDI101 missing-kernel-handle: a handle-creating call can get attributes without
OBJ_KERNEL_HANDLE in code that can run outside the system process."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from ddilint.analyzer.handle_attributes import MissingFlag, missing_kernel_handle
from ddilint.analyzer.values import describe_origin
from ddilint.findings import Finding, Severity, TraceStep
from ddilint.hookspecs import hookimpl
from ddilint.rules.base import FileContext, Pending, ProjectView, Rule, complete


class MissingKernelHandle(Rule):
    code = "DDI101"
    name = "missing-kernel-handle"
    severity = Severity.ERROR
    summary = ("Handle attributes lack OBJ_KERNEL_HANDLE in code that can run outside the "
               "system process.")
    routine = "ZwOpenProcessTokenEx"
    doc_section = "Parameters: HandleAttributes"
    facts = ("attributes_param", "object_attributes_param")
    requirement = (
        "Driver code that is not running in the system process context must specify "
        "OBJ_KERNEL_HANDLE in the handle attributes (HandleAttributes, or the Attributes of "
        "the OBJECT_ATTRIBUTES given to ZwOpenKey, ZwCreateFile, ZwOpenProcess, ...)."
    )
    explanation = (
        "Without OBJ_KERNEL_HANDLE the handle goes into the handle table of whatever process\n"
        "the driver is running in. In a dispatch routine or a callback that is a user\n"
        "process: it can see the handle, use it with the access the driver asked for, close\n"
        "it, or put another object under the same value before the driver uses it again."
    )
    bad_example = (
        "/* in an IRP_MJ_DEVICE_CONTROL handler */\n"
        "InitializeObjectAttributes(&oa, &name, OBJ_CASE_INSENSITIVE, NULL, NULL);\n"
        "status = ZwOpenKey(&key, KEY_READ, &oa);"
    )
    good_example = (
        "InitializeObjectAttributes(&oa, &name, OBJ_CASE_INSENSITIVE | OBJ_KERNEL_HANDLE,\n"
        "                           NULL, NULL);\n"
        "status = ZwOpenKey(&key, KEY_READ, &oa);"
    )
    fix_text = ("Add OBJ_KERNEL_HANDLE to the attributes (`--fix` does it where they are "
                "written in the call or in InitializeObjectAttributes, outside macros).")

    def check_file(self, ctx: FileContext) -> Iterator[Pending]:
        if not ctx.has_mode("kernel"):
            return
        for m in missing_kernel_handle(ctx.file, ctx.knowledge):
            if ctx.mode_at(m.site.name_start) != "kernel":
                continue  # in a branch only user mode compiles
            fn = m.site.function.qualname if m.site.function else ""
            # Whether the function can run outside the system process: phase three.
            yield ctx.defer(self, function=m.site.function, finding=attribute_finding(
                self, ctx, m, f"{m.lacking_text(ctx.file)}; {m.requirement()}, and {fn} can "
                "run outside it ("), data=(")", m.through))

    def resolve(self, pending: Pending, view: ProjectView) -> Iterator[Finding]:
        context = view.execution_context(pending.function)
        if context.system_only or pending.finding is None or for_the_requester(pending, view):
            return
        yield attribute_completed(pending, context.reason, context.trace)


def attribute_finding(rule: Rule, ctx: FileContext, m: MissingFlag, message: str) -> Finding:
    """A DDI101/DDI102 finding at the call as far as the file tells: the callee (and
    macro), the start of `message` (the context's reason follows, see
    `attribute_completed`), the places that set the attributes as trace, the fix, the
    citation."""
    where = f" (through macro {m.site.via})" if m.site.via else ""
    fn = m.site.function.qualname if m.site.function else ""
    return ctx.finding(
        rule,
        m.site.name_start,
        f"{m.site.callee}{where}: {message}",
        trace=[ctx.step(b.origin.start, describe_origin(b.origin, ctx.file))
               for b in m.lacking],
        fixes=m.fix(ctx.file),
        anchor=f"{fn}:{m.site.callee}",
        routine=m.routine,
        fact="object_attributes_param" if m.object_attributes else "attributes_param",
    )


def attribute_completed(pending: Pending, reason: str, trace: Sequence[TraceStep]) -> Finding:
    """The pending's finding with the execution context's reason between the message's
    start and the rest kept in `pending.data` (first), and the context's chain after the
    trace."""
    assert pending.finding is not None
    rest = pending.data[0]
    return complete(pending.finding, f"{pending.finding.message}{reason}{rest}", trace)


def for_the_requester(pending: Pending, view: ProjectView) -> bool:
    """The handle leaves its function through a parameter (`MissingFlag.through`, second
    in `pending.data`) and every caller puts it in the request's reply: made for the
    application on purpose, as when the function itself does so."""
    through = pending.data[1] if len(pending.data) > 1 else None
    return through is not None and view.handed_to_requester(pending.function, through)


@hookimpl
def ddilint_rules() -> Sequence[Rule]:
    return [MissingKernelHandle()]
