"""The value analysis: what an argument can be at a call, on each path, and where it was
set. Each test is a small driver fragment and the values the engine must find."""

from __future__ import annotations

from collections.abc import Callable

from ddilint.analyzer.ir import Expr, FileIR, Function
from ddilint.analyzer.status import lost_statuses, outputs_valid_on_success, truth_tests
from ddilint.analyzer.values import (
    MASK,
    Bits,
    CallValues,
    FunctionValues,
    Origin,
    combine,
    file_values,
)
from ddilint.knowledge import Knowledge, Routine, load_knowledge
from ddilint.knowledge.constants import load_constants
from tests.conftest import parse_text

OBJ_KERNEL_HANDLE = 0x200
OBJ_CASE_INSENSITIVE = 0x40
HERE = Origin("arg", 0, 0)


def at(fir: FileIR, callee: str, nth: int = 0) -> CallValues:
    sites = [c for c in fir.calls if c.callee == callee]
    cv = file_values(fir, load_knowledge()).at_call(sites[nth])
    assert cv is not None
    return cv


def attrs(src: str, nth: int = 0) -> set[int | None]:
    """The possible HandleAttributes of the nth ZwOpenProcessTokenEx call."""
    fir = parse_text(src)
    cv = at(fir, "ZwOpenProcessTokenEx", nth)
    return {b.value for b in cv.values(cv.call.args[2])}


def test_constants_table_has_the_header_values() -> None:
    c = load_constants()
    assert c.get("OBJ_KERNEL_HANDLE") == 0x200
    assert c.get("PROCESS_QUERY_LIMITED_INFORMATION") == 0x1000
    assert c.get("TOKEN_ALL_ACCESS") == 0xF01FF
    assert c.get("ACCESS_SYSTEM_SECURITY") == 0x01000000
    assert c.names_of(0x240, "OBJ_") == ["OBJ_KERNEL_HANDLE", "OBJ_CASE_INSENSITIVE"]


def test_known_bits_algebra() -> None:
    unknown = frozenset({Bits(0, 0, HERE)})
    flag = frozenset({Bits(0x200, MASK & ~0x200, HERE)})
    (with_flag,) = combine("|", unknown, flag, HERE)
    assert with_flag.has(OBJ_KERNEL_HANDLE) and not with_flag.known
    (cleared,) = combine("&", unknown, frozenset({Bits(MASK & ~0x200, 0x200, HERE)}), HERE)
    assert cleared.lacks(OBJ_KERNEL_HANDLE)


def test_operators_casts_and_parentheses() -> None:
    src = """
    void F(void) {
        ZwOpenProcessTokenEx(h, TOKEN_QUERY, (ULONG)((OBJ_CASE_INSENSITIVE) | 0x200) & ~0x40, &t);
        ZwOpenProcessTokenEx(h, TOKEN_QUERY, 1 ? OBJ_INHERIT : OBJ_KERNEL_HANDLE, &t);
        ZwOpenProcessTokenEx(h, TOKEN_QUERY, OBJ_INHERIT ^ OBJ_INHERIT, &t);
    }"""
    assert attrs(src, 0) == {0x200}
    assert attrs(src, 1) == {0x2}
    assert attrs(src, 2) == {0}


def test_two_branches_give_two_values_with_their_places() -> None:
    src = """
    void F(int c) {
        ULONG a;
        if (c) a = OBJ_KERNEL_HANDLE; else a = 0;
        ZwOpenProcessTokenEx(h, TOKEN_QUERY, a, &t);
    }"""
    fir = parse_text(src)
    cv = at(fir, "ZwOpenProcessTokenEx")
    values = cv.values(cv.call.args[2])
    assert {b.value for b in values} == {0, 0x200}
    bad = next(b for b in values if b.lacks(OBJ_KERNEL_HANDLE))
    assert bad.origin.kind == "assign" and fir.position(bad.origin.start)[0] == 4


def test_compound_assignment_and_loops() -> None:
    src = """
    void F(int n) {
        ULONG a = OBJ_CASE_INSENSITIVE;
        a |= OBJ_KERNEL_HANDLE;
        ZwOpenProcessTokenEx(h, TOKEN_QUERY, a, &t);
        while (n--) { a = a & ~OBJ_KERNEL_HANDLE; }
        ZwOpenProcessTokenEx(h, TOKEN_QUERY, a, &t);
    }"""
    assert attrs(src, 0) == {0x240}
    fir = parse_text(src)
    cv = at(fir, "ZwOpenProcessTokenEx", 1)
    # Either the value before the loop, or one with the flag cleared (the loop's own
    # definition feeds itself: its value is followed as far as it is known).
    values = cv.values(cv.call.args[2])
    assert any(b.has(OBJ_KERNEL_HANDLE) for b in values)


def test_macros_const_globals_and_unknowns() -> None:
    src = """
    #define GOOD (OBJ_KERNEL_HANDLE | OBJ_CASE_INSENSITIVE)
    static const ULONG kBad = OBJ_INHERIT;
    extern ULONG g_Attributes;
    void F(ULONG p) {
        ZwOpenProcessTokenEx(h, TOKEN_QUERY, GOOD, &t);
        ZwOpenProcessTokenEx(h, TOKEN_QUERY, kBad, &t);
        ZwOpenProcessTokenEx(h, TOKEN_QUERY, g_Attributes, &t);
        ZwOpenProcessTokenEx(h, TOKEN_QUERY, p, &t);
    }"""
    assert attrs(src, 0) == {0x240}
    assert attrs(src, 1) == {0x2}
    assert attrs(src, 2) == {None}
    assert attrs(src, 3) == {None}


def test_parameters_take_the_values_of_the_calls_in_the_file() -> None:
    src = """
    static NTSTATUS Open(ULONG attributes) {
        return ZwOpenProcessTokenEx(h, TOKEN_QUERY, attributes, &t);
    }
    void A(void) { Open(OBJ_KERNEL_HANDLE); }
    void B(void) { ULONG x = 0; Open(x); }
    """
    fir = parse_text(src)
    cv = at(fir, "ZwOpenProcessTokenEx")
    values = cv.values(cv.call.args[2])
    assert {b.value for b in values} == {0, 0x200}
    bad = next(b for b in values if b.lacks(OBJ_KERNEL_HANDLE))
    assert bad.origin.kind == "decl"


def test_object_attributes_initializers_and_field_writes() -> None:
    src = """
    void F(PUNICODE_STRING name, PHANDLE k) {
        OBJECT_ATTRIBUTES oa;
        OBJECT_ATTRIBUTES oa2 = RTL_CONSTANT_OBJECT_ATTRIBUTES(name, OBJ_KERNEL_HANDLE);
        InitializeObjectAttributes(&oa, name, OBJ_CASE_INSENSITIVE, NULL, NULL);
        ZwOpenKey(k, KEY_READ, &oa);
        oa.Attributes |= OBJ_KERNEL_HANDLE;
        ZwOpenKey(k, KEY_READ, &oa);
        Unknown(&oa);
        ZwOpenKey(k, KEY_READ, &oa);
        ZwOpenKey(k, KEY_READ, &oa2);
    }"""
    fir = parse_text(src)

    def oa(nth: int) -> set[int | None]:
        cv = at(fir, "ZwOpenKey", nth)
        return {b.value for b in cv.object_attributes(cv.call.args[2])}

    assert oa(0) == {0x40}
    assert oa(1) == {0x240}
    assert oa(2) == {None}
    assert oa(3) == {0x200}


def test_handle_opens_follow_helpers_out_parameters() -> None:
    src = """
    static NTSTATUS OpenIt(HANDLE pid, PHANDLE out) {
        HANDLE h;
        NTSTATUS s = ZwOpenProcess(&h, PROCESS_VM_READ, &oa, &cid);
        *out = h;
        return s;
    }
    void F(HANDLE pid) {
        HANDLE p;
        OpenIt(pid, &p);
        ZwOpenProcessTokenEx(p, TOKEN_QUERY, OBJ_KERNEL_HANDLE, &t);
        ZwOpenProcessTokenEx(NtCurrentProcess(), TOKEN_QUERY, OBJ_KERNEL_HANDLE, &t);
    }"""
    fir = parse_text(src)
    cv = at(fir, "ZwOpenProcessTokenEx")
    (opened,) = cv.handle_opens(cv.call.args[0])
    assert opened.routine.name == "ZwOpenProcess"
    assert {b.value for b in opened.access} == {0x10}
    cv2 = at(fir, "ZwOpenProcessTokenEx", 1)
    assert cv2.handle_opens(cv2.call.args[0]) == []


def _routines_where(knowledge: Knowledge,
                    keep: Callable[[Routine], bool]) -> Callable[[Expr], Routine | None]:
    """The `StatusRoutine` of the calls of documented routines that `keep` accepts."""
    def is_status(call: Expr) -> Routine | None:
        r = knowledge.get(call.callee)
        return r if r is not None and keep(r) else None
    return is_status


def test_lost_statuses_and_truth_tests() -> None:
    src = """
    NTSTATUS F(POBJECT_ATTRIBUTES oa) {
        HANDLE k; NTSTATUS s;
        s = ZwOpenKey(&k, KEY_READ, oa);
        s = ZwOpenKey(&k, KEY_READ, oa);
        if (s) { ZwClose(k); }
        ZwClose(k);
        return 0;
    }"""
    fir = parse_text(src)
    knowledge = load_knowledge()
    fv = file_values(fir, knowledge)
    fn = fv.function(fir.functions[0])
    is_status = _routines_where(knowledge, outputs_valid_on_success)

    losses = lost_statuses(fn, is_status)
    assert [(loss.how, fir.position(loss.stored_at)[0]) for loss in losses] == [
        ("overwritten", 4)]
    tests = truth_tests(fn.fn, lambda: fn, is_status)
    assert [(t.how, t.tested.render()) for t in tests] == [("condition", "s")]
    # ZwClose has no outputs: its status may be dropped.
    close = knowledge.get("ZwClose")
    assert close is not None and not outputs_valid_on_success(close)


def test_truth_tests_ask_for_values_only_for_a_stored_status() -> None:
    """The reaching definitions are the dear part of DDI504: a function that tests its
    statuses with NT_SUCCESS, or tests a call directly, must not compute them; a variable
    that holds a status and is tested as a truth value needs them (only they tell which
    store reaches the test)."""
    src = """
    NTSTATUS Good(POBJECT_ATTRIBUTES oa) {
        HANDLE k; NTSTATUS s; BOOLEAN b = FALSE;
        s = ZwOpenKey(&k, KEY_READ, oa);
        if (!NT_SUCCESS(s)) { return s; }
        if (b) { ZwClose(k); }
        if (!ZwOpenKey(&k, KEY_READ, oa)) { ZwClose(k); }
        return s;
    }
    NTSTATUS Stored(POBJECT_ATTRIBUTES oa) {
        HANDLE k; NTSTATUS s = 0;
        if (s) { return s; }
        s = ZwOpenKey(&k, KEY_READ, oa);
        if (s) { return s; }
        ZwClose(k);
        return 0;
    }"""
    fir = parse_text(src)
    knowledge = load_knowledge()
    fv = file_values(fir, knowledge)
    is_status = _routines_where(knowledge, lambda r: r.returns_status is True)

    asked: list[str] = []

    def values(fn: Function) -> Callable[[], FunctionValues]:
        def ask() -> FunctionValues:
            asked.append(fn.name)
            return fv.function(fn)
        return ask

    good, stored = fir.functions
    tests = truth_tests(good, values(good), is_status)
    # `b` holds no status, and the direct `!ZwOpenKey(...)` needs no values.
    assert [(t.how, t.tested.render()) for t in tests] == [
        ("condition", "ZwOpenKey(&k, KEY_READ, oa)")]
    assert asked == []
    tests = truth_tests(stored, values(stored), is_status)
    # The first `if (s)` tests the initial 0, the second the status: values decide.
    assert [(t.how, fir.position(t.tested.start)[0]) for t in tests] == [("condition", 14)]
    assert asked == ["Stored"]


def test_mode_from_what_the_file_calls_when_headers_say_nothing() -> None:
    from ddilint.analyzer.mode import detect_mode

    project_only = ['"myfs.h"']
    # A test program: Win32 routines that kernel code cannot call.
    assert detect_mode(project_only, called=["CreateFileW", "NtCreateFile"]) == "user"
    assert detect_mode(project_only, defined=["wmain"]) == "user"
    # Kernel routines win, and a helper the file defines itself is no evidence.
    assert detect_mode(project_only, called=["CloseHandle", "KeWaitForSingleObject"]) == (
        "kernel")
    assert detect_mode(project_only, defined=["Sleep"], called=["Sleep"]) == "kernel"
    assert detect_mode(project_only, called=["ZwOpenKey"]) == "kernel"
    # Built for both modes (`#if` on the mode): mixed evidence keeps the default.
    assert detect_mode(project_only, called=["CloseHandle", "ZwClose"]) == "kernel"
    # Headers still decide first.
    assert detect_mode(["ntddk.h"], called=["CreateFileW"]) == "kernel"
    assert detect_mode(["strsafe.h"]) == "user"
    # But a program's entry point beside a kernel header is a native application; with a
    # DriverEntry, or with only a DllMain, it stays a driver's file.
    assert detect_mode(["ntifs.h"], defined=["main"], called=["NtClose"]) == "user"
    assert detect_mode(["ntifs.h"], defined=["main", "DriverEntry"]) == "kernel"
    assert detect_mode(["ntddk.h"], defined=["DllMain"]) == "kernel"



_NAMED = {"OBJ_KERNEL_HANDLE": 0x200, "OBJ_CASE_INSENSITIVE": 0x40, "OBJ_INHERIT": 0x2,
          "0": 0, "0x240": 0x240, "TOKEN_QUERY": 0x8}
Tree = tuple  # ("leaf", name) | (op, a, b) | ("~", a) | ("cast", a) | ("?:", a, b)


def _render(t: Tree) -> str:
    kind = t[0]
    if kind == "leaf":
        return str(t[1])
    if kind == "~":
        return f"~{_render(t[1])}"
    if kind == "cast":
        return f"(ULONG)({_render(t[1])})"
    if kind == "?:":
        return f"(c ? {_render(t[1])} : {_render(t[2])})"
    return f"({_render(t[1])} {kind} {_render(t[2])})"


def _c_values(t: Tree) -> set[int]:
    """What C gives the expression, for either value of the unknown `c`."""
    kind = t[0]
    if kind == "leaf":
        return {_NAMED[t[1]]}
    if kind == "~":
        return {~v & 0xFFFFFFFF for v in _c_values(t[1])}
    if kind == "cast":
        return _c_values(t[1])
    if kind == "?:":
        return _c_values(t[1]) | _c_values(t[2])
    ops = {"|": lambda a, b: a | b, "&": lambda a, b: a & b, "^": lambda a, b: a ^ b}
    return {ops[kind](a, b) for a in _c_values(t[1]) for b in _c_values(t[2])}


def test_flag_expressions_evaluate_like_c() -> None:
    """Any expression of constants with |, &, ^, ~, casts and ?: gets exactly the values C
    gives it (both arms of a ?: whose test is unknown)."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    trees = st.recursive(
        st.sampled_from(sorted(_NAMED)).map(lambda n: ("leaf", n)),
        lambda inner: st.one_of(
            st.tuples(st.sampled_from(["|", "&", "^"]), inner, inner),
            st.tuples(st.just("~"), inner),
            st.tuples(st.just("cast"), inner),
            st.tuples(st.just("?:"), inner, inner),
        ),
        max_leaves=6,
    )

    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    @given(trees)
    def check(tree: Tree) -> None:
        text = _render(tree)
        src = f"void F(int c) {{ ZwOpenProcessTokenEx(h, TOKEN_QUERY, {text}, &t); }}"
        assert attrs(src) == _c_values(tree), text

    check()
