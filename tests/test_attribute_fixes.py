"""The fixes DDI101 and DDI402 attach: OBJ_KERNEL_HANDLE added where the attributes are
written (in the call, or in InitializeObjectAttributes), never inside a macro; Zw renamed
to Nt in user-mode code. Applied with the real `--fix` machinery."""

from __future__ import annotations

from pathlib import Path

from ddilint.fixes import plan_file
from ddilint.rules.base import Rule
from tests.conftest import analyze_text

KERNEL = """#include <ntifs.h>
DRIVER_DISPATCH Dispatch;
#define ATTRS OBJ_INHERIT
NTSTATUS Dispatch(PDEVICE_OBJECT d, PIRP irp)
{
    OBJECT_ATTRIBUTES oa;
    HANDLE t, k;
    NTSTATUS s;
    ULONG attrs = 0;
    s = ZwOpenProcessTokenEx(NtCurrentProcess(), TOKEN_QUERY, 0, &t);
    if (NT_SUCCESS(s)) ZwClose(t);
    s = ZwOpenProcessTokenEx(NtCurrentProcess(), TOKEN_QUERY, c ? 0 : OBJ_INHERIT, &t);
    if (NT_SUCCESS(s)) ZwClose(t);
    s = ZwOpenProcessTokenEx(NtCurrentProcess(), TOKEN_QUERY, ATTRS, &t);
    if (NT_SUCCESS(s)) ZwClose(t);
    s = ZwOpenProcessTokenEx(NtCurrentProcess(), TOKEN_QUERY, attrs, &t);
    if (NT_SUCCESS(s)) ZwClose(t);
    InitializeObjectAttributes(&oa, &name, OBJ_CASE_INSENSITIVE, NULL, NULL);
    s = ZwOpenKey(&k, KEY_READ, &oa);
    if (NT_SUCCESS(s)) ZwClose(k);
    return s;
}
"""


def _fixed(tmp_path: Path, text: str, rules: list[Rule], name: str) -> tuple[str, list[int]]:
    path = tmp_path / name
    path.write_text(text)
    findings = [f for f in analyze_text(text, rules, str(path)) if not f.is_notice]
    fx, _ = plan_file(str(path), findings)
    return fx.new, sorted(f.location.line for f in findings if f.fixes)


def test_kernel_handle_fixes(tmp_path: Path, builtin_rules: list[Rule]) -> None:
    rules = [r for r in builtin_rules if r.code == "DDI101"]
    new, fixed_lines = _fixed(tmp_path, KERNEL, rules, "k.c")
    # The literal, the `?:` and InitializeObjectAttributes get a fix; the macro and the
    # variable set elsewhere do not.
    assert fixed_lines == [10, 12, 19]
    assert "TOKEN_QUERY, OBJ_KERNEL_HANDLE, &t);" in new
    assert "(c ? 0 : OBJ_INHERIT) | OBJ_KERNEL_HANDLE, &t);" in new
    assert "OBJ_CASE_INSENSITIVE | OBJ_KERNEL_HANDLE, NULL, NULL);" in new
    assert "TOKEN_QUERY, ATTRS, &t);" in new
    # Only the two it could not fix are left.
    left = [f.location.line for f in analyze_text(new, rules, str(tmp_path / "k.c"))
            if not f.is_notice]
    assert left == [14, 16]


def test_zw_renamed_in_user_mode(tmp_path: Path, builtin_rules: list[Rule]) -> None:
    rules = [r for r in builtin_rules if r.code == "DDI402"]
    text = ("#include <windows.h>\n#define OPEN(h) ZwOpenKey(h, KEY_READ, &oa)\n"
            "void F(void) { ZwClose(h); OPEN(&h); }\n")
    new, fixed_lines = _fixed(tmp_path, text, rules, "u.c")
    assert fixed_lines == [3]
    assert "NtClose(h); OPEN(&h);" in new


def test_token_open_becomes_the_ex_form(tmp_path: Path, builtin_rules: list[Rule]) -> None:
    rules = [r for r in builtin_rules if r.code == "DDI103"]
    text = ("#include <ntifs.h>\nDRIVER_DISPATCH D;\n"
            "NTSTATUS D(PDEVICE_OBJECT d, PIRP i)\n{\n"
            "    HANDLE t;\n"
            "    NTSTATUS s = ZwOpenThreadToken(NtCurrentThread(), TOKEN_QUERY, TRUE, &t);\n"
            "    if (NT_SUCCESS(s)) ZwClose(t);\n"
            "    s = ZwOpenProcessToken(NtCurrentProcess(), TOKEN_QUERY, &t);\n"
            "    if (NT_SUCCESS(s)) ZwClose(t);\n"
            "    return s;\n}\n")
    new, fixed_lines = _fixed(tmp_path, text, rules, "t.c")
    assert fixed_lines == [6, 8]
    assert ("ZwOpenThreadTokenEx(NtCurrentThread(), TOKEN_QUERY, TRUE, OBJ_KERNEL_HANDLE, &t)"
            in new)
    assert "ZwOpenProcessTokenEx(NtCurrentProcess(), TOKEN_QUERY, OBJ_KERNEL_HANDLE, &t)" in new
    assert not [f for f in analyze_text(new, rules, str(tmp_path / "t.c")) if not f.is_notice]
