"""Kernel or user mode, per file (RULES.md "Kernel or user mode").

A file is kernel-mode code when it includes a kernel header (or the config says so); user
mode when it includes Win32/native user headers and no kernel header; otherwise kernel mode.
"""

from __future__ import annotations

from collections.abc import Iterable

KERNEL_HEADERS = frozenset({
    "ntddk.h", "wdm.h", "ntifs.h", "fltkernel.h", "storport.h", "ndis.h", "ntstrsafe.h",
    "wdmsec.h", "netadaptercx.h", "portcls.h", "hidport.h", "miniport.h", "ntimage.h",
    "srb.h", "scsiwmi.h", "wdmguid.h", "ntpoapi.h", "ntddsd.h", "acpiioct.h", "wsk.h",
    "fwpsk.h", "ntosp.h", "ntddk_ex.h", "ntoskrnl.h", "sercx.h", "spb.h", "ucmcx.h",
    "kbdmou.h", "wdmsal.h",
})
USER_HEADERS = frozenset({
    "windows.h", "winternl.h", "phnt.h", "phnt_windows.h", "wudfwdm.h", "wudfddi.h",
    "winbase.h", "windef.h", "atlbase.h", "tchar.h",
    "setupapi.h", "cfgmgr32.h", "iphlpapi.h", "winsock2.h", "objbase.h",
})


def detect_mode(includes: Iterable[str], override: str | None = None) -> str:
    """ "kernel" or "user" for a file with these `#include` targets."""
    if override in ("kernel", "user"):
        return override
    names = {inc.rsplit("/", 1)[-1].lower() for inc in includes}
    has_wdf = "wdf.h" in names
    umdf = "wudfwdm.h" in names or "wudfddi.h" in names
    if names & KERNEL_HEADERS or (has_wdf and not umdf):
        return "kernel"
    if names & USER_HEADERS:
        return "user"
    return "kernel"
