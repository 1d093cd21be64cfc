"""The rule catalogue of RULES.md: every public code and name, implemented or not.

Codes and names are the public interface (users put them in configs and suppression
comments). `ddilint rules` lists this whole catalogue, marking which rules are loaded; a
rule that no plugin provides is shown as not implemented and is never run.
"""

from __future__ import annotations

from dataclasses import dataclass

from ddilint.findings import Severity


@dataclass(frozen=True, slots=True)
class CatalogueEntry:
    """A public rule code, its kebab-case name, default severity and one-line summary."""

    code: str
    name: str
    severity: Severity
    summary: str


E, W, N = Severity.ERROR, Severity.WARNING, Severity.NOTE

CATALOGUE: tuple[CatalogueEntry, ...] = (
    CatalogueEntry("DDI101", "missing-kernel-handle", E,
                   "Handle attributes lack OBJ_KERNEL_HANDLE in code that can run outside the "
                   "system process."),
    CatalogueEntry("DDI102", "kernel-handle-in-system-context", W,
                   "Handle attributes lack OBJ_KERNEL_HANDLE; every way to the call runs in the "
                   "system process, where the page still asks for it."),
    CatalogueEntry("DDI103", "token-open-without-attributes", E,
                   "Zw/NtOpenProcessToken or Zw/NtOpenThreadToken, which cannot take "
                   "OBJ_KERNEL_HANDLE, in code that can run outside the system process."),
    CatalogueEntry("DDI201", "handle-leak", E,
                   "A handle the call created is not released on some path where the call "
                   "succeeded."),
    CatalogueEntry("DDI202", "double-close", E, "A handle is released twice on one path."),
    CatalogueEntry("DDI203", "use-after-close", E,
                   "A released handle is passed to a routine again."),
    CatalogueEntry("DDI301", "irql-too-high", E,
                   "The call can run above the routine's documented maximum IRQL."),
    CatalogueEntry("DDI401", "nt-routine-in-kernel-mode", W,
                   "Kernel-mode code calls the Nt form of a routine that has a Zw form."),
    CatalogueEntry("DDI402", "zw-routine-in-user-mode", W,
                   "User-mode code calls the Zw form of a routine; use the Nt name."),
    CatalogueEntry("DDI501", "unchecked-status", W,
                   "The NTSTATUS of a routine whose outputs are valid only on success is "
                   "thrown away."),
    CatalogueEntry("DDI502", "process-handle-access", E,
                   "The process handle given to Zw/NtOpenProcessTokenEx was opened without "
                   "query access."),
    CatalogueEntry("DDI503", "token-access-privilege", W,
                   "The desired access asks for ACCESS_SYSTEM_SECURITY, which needs "
                   "SeSecurityPrivilege."),
    CatalogueEntry("DDI504", "status-as-boolean", E,
                   "An NTSTATUS is tested as a truth value; success is 0, so the test is "
                   "inverted."),
    CatalogueEntry("DDI601", "power-irp-ddi", E,
                   "A routine listed under PowerIrpDDis is reached from an IRP_MJ_POWER "
                   "dispatch routine."),
    CatalogueEntry("DDI602", "storport-prohibited-ddi", E,
                   "A routine listed under HwStorPortProhibitedDDIs is called by a StorPort "
                   "miniport (not a virtual one)."),
    # Analysis notices: about ddilint's view of the input, never about the driver.
    CatalogueEntry("DDI901", "unreadable-file", N, "A file could not be read."),
    CatalogueEntry("DDI902", "binary-file", N, "A file looks binary and was skipped."),
    CatalogueEntry("DDI903", "lossy-decoding", N,
                   "A file was not valid UTF-8/UTF-16 (or held NUL bytes) and was decoded "
                   "lossily."),
    CatalogueEntry("DDI904", "file-too-large", N, "A file is over the size limit and was skipped."),
    CatalogueEntry("DDI905", "analysis-limit", N,
                   "An analysis stopped early on a function (time or size budget)."),
    CatalogueEntry("DDI906", "internal-error", N,
                   "A rule failed on a file; the other rules and files went on."),
    CatalogueEntry("DDI907", "unused-suppression", N,
                   "A `ddilint: ignore` comment silenced nothing (--report-unused-suppressions)."),
)

BY_CODE = {e.code: e for e in CATALOGUE}
BY_NAME = {e.name: e for e in CATALOGUE}


def notice_entry(code: str) -> CatalogueEntry:
    """The catalogue entry of a DDI9xx notice code."""
    return BY_CODE[code]
