"""DDI101 missing-kernel-handle: a handle-creating call can get attributes without
OBJ_KERNEL_HANDLE in code that can run outside the system process."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from ddilint.analyzer.context import ExecutionContext
from ddilint.analyzer.handle_attributes import MissingFlag, missing_kernel_handle
from ddilint.analyzer.values import describe_origin
from ddilint.findings import Finding, Severity
from ddilint.hookspecs import hookimpl
from ddilint.rules.base import FileContext, Rule


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

    def check_file(self, ctx: FileContext) -> Iterator[Finding]:
        if ctx.mode != "kernel":
            return
        for m in missing_kernel_handle(ctx.file, ctx.knowledge):
            context = ctx.execution_context(m.site.function)
            if context.system_only:
                continue
            fn = m.site.function.qualname if m.site.function else ""
            yield attribute_finding(
                self, ctx, m, context,
                f"{m.lacking_text(ctx.file)}; {m.requirement()}, and {fn} can run outside it "
                f"({context.reason})",
            )


def attribute_finding(rule: Rule, ctx: FileContext, m: MissingFlag, context: ExecutionContext,
                      message: str) -> Finding:
    """A DDI101/DDI102 finding at the call: the callee (and macro), `message`, the places
    that set the attributes and the context's chain as trace, the fix, the citation."""
    where = f" (through macro {m.site.via})" if m.site.via else ""
    fn = m.site.function.qualname if m.site.function else ""
    return ctx.finding(
        rule,
        m.site.name_start,
        f"{m.site.callee}{where}: {message}",
        trace=[*(ctx.step(b.origin.start, describe_origin(b.origin, ctx.file))
                 for b in m.lacking), *context.trace],
        fixes=m.fix(ctx.file),
        anchor=f"{fn}:{m.site.callee}",
        routine=m.routine,
        fact="object_attributes_param" if m.object_attributes else "attributes_param",
    )

@hookimpl
def ddilint_rules() -> Sequence[Rule]:
    return [MissingKernelHandle()]
