"""Kernel or user mode: a file's own includes, then the project headers it includes (nearest
first) or the files that include it, then what it calls (`ddilint.analyzer.mode`)."""

from __future__ import annotations

import posixpath
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from ddilint.analyzer.engine import run
from ddilint.analyzer.mode import IncludeResolver, header_mode, include_modes, shared_folders
from ddilint.analyzer.preprocess import preprocess
from ddilint.knowledge import Knowledge
from ddilint.rules.base import Rule


def test_the_framework_header_beside_win32_headers_is_umdf() -> None:
    assert header_mode(["wdf.h"]) == "kernel"
    assert header_mode(["windows.h", "wdf.h"]) == "user"  # UMDF 2
    assert header_mode(["wdf.h", "wudfwdm.h"]) == "user"
    assert header_mode(["ntddk.h", "windows.h"]) == "kernel"
    assert header_mode(["stdio.h", '"local.h"']) is None


def test_includes_resolve_like_a_compiler_with_the_project_folders() -> None:
    paths = ["/p/drv/inc/shared.h", "/p/tool/inc/shared.h", "/p/drv/filter.h",
             "/p/drv/src/filter.c", "/p/tool/main.c", "/p/Common/Defs.H"]
    resolve = IncludeResolver(paths)
    # Relative to the including file first, `..` included.
    assert resolve("../filter.h", "/p/drv/src/filter.c") == "/p/drv/filter.h"
    # Else the project file that ends with the written path, nearest the includer.
    assert resolve("inc/shared.h", "/p/drv/src/filter.c") == "/p/drv/inc/shared.h"
    assert resolve("shared.h", "/p/tool/main.c") == "/p/tool/inc/shared.h"
    # Case does not matter (Windows); a system header is no project file.
    assert resolve("common/defs.h", "/p/tool/main.c") == "/p/Common/Defs.H"
    assert resolve("ntddk.h", "/p/tool/main.c") is None


def test_nearness_counts_whole_folders_not_letters() -> None:
    # A driver folder and the tool's include folder each hold a `globals.h`; the tool's
    # `modules/` shares the letter `m` with `mimidrv/`, and no folder with either.
    paths = ["/p/mimidrv/globals.h", "/p/inc/globals.h", "/p/modules/handle.c"]
    assert IncludeResolver(paths)("globals.h", "/p/modules/handle.c") is None
    # One that does share a folder is nearer.
    resolve = IncludeResolver([*paths, "/p/modules/sub/globals.h"])
    assert resolve("globals.h", "/p/modules/x/y.c") == "/p/modules/sub/globals.h"


def test_an_include_two_files_answer_equally_tells_nothing() -> None:
    # A shared header in `runtime/` includes "framework.h"; `runtime/kernel/` and
    # `runtime/user/` each have one, and which the compiler takes depends on the file that
    # included the shared header (and the include path). Picking either would give the
    # other build's files the wrong mode.
    paths = ["/r/runtime/platform.h", "/r/runtime/kernel/framework.h",
             "/r/runtime/user/framework.h", "/r/runtime/kernel/platform_kernel.c"]
    resolve = IncludeResolver(paths)
    assert resolve("framework.h", "/r/runtime/platform.h") is None
    # From a file beside one of them, that one is nearer.
    assert resolve("framework.h", "/r/runtime/kernel/platform_kernel.c") == (
        "/r/runtime/kernel/framework.h")
    files = {
        "/r/runtime/platform.h": (["framework.h"], ""),
        "/r/runtime/kernel/framework.h": (["ntifs.h"], "kernel"),
        "/r/runtime/user/framework.h": (["windows.h"], "user"),
        "/r/runtime/kernel/platform_kernel.c": (["../platform.h"], ""),
    }
    # Nothing decides here (the file's calls will: step 3), rather than user mode.
    assert "/r/runtime/kernel/platform_kernel.c" not in include_modes(
        files, ["/r/runtime/kernel/platform_kernel.c"])


def test_the_nearest_header_that_tells_decides() -> None:
    files = {
        "/p/tool.c": (["tool.h"], ""),
        "/p/tool.h": (["public.h", "win.h"], ""),
        "/p/public.h": (["deep.h"], ""),
        "/p/deep.h": (["ntddk.h"], "kernel"),
        "/p/win.h": (["windows.h"], "user"),
        "/p/both.c": (["win.h", "deep.h"], ""),
        "/p/loop1.h": (["loop2.h"], ""),
        "/p/loop2.h": (["loop1.h"], ""),
    }
    modes = include_modes(files, ["/p/tool.c", "/p/both.c", "/p/loop1.h", "/p/missing.c"])
    # tool.h -> win.h (depth 2) before public.h -> deep.h (depth 3).
    assert modes["/p/tool.c"] == "user"
    # At the same depth a kernel header wins.
    assert modes["/p/both.c"] == "kernel"
    # An include cycle that tells nothing ends; an unknown path has no mode.
    assert "/p/loop1.h" not in modes and "/p/missing.c" not in modes


def test_a_header_that_tells_nothing_takes_the_mode_of_its_includers() -> None:
    files = {
        "/p/lib/inline.h": (["types.h"], ""),
        "/p/lib/types.h": ([], ""),
        "/p/lib/a.c": (["lib.h", "inline.h"], ""),
        "/p/lib/b.c": (["windows.h", "inline.h"], "user"),
        "/p/lib/lib.h": (["winternl.h"], "user"),
        "/p/shared/both.h": ([], ""),
        "/p/drv/d.c": (["ntddk.h", "../shared/both.h"], "kernel"),
        "/p/lib/c.c": (["windows.h", "../shared/both.h"], "user"),
    }
    modes = include_modes(files, ["/p/lib/inline.h", "/p/shared/both.h", "/p/lib/types.h"])
    # Included by b.c (user by its own includes) and a.c (user through lib.h).
    assert modes["/p/lib/inline.h"] == "user"
    # Included from both modes, or only by files that tell nothing: no mode.
    assert "/p/shared/both.h" not in modes and "/p/lib/types.h" not in modes


def test_includes_in_a_branch_on_the_mode_are_recorded_apart() -> None:
    pre = preprocess(b"""#include "config.h"
#if !defined(_KERNEL_MODE)
#include <windows.h>
#if defined(TRACE)
#include "trace.h"
#endif
#else
#include <ntifs.h>
#endif
#ifdef DBG
#include "debug.h"
#endif
""")
    # The first branch is the one analyzed; what it includes says nothing about the mode.
    assert pre.includes == ["config.h", "windows.h", "trace.h", "debug.h"]
    assert pre.mode_includes == ["windows.h", "trace.h"]


def _findings(root: Path, rules: list[Rule], knowledge: Knowledge, jobs: int = 1,
              ) -> list[tuple[str, int, str]]:
    files = sorted(p for p in root.rglob("*") if p.suffix in (".c", ".h"))
    return [(f.location.path, f.location.line, f.code)
            for f in run(files, rules, knowledge, jobs=jobs).findings]


def test_each_file_of_a_tree_takes_the_mode_of_what_it_includes(
        tmp_path: Path, builtin_rules: list[Rule], knowledge: Knowledge) -> None:
    (tmp_path / "drv").mkdir()
    (tmp_path / "app").mkdir()
    (tmp_path / "drv" / "drv.h").write_text("#include <ntddk.h>\n")
    close = "NTSTATUS Close%d(HANDLE h) { return NtClose(h); }\n"
    for i in range(3):
        (tmp_path / "drv" / f"d{i}.c").write_text('#include "drv.h"\n' + close % i)
        (tmp_path / "app" / f"a{i}.c").write_text('#include "precomp.h"\n' + close % i)
    (tmp_path / "app" / "precomp.h").write_text("#include <windows.h>\n#include <winternl.h>\n")
    serial = _findings(tmp_path, builtin_rules, knowledge)
    assert [(Path(p).parent.name, line, code) for p, line, code in serial] == [
        ("drv", 2, "DDI401")] * 3
    # The same with the per-file work in worker processes.
    assert _findings(tmp_path, builtin_rules, knowledge, jobs=2) == serial


def test_the_walk_is_linear_in_the_include_edges() -> None:
    # 20,000 headers in one chain: every one of them reaches <windows.h> at the end; a walk
    # from each file would be quadratic.
    n = 20000
    files: dict[str, tuple[list[str], str]] = {
        f"/p/h{i}.h": ([f"h{i + 1}.h"], "") for i in range(n)}
    files[f"/p/h{n}.h"] = (["windows.h"], "user")
    modes = include_modes(files, list(files))
    assert len(modes) == n + 1 and set(modes.values()) == {"user"}


def test_an_include_in_a_branch_only_one_mode_compiles_knows_that_mode() -> None:
    pre = preprocess(b"""#ifndef LIB_MODE
#define LIB_MODE LIB_MODE_USER
#endif
#if (LIB_MODE != LIB_MODE_KERNEL)
#include "userapi.h"
#if defined(TRACE)
#include "trace.h"
#endif
#endif
#if LIB_MODE == LIB_MODE_KERNEL
#include "kernapi.h"
#endif
#ifndef _KERNEL_MODE
#include "win32.h"
#endif
#if defined(_KERNEL_MODE) && defined(X)
#include "unclear.h"
#endif
#include "common.h"
""")
    # A nested test of something else stays on the side of the branch around it; a test
    # of the mode and of something else says no side.
    assert pre.sided_includes == [("userapi.h", "user"), ("trace.h", "user"),
                                  ("kernapi.h", "kernel"), ("win32.h", "user")]
    assert "unclear.h" in pre.mode_includes and "common.h" not in pre.mode_includes
    pre = preprocess(b"#ifdef _KERNEL_MODE\n#include \"k.h\"\n#elif defined(_NTDDK_)\n"
                     b"#include \"k2.h\"\n#else\n#include \"u.h\"\n#endif\n",
                     undefined=frozenset({"_KERNEL_MODE", "_NTDDK_"}))
    # The `#else` after tests of kernel mode only is the user branch.
    assert pre.sided_includes == [("u.h", "user")]


def test_a_header_included_on_one_side_of_a_mode_test_takes_that_mode() -> None:
    files = {
        "/p/inc/api.h": (["base.h"], ""),  # its own includes on the mode sided below
        "/p/inc/base.h": ([], ""),
        "/p/inc/rtl.h": ([], ""),
        "/p/inc/both.h": ([], ""),
        "/p/drv/d.c": (["ntddk.h", "../inc/api.h"], "kernel"),
        "/p/app/a.c": (["windows.h", "../inc/api.h"], "user"),
    }
    sided = {"/p/inc/api.h": [("rtl.h", "user")], "/p/drv/d.c": [("../inc/both.h", "kernel")],
             "/p/app/a.c": [("../inc/both.h", "user")]}
    modes = include_modes(files, ["/p/inc/rtl.h", "/p/inc/both.h", "/p/inc/base.h"], sided)
    # Only the user branch of api.h includes rtl.h, whatever mode api.h is built in.
    assert modes["/p/inc/rtl.h"] == "user"
    # Included on the kernel side by one file and the user side by another: no mode.
    assert "/p/inc/both.h" not in modes
    # api.h includes base.h in both modes: it has no mode (its includers are both).
    assert "/p/inc/base.h" not in modes


def test_an_inline_helper_of_the_user_side_of_a_shared_header_is_no_kernel_code(
        tmp_path: Path, builtin_rules: list[Rule], knowledge: Knowledge) -> None:
    (tmp_path / "inc").mkdir()
    (tmp_path / "drv").mkdir()
    (tmp_path / "app").mkdir()
    (tmp_path / "inc" / "api.h").write_text(
        "#ifndef API_MODE\n#if defined(_NTDDK_)\n#define API_MODE API_MODE_KERNEL\n"
        "#else\n#define API_MODE API_MODE_USER\n#endif\n#endif\n"
        "#include \"types.h\"\n"
        "#if (API_MODE != API_MODE_KERNEL)\n#include \"userrtl.h\"\n#endif\n")
    (tmp_path / "inc" / "types.h").write_text("typedef int API_INT;\n")
    (tmp_path / "inc" / "userrtl.h").write_text(
        "FORCEINLINE NTSTATUS RtlpCloseIt(HANDLE h) { return NtClose(h); }\n")
    (tmp_path / "drv" / "d.c").write_text(
        "#include <ntddk.h>\n#include \"../inc/api.h\"\n"
        "NTSTATUS CloseIt(HANDLE h) { return NtClose(h); }\n")
    (tmp_path / "app" / "a.c").write_text(
        "#include <windows.h>\n#include \"../inc/api.h\"\n"
        "NTSTATUS CloseIt(HANDLE h) { return RtlpCloseIt(h); }\n")
    found = _findings(tmp_path, builtin_rules, knowledge)
    # The driver's own Nt call is reported; the user-side header's is not.
    assert [(Path(p).name, line, code) for p, line, code in found] == [("d.c", 3, "DDI401")]


def test_the_branches_one_mode_compiles_are_kept_as_regions() -> None:
    text = b"""#ifdef KERNEL_MODE
int k;
#if defined(TRACE)
int t;
#endif
#endif
#ifndef KERNEL_MODE
int u;
#else
int k2;
#endif
int both;
"""
    pre = preprocess(text)
    regions = [(text[s:e].decode().split(), side) for s, e, side in pre.mode_regions]
    # The first plausible branch of each test is kept: the kernel one of the first, the
    # user one of the second; a nested test of something else adds no region.
    assert regions == [(["int", "k;", "#if", "defined(TRACE)", "int", "t;", "#endif"],
                        "kernel"), (["int", "u;"], "user")]


def test_the_kernel_only_rules_skip_the_branches_only_user_mode_compiles(
        tmp_path: Path, builtin_rules: list[Rule], knowledge: Knowledge) -> None:
    # A source shared by a driver and a tool that links ntdll: each helper's user branch
    # comes first (the one analyzed) and calls the Zw names ntdll exports; the kernel
    # branch of the last helper is analyzed because it stands alone.
    (tmp_path / "shared.c").write_text("""#include "common.h"
NTSTATUS OpenKey(PUNICODE_STRING Path, PHANDLE Key)
{
    OBJECT_ATTRIBUTES oa;
#ifndef KERNEL_MODE
    InitializeObjectAttributes(&oa, Path, OBJ_CASE_INSENSITIVE, NULL, NULL);
    return ZwOpenKey(Key, KEY_READ, &oa);
#else
    InitializeObjectAttributes(&oa, Path, OBJ_CASE_INSENSITIVE | OBJ_KERNEL_HANDLE, NULL, NULL);
    return ZwOpenKey(Key, KEY_READ, &oa);
#endif
}
NTSTATUS QueryToken(PHANDLE Token)
{
#if !defined(KERNEL_MODE)
    return ZwOpenProcessToken(NtCurrentProcess(), TOKEN_QUERY, Token);
#else
    return ZwOpenProcessTokenEx(NtCurrentProcess(), TOKEN_QUERY, OBJ_KERNEL_HANDLE, Token);
#endif
}
#ifdef KERNEL_MODE
NTSTATUS OpenKeyFromDriver(PUNICODE_STRING Path, PHANDLE Key)
{
    OBJECT_ATTRIBUTES oa;
    InitializeObjectAttributes(&oa, Path, OBJ_CASE_INSENSITIVE, NULL, NULL);
    return ZwOpenKey(Key, KEY_READ, &oa);
}
NTSTATUS QueryTokenFromDriver(PHANDLE Token)
{
    return ZwOpenProcessToken(NtCurrentProcess(), TOKEN_QUERY, Token);
}
#endif
""")
    found = _findings(tmp_path, builtin_rules, knowledge)
    # The user branches get only the user-mode rule (DDI402); without the flag, the
    # driver's own helpers get the kernel-only rules.
    assert [(line, code) for _p, line, code in found] == [
        (7, "DDI402"), (16, "DDI402"), (26, "DDI101"), (30, "DDI103")]


def _nearest_by_looking_at_each(paths: list[str], include: str, includer: str) -> str | None:
    """What `IncludeResolver` answers, found by comparing every file of the name."""
    folder = includer.rsplit("/", 1)[0] if "/" in includer else ""
    written = include.replace("\\", "/").lower()
    candidates = [p for p in paths if p.lower().rsplit("/", 1)[-1] == written.rsplit("/", 1)[-1]]
    if not candidates:
        return None
    exact = {p.lower(): p for p in paths}.get(posixpath.normpath(f"{folder.lower()}/{written}"))
    if exact is not None:
        return exact
    tail = "/" + written.lstrip("./")
    ends = [c for c in candidates if c.lower().endswith(tail)] or candidates
    near = {c: shared_folders(posixpath.dirname(c.lower()), folder.lower()) for c in ends}
    best = max(near.values())
    nearest = [c for c in ends if near[c] == best]
    return nearest[0] if len(nearest) == 1 else None


_NAMES = st.sampled_from(["drv", "Inc", "inc", "sys", "m", "a"])
_FILES = st.builds(lambda root, parts, name: root + "/".join([*parts, name]),
                   st.sampled_from(["", "/p/"]), st.lists(_NAMES, max_size=4),
                   st.sampled_from(["x.h", "X.H", "y.h", "z.c"]))


@settings(max_examples=300, deadline=None)
@given(st.lists(_FILES, min_size=1, max_size=25, unique_by=str.lower),
       st.lists(st.tuples(st.sampled_from(["x.h", "inc/x.h", "../x.h", "y.h", "Inc\\y.h"]),
                          _FILES), min_size=1, max_size=10))
def test_the_nearest_header_is_the_one_comparing_every_file_finds(
        paths: list[str], asked: list[tuple[str, str]]) -> None:
    resolve = IncludeResolver(paths)
    for include, includer in [*asked, *(("x.h", p) for p in paths)]:
        assert resolve(include, includer) == _nearest_by_looking_at_each(paths, include,
                                                                          includer)
