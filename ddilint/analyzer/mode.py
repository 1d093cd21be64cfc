"""Kernel or user mode, per file (RULES.md "Kernel or user mode").

A file is kernel-mode code when it includes a kernel header (or the config says so); user
mode when it includes Win32/native user headers and no kernel header; otherwise kernel mode.
A file whose headers say nothing (it includes only the project's own headers) is user mode
when it shows it plainly: it defines a user-mode entry point (`main`, `WinMain`, `DllMain`)
or calls Win32 routines that do not exist in kernel mode (`CreateFileW`, `CloseHandle`,
`GetLastError`, `WaitForSingleObject`, ...) without defining them itself, and calls no
kernel routine (`Ke*`, `Io*`, `Zw*`, ...): mixed evidence keeps the default, kernel mode.
"""

from __future__ import annotations

import re
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
    "strsafe.h", "sddl.h", "shlwapi.h", "shellapi.h", "winsvc.h", "wincrypt.h", "aclapi.h",
    "winioctl.h", "processthreadsapi.h", "synchapi.h", "fileapi.h", "handleapi.h",
})
# Entry points only user-mode programs and DLLs define.
USER_ENTRY_POINTS = frozenset({
    "main", "wmain", "_tmain", "WinMain", "wWinMain", "_tWinMain", "DllMain",
})
# Win32 and C runtime routines that kernel-mode code cannot call.
USER_ONLY_CALLS = frozenset({
    "CreateFileA", "CreateFileW", "CloseHandle", "GetLastError", "SetLastError",
    "DeviceIoControl", "ReadFile", "WriteFile", "WaitForSingleObject",
    "WaitForMultipleObjects", "CreateEventA", "CreateEventW", "SetEvent", "ResetEvent",
    "CreateThread", "Sleep", "HeapAlloc", "HeapFree", "GetProcessHeap", "LocalAlloc",
    "LocalFree", "GlobalAlloc", "GlobalFree", "LoadLibraryA", "LoadLibraryW",
    "LoadLibraryExA", "LoadLibraryExW", "GetProcAddress", "FreeLibrary", "GetCurrentProcess",
    "GetCurrentThread", "GetCurrentProcessId", "OpenProcess", "OpenProcessToken",
    "OpenThreadToken", "GetTokenInformation", "AdjustTokenPrivileges", "RegOpenKeyExA",
    "RegOpenKeyExW", "RegQueryValueExA", "RegQueryValueExW", "RegCloseKey", "MessageBoxA",
    "MessageBoxW", "IsDebuggerPresent", "DebugBreak", "ExitProcess", "GetModuleHandleA",
    "GetModuleHandleW", "printf", "wprintf", "fprintf", "fwprintf", "_tprintf",
})


# Routine families of kernel code (KeWaitForSingleObject, IoCallDriver, ZwClose, ...): a file
# whose headers say nothing and that calls one is taken as kernel code whatever else it
# calls (a file built for both modes, `#if` on the mode, shows both kinds of calls).
_KERNEL_ONLY_CALL = re.compile(
    r"^(Ke|Ex|Io|Ob|Ps|Mm|Flt|Po|Cm|Hal|Se|Ndis|Wsk|StorPort|Zw)[A-Z]")


def detect_mode(
    includes: Iterable[str],
    override: str | None = None,
    defined: Iterable[str] = (),
    called: Iterable[str] = (),
) -> str:
    """ "kernel" or "user" for a file with these `#include` targets, defining the functions
    `defined` and calling the routines `called`."""
    if override in ("kernel", "user"):
        return override
    names = {inc.rsplit("/", 1)[-1].lower() for inc in includes}
    has_wdf = "wdf.h" in names
    umdf = "wudfwdm.h" in names or "wudfddi.h" in names
    if names & KERNEL_HEADERS or (has_wdf and not umdf):
        return "kernel"
    if names & USER_HEADERS:
        return "user"
    own = set(defined)
    calls = {c for c in called if c not in own}
    if any(_KERNEL_ONLY_CALL.match(c) for c in calls):
        return "kernel"
    if own & USER_ENTRY_POINTS or calls & USER_ONLY_CALLS:
        return "user"
    return "kernel"
