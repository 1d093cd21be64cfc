"""Kernel or user mode, per file (RULES.md "Kernel or user mode").

A file is kernel-mode code when it includes a kernel header (or the config says so); user
mode when it includes Win32/native user headers and no kernel header; otherwise kernel mode.
`wdf.h` is a kernel header unless the file also includes `wudfwdm.h`/`wudfddi.h` or a
Win32 header: a UMDF 2 driver includes `windows.h` and `wdf.h` (its `wdf.h` pulls
`wudfwdm.h` in), and no kernel-mode driver can include `windows.h`.

"Includes" means what the compiler sees, as far as the project's own files tell:
1. the file's own `#include`s decide when they name a kernel or user header (but a file
   that defines a program's `main` and no `DriverEntry` is user-mode code even beside a
   kernel header: a native application, `native_program`);
2. else the project headers it includes decide, nearest first (`include_modes`): a tool
   that includes only `"precomp.h"`, which includes `<windows.h>`, is user-mode code; a
   kernel header beats a user header at the same depth. A header that includes nothing
   telling takes the mode of the files that include it when they all show the same one
   by steps 1 and 2 (the inline helpers of a user-mode library's header are user mode).
   Includes in a branch on the build's mode (`#if !defined(_KERNEL_MODE)`) tell nothing:
   the file is built for both. But a header such a branch includes is built in the mode
   the branch is compiled in (`#if (PHNT_MODE != PHNT_MODE_KERNEL)`, the `#else` of
   `#ifdef _KERNEL_MODE`), whatever the mode of the file that includes it;
3. else the file shows it plainly (`call_mode`): it defines a user-mode entry point
   (`main`, `WinMain`, `DllMain`) or calls Win32 routines that do not exist in kernel mode
   (`CreateFileW`, `CloseHandle`, `GetLastError`, ...) without defining them itself, and
   calls no kernel routine (`Ke*`, `Io*`, `Zw*`, ...), or it calls a kernel routine; mixed
   evidence says nothing;
4. else kernel mode.
Steps 1, 3 and 4 need only the file (`detect_mode`). Step 2 needs the project's files:
phase one runs the rules of a file whose includes show nothing in both modes, and the
engine picks one when every file's includes are known (`engine.settle_modes`, on
`FileSummary.includes`).
"""

from __future__ import annotations

import posixpath
import re
from bisect import bisect_left
from collections import deque
from collections.abc import Iterable, Mapping, Sequence

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
# Those of a program: no driver defines one, whatever headers it includes.
PROGRAM_ENTRY_POINTS = USER_ENTRY_POINTS - {"DllMain"}


def native_program(defined: Iterable[str]) -> bool:
    """Does a file whose functions are `defined` hold a program's entry point and no
    driver's (`main` without `DriverEntry`)? Such a file is user-mode code even where its
    own includes name a kernel header: a native application built with the WDK's headers
    for their types (`<ntifs.h>`, then `NtCreateFile` and `NtDeviceIoControlFile` from
    `main`; a kernel driver never defines `main`)."""
    names = set(defined)
    return bool(names & PROGRAM_ENTRY_POINTS) and "DriverEntry" not in names
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


def header_mode(includes: Iterable[str]) -> str | None:
    """"kernel" or "user" when these `#include` targets name a kernel or user header."""
    names = {inc.rsplit("/", 1)[-1].lower() for inc in includes}
    if names & KERNEL_HEADERS:
        return "kernel"
    user = bool(names & USER_HEADERS)
    if "wdf.h" in names and not user:
        return "kernel"
    return "user" if user else None


def call_mode(defined: Iterable[str] = (), called: Iterable[str] = ()) -> str | None:
    """"kernel" or "user" when the functions a file defines and the routines it calls show
    it (step 3 of the module doc); None when they say nothing or disagree."""
    own = set(defined)
    calls = {c for c in called if c not in own}
    if any(_KERNEL_ONLY_CALL.match(c) for c in calls):
        return "kernel"
    if own & USER_ENTRY_POINTS or calls & USER_ONLY_CALLS:
        return "user"
    return None


def detect_mode(
    includes: Iterable[str],
    override: str | None = None,
    defined: Iterable[str] = (),
    called: Iterable[str] = (),
) -> str:
    """ "kernel" or "user" for a file with these `#include` targets, defining the functions
    `defined` and calling the routines `called` (steps 1, 3 and 4 of the module doc)."""
    if override in ("kernel", "user"):
        return override
    defined = list(defined)
    return own_mode(includes, defined) or call_mode(defined, called) or "kernel"


def own_mode(includes: Iterable[str], defined: Iterable[str]) -> str | None:
    """Step 1 of the module doc: the mode a file's own `#include`s show (`header_mode`),
    but user mode for a native program beside a kernel header (`native_program`)."""
    shown = header_mode(includes)
    return "user" if shown == "kernel" and native_program(defined) else shown


def include_modes(
    files: Mapping[str, tuple[Sequence[str], str]], wanted: Iterable[str],
    sided: Mapping[str, Sequence[tuple[str, str]]] | None = None,
) -> dict[str, str]:
    """Step 2 of the module doc: for each path of `wanted`, the mode the project headers it
    includes show, nearest first, else the mode all the files that include it show by
    their own or their headers' includes (absent when there is none). `files` maps every
    project file's path to its `#include` targets and the mode they show ("" for none);
    `sided`, a file's path to its includes in a branch only one mode compiles, with that
    mode (`#if (PHNT_MODE != PHNT_MODE_KERNEL)`): such an include shows that mode
    whatever the file that includes is."""
    resolve = IncludeResolver(files)
    includers: dict[str, set[str]] = {}
    for path, (incs, _m) in files.items():
        for inc in incs:
            target = resolve(inc, path)
            if target is not None and target != path:
                includers.setdefault(target, set()).add(path)
    sides: dict[str, set[str]] = {}
    for path, pairs in (sided or {}).items():
        for inc, side in pairs:
            target = resolve(inc, path)
            if target is not None and target != path:
                sides.setdefault(target, set()).add(side)
    # Distances to the nearest header that shows each mode, by a walk back along the
    # include edges from every such header (linear in the edges, however the headers
    # nest).
    far = len(files) + 1
    dist = {mode: dict.fromkeys(files, far) for mode in ("kernel", "user")}
    for mode, d in dist.items():
        queue = deque(p for p, (_i, m) in files.items() if m == mode)
        for p in queue:
            d[p] = 0
        while queue:
            p = queue.popleft()
            for q in includers.get(p, ()):
                if d[q] > d[p] + 1:
                    d[q] = d[p] + 1
                    queue.append(q)

    def below(path: str) -> str:
        k, u = dist["kernel"][path], dist["user"][path]
        if files[path][1]:  # its own includes tell: how far are the others?
            return files[path][1]
        return "kernel" if k < far and k <= u else ("user" if u < far else "")

    out: dict[str, str] = {}
    for w in wanted:
        if w not in files:
            continue
        shown = below(w)
        if not shown:
            ups = {below(i) for i in includers.get(w, ())} | sides.get(w, set())
            shown = ups.pop() if len(ups) == 1 else ""
        if shown:
            out[w] = shown
    return out


def shared_folders(a: str, b: str) -> int:
    """How many leading folder names two folders share (`a/b/c`, `a/b/d`: 2)."""
    return _shared(a.split("/"), b.split("/"))


class IncludeResolver:
    """The project file an `#include` names, as a compiler with the project's folders on
    its include path would find it: the file at that path relative to the including
    file's folder, else a project file whose path ends with the written path (the one
    nearest the including file), else None (a system or SDK header, or two project files
    equally near). Case-insensitive, as on Windows."""

    def __init__(self, paths: Iterable[str]) -> None:
        self.exact: dict[str, str] = {}
        self.by_name: dict[str, list[str]] = {}
        for p in paths:
            low = p.lower()
            self.exact[low] = p
            self.by_name.setdefault(low.rsplit("/", 1)[-1], []).append(p)
        self.memo: dict[tuple[str, str], str | None] = {}
        self.headers: dict[str, _Headers] = {}

    def __call__(self, include: str, includer: str) -> str | None:
        folder = includer.rsplit("/", 1)[0] if "/" in includer else ""
        key = (include, folder)
        if key in self.memo:
            return self.memo[key]
        written = include.replace("\\", "/").lower()
        found: str | None = None
        candidates = self.by_name.get(written.rsplit("/", 1)[-1], [])
        if candidates:
            found = self.exact.get(posixpath.normpath(f"{folder.lower()}/{written}"))
            if found is None:
                headers = self.headers.get(written)
                if headers is None:
                    tail = "/" + written.lstrip("./")
                    ends = [c for c in candidates if c.lower().endswith(tail)] or candidates
                    headers = self.headers[written] = _Headers(ends)
                found = headers.nearest(folder.lower())
        self.memo[key] = found
        return found


class _Headers:
    """The files an include can name, by folder, to find the one nearest an includer in
    time of the folders' depth, not of how many files there are: 4,000 drivers, each with
    its `driver.h` in an `inc` folder beside its sources, took 42 s when each include
    looked at every `driver.h`."""

    def __init__(self, files: Sequence[str]) -> None:
        # (folder names, lower-case; the file), sorted by folder
        self.files = sorted((tuple(posixpath.dirname(f.lower()).split("/")), f) for f in files)
        self.dirs = [d for d, _f in self.files]

    def nearest(self, folder: str) -> str | None:
        """The file whose folder shares the most leading folder names with `folder`
        (`shared_folders`: `mimidrv/` is no nearer to `modules/` than `inc/` is for
        sharing an `m`); None when two share as many (`kernel/framework.h` and
        `user/framework.h` for a header in their parent folder: which one the compiler
        takes depends on who included the header and on the include path, so the include
        tells nothing)."""
        here = tuple(folder.split("/"))
        dirs = self.dirs
        # In sorted order, the folder sharing the most with `here` is next to where it
        # would go; all those sharing that many are together.
        k = bisect_left(dirs, here)
        best = max(_shared(here, dirs[j]) for j in (k - 1, k) if 0 <= j < len(dirs))
        prefix = here[:best]
        k = bisect_left(dirs, prefix)
        if k + 1 < len(dirs) and dirs[k + 1][:best] == prefix:
            return None
        return self.files[k][1]


def _shared(a: Sequence[str], b: Sequence[str]) -> int:
    """How many leading names two split folders share."""
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n
