"""Preprocessing, decoding, macro expansion and the IR the frontend builds."""

from __future__ import annotations

import codecs
import re

from hypothesis import example, given, settings
from hypothesis import strategies as st

from ddilint.analyzer.preprocess import _directive_lines, needs_rare_edits, preprocess
from ddilint.analyzer.source import SourceText, decode_bytes
from tests.conftest import parse_text


def test_annotations_are_blanked_with_offsets_kept_and_recorded() -> None:
    src = (b"_IRQL_requires_max_(PASSIVE_LEVEL)\n"
           b"NTSTATUS NTAPI Foo(_In_ PDEVICE_OBJECT d, IN PIRP i, _Out_writes_(n) PULONG b);\n")
    pre = preprocess(src)
    assert len(pre.view) == len(src)
    assert b"_IRQL" not in pre.view and b"NTAPI" not in pre.view and b" IN " not in pre.view
    names = [a.name for a in pre.annotations]
    assert names == ["_IRQL_requires_max_", "NTAPI", "_In_", "IN", "_Out_writes_"]
    assert pre.annotations[0].args == ("PASSIVE_LEVEL",)
    assert pre.view.index(b"Foo") == src.index(b"Foo")


def test_annotations_in_comments_and_strings_are_not_recorded() -> None:
    pre = preprocess(b'// _IRQL_requires_(DISPATCH_LEVEL)\nchar *s = "_In_";\n')
    assert pre.annotations == []
    assert b'"_In_"' in pre.view


def test_if_zero_and_first_live_branch() -> None:
    src = (b"#if 0\nA();\n#elif defined(X)\nB();\n#else\nC();\n#endif\n"
           b"#ifdef DBG\nD();\n#else\nE();\n#endif\n#if 1\nF();\n#else\nG();\n#endif\n")
    view = preprocess(src).view
    assert b"A()" not in view
    assert b"B()" in view and b"C()" not in view  # unknown condition: first live branch
    assert b"D()" in view and b"E()" not in view
    assert b"F()" in view and b"G()" not in view
    assert len(view) == len(src)


def test_if_conditions_nested_past_the_limit_are_unknown() -> None:
    # The evaluator stops at its own depth, not at Python's recursion limit (which does not
    # guard the compiled build): past it, a condition is unknown, as a malformed one is.
    from ddilint.analyzer.preprocess import MAX_CONDITION_DEPTH

    def cond(depth: int, op: str) -> bytes:
        inner = "(" * depth + "0" + ")" * depth if op == "(" else op * depth + "0"
        return f"#if {inner}\nA();\n#else\nB();\n#endif\n".encode()

    for op in ("(", "!", "-"):
        shallow = preprocess(cond(MAX_CONDITION_DEPTH - 1, op)).view
        assert (b"A()" in shallow) == (op == "!" and (MAX_CONDITION_DEPTH - 1) % 2 == 1)
        assert (b"B()" in shallow) != (b"A()" in shallow)
        deep = preprocess(cond(MAX_CONDITION_DEPTH + 1, op)).view
        assert b"A()" in deep and b"B()" not in deep  # unknown: the first live branch
    chain = "#if " + "0 ? 1 : " * (MAX_CONDITION_DEPTH + 1) + "0\nA();\n#else\nB();\n#endif\n"
    assert b"A()" in preprocess(chain.encode()).view


def test_config_can_turn_branches_off() -> None:
    src = b"#ifdef LEGACY\nA();\n#else\nB();\n#endif\n#if FEATURE\nC();\n#endif\n"
    view = preprocess(src, defined={"FEATURE": 0}, undefined=frozenset({"LEGACY"})).view
    assert b"A()" not in view and b"B()" in view and b"C()" not in view


def test_cplusplus_branch_follows_the_language() -> None:
    src = b"#ifdef __cplusplus\nextern \"C\" {\n#endif\nA();\n"
    assert b"extern" not in preprocess(src, cplusplus=False).view
    assert b"extern" in preprocess(src, cplusplus=True).view


def test_brace_only_macros_are_blanked_where_they_are_defined() -> None:
    # The closing macro of a pair whose braces the parser cannot see: its uses go, from
    # its `#define` to its `#undef`; a use after the `#undef` (another meaning), a
    # function-like macro and a macro that is more than braces stay.
    src = (b"#define LOOP_END } }\n#define LOOP_BEGIN(t) if (t) { for (;;) {\n"
           b"#define DONE(x) }\n#define NEXT } x++;\n"
           b"void f(int t) { LOOP_BEGIN(t) { g(); } LOOP_END NEXT DONE(1) }\n"
           b"#undef LOOP_END\nint LOOP_END;\n")
    pre = preprocess(src)
    assert len(pre.view) == len(src)
    assert pre.view.count(b"LOOP_END") == 1 and b"int LOOP_END;" in pre.view
    assert b"LOOP_BEGIN(t)" in pre.view and b"NEXT" in pre.view and b"DONE(1)" in pre.view
    assert pre.brace_macros == [("LOOP_END", src.index(b"\n") , src.index(b"#undef"))]
    # Balanced braces are an expression (an empty initializer); a new definition ends the
    # old one's range as `#undef` does.
    other = (b"#define EMPTY_INIT {}\nS s = EMPTY_INIT;\n"
             b"#define CLOSE }\n#define CLOSE 0\nint f(void) { return CLOSE; }\n")
    view = preprocess(other).view
    assert b"S s = EMPTY_INIT;" in view and b"return CLOSE;" in view


def test_linkage_brackets_are_blanked_alone_on_their_line() -> None:
    src = (b"EXTERN_C_START\nKDEFERRED_ROUTINE OnDpc;\nEXTERN_C_END\n"
           b"  CXPLAT_EXTERN_C_BEGIN  \n__BEGIN_DECLS\nint x = MY_EXTERN_C_END + 1;\n")
    view = preprocess(src, rare=True).view
    assert b"EXTERN_C_START" not in view and b"\nEXTERN_C_END" not in view
    assert b"CXPLAT" not in view and b"DECLS" not in view
    assert b"MY_EXTERN_C_END + 1" in view  # not alone on its line: a name
    assert len(view) == len(src)
    # A prefix in capitals goes with it; any other word ending so is a name.
    view = preprocess(b"WDF_EXTERN_C_START\nmyEXTERN_C_START\n", rare=True).view
    assert view == b"                  \nmyEXTERN_C_START\n"


def test_sized_integer_suffixes_are_blanked() -> None:
    src = b'x = 0i64 + 0xFFui64 + 7ui8; y = v0i64 + 1L; s = "2i64";\n'
    assert preprocess(src).view == src  # a rare edit: asked for only after a parse error
    view = preprocess(src, rare=True).view
    assert view == b'x = 0    + 0xFF     + 7   ; y = v0i64 + 1L; s = "2i64";\n'
    fir = parse_text("ULONG64 Mask(void) { return 0xFFFFFFFFui64 << 8; }\n")
    assert fir.error_nodes == 0 and [f.name for f in fir.functions] == ["Mask"]
    # MSVC takes the suffix in capitals too.
    assert preprocess(b"m = 0xFFI64 | 3UI32;\n", rare=True).view == b"m = 0xFF    | 3    ;\n"
    fir = parse_text("ULONG64 Top(void) { return 0xffffffffffffffffI64 >> 12; }\n")
    assert fir.error_nodes == 0 and [f.name for f in fir.functions] == ["Top"]


def test_cpp_string_then_macro_name_reads_as_one_string() -> None:
    src = (b'extern "C" NTSTATUS Init(void);\n'
           b'void f() { g(L"\\\\" SVC_NAME, "%" PRIu64 "x", L"a" L"b", "a" _T("b"), "a"_x); }\n')
    view = preprocess(src, cplusplus=True).view
    assert view == (b'extern "C" NTSTATUS Init(void);\n'
                    b'void f() { g(L"\\\\"         , "%"        "x", L"a" L"b", '
                    b'"a" _T("b"), "a"_x); }\n')
    assert preprocess(src).view == src  # C's grammar reads the name as part of the string
    fir = parse_text('void f() { g(L"\\\\" SVC_NAME, "%" PRIu64 "x"); }\n', "t.cpp")
    assert fir.error_nodes == 0 and [f.name for f in fir.functions] == ["f"]
    # A header read as C++ gets the C++ view too (not the C one it was first given).
    fir = parse_text('class Svc {\npublic:\n  void Start() { Run(L"\\\\" SVC_EXE); }\n};\n',
                     "svc.h")
    assert fir.language == "cpp" and fir.error_nodes == 0


def test_unparenthesized_status_test_reads_parenthesized() -> None:
    src = ("NTSTATUS f(void) {\n    if NT_SUCCESS(ZwCreateEvent(&ev, 0, &oa,\n"
           "                                1, TRUE)) { g(ev); }\n"
           "    while NT_SUCCESS(next(&x)) k++;\n    return 0; }\n")
    assert preprocess(src.encode()).rewrites == []  # a rare edit: after a parse error
    fir = parse_text(src)
    assert fir.error_nodes == 0
    # Every call keeps its place in the file: the rewrites' columns are moved back.
    assert [(c.callee, src[c.start:c.start + len(c.callee)]) for c in fir.calls] == [
        (c.callee, c.callee) for c in fir.calls]
    assert [c.callee for c in fir.calls] == ["NT_SUCCESS", "ZwCreateEvent", "g", "NT_SUCCESS",
                                             "next"]


def test_cpp_comma_expression_that_starts_with_an_assignment() -> None:
    src = ("void f(int a = 1, int b);\n"
           "int g() {\n"
           "    if ((svc = pick(cmd, 2) == 0 ? L\"x\" : NULL, svc)) { h(); }\n"
           "    while ((c = next(), c != 0)) k++;\n"
           "    call(a = 1, b);\n"
           "    if ((status = Open(&h)) != 0) return 1;\n"
           "    return (p->x = 2, q);\n}\n")
    # Rare: after a parse error, and in C++ only (C's grammar reads it).
    assert preprocess(src.encode(), cplusplus=True).rewrites == []
    assert preprocess(src.encode(), rare=True).rewrites == []
    rewrites = preprocess(src.encode(), cplusplus=True, rare=True).rewrites
    assert [(src[at], spelled) for at, _n, spelled in rewrites] == [
        ("(", b"(("), (",", b"),"), ("(", b"(("), (",", b"),"), ("(", b"(("), (",", b"),")]
    fir = parse_text(src, "t.cpp")
    assert fir.error_nodes == 0
    assert [(c.callee, src[c.name_start:c.name_start + len(c.callee)]) for c in fir.calls] == [
        ("pick", "pick"), ("h", "h"), ("next", "next"), ("call", "call"), ("Open", "Open")]


def test_edits_asked_at_many_places_stay_linear() -> None:
    from ddilint.analyzer.preprocess import StringScanner, needs_rare_edits

    # Every site of a one-line file: each found once, the line read once, not per site.
    many = b"int g() { " + b"x = (a = b, c); " * 20000 + b"}\n"
    assert len(preprocess(many, cplusplus=True, rare=True).rewrites) == 40000
    strings = b"int g() { " + b'f("(a=%d, b)"); ' * 20000 + b"}\n"
    assert not needs_rare_edits(strings, cplusplus=True)  # all inside strings
    # Unclosed `(` everywhere: each question could scan 4 KB; the edits stop when a few
    # times the file's size is spent, and the rest stays a parse error.
    unclosed = b"int g() {\n" + b"(a = " * 40000 + b"if NT_SUCCESS(x + " * 20000 + b"\n}\n"
    assert preprocess(unclosed, cplusplus=True, rare=True).rewrites == []
    unclosed = b"int g() {\n" + b"ASSERT3U(a + " * 20000 + b"_In_reads_(n + " * 20000 + b"\n}\n"
    assert preprocess(unclosed, rare=True).annotations == []
    # Statements in a macro's parentheses: each use found once; a run of unclosed `A(`
    # (two levels deep at most, each try stops at the third) only at its innermost use.
    loud = b"int g() {\n" + b'IF_LOUD(DbgPrint("x");)\n' * 20000 + b"}\n"
    assert preprocess(loud, rare=True).view.count(b'DbgPrint("x"));') == 20000
    nested = b"int g() {\n" + b"A(" * 100000 + b";)\n}\n"
    assert preprocess(nested, rare=True).view == nested.replace(b";)", b");")
    quotes = StringScanner(b'a "b \\" c" d\n"e')
    assert [quotes.inside(i) for i in (1, 4, 9, 12, 15)] == [False, True, True, False, True]


def test_comparison_assert_macros_read_as_one_condition() -> None:
    src = (b"void f(void) { ASSERT3U(KeGetCurrentIrql(), ==, PASSIVE_LEVEL);\n"
           b"  VERIFY3P(g(a, b), !=, NULL); ASSERT3S(x[1], <=, 0); ASSERT3U(a, b, c); }\n"
           b"void h(void) { ASSERTIRQL(KeGetCurrentIrql(), <=, APC_LEVEL); }\n")
    assert preprocess(src).view == src  # a rare edit: asked for after a parse error
    view = preprocess(src, rare=True).view
    assert view == (b"void f(void) { ASSERT3U(KeGetCurrentIrql()  ==  PASSIVE_LEVEL);\n"
                    b"  VERIFY3P(g(a, b)  !=  NULL); ASSERT3S(x[1]  <=  0); ASSERT3U(a, b, c); }\n"
                    b"void h(void) { ASSERTIRQL(KeGetCurrentIrql()  <=  APC_LEVEL); }\n")
    fir = parse_text(src.decode().replace("ASSERT3U(a, b, c); ", ""))
    assert fir.error_nodes == 0


def test_offsetof_a_nested_member_parses() -> None:
    src = "SIZE_T Tail(void) { return sizeof(REC) - offsetof(REC, u.extra) + offsetof(REC, a); }\n"
    fir = parse_text(src)
    assert fir.error_nodes == 0 and [f.name for f in fir.functions] == ["Tail"]
    view = preprocess(src.encode(), rare=True).view
    assert b"OFFSETOF(REC, u.extra)" in view and b"offsetof(REC, a)" in view


def test_upper_case_seh_macros_are_read_as_seh() -> None:
    pre = preprocess(b"void f(void) { TRY { g(); LEAVE; } FINALLY { h(); } }\n", rare=True)
    spelled = sorted((at, word) for at, _n, word in pre.rewrites)
    assert [w for _at, w in spelled] == [b"__try", b"__leave", b"__finally"]
    # A file that defines one of them itself keeps its own meaning.
    own = preprocess(b"#define TRY if (1)\nvoid f(void) { TRY { g(); } FINALLY { h(); } }\n",
                     rare=True)
    assert own.rewrites == []


def test_defines_recorded_with_continuations() -> None:
    pre = preprocess(b"#define OPEN(h, a) \\\n    ZwOpenKey(h, KEY_READ, a)\n#define FLAGS 0x200\n")
    assert pre.macros["OPEN"].params == ("h", "a")
    assert pre.macros["OPEN"].body == "ZwOpenKey(h, KEY_READ, a)"
    assert pre.macros["FLAGS"].params is None


def test_a_define_goes_on_past_a_comment_over_spliced_lines() -> None:
    # The compiler joins spliced lines before it removes comments: a comment whose lines
    # end with a backslash is inside the macro, and so is what comes after it. A `//`
    # comment that ends with one takes the next line into the comment, and the directive
    # goes on after it too.
    block = (b"#define OPEN(h) \\\n    ZwOpenKey(h, \\\n    /* first line \\\n"
             b"       second line */ \\\n    KEY_READ, NULL)\nint after;\r\n")
    pre = preprocess(block)
    assert pre.macros["OPEN"].body == "ZwOpenKey(h, KEY_READ, NULL)"
    assert pre.view.strip() == b"int after;"
    crlf = preprocess(block.replace(b"\n", b"\r\n"))
    assert crlf.macros["OPEN"].body == "ZwOpenKey(h, KEY_READ, NULL)"
    line = preprocess(b"#define TWO 1 + \\\n  // note \\\n  2\nint x;\n")
    assert line.macros["TWO"].body == "1 +"
    assert line.view.strip() == b"int x;"
    # Outside a directive nothing changes: the comment is blank in the view.
    plain = preprocess(b"/* a \\\n b */ int y;\n")
    assert plain.view.strip() == b"int y;"


def test_decoding_utf16_bom_and_cp1252() -> None:
    text = "NTSTATUS F(void) { return ZwClose(h); }\r\n"
    for raw in (codecs.BOM_UTF16_LE + text.encode("utf-16-le"),
                codecs.BOM_UTF16_BE + text.encode("utf-16-be"),
                codecs.BOM_UTF8 + text.encode("utf-8")):
        assert decode_bytes(raw).text == text
    res = decode_bytes("// caf\xe9\nint x;".encode("cp1252"))
    assert res.encoding == "cp1252" and res.text is not None and "int x;" in res.text
    assert decode_bytes(bytes(range(256)) * 8).text is None


def test_positions_with_crlf_and_non_ascii() -> None:
    src = SourceText("f.c", "// \u00e9t\u00e9\r\nint x;\r\n  Foo();\r\n", "utf-8")
    data = src.data
    assert src.position(data.index(b"Foo")) == (3, 3)
    assert src.position(data.index(b"t\xc3\xa9")) == (1, 5)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(["a", " ", "\n", "\r\n", "\t", "\u00e9", "\u20ac",
                                 "\U0001d11e"]), max_size=40),
       st.lists(st.integers(-2, 200), max_size=20))
def test_positions_agree_with_counting_the_characters(parts: list[str],
                                                      offsets: list[int]) -> None:
    # `position` remembers which lines are ASCII; the column is the characters before it.
    src = SourceText("f.c", "".join(parts), "utf-8")
    data = src.data
    for offset in offsets:
        at = max(0, min(offset, len(data)))
        line_start = data.rfind(b"\n", 0, at) + 1
        column = len(data[line_start:at].decode("utf-8", errors="replace")) + 1
        assert src.position(offset) == (data.count(b"\n", 0, at) + 1, column)


def test_functions_params_annotations_and_roles() -> None:
    fir = parse_text("""
#include <ntddk.h>
_Dispatch_type_(IRP_MJ_CREATE) DRIVER_DISPATCH OnCreate;
_IRQL_requires_max_(APC_LEVEL)
static NTSTATUS NTAPI OnCreate(_In_ PDEVICE_OBJECT Device, _Inout_ PIRP Irp) { return 0; }
""")
    fn = fir.functions[0]
    assert fn.name == "OnCreate" and fn.is_static
    assert [(p.name, p.type_text) for p in fn.params] == [("Device", "PDEVICE_OBJECT"),
                                                          ("Irp", "PIRP")]
    ann = fn.annotation("_IRQL_requires_max_")
    assert ann is not None and ann.args == ("APC_LEVEL",)
    assert [(r.function, r.typedef) for r in fir.role_decls] == [("OnCreate", "DRIVER_DISPATCH")]
    assert fir.role_decls[0].annotations[0].args == ("IRP_MJ_CREATE",)
    assert fir.error_nodes == 0


def test_cpp_methods_and_lambdas() -> None:
    fir = parse_text("""
class Dev { public: void Stop() { ZwClose(m_h); } HANDLE m_h; };
NTSTATUS Dev::Start() { auto f = [&]() { Go(); }; f(); return 0; }
""", "d.cpp")
    names = [(f.qualname, f.kind) for f in fir.functions]
    assert ("Dev::Stop", "method") in names and ("Dev::Start", "method") in names
    assert any(k == "lambda" for _, k in names)
    go = next(c for c in fir.calls if c.callee == "Go")
    assert go.function is not None and go.function.kind == "lambda"
    assert go.function.parent is not None and go.function.parent.qualname == "Dev::Start"


def test_call_through_function_like_macro_is_reported_at_the_macro() -> None:
    text = ("#define OPEN_TOKEN(h) ZwOpenProcessTokenEx(NtCurrentProcess(), TOKEN_READ, 0, h)\n"
            "void F(void) { HANDLE t; OPEN_TOKEN(&t); }\n")
    fir = parse_text(text)
    call = [c for c in fir.calls if c.callee == "ZwOpenProcessTokenEx"]
    assert len(call) == 1
    assert call[0].via == "OPEN_TOKEN"
    assert fir.position(call[0].name_start) == (2, 26)
    assert [a.render() for a in call[0].args] == ["NtCurrentProcess()", "TOKEN_READ", "0", "&t"]
    # The argument `&t` keeps the place where it is written.
    assert fir.position(call[0].args[3].start) == (2, 37)


def test_calls_in_macro_arguments_are_not_counted_twice() -> None:
    fir = parse_text("#define CHECK(x) if (!(x)) goto Exit\n"
                     "void F(void) { CHECK(ZwClose(h)); Exit: ; }\n")
    assert [c.callee for c in fir.calls] == ["ZwClose"]
    assert fir.calls[0].via == ""


def test_a_macro_calls_what_its_own_text_names_even_with_the_parentheses_of_an_argument(
) -> None:
    # `DbgPrint args`: the name is the macro's, the `(` its argument's. `WRAP(x)` writes
    # no name before a `(` of its own: its expansion calls nothing (it is not parsed), and
    # the call in its argument is found where it is written.
    fir = parse_text("#define TRACE(args) DbgPrint args\n"
                     "#define WRAP(x) (x)\n"
                     "void F(void) { TRACE((\"%d\", 1)); WRAP(ZwClose(h)); }\n")
    assert [(c.callee, c.via) for c in fir.calls] == [("DbgPrint", "TRACE"), ("ZwClose", "")]
    cpp = parse_text("#define MAKE(x) Make<int>(x)\n#define ID(x) x\n"
                     "void F() { MAKE(1); ID(Other<int>(2)); }\n", "t.cpp")
    assert [(c.callee, c.via) for c in cpp.calls] == [("Make", "MAKE"), ("Other", "")]


def test_object_like_macros_expand_in_expressions_and_aliases() -> None:
    fir = parse_text("#define ATTRS (OBJ_KERNEL_HANDLE | OBJ_CASE_INSENSITIVE)\n"
                     "#define OpenK ZwOpenKey\n"
                     "void F(void) { x = ATTRS; OpenK(&h, KEY_READ, &oa); }\n")
    body = fir.functions[0].body
    first = body.children[0].expr
    assert first is not None
    assert first.children[1].render() == "OBJ_KERNEL_HANDLE | OBJ_CASE_INSENSITIVE"
    assert first.children[1].via == "ATTRS"
    assert [c.callee for c in fir.calls] == ["ZwOpenKey"]


def test_statement_macro_with_goto_becomes_statements() -> None:
    fir = parse_text("#define BAIL(s) do { if (!NT_SUCCESS(s)) goto Exit; } while (0)\n"
                     "void F(void) { s = A(); BAIL(s); B(); Exit: C(); }\n")
    kinds = [s.kind for s in fir.functions[0].body.walk()]
    assert "goto" in kinds
    cfg = fir.functions[0].cfg
    # A path skips B(): the goto inside the macro is a real edge.
    from tests.test_cfg import paths

    assert ["A", "NT_SUCCESS", "C"] in paths(cfg)


def test_cast_that_looks_like_a_call() -> None:
    fir = parse_text("void F(void) { x = (ULONG)(a | b); }")
    e = fir.functions[0].body.children[0].expr
    assert e is not None and e.children[1].kind == "cast"
    assert [c.callee for c in fir.calls] == []


def test_deep_nesting_does_not_raise() -> None:
    fir = parse_text("void F(void) { x = " + "(" * 3000 + "1" + ")" * 3000 + "; }")
    assert fir.functions[0].cfg is not None


def test_wdk_sample_idioms_parse_cleanly() -> None:
    fir = parse_text("""
VOID F(VOID)
{
    do {
        if (!A()) break;
        B();
    } WHILE (FALSE);
    __pragma(warning(suppress: 4127)) while (0) { }
}
""")
    assert fir.error_nodes == 0
    from tests.test_cfg import paths

    assert sorted(paths(fir.functions[0].cfg)) == [["A"], ["A", "B"]]


def test_a_header_written_in_cpp_is_parsed_as_cpp() -> None:
    cpp = parse_text("""
#pragma once
namespace drv {
template <typename T> class Guard {
public:
    ~Guard() { Release(m_p); }
private:
    T* m_p;
};
}
""", "guard.h")
    assert cpp.language == "cpp" and cpp.error_nodes == 0
    assert [f.qualname for f in cpp.functions] == ["Guard::~Guard"]
    # C++ only where a C compiler does not look, or in a comment: still C.
    c = parse_text("""
// class Helper { public: ... } is how the C++ side wraps this.
#ifdef __cplusplus
class Helper { public: void Go(); };
#endif
typedef struct _CTX { ULONG class; } CTX;
VOID Go(CTX *c) { c->class = 0; }
""", "helper.h")
    assert c.language == "c" and [f.name for f in c.functions] == ["Go"]
    # A header that only uses other headers' namespaces and classes (`std::`, `ns::T`).
    uses = parse_text("""
#pragma once
typedef struct _PROGRAM {
    char *name = nullptr;
    std::vector<int> *slots;
} PROGRAM;
inline size_t SlotCount(const PROGRAM *p) { return p->slots->size(); }
""", "program.h")
    assert uses.language == "cpp" and uses.error_nodes == 0
    assert [f.name for f in uses.functions] == ["SlotCount"]


def test_section_macros_before_a_function_are_decorations() -> None:
    fir = parse_text("""
PAGED_CODE_SEG
NTSTATUS
CEngine::Pause()
{
    PAGED_CODE();
    return STATUS_SUCCESS;
}
INIT_CODE_SEG
NTSTATUS DriverEntry(PDRIVER_OBJECT D, PUNICODE_STRING R) { return 0; }
""", "engine.cpp")
    assert fir.error_nodes == 0
    assert [f.qualname for f in fir.functions] == ["CEngine::Pause", "DriverEntry"]


def test_a_call_through_this_is_a_call_of_the_method() -> None:
    fir = parse_text("""
class Dev {
    void Stop() { this->Flush(); m_queue->Flush(); }
    void Flush();
    Queue *m_queue;
};
""", "dev.cpp")
    assert [(c.callee, c.indirect) for c in fir.calls] == [("Flush", False), ("Flush", True)]


def test_the_cpp_header_check_reads_a_bounded_class_head() -> None:
    from ddilint.analyzer.frontend import _is_cpp_header

    assert _is_cpp_header(b"class CFoo :\n    public CBase\n{\n")
    # A head is at most a few hundred bytes: past that the check gives up on it, so that
    # many lines of `class A` without a brace cost linear time, not quadratic.
    assert not _is_cpp_header(b"class A " + b"x" * 500 + b" {")
    assert not _is_cpp_header(b"class A\n" * 20000 + b"x")


def test_the_cpp_header_check_wants_the_words_at_the_start_of_a_line() -> None:
    from ddilint.analyzer.frontend import _is_cpp_header

    assert _is_cpp_header(b"#pragma once\n\t  template <typename T> struct S;\n")
    assert _is_cpp_header(b"int x;\nnamespace drv {\n}\n")
    assert _is_cpp_header(b"struct S {\nprivate:\n int a;\n};\n")
    # The same words inside a line are C: a name, a label of a `switch`, a parameter.
    assert not _is_cpp_header(b"int my_template<3;\nVOID F(int class_id) { x = 1; }\n")
    assert not _is_cpp_header(b"switch (k) { case 1: y = a ? public : b; }\n")
    assert not _is_cpp_header(b"x = y; class A { };" * 5000)  # one long line: linear
    assert not _is_cpp_header(b"public ::c\n")  # `public` then a global scope: no label
    # Anywhere in a line, a name qualified with `::` is C++; not inside a string.
    assert _is_cpp_header(b"VOID F(void) { x = ns::Count(); }\n")
    assert not _is_cpp_header(b'VOID F(void) { DbgPrint("Drv::Log %d\\n", 1); }\n')
    assert _is_cpp_header(b'VOID F(void) { Log("a \\" b"); x = ns::Count(); }\n')


_CPP_TOKENS = ["class", "template", "namespace", "public", "private", "<", " ", "\t", "\n",
               "{", ";", ":", "A", "x"]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(_CPP_TOKENS), max_size=30))
def test_the_cpp_header_check_is_the_line_start_pattern_or_a_qualified_name(
        tokens: list[str]) -> None:
    from ddilint.analyzer.frontend import _is_cpp_header

    view = "".join(tokens).encode()
    line_start = re.compile(
        rb"^[ \t]*(?:template[ \t]*<|namespace[ \t]+\w+\s*\{|class[ \t]+\w+[^;{}]{0,400}\{"
        rb"|(?:public|private|protected)[ \t]*:(?!:))", re.M)
    qualified = re.compile(rb"\b[A-Za-z_]\w*::~?[A-Za-z_]")
    assert _is_cpp_header(view) == (line_start.search(view) is not None
                                     or qualified.search(view) is not None)


def test_a_qualified_static_method_is_a_function_reference() -> None:
    fir = parse_text("""
void Stream::Arm() {
    KeInitializeDpc(&m_Dpc, &Stream::OnDpc, this);
    Register(drv::Engine<int>::OnEvent);
    Paint(Color::Red);
    KeInitializeDpc(&m_Other, OnOther, this);
}
""", "s.cpp")
    assert [(r.name, r.scope, r.kind, r.callee, r.index) for r in fir.refs
            if not r.name.startswith("m_")] == [
        ("OnDpc", "Stream", "arg", "KeInitializeDpc", "1"),
        ("OnEvent", "Engine", "arg", "Register", "0"),
        ("Red", "Color", "arg", "Paint", "0"),
        ("OnOther", "", "arg", "KeInitializeDpc", "1"),
    ]


def test_cpp_cli_handles_read_as_pointers_in_a_managed_file_only() -> None:
    managed = """
#using <System.Xml.dll>
using namespace System;
ref class Reader {
public:
    String^ Name(List<String^>^ items, int i) {
        Object^ o = gcnew Object();
        return items[i];
    }
};
"""
    fir = parse_text(managed, "reader.cpp")
    # Same length, same offsets: `^` reads `*`, `ref` is blanked, `gcnew` reads `new`.
    view = preprocess(managed.encode(), cplusplus=True).view
    assert len(view) == len(managed.encode())
    assert b"String* Name(List<String*>* items" in view and b"  new Object()" in view
    assert fir.error_nodes == 0
    assert [f.qualname for f in fir.functions] == ["Reader::Name"]
    # No C++/CLI marker: `^` stays the exclusive-or it is in C and C++.
    plain = b"class Mask { int Flip(int a, int b) { return a^ b; } };\n"
    assert preprocess(plain, cplusplus=True).view == plain
    # A C file is never read as C++/CLI.
    assert preprocess(b"#using <x.dll>\nint f(int a) { return a^ 1; }\n").view.endswith(
        b"return a^ 1; }\n")


def test_the_upper_case_const_of_windows_headers_reads_as_const() -> None:
    fir = parse_text("""
NTSTATUS OpenPipeDevice(PHANDLE Handle)
{
    static CONST UNICODE_STRING name = RTL_CONSTANT_STRING(L"\\\\Device\\\\NamedPipe");
    CONST ULONG share = FILE_SHARE_READ;
    return OpenByName(Handle, &name, share);
}
""", "pipe.c")
    assert fir.error_nodes == 0
    assert [c.callee for c in fir.calls] == ["RTL_CONSTANT_STRING", "OpenByName"]
    # A file that gives CONST another meaning keeps it.
    own = b"#define CONST 3\nint Limit(void) { return CONST; }\n"
    assert preprocess(own).view.count(b"CONST") == 1


def test_declaration_macros_without_a_semicolon_are_not_functions() -> None:
    fir = parse_text(
        "typedef struct _CTX { int a; } CTX;\n"
        "MODULE_DECLARE_CONTEXT(Timer)\n"
        "\n// no config\nMODULE_DECLARE_NO_CONFIG(Timer)\n"
        "DECLARE_CONST_UNICODE_STRING(Name, L\"x\");\n"
        "_IRQL_requires_max_(PASSIVE_LEVEL)\nNTSTATUS\nTimerStart(int a)\n"
        "{\n    return Go(a);\n}\n")
    assert [f.name for f in fir.functions] == ["TimerStart"]
    assert fir.error_nodes == 0
    assert [a.name for a in fir.functions[0].annotations] == ["_IRQL_requires_max_"]


def test_macros_that_are_part_of_a_declaration_stay() -> None:
    src = ("STDMETHODIMP_(ULONG)\nCFoo::AddRef()\n{\n    return Bump();\n}\n"
           "STDMETHODIMP_(HRESULT)\nCFoo::Query(int a) const;\n"
           "DECLARE_INTERFACE_(IBar, IUnknown)\n{\n    STDMETHOD_(ULONG, Release)(THIS) PURE;\n};\n"
           "class C {\n    BEGIN_MAP(C)\n    END_MAP()\n};\n"
           "EXPORTED(Thing);\n")
    view = preprocess(src.encode(), cplusplus=True).view.decode()
    for kept in ("STDMETHODIMP_(ULONG)", "STDMETHODIMP_(HRESULT)", "DECLARE_INTERFACE_",
                 "BEGIN_MAP(C)", "EXPORTED(Thing)"):
        assert kept in view
    fir = parse_text(src, "t.cpp")
    assert "CFoo::AddRef" in [f.qualname for f in fir.functions]


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet="# \t\n\r\\ade", max_size=60))
def test_directive_lines_are_those_a_line_start_pattern_finds(text: str) -> None:
    # `_directive_lines` searches for `#` and looks back to the line start; it must find
    # the lines that the directive pattern tried at the start of each line finds,
    # continuation lines and `#`s inside lines included.
    data = text.encode()
    line = rb"([ \t]*#[ \t]*([A-Za-z_]\w*)?((?:[^\n\\]|\\\r?\n|\\.)*))"
    first = re.match(line, data)
    expected = [first] if first is not None else []
    expected += re.compile(rb"\n" + line).finditer(data, first.end() if first else 0)
    found = [(s, m.end(), m.group(1), m.group(2)) for s, m in _directive_lines(data)]
    assert found == [(m.start(1), m.end(1), m.group(2), m.group(3)) for m in expected]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(["WHILE", "CONST", "try", "x", "_", "1", " ", "(", "{", "\n"]),
                max_size=30), st.integers(0, 12))
def test_word_starts_are_what_a_leading_word_boundary_finds(tokens: list[str], pos: int) -> None:
    from ddilint.analyzer.preprocess import _word_starts

    data = "".join(tokens).encode()
    for word in (rb"(WHILE|CONST)\b", rb"try\b(?=\s*\{)"):
        found = [m.span() for m in _word_starts(re.compile(word), data, pos)]
        assert found == [m.span() for m in re.compile(rb"\b" + word).finditer(data, pos)]


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(["0", "7", "0x", "0X", "Ff", "u", "U", "i", "I", "8", "16", "32",
                                 "64", "x", "_", " ", "(", "\n", "\xc3\xa9"]), max_size=24))
@example(["7", "x", "i", "8", " ", "0x", "Ff", "U", "i", "64", " ", "x", "7", "i", "8"])
@example(["7", "i", "8", "i", "8", "(", "0X", "u", "I", "16", "_", " ", "0", "u", "i", "32"])
def test_sized_suffixes_are_what_the_whole_number_pattern_finds(tokens: list[str]) -> None:
    # `_sized_suffixes` searches for the suffix and reads the number back from it; it must
    # find the suffixes of the numbers a pattern led by a word boundary finds.
    from ddilint.analyzer.preprocess import _sized_suffixes

    data = "".join(tokens).encode()
    whole = re.compile(rb"\b(?:0[xX][0-9A-Fa-f]+|[0-9]+)([uU]?[iI](?:8|16|32|64))\b")
    assert list(_sized_suffixes(data)) == [m.span(1) for m in whole.finditer(data)]


def test_a_statement_given_whole_to_a_macro_reads_as_its_argument() -> None:
    # `IF_LOUD(DbgPrint("...");)`: the `;` and the `)` trade places, in files with a parse
    # error only (a rare edit); a `for (;;)` head is left alone.
    text = (b"void F(int n) {\n    IF_LOUD(DbgPrint(\"%d\\n\", Count(n));)\n"
            b"    TRACE(Log(\"x\"); )\n    for (;;) { break; }\n    for (n = 0; n < 2;) n++;\n}\n")
    assert needs_rare_edits(text)
    view = preprocess(text, rare=True).view
    assert b'IF_LOUD(DbgPrint("%d\\n", Count(n)));' in view
    assert b'TRACE(Log("x")) ;' in view
    assert b"for (;;)" in view and b"for (n = 0; n < 2;)" in view
    assert len(view) == len(text)
    assert b";)" in preprocess(text).view  # not an edit a readable file needs


def test_every_name_of_a_long_table_knows_its_place_in_it() -> None:
    # Each element of a list is placed once per list, not once per name in it (a table of
    # 5,000 callbacks read its list 5,000 times).
    n = 300
    handlers = "".join(f"NTSTATUS OnIrp{i}(PIRP Irp) {{ return 0; }}\n" for i in range(n))
    table = "".join(f"    OnIrp{i},\n" for i in range(n))
    pairs = "".join(f"    [{i}] = OnIrp{i},\n" for i in range(3))
    calls = ", ".join(f"OnIrp{i}" for i in range(n))
    fir = parse_text(f"""{handlers}
PDRIVER_DISPATCH Table[] = {{
{table}}};
PDRIVER_DISPATCH Sparse[] = {{
{pairs}}};
void Wire(void) {{
    Register({calls});
}}
""")
    table_refs = [r for r in fir.refs if r.kind == "init" and not r.key]
    assert [(r.name, r.index) for r in table_refs] == [(f"OnIrp{i}", str(i)) for i in range(n)]
    assert {r.args for r in table_refs} == {tuple(f"OnIrp{i}" for i in range(8))}
    assert {r.type_text for r in table_refs} == {"PDRIVER_DISPATCH Table[] ="}
    sparse = [(r.name, r.key, r.index, r.args) for r in fir.refs if r.key]
    firsts = ("[0] = OnIrp0", "[1] = OnIrp1", "[2] = OnIrp2")
    assert sparse == [(f"OnIrp{i}", f"[{i}]", str(i), firsts) for i in range(3)]
    args = [(r.name, r.callee, r.index) for r in fir.refs if r.kind == "arg"]
    assert args == [(f"OnIrp{i}", "Register", str(i)) for i in range(n)]
