"""The handle-state analysis behind DDI201/202/203: summaries, traces, cost, and the
routines whose handle facts need more than a parameter index."""

from __future__ import annotations

from ddilint.analyzer.handles import _FileAnalysis, handle_facts
from ddilint.findings import Finding
from ddilint.knowledge import load_knowledge
from ddilint.rules.base import Rule
from tests.conftest import analyze_text, parse_text


def codes(text: str, rules: list[Rule], path: str = "t.c") -> list[tuple[int, str]]:
    return [(f.location.line, f.code) for f in analyze_text(text, rules, path)
            if f.code.startswith("DDI2")]


def leak(text: str, rules: list[Rule]) -> Finding:
    found = [f for f in analyze_text(text, rules) if f.code == "DDI201"]
    assert len(found) == 1, found
    return found[0]


def test_helper_summaries() -> None:
    fir = parse_text("""
VOID CloseIt(HANDLE h) { if (h != NULL) { ZwClose(h); } }
VOID Query(HANDLE h) { ZwFlushKey(h); }
VOID Keep(PCTX c, HANDLE h) { c->Key = h; }
VOID Sometimes(HANDLE h, BOOLEAN b) { if (b) ZwClose(h); }
VOID Walk(HANDLE h, ULONG depth) { if (depth) Walk(h, depth - 1); ZwFlushKey(h); }
""")
    fa = _FileAnalysis(fir, load_knowledge(), "kernel")
    assert fa.summary("CloseIt", 0) == "release"
    assert fa.summary("Query", 0) == "borrow"
    assert fa.summary("Keep", 1) == "escape"
    assert fa.summary("Sometimes", 0) == "escape"
    assert fa.summary("Walk", 0) == "borrow"


def test_leak_names_the_exit_and_has_a_trace(builtin_rules: list[Rule]) -> None:
    f = leak("""NTSTATUS F(POBJECT_ATTRIBUTES oa, PVOID buf)
{
    HANDLE key;
    NTSTATUS status = ZwOpenKey(&key, KEY_READ, oa);
    if (!NT_SUCCESS(status)) {
        return status;
    }
    status = ZwQueryKey(key, KeyBasicInformation, buf, 64, NULL);
    if (!NT_SUCCESS(status)) {
        return status;
    }
    ZwClose(key);
    return status;
}
""", builtin_rules)
    assert f.location.line == 4
    assert "line 10" in f.message and "ZwClose" in f.message
    lines = [(s.location.line, s.message) for s in f.trace]
    assert lines[0][0] == 4 and "ZwOpenKey" in lines[0][1]
    assert (9, "`NT_SUCCESS(status)` is false") in lines
    assert lines[-1][0] == 10


def test_only_functions_with_handle_calls_get_a_cfg() -> None:
    fir = parse_text("""
VOID Plain(int x) { if (x) Foo(); else Bar(); }
VOID Opens(POBJECT_ATTRIBUTES oa)
{
    HANDLE h;
    if (NT_SUCCESS(ZwOpenKey(&h, KEY_READ, oa))) ZwClose(h);
}
""")
    facts = handle_facts(fir, load_knowledge(), "kernel")
    assert facts.functions == 1 and facts.sites == 1 and not facts.leaks
    plain = next(f for f in fir.functions if f.name == "Plain")
    assert plain._cfg is None


def test_duplicate_into_another_process_is_not_ours(builtin_rules: list[Rule]) -> None:
    src = """VOID F(HANDLE source, HANDLE target)
{
    HANDLE copy;
    if (NT_SUCCESS(ZwDuplicateObject(NtCurrentProcess(), source, %s, &copy, 0, 0, 0))) {
        Use();
    }
}
"""
    assert codes(src % "target", builtin_rules) == []
    assert codes(src % "NtCurrentProcess()", builtin_rules) == [(4, "DDI201")]


def test_duplicate_close_source_releases_the_source(builtin_rules: list[Rule]) -> None:
    src = """VOID F(POBJECT_ATTRIBUTES oa, PHANDLE out)
{
    HANDLE key;
    if (NT_SUCCESS(ZwOpenKey(&key, KEY_READ, oa))) {
        ZwDuplicateObject(NtCurrentProcess(), key, NtCurrentProcess(), out, 0, 0, %s);
        ZwClose(key);
    }
}
"""
    assert codes(src % "DUPLICATE_SAME_ACCESS", builtin_rules) == []
    assert codes(src % "DUPLICATE_CLOSE_SOURCE", builtin_rules) == [(6, "DDI202")]
    # The message says why the source is closed even where the duplication failed.
    found = [f for f in analyze_text(src % "DUPLICATE_CLOSE_SOURCE", builtin_rules)
             if f.code == "DDI202"]
    assert found[0].message.endswith(
        "(ZwDuplicateObject with DUPLICATE_CLOSE_SOURCE closes it, even when it fails)")
    assert "closes it, even when it fails" in found[0].trace[0].message
    plain = [f for f in analyze_text(src.replace(
        "ZwDuplicateObject(NtCurrentProcess(), key, NtCurrentProcess(), out, 0, 0, %s);",
        "ZwClose(key);"), builtin_rules) if f.code == "DDI202"]
    assert plain and not plain[0].message.endswith(")")


def test_pointer_result_opens(builtin_rules: list[Rule]) -> None:
    src = """VOID F(PUNICODE_STRING name)
{
    HANDLE h;
    PKEVENT event = IoCreateNotificationEvent(name, &h);
    if (event == NULL) {
        return;
    }
    KeSetEvent(event, 0, FALSE);
    %s
}
"""
    assert codes(src % "ZwClose(h);", builtin_rules) == []
    assert codes(src % "", builtin_rules) == [(4, "DDI201")]


def test_filter_manager_and_user_mode_releases(builtin_rules: list[Rule]) -> None:
    flt = """#include <fltKernel.h>
VOID F(PFLT_FILTER filter, PFLT_INSTANCE inst, POBJECT_ATTRIBUTES oa, PIO_STATUS_BLOCK io)
{
    HANDLE file;
    if (NT_SUCCESS(FltCreateFile(filter, inst, &file, GENERIC_READ, oa, io, NULL, 0, 0,
                                 FILE_OPEN, 0, NULL, 0, 0))) {
        %s
    }
}
"""
    assert codes(flt % "FltClose(file);", builtin_rules) == []
    assert codes(flt % "", builtin_rules) == [(5, "DDI201")]
    user = """#include <windows.h>
#include <winternl.h>
VOID F(POBJECT_ATTRIBUTES oa, PIO_STATUS_BLOCK io)
{
    HANDLE file;
    if (NT_SUCCESS(NtOpenFile(&file, GENERIC_READ, oa, io, 0, 0))) {
        CloseHandle(file);
        CloseHandle(file);
    }
}
"""
    assert codes(user, builtin_rules) == [(8, "DDI202")]


def test_the_release_named_is_the_form_the_mode_calls(builtin_rules: list[Rule]) -> None:
    # The page of NtCreateTransactionManager names ZwClose, NtOpenFile's names NtClose:
    # user-mode code is told the Nt form, kernel-mode code the Zw form (DDI401/402).
    body = """
VOID F(POBJECT_ATTRIBUTES oa, PIO_STATUS_BLOCK io)
{
    HANDLE tm, file;
    if (NT_SUCCESS(NtCreateTransactionManager(&tm, TRANSACTIONMANAGER_ALL_ACCESS, oa, NULL,
                                              0, 0))) {
        return;
    }
    if (NT_SUCCESS(NtOpenFile(&file, GENERIC_READ, oa, io, 0, 0))) {
        return;
    }
}
"""
    for header, closer in (("#include <windows.h>\n#include <winternl.h>\n", "NtClose"),
                           ("#include <ntifs.h>\n", "ZwClose")):
        found = [f for f in analyze_text(header + body, builtin_rules) if f.code == "DDI201"]
        assert len(found) == 2 and all(f.message.endswith(f"release it with {closer}")
                                       for f in found), [f.message for f in found]


def test_io_status_block_agrees_with_the_status(builtin_rules: list[Rule]) -> None:
    src = """VOID F(POBJECT_ATTRIBUTES oa)
{
    HANDLE file;
    IO_STATUS_BLOCK iosb;
    NTSTATUS status = ZwCreateFile(&file, GENERIC_READ, oa, &iosb, NULL, 0, 0, FILE_OPEN,
                                   0, NULL, 0);
    if (!NT_SUCCESS(status) || !NT_SUCCESS(iosb.Status)) {
        return;
    }
    ZwClose(file);
}
"""
    assert codes(src, builtin_rules) == []


def test_inner_variable_of_the_same_name_is_not_the_open_handle(
        builtin_rules: list[Rule]) -> None:
    src = """VOID F(POBJECT_ATTRIBUTES oa, BOOLEAN again)
{
    HANDLE key;
    if (!NT_SUCCESS(ZwOpenKey(&key, KEY_READ, oa))) {
        return;
    }
    if (again) {
        HANDLE key;
        if (NT_SUCCESS(ZwOpenKey(&key, KEY_WRITE, oa))) {
            ZwClose(key);
        }
    }
    ZwClose(key);
}
"""
    assert codes(src, builtin_rules) == []


def test_a_flag_tested_before_the_open_is_remembered(builtin_rules: list[Rule]) -> None:
    src = """VOID F(POBJECT_ATTRIBUTES oa, BOOLEAN useKey, PCTX ctx)
{
    HANDLE key = NULL;
    if (useKey) {
        if (!NT_SUCCESS(ZwOpenKey(&key, KEY_READ, oa))) {
            return;
        }
    }
    Work(ctx);
    if (useKey) {
        ZwClose(key);
    }
}
"""
    assert codes(src, builtin_rules) == []


def test_cpp_handle_wrapper_objects_are_not_tracked(builtin_rules: list[Rule]) -> None:
    src = """NTSTATUS F(POBJECT_ATTRIBUTES oa)
{
    UniqueKernelHandle key;   // operator& hands out its member; ~UniqueKernelHandle closes
    NTSTATUS status = ZwOpenKey(&key, KEY_READ, oa);
    if (!NT_SUCCESS(status)) {
        return status;
    }
    return ZwFlushKey(key.get());
}

NTSTATUS G(POBJECT_ATTRIBUTES oa)
{
    HANDLE key;
    NTSTATUS status = ZwOpenKey(&key, KEY_READ, oa);
    if (!NT_SUCCESS(status)) {
        return status;
    }
    return ZwFlushKey(key);
}
"""
    assert codes(src, builtin_rules, "t.cpp") == [(14, "DDI201")]


def test_an_error_around_a_whole_function_is_not_a_misread() -> None:
    # In classpnp's debug.c, string helpers whose cases are macros without their `;` made
    # tree-sitter wrap most of the file in one ERROR node, with complete functions inside
    # it. Such a function was read whole: its handles are analyzed. An error inside its
    # body still makes its paths guesses.
    text = """NTSTATUS OpenPolicy(POBJECT_ATTRIBUTES oa)
{
    HANDLE key;
    NTSTATUS status = ZwOpenKey(&key, KEY_READ, oa);
    return status;
}
"""
    fir = parse_text(text)
    assert fir.error_spans == []
    fa = _FileAnalysis(fir, load_knowledge(), "kernel")
    fn = fir.functions[0]
    fir.error_spans[:] = [(0, len(text))]  # around it: the parser read it whole
    assert not fa.misread(fn)
    assert len(fa.analyze().leaks) == 1
    inside = text.index("return status")
    fir.error_spans[:] = [(0, len(text)), (inside, inside + 6)]
    assert fa.misread(fn)
    assert fa.analyze().leaks == []


def test_status_tests_a_project_defines_in_a_header_read_by_their_names() -> None:
    from ddilint.analyzer.handles import status_test

    for name in ("NT_SUCCESS", "QUIC_SUCCEEDED", "XDP_SUCCEEDED", "SUCCEEDED",
                 "SUCCEEDED_NTSTATUS", "ZYAN_SUCCESS"):
        assert status_test(name) is True, name
    for name in ("NT_ERROR", "QUIC_FAILED", "XDP_FAILED", "FAILED", "FAILED_NTSTATUS"):
        assert status_test(name) is False, name
    # Not tests of a status: a constant's spelling, verbs, other words, a function name.
    for name in ("STATUS_SUCCESS_X", "WRITE_MUST_SUCCEED", "HLPR_BAIL_ON_FAILURE",
                 "NT_WARNING", "IsSucceeded", "ZwClose", "SUCCEEDEDX", ""):
        assert status_test(name) is None, name
