"""What the preprocessor would do, approximated without headers, offset-preserving.

Before parsing, a file's UTF-8 bytes are rewritten into a same-length "parse view":
- comments are blanked (newlines kept), so comments never produce calls;
- preprocessor directive lines are blanked after being recorded (`#define`s become the
  file's macro table, `#include`s decide kernel or user mode, `#pragma alloc_text` says
  which functions are pageable);
- inactive conditional branches are blanked: `#if 0`, branches the project config turns
  off, and every branch after the first live one of an `#if`/`#elif`/`#else` chain whose
  condition is unknown (one consistent configuration, as a compiler would see it);
- SAL annotations, calling conventions and declaration decorations that a plain C grammar
  chokes on (`_IRQL_requires_(DISPATCH_LEVEL)`, `_In_`, `IN`, `NTAPI`, `__declspec(...)`,
  `FORCEINLINE`, ...) are blanked after being recorded, so that what they say is kept.
Every byte keeps its offset, so positions from the parser are positions in the real file.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from ddilint.analyzer.pickling import compact_pickle

_BLANK = bytes(b if b in (10, 13) else 32 for b in range(256))


def blank(data: bytes) -> bytes:
    """Same-length bytes with everything but line breaks turned into spaces."""
    return data.translate(_BLANK)


def line_start_matches(pattern: re.Pattern[bytes],
                       text: bytes | bytearray) -> Iterator[tuple[int, re.Match[bytes]]]:
    """The matches of `pattern` in `text` with only blanks before them on their line, each
    with where its line starts: what `^[ \\t]*` before the pattern finds with re.M, for a
    pattern that starts with something the regex engine searches for fast (where a `^`
    is tried at every byte). A match is looked for again after the end of one kept."""
    search = pattern.search
    pos = 0
    while (m := search(text, pos)) is not None:
        at = m.start()
        line = text.rfind(b"\n", 0, at) + 1
        if line == at or not text[line:at].strip(b" \t"):
            yield line, m
            pos = m.end()
        else:
            # Inside a line: nothing kept starts before the next line (a jump, not a
            # step, so that a long line of candidates stays linear).
            pos = text.find(b"\n", at)
            if pos < 0:
                return


_WORD_BYTES = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_")


def _word_starts(pattern: re.Pattern[bytes], scan: bytes | bytearray, pos: int = 0,
                 end: int = sys.maxsize) -> Iterator[re.Match[bytes]]:
    """The matches of `pattern` in `scan[pos:end]` that start a word: what `\\b` before the
    pattern finds. A pattern that starts with a word's letters is found by the engine's
    fast search for them, where a leading `\\b` is tested at every byte. (A match that
    does not start a word is all word bytes, so no match that does starts inside it.)"""
    for m in pattern.finditer(scan, pos, end):
        at = m.start()
        if at == 0 or scan[at - 1] not in _WORD_BYTES:
            yield m


@compact_pickle
@dataclass(frozen=True, slots=True)
class Annotation:
    """A SAL annotation or decoration found in the source, e.g. `_IRQL_requires_max_`."""

    name: str
    args: tuple[str, ...]
    start: int
    end: int


@compact_pickle
@dataclass(frozen=True, slots=True)
class MacroDef:
    """A `#define`: object-like when `params` is None, function-like otherwise."""

    name: str
    params: tuple[str, ...] | None
    body: str
    start: int
    variadic: bool = False


@compact_pickle
@dataclass(frozen=True, slots=True)
class Directive:
    """A recorded preprocessor line: `include` with its target, `pragma` with its text."""

    kind: str
    text: str
    start: int


@dataclass(slots=True)
class Preprocessed:
    """The parse view of a file and what was taken out of it."""

    view: bytes
    macros: dict[str, MacroDef] = field(default_factory=dict)
    annotations: list[Annotation] = field(default_factory=list)
    includes: list[str] = field(default_factory=list)
    # The includes inside a branch on the build's mode (`#if !defined(_KERNEL_MODE)`): a
    # file built for both modes, whose live branch says nothing about the mode.
    mode_includes: list[str] = field(default_factory=list)
    # Those of them in a branch that only one mode compiles (`#if (PHNT_MODE !=
    # PHNT_MODE_KERNEL)`, the `#else` of `#ifdef _KERNEL_MODE`): (include, "kernel" or
    # "user"). A header included there is code of that mode.
    sided_includes: list[tuple[str, str]] = field(default_factory=list)
    # The analyzed branches that only one mode compiles: (start, end, "kernel" or
    # "user"), in the order they end (an inner one before the one around it). A file built
    # for both modes keeps the first plausible branch of each test, so its analyzed text
    # can hold the user branch of one test and the kernel branch of the next.
    mode_regions: list[tuple[int, int, str]] = field(default_factory=list)
    pragmas: list[Directive] = field(default_factory=list)
    inactive: list[tuple[int, int]] = field(default_factory=list)
    # Words the parser must read spelled otherwise, which the same-length view cannot
    # hold: (offset, length, what the parser reads), applied by `compact.CompactView`.
    rewrites: list[tuple[int, int, bytes]] = field(default_factory=list)
    # The file's own object-like macros that are nothing but braces, where they are
    # defined: (name, from, to) (`_brace_macros`).
    brace_macros: list[tuple[str, int, int]] = field(default_factory=list)


# Comments and literals, written as "unrolled loops" (a run of plain bytes, then any number
# of (escape or star, plain run)): the same matches as `//(?:[^\n\\]|\\\r?\n|\\.)*`,
# `/\*.*?(?:\*/|\Z)` and `"(?:[^"\\\n]|\\.)*"?`, at less than half the cost, since the
# engine runs through plain bytes without trying an alternation at each one. The whole is
# one group, so that `split` gives the text between them and them in turn (see
# `preprocess`).
_COMMENT_OR_STRING = re.compile(
    rb"(//[^\n\\]*(?:(?:\\\r?\n|\\.)[^\n\\]*)*"
    rb"|/\*[^*]*(?:\*+[^*/][^*]*)*(?:\*+/|\**\Z)"
    rb"|\"[^\"\\\n]*(?:\\.[^\"\\\n]*)*\"?"
    rb"|'(?:[^'\\\n]|\\.){0,8}'?)",
    re.S,
)

# A backslash at the end of a line: a line splice.
_SPLICE = re.compile(rb"\\(?=\r?\n)")


def _scanned_comment(comment: bytes, blanked: bytes) -> bytes:
    """A comment as `code` has it: blanked, but for its line splices. The compiler joins
    spliced lines before it removes comments, so a `#define` whose body holds a comment
    over several lines (`/*` and `*/` on lines that end with a backslash) goes on past
    it; blanked with it, the splices ended the macro at the comment and left the rest of
    its body to the parser as code."""
    out = bytearray(blanked)
    for m in _SPLICE.finditer(comment):
        out[m.start()] = 92
    return bytes(out)


# A directive from its `#`: group 1 is the name, 2 the rest of the line with its
# continuation lines (an unrolled loop, as in `_COMMENT_OR_STRING`). `_directive_lines`
# searches for the `#` (a literal the regex engine finds fast) and keeps it when only
# blanks come before it on its line. A pattern tried after every line break found the same
# lines in three times the time (2% of phase one in a profile of the samples).
_DIRECTIVE = re.compile(rb"#[ \t]*([A-Za-z_]\w*)?([^\n\\]*(?:(?:\\\r?\n|\\.)[^\n\\]*)*)")

# Annotations and decorations. SAL names are reserved identifiers (underscore, capital,
# trailing underscore, with lower-case letters: `_In_`, `_IRQL_requires_max_`), old SAL and
# driver annotations (`__drv_maxIRQL`, `__in_opt`), and the calling-convention/export words.
# The alternatives are grouped by first letter (same order within a group, and alternatives
# with different first letters never match at the same place, so the same words are found):
# the engine then tests one letter where it would try every alternative at every word start.
_DECORATION = re.compile(
    rb"\b(?:"
    rb"_(?:[A-Z][A-Za-z0-9]*(?:_[A-Za-z0-9]+)*_"
    rb"|_(?:drv_[A-Za-z0-9_]+"
    rb"|(?:in|out|inout|deref|field|ecount|bcount|xcount|success|checkReturn|reserved"
    rb"|nullterminated|typefix|format_string|callback|range|control_entrypoint|kernel_entry"
    rb"|post|pre|readonly|notnull|maybenull|valid|opt)(?:_[A-Za-z0-9_]*)?"
    rb"|declspec|pragma|forceinline|inline|stdcall|cdecl|fastcall|clrcall|vectorcall|thiscall"
    rb"|unaligned|ptr64|ptr32|restrict|allowed|kernel_driver)"
    rb"|Pragma|stdcall|cdecl)"
    rb"|DECLSPEC_[A-Z0-9_]+|F(?:ORCEINLINE|ASTCALL)|IN|O(?:UT|PTIONAL)"
    rb"|N(?:TAPI|TSYSAPI|TSYSCALLAPI|TKERNELAPI|THALAPI)|WINAPI|EXTERN_C|CALLBACK|APIENTRY"
    rb"|STDMETHODCALLTYPE|UNALIGNED|P(?:OINTER_64|OINTER_32)|RESTRICTED_POINTER"
    # The samples' section macros (`#define PAGED_CODE_SEG __declspec(code_seg("PAGE"))`
    # in a header): on the line before a function they broke its parse.
    rb"|(?:PAGED|INIT|NONPAGED|LOCKED)_CODE_SEG(?:_BEGIN|_END)?"
    rb")\b"
)

_LOWER = re.compile(rb"[a-z]")
_ALWAYS_DECORATION = {
    b"__declspec", b"__pragma", b"_Pragma", b"__forceinline", b"FORCEINLINE", b"__inline",
    b"IN", b"OUT",
    b"OPTIONAL", b"NTAPI", b"WINAPI", b"NTSYSAPI", b"NTSYSCALLAPI", b"NTKERNELAPI",
    b"NTHALAPI", b"EXTERN_C", b"__stdcall", b"__cdecl", b"__fastcall", b"_stdcall", b"_cdecl",
    b"__clrcall", b"__vectorcall", b"__thiscall", b"CALLBACK", b"APIENTRY",
    b"STDMETHODCALLTYPE", b"FASTCALL", b"UNALIGNED", b"__unaligned", b"__ptr64", b"__ptr32",
    b"POINTER_64", b"POINTER_32", b"__restrict", b"RESTRICTED_POINTER",
}


def preprocess(
    data: bytes,
    defined: Mapping[str, int] | None = None,
    undefined: frozenset[str] = frozenset(),
    cplusplus: bool = False,
    rare: bool = False,
) -> Preprocessed:
    """Build the parse view of `data` (UTF-8 bytes) and record what was removed.
    `rare`: also the edits only a few files need, each a parse error without them: MSVC's
    sized integer suffixes, `__BEGIN_DECLS`, `TRY { } EXCEPT (...)` without a `FINALLY`,
    `offsetof` of a nested member, `ASSERT3U(a, ==, b)`, `if NT_SUCCESS(status)`, and in
    C++ `(a = b, c)`.
    Looking for them costs more than the files that need them: the frontend asks for them
    only when a parse without them had an error and `needs_rare_edits` says the file may
    hold one."""
    # Comments blanked, strings kept; `code` also has the insides of strings blanked, for
    # scanning. `split` hands over the comments and literals (odd places) with the text
    # between them, and joining the edited list builds each buffer in one step: a loop over
    # the matches, writing each into two buffers, spent twice as long past the scan itself.
    parts = _COMMENT_OR_STRING.split(data)
    if len(parts) == 1:
        buf = bytearray(data)
        code = bytearray(data)
    else:
        found = parts[1::2]
        kept = [p.translate(_BLANK) if p[0] == 47 else p for p in found]  # '/': a comment
        parts[1::2] = kept
        buf = bytearray(b"".join(parts))
        parts[1::2] = [(k if 92 not in p else _scanned_comment(p, k)) if p[0] == 47
                       else p if len(p) <= 2 else p[:1] + p[1:-1].translate(_BLANK) + p[-1:]
                       for p, k in zip(found, kept, strict=True)]
        code = bytearray(b"".join(parts))
    result = Preprocessed(view=b"")
    known: dict[str, int] = dict(defined or {})
    if cplusplus:
        known.setdefault("__cplusplus", 199711)
    unknown_off = set(undefined)
    if not cplusplus:
        unknown_off.add("__cplusplus")
    if b"#" in code:
        # Scanned from a snapshot: `code` is blanked as directives are handled.
        _directives(bytes(code), buf, code, result, known, frozenset(unknown_off))
    # Neither scan below writes to `code`, so it is scanned in place.
    _decorations(code, buf, result)
    _keyword_aliases(code, buf, result)
    _brace_macros(code, buf, result)
    if code.find(b"EXTERN_C_") >= 0 or (rare and code.find(b"_DECLS") >= 0):
        _linkage_brackets(code, buf)
    if rare:
        _integer_suffixes(code, buf)
        _offsetof_designators(code, buf)
        if code.find(b"ASSERT") >= 0 or code.find(b"VERIFY3") >= 0:
            _comparison_macros(code, buf)
        _unparenthesized_tests(code, result)
        _statement_arguments(code, buf)
        if cplusplus:
            _comma_assignments(code, result)
    _declaration_macros(code, buf)
    if cplusplus and any(w in data for w in CLI_WORDS):
        _cli_syntax(code, buf)
    if cplusplus:
        _string_macros(code, buf)
    if code.find(b"except") >= 0 or code.find(b"finally") >= 0:
        _seh_keywords(code, result, upper=False)
    if code.find(b"FINALLY") >= 0 or (rare and code.find(b"EXCEPT") >= 0):
        _seh_keywords(code, result, upper=True)
    result.view = bytes(buf)
    return result


# --------------------------------------------------------------------------- directives


# A conditional on the build's mode: kernel- or user-mode compilation, or what a kernel
# header defines.
# The macros defined only when one mode is built, and the mode.
_MODE_MACROS = {"_KERNEL_MODE": "kernel", "KERNEL_MODE": "kernel", "_NTDDK_": "kernel",
                "_NTIFS_": "kernel", "_WDMDDK_": "kernel", "_USER_MODE": "user",
                "USER_MODE": "user"}
_MODE_TEST = re.compile(r"\b(?:" + "|".join(_MODE_MACROS)
                        + r"|[A-Z]\w*_MODE_(?:KERNEL|USER))\b")
_MODE_DEFINED = re.compile(r"^(!?)\s*defined\s*\(?\s*(\w+)\s*\)?$")
# `PHNT_MODE != PHNT_MODE_KERNEL`: a mode macro compared with one of its two values.
_MODE_COMPARED = re.compile(r"^\w+_MODE\s*(==|!=)\s*\w+_MODE_(KERNEL|USER)$")
_OTHER_SIDE = {"kernel": "user", "user": "kernel", "": ""}


def _mode_side(directive: str, cond: str) -> str:
    """The mode a branch is compiled in when its condition (`#if`/`#elif` text, or the
    macro of `#ifdef`/`#ifndef`) is one simple test of the mode; "" otherwise."""
    if directive in ("ifdef", "ifndef"):
        side = _MODE_MACROS.get(cond.split()[0] if cond.split() else "", "")
        return _OTHER_SIDE[side] if directive == "ifndef" else side
    c = cond.strip()
    while c.startswith("(") and c.endswith(")"):
        c = c[1:-1].strip()
    m = _MODE_DEFINED.match(c)
    if m is not None:
        side = _MODE_MACROS.get(m.group(2), "")
        return _OTHER_SIDE[side] if m.group(1) else side
    m = _MODE_COMPARED.match(c)
    if m is not None:
        side = m.group(2).lower()
        return _OTHER_SIDE[side] if m.group(1) == "!=" else side
    return ""


@dataclass(slots=True)
class _Frame:
    taking: bool  # the current branch is live
    done: bool  # a branch of this chain has been taken (later ones are dead)
    parent_live: bool
    start: int  # offset where the current dead region began (when not taking)
    on_mode: bool = False  # a condition of this chain, or of one around it, tests the mode
    side: str = ""  # the mode its current branch is compiled in, when its test says
    # For the `#else`: the mode the chain's first test is of, and whether every later
    # test so far is of the same mode.
    first: str = ""
    same: bool = True
    branch_start: int = 0  # where the current branch's text starts


def _directives(
    scan: bytes,
    buf: bytearray,
    code: bytearray,
    result: Preprocessed,
    known: dict[str, int],
    undefined: frozenset[str],
) -> None:
    stack: list[_Frame] = []
    live = True
    dead_from = -1
    open_braces: dict[str, int] = {}  # see `_end_brace_macro`
    for s, m in _directive_lines(scan):
        e = m.end()
        name = (m.group(1) or b"").decode("ascii", "replace")
        rest = m.group(2).decode("utf-8", "replace")
        if "\\" in rest:
            rest = re.sub(r"\\\r?\n", " ", rest)
        rest = rest.strip()
        if name in ("if", "ifdef", "ifndef"):
            if name == "if":
                value = _evaluate(rest, known, undefined)
            elif name == "ifdef":
                value = _defined(rest.split()[0] if rest.split() else "", known, undefined)
            else:
                d = _defined(rest.split()[0] if rest.split() else "", known, undefined)
                value = None if d is None else (not d)
            # Unknown counts as taken: the first plausible branch is the one analyzed.
            take = value is not False
            side = _mode_side(name, rest)
            frame = _Frame(taking=live and take, done=take, parent_live=live, start=e,
                           on_mode=bool(stack and stack[-1].on_mode)
                           or _MODE_TEST.search(rest) is not None, side=side, first=side,
                           branch_start=e)
            stack.append(frame)
            if live and not take:
                dead_from = e
            live = frame.taking
        elif name in ("elif", "else") and stack:
            frame = stack[-1]
            if frame.taking and frame.side:
                result.mode_regions.append((frame.branch_start, s, frame.side))
            frame.branch_start = e
            frame.on_mode = frame.on_mode or _MODE_TEST.search(rest) is not None
            if name == "elif":
                frame.side = _mode_side("if", rest)
                frame.same = frame.same and frame.side == frame.first
            else:
                # The `#else` after tests of one mode is the other mode's branch.
                frame.side = _OTHER_SIDE[frame.first] if frame.same else ""
            if frame.taking:
                dead_from = s
            if name == "elif":
                value = _evaluate(rest, known, undefined) if not frame.done else False
            else:
                value = not frame.done
            take = frame.parent_live and not frame.done and value is not False
            if frame.parent_live and not frame.taking and take and dead_from >= 0:
                _kill(buf, code, result, dead_from, s)
                dead_from = -1
            frame.taking = take
            frame.done = frame.done or take
            live = take
        elif name == "endif" and stack:
            frame = stack.pop()
            if frame.taking and frame.side:
                result.mode_regions.append((frame.branch_start, s, frame.side))
            if frame.parent_live and not frame.taking and dead_from >= 0:
                _kill(buf, code, result, dead_from, s)
                dead_from = -1
            live = frame.parent_live
        elif live:
            if name == "define":
                macro = _parse_define(rest, s)
                if macro is not None:
                    result.macros[macro.name] = macro
                    _end_brace_macro(result, open_braces, macro.name, s)
                    body = macro.body
                    if macro.params is None and _BRACES_ONLY.fullmatch(body) and (
                            body.count("{") != body.count("}")):
                        open_braces[macro.name] = len(result.brace_macros)
                        result.brace_macros.append((macro.name, e, len(scan)))
                    if macro.params is None:
                        value_int = int_value(macro.body)
                        if value_int is not None:
                            known[macro.name] = value_int
                        else:
                            known.setdefault(macro.name, 1)
            elif name == "undef":
                target = rest.split()[0] if rest.split() else ""
                result.macros.pop(target, None)
                known.pop(target, None)
                _end_brace_macro(result, open_braces, target, s)
            elif name == "include":
                # The scan buffer has string contents blanked: read `"name.h"` from `buf`.
                written = bytes(buf[m.start(2):m.end(2)]).decode("utf-8", "replace")
                inc = written.strip().strip('<>"').strip()
                result.includes.append(inc.replace("\\", "/"))
                if stack and stack[-1].on_mode:
                    result.mode_includes.append(result.includes[-1])
                    side = next((f.side for f in reversed(stack) if f.side), "")
                    if side:
                        result.sided_includes.append((result.includes[-1], side))
            elif name == "pragma":
                result.pragmas.append(Directive("pragma", rest, s))
        # The directive line itself never reaches the parser.
        # Comments and strings were blanked keeping line breaks, so `scan` has them where
        # `buf` and `code` do: one blanked copy serves both.
        blanked = scan[s:e].translate(_BLANK)
        buf[s:e] = blanked
        code[s:e] = blanked
    if dead_from >= 0:
        # Unterminated conditional: the dead branch runs to the end of the file.
        _kill(buf, code, result, dead_from, len(buf))


def _directive_lines(scan: bytes) -> Iterator[tuple[int, re.Match[bytes]]]:
    """The directive lines of `scan` in order: where each starts (its indent), and the
    match of the directive from its `#` (see `_DIRECTIVE`)."""
    return line_start_matches(_DIRECTIVE, scan)


def _kill(buf: bytearray, code: bytearray, result: Preprocessed, start: int, end: int) -> None:
    if end <= start:
        return
    # Blanking keeps line breaks, and `buf` and `code` have theirs in the same places.
    blanked = code[start:end].translate(_BLANK)
    buf[start:end] = blanked
    code[start:end] = blanked
    result.inactive.append((start, end))


_DEFINE = re.compile(r"([A-Za-z_]\w*)(\(([^)]*)\))?\s*(.*)", re.S)


def _parse_define(rest: str, start: int) -> MacroDef | None:
    m = _DEFINE.match(rest)
    if not m:
        return None
    name = m.group(1)
    body = " ".join(m.group(4).split())
    if m.group(2) is None:
        return MacroDef(name, None, body, start)
    raw_params = [p.strip() for p in m.group(3).split(",") if p.strip()]
    variadic = bool(raw_params) and raw_params[-1].endswith("...")
    if variadic:
        last = raw_params[-1][:-3].strip()
        raw_params[-1] = last or "__VA_ARGS__"
    return MacroDef(name, tuple(raw_params), body, start, variadic)


def int_value(text: str) -> int | None:
    """The value of an integer literal (`0x10`, `4UL`, `(2)`), or None."""
    t = text.strip()
    while t.startswith("(") and t.endswith(")"):
        t = t[1:-1].strip()
    t = t.rstrip("uUlL")
    try:
        return int(t, 0)
    except ValueError:
        return None


def _defined(name: str, known: Mapping[str, int], undefined: frozenset[str]) -> bool | None:
    if name in known:
        return True
    if name in undefined:
        return False
    return None


_TOKEN = re.compile(
    r"\s*(?:(0[xX][0-9a-fA-F]+|\d+)[uUlL]*|(defined)|([A-Za-z_]\w*)|(&&|\|\||==|!=|<=|>=|<<|>>|[!()<>+\-*/%&|^~?:]))"
)


def _evaluate(expr: str, known: Mapping[str, int], undefined: frozenset[str]) -> bool | None:
    """Three-valued evaluation of an `#if` condition: True, False or None (unknown)."""
    tokens: list[tuple[str, str]] = []
    pos = 0
    while pos < len(expr):
        m = _TOKEN.match(expr, pos)
        if not m or m.end() == pos:
            if expr[pos:].strip() == "":
                break
            return None
        pos = m.end()
        if m.group(1):
            tokens.append(("num", m.group(1)))
        elif m.group(2):
            tokens.append(("defined", "defined"))
        elif m.group(3):
            tokens.append(("id", m.group(3)))
        else:
            tokens.append(("op", m.group(4)))
    parser = _CondParser(tokens, known, undefined)
    try:
        value = parser.ternary()
    except (IndexError, ValueError, ZeroDivisionError, RecursionError):
        return None
    if parser.pos != len(tokens) or value is None:
        return None
    return value != 0


# Nesting (parentheses, unary operators, `?:`) deeper than this leaves a condition unknown.
# The parser stops itself there, not at Python's recursion limit: compiled (setup.py), its
# frames are C frames, which no RecursionError guards.
MAX_CONDITION_DEPTH = 100


class _CondParser:
    """A tiny recursive-descent evaluator over #if tokens; None means unknown."""

    def __init__(
        self, tokens: list[tuple[str, str]], known: Mapping[str, int], undefined: frozenset[str]
    ) -> None:
        self.tokens = tokens
        self.pos = 0
        self.known = known
        self.undefined = undefined
        self.depth = 0

    def deeper(self) -> None:
        """Enter one more level of nesting (ValueError past MAX_CONDITION_DEPTH)."""
        self.depth += 1
        if self.depth > MAX_CONDITION_DEPTH:
            raise ValueError("condition nested too deep")

    def peek(self) -> str:
        return self.tokens[self.pos][1] if self.pos < len(self.tokens) else ""

    def take(self) -> tuple[str, str]:
        tok = self.tokens[self.pos]
        self.pos += 1
        return tok

    def ternary(self) -> int | None:
        self.deeper()
        cond = self.logic_or()
        if self.peek() == "?":
            self.take()
            a = self.ternary()
            if self.take()[1] != ":":
                raise ValueError
            b = self.ternary()
            self.depth -= 1
            if cond is None:
                return a if a == b else None
            return a if cond else b
        self.depth -= 1
        return cond

    def logic_or(self) -> int | None:
        left = self.logic_and()
        while self.peek() == "||":
            self.take()
            right = self.logic_and()
            if left not in (None, 0) or right not in (None, 0):
                left = 1
            elif left is None or right is None:
                left = None
            else:
                left = 0
        return left

    def logic_and(self) -> int | None:
        left = self.compare()
        while self.peek() == "&&":
            self.take()
            right = self.compare()
            if left == 0 or right == 0:
                left = 0
            elif left is None or right is None:
                left = None
            else:
                left = 1
        return left

    def compare(self) -> int | None:
        left = self.arith()
        while self.peek() in ("==", "!=", "<", ">", "<=", ">=", "&", "|", "^"):
            op = self.take()[1]
            right = self.arith()
            if left is None or right is None:
                left = None
                continue
            left = {
                "==": int(left == right), "!=": int(left != right), "<": int(left < right),
                ">": int(left > right), "<=": int(left <= right), ">=": int(left >= right),
                "&": left & right, "|": left | right, "^": left ^ right,
            }[op]
        return left

    def arith(self) -> int | None:
        left = self.unary()
        while self.peek() in ("+", "-", "*", "/", "%", "<<", ">>"):
            op = self.take()[1]
            right = self.unary()
            if left is None or right is None:
                left = None
                continue
            left = {
                "+": left + right, "-": left - right, "*": left * right,
                "/": left // right if right else 0, "%": left % right if right else 0,
                "<<": left << min(right, 64), ">>": left >> min(right, 64),
            }[op]
        return left

    def unary(self) -> int | None:
        kind, text = self.take()
        if text in ("!", "-", "~"):
            self.deeper()
            v = self.unary()
            self.depth -= 1
            if v is None:
                return None
            return int(not v) if text == "!" else -v if text == "-" else ~v
        if text == "(":
            v = self.ternary()
            if self.take()[1] != ")":
                raise ValueError
            return v
        if kind == "num":
            return int(text, 0) if not text.startswith("0") or text.lower().startswith("0x") or (
                text == "0") else int(text, 8)
        if kind == "defined":
            paren = self.peek() == "("
            if paren:
                self.take()
            name = self.take()[1]
            if paren and self.take()[1] != ")":
                raise ValueError
            d = _defined(name, self.known, self.undefined)
            return None if d is None else int(d)
        if kind == "id":
            if self.peek() == "(":
                # A function-like macro in #if: unknown.
                depth = 0
                while self.pos < len(self.tokens):
                    t = self.take()[1]
                    depth += t == "("
                    depth -= t == ")"
                    if depth == 0:
                        break
                return None
            if text in self.known:
                return self.known[text]
            if text in ("TRUE", "true"):
                return 1
            if text in ("FALSE", "false"):
                return 0
            return None
        raise ValueError


# --------------------------------------------------------------------------- decorations


def _decorations(scan: bytes | bytearray, buf: bytearray, result: Preprocessed) -> None:
    n = len(scan)
    parens = _ParenBudget(scan)
    for m in _DECORATION.finditer(scan):
        s, e = m.span()
        word = m.group(0)
        sal_like = word.startswith(b"_") and not word.startswith(b"__")
        if sal_like and word not in _ALWAYS_DECORATION and not _LOWER.search(word):
            continue  # `_FOO_` in capitals is more likely a project name than SAL.
        if s < len(buf) and buf[s] == 32:
            continue  # already blanked (inside a directive or a dead branch)
        end = e
        args: tuple[str, ...] = ()
        j = e
        while j < n and scan[j] in (32, 9):
            j += 1
        if j < n and scan[j] == 40 and word not in (b"IN", b"OUT", b"OPTIONAL"):  # '('
            close = parens.close(j)
            if close is None or close < 0:
                continue
            args = tuple(_split_args(scan[j + 1 : close].decode("utf-8", "replace")))
            end = close + 1
        result.annotations.append(Annotation(word.decode("ascii", "replace"), args, s, end))
        buf[s:end] = buf[s:end].translate(_BLANK)


# Upper-case spellings of keywords that Windows headers and WDK samples define as macros
# (`}WHILE (FALSE);` wraps `while` in warning pragmas; winnt.h's `#define CONST const`,
# which a declaration such as `static CONST UNICODE_STRING Name = ...;` inside a function
# needs, or tree-sitter reads two type names and the function's body is lost). Same
# length, so offsets stay true.
_KEYWORD_ALIAS = re.compile(rb"(WHILE|CONST)\b")  # at a word's start: `_word_starts`


def _keyword_aliases(scan: bytes | bytearray, buf: bytearray, result: Preprocessed) -> None:
    if b"WHILE" not in scan and b"CONST" not in scan:
        return
    for m in _word_starts(_KEYWORD_ALIAS, scan):
        word = m.group(1).decode()
        macro = result.macros.get(word)
        if macro is not None and word.lower() not in macro.body:
            continue  # the file defines it as something else
        s, e = m.span()
        buf[s:e] = m.group(1).lower()


# The brackets of a C linkage block, as macros (`EXTERN_C_START` ... `EXTERN_C_END` from
# the WDK, `WDF_EXTERN_C_START`, a project's `CXPLAT_EXTERN_C_BEGIN`, `__BEGIN_DECLS`):
# `extern "C" {` and `}` in C++, nothing in C. Read as a name, the first one became the type
# of the declaration after it (`EXTERN_C_START DRIVER_INITIALIZE DriverEntry;` declared a
# function `DRIVER_INITIALIZE`). Blanked, alone on their line, both ways.
# The search starts with the fixed part (an optional prefix in front of it made the engine
# run through every upper-case word at each of its bytes); the prefix is checked after.
_LINKAGE_BRACKET = re.compile(rb"EXTERN_C_(?:START|BEGIN|END)\b|__(?:BEGIN|END)_DECLS\b")
_LINKAGE_PREFIX = re.compile(rb"(?:[A-Z][A-Z0-9]*_)?")


def _linkage_brackets(code: bytes | bytearray, buf: bytearray) -> None:
    for m in _LINKAGE_BRACKET.finditer(code):
        s, e = m.span()
        line = code.rfind(b"\n", 0, s) + 1
        word = s
        while word > line and code[word - 1] in _WORD_BYTES:
            word -= 1
        if (code[line:word].strip(b" \t") or _REST_OF_LINE.match(code, e) is None
                or not _LINKAGE_PREFIX.fullmatch(code, word, s)):
            continue
        buf[word:e] = b" " * (e - word)


# A file's own object-like macro that is nothing but braces, and not as many of each
# (`#define END_FOR_EACH_ACE } }`, closing what a `START_FOR_EACH_ACE(acl, ace) {` macro
# opened; `#define EMPTY_INIT {}` is an expression): its uses are blanked. Left
# in, the braces the parser cannot see unbalanced the rest of the file (in one file of
# System Informer, 245 KB of functions became one ERROR node). Blanked, the opening macro's
# use reads as a block macro (`_block_macro` in the frontend).
_BRACES_ONLY = re.compile(r"[\s{};]*")


def _end_brace_macro(result: Preprocessed, open_braces: dict[str, int], name: str,
                     at: int) -> None:
    """A `#define` or `#undef` of `name` at `at` ends the range of the brace macro of that
    name still open (`open_braces`: name -> its place in `result.brace_macros`)."""
    i = open_braces.pop(name, None)
    if i is not None:
        n, start, _end = result.brace_macros[i]
        result.brace_macros[i] = (n, start, at)


def _brace_macros(code: bytes | bytearray, buf: bytearray, result: Preprocessed) -> None:
    if not result.brace_macros:
        return
    ranges: dict[bytes, list[tuple[int, int]]] = {}
    for name, start, end in result.brace_macros:
        ranges.setdefault(name.encode(), []).append((start, end))
    uses = re.compile(b"|".join(map(re.escape, sorted(ranges))) + rb"\b")
    for m in _word_starts(uses, code):
        s, e = m.span()
        if any(start <= s < end for start, end in ranges[m.group(0)]):
            buf[s:e] = b" " * (e - s)


# `ASSERT3U(a, ==, b)` and its kin (ASSERT3S/3P/3B, VERIFY3U/3S/3P/3B, ASSERTIRQL: the Xen
# PV drivers' and OpenZFS's assertions): a comparison operator given as an argument, a
# parse error that made every function using one unreadable to the handle analysis. The
# two commas around the operator are blanked: `ASSERT3U(a  == b)`, one condition, as
# `ASSERT(a == b)` is read (`cfg.ASSERTIONS`). A rare edit: most trees never use them.
_COMPARISON_MACRO = re.compile(rb"(?:ASSERT|VERIFY)(?:3[USPB]F?|IRQL)[ \t]*\(")
_COMPARISONS = frozenset({b"==", b"!=", b"<", b"<=", b">", b">="})


def _comparison_macros(code: bytes | bytearray, buf: bytearray) -> None:
    parens = _ParenBudget(code)
    for m in _word_starts(_COMPARISON_MACRO, code):
        open_at = m.end() - 1
        close = parens.close(open_at)
        if close is None:
            return
        if close < 0:
            continue
        commas = _top_level_commas(code, open_at + 1, close)
        if len(commas) == 2 and bytes(code[commas[0] + 1:commas[1]]).strip() in _COMPARISONS:
            buf[commas[0]] = buf[commas[1]] = 32


# MSVC's sized integer suffixes (`0i64`, `0xFFui64`, `1ui8`, and in capitals: Cheat
# Engine's `0xffffffffffffffffI64`): a parse error for the grammar, which knows only
# `u`/`l`/`ll`. The suffix is blanked (same length); the value stays.
# A number with such a suffix is a word `\b(?:0[xX][0-9A-Fa-f]+|[0-9]+)[uU]?[iI](?:8|16|32|64)\b`.
# That pattern, led by a word boundary and digits, was tried at nearly every byte (0.67 s
# on the samples' files); the suffix's `i`/`I` is searched for instead, and the word's
# start read back from there.
_SIZE_SUFFIX = re.compile(rb"[iI](?:8|16|32|64)\b")
_SUFFIXED_NUMBER = re.compile(rb"(?:0[xX][0-9A-Fa-f]+|[0-9]+)[uU]?")


def _sized_suffixes(code: bytes | bytearray) -> Iterator[tuple[int, int]]:
    """Where each sized suffix of a number is (with its `u`), in order."""
    for m in _SIZE_SUFFIX.finditer(code):
        at = m.start()
        word = at
        while word > 0 and code[word - 1] in _WORD_BYTES:
            word -= 1
        if word < at and _SUFFIXED_NUMBER.fullmatch(code, word, at) is not None:
            yield (at - 1 if code[at - 1] in b"uU" else at), m.end()


def _integer_suffixes(code: bytes | bytearray, buf: bytearray) -> None:
    for s, e in _sized_suffixes(code):
        buf[s:e] = b" " * (e - s)


# A statement given whole to a macro, its `;` inside the parentheses (WinPcap's debug macro
# `IF_LOUD(DbgPrint("...");)`, in SoftEther's packet driver): the macro expands to the
# statement, but the grammar wants an expression there, and the function around it
# became unreadable. The `;` and the `)` after it trade places: `IF_LOUD(DbgPrint(...));`
# reads as a call of the macro with the call as its argument (calls in a macro's
# arguments are found). Only an upper-case name's arguments, two levels of parentheses
# deep at most; a `for (;;)` head is a keyword's.
_STATEMENT_ARGUMENT = re.compile(
    rb"\b[A-Z][A-Z0-9_]*[ \t]*\((?:[^();{}]|\((?:[^(){}]|\([^(){}]*\))*\))*;[ \t]*\)")


def _statement_arguments(code: bytes | bytearray, buf: bytearray) -> None:
    for m in _STATEMENT_ARGUMENT.finditer(code):
        close = m.end() - 1
        semi = code.rfind(b";", m.start(), close)
        buf[semi] = 41  # ')'
        buf[close] = 59  # ';'


# `if NT_SUCCESS(status) {` without parentheses of its own (Cheat Engine's kernel driver;
# `FAILED`/`SUCCEEDED` in user-mode code): the compiler takes it, because the macro expands
# to a parenthesized test; the grammar does not. The parser reads `(NT_SUCCESS(status))`:
# two rewrites, a `(` before the name and a `)` after the call (`compact.py` moves the
# columns after them back, so every node keeps its place in the file).
_UNPARENTHESIZED_TEST = re.compile(
    rb"(?:if|while)[ \t]*((?:NT_(?:SUCCESS|ERROR|WARNING|INFORMATION)|FAILED|SUCCEEDED)[ \t]*\()")


def _unparenthesized_tests(code: bytes | bytearray, result: Preprocessed) -> None:
    parens = _ParenBudget(code)
    for m in _word_starts(_UNPARENTHESIZED_TEST, code):
        close = parens.close(m.end() - 1)
        if close is None:
            return
        if close < 0:
            continue
        name = bytes(code[m.start(1):m.end(1) - 1]).rstrip()
        result.rewrites.append((m.start(1), len(name), b"(" + name))
        result.rewrites.append((close, 1, b"))"))


# What the rare edits (`preprocess(rare=True)`) look for, roughly: each a pattern that
# starts with its own letters, which the regex engine searches for fast (the second kind
# where a word must start), and the sized integer suffixes (`_sized_suffixes`). One
# alternation of them all was tried at every byte, behind a test for twenty words that
# took as long again; together 1.7% of a run on the samples, for the files with a parse
# error.
_RARE_HINTS = tuple(re.compile(p) for p in (
    rb"_(?:BEGIN|END)_DECLS\b", rb"EXCEPT\s*\(", rb"offsetof\s*\([^,()]+,\s*\w+\s*(?:\.|\[|->)",
    rb"ASSERT(?:3[USPB]F?|IRQL)[ \t]*\(", rb"VERIFY(?:3[USPB]F?|IRQL)[ \t]*\(",
    rb"\);[ \t]*\)"))
_RARE_WORD_HINTS = tuple(re.compile(p) for p in (
    rb"if[ \t]*(?:NT_[A-Z]+|FAILED|SUCCEEDED)[ \t]*\(",
    rb"while[ \t]*(?:NT_[A-Z]+|FAILED|SUCCEEDED)[ \t]*\("))


def needs_rare_edits(data: bytes, cplusplus: bool = False) -> bool:
    """Whether `data` may need the edits of `preprocess(rare=True)` (`cplusplus`: of a file
    parsed as C++)."""
    if (any(p.search(data) is not None for p in _RARE_HINTS)
            or any(next(_word_starts(p, data), None) is not None for p in _RARE_WORD_HINTS)
            or next(_sized_suffixes(data), None) is not None):
        return True
    return cplusplus and next(_comma_assignment_sites(data), None) is not None


# A parenthesized comma expression that starts with an assignment, `(service = x ? a : b,
# service)`, `while ((c = next(), c != EOF))`: C++ as the compiler reads it, and a parse
# error for tree-sitter's C++ grammar (its C grammar, and a condition's own parentheses,
# are fine). It reads `((service = x ? a : b), service)`: a `(` more at the start, a `)`
# before the comma (two rewrites, as for `if NT_SUCCESS(x)`). Not after a name, `)`, `]`
# or `>` (a call's or a macro's arguments, a declarator's parameters, a cast), except
# `return` and `throw`.
_ASSIGNMENT_START = re.compile(
    rb"\([ \t]*[A-Za-z_*][\w.\->\[\]*]*[ \t]*(?:[-+*/%&|^]|<<|>>)?=(?!=)")
_EXPRESSION_WORDS = frozenset({b"return", b"throw", b"co_return"})
_WORD_BEFORE = re.compile(rb"\w+\Z")


def _comma_assignment_sites(code: bytes | bytearray) -> Iterator[tuple[int, int]]:
    """(opening parenthesis, its first top-level comma) of each such expression."""
    quotes = StringScanner(code)
    parens = _ParenBudget(code)
    for m in _ASSIGNMENT_START.finditer(code):
        at = m.start()
        if quotes.inside(at):
            continue  # a format string's `(Pin=%d, ...`, in the raw bytes the hint reads
        before = _previous_byte(code, at)
        if before in _WORD_BYTES:
            head = bytes(code[max(0, at - 64):at]).rstrip()
            word = _WORD_BEFORE.search(head)
            if word is None or word.group(0) not in _EXPRESSION_WORDS:
                continue
        elif before in (41, 93, 62):  # ')', ']', '>'
            continue
        close = parens.close(at)
        if close is None:
            return
        if close < 0:
            continue
        commas = _top_level_commas(code, m.end(), close, first=True)
        if commas:
            yield at, commas[0]


def _comma_assignments(code: bytes | bytearray, result: Preprocessed) -> None:
    for opening, comma in _comma_assignment_sites(code):
        result.rewrites.append((opening, 1, b"(("))
        result.rewrites.append((comma, 1, b"),"))


# `offsetof(T, u.extra)`, `offsetof(T, a[2])`: the grammar's `offsetof` takes a plain field
# name only. Spelled `OFFSETOF` (same length), it reads as a macro's call.
_OFFSETOF_DESIGNATOR = re.compile(
    rb"offsetof(?=\s*\([^,()]+,\s*[A-Za-z_]\w*\s*(?:\.|\[|->))")


def _offsetof_designators(code: bytes | bytearray, buf: bytearray) -> None:
    for m in _word_starts(_OFFSETOF_DESIGNATOR, code):
        s, e = m.span()
        buf[s:e] = b"OFFSETOF"


# A macro used at file scope without a semicolon to declare things the parser cannot see:
# DMF's `DMF_MODULE_DECLARE_CONFIG(Time)`, KMDF's `WDF_DECLARE_CONTEXT_TYPE_WITH_NAME(...)`
# written without its `;`. Read with what follows, it became the name of a function that
# swallowed the next definition (73 functions of DMF were called DMF_MODULE_DECLARE_*).
# Such a use is blanked: an upper-case name at the start of a line and its arguments
# alone on their lines, at brace depth 0, after a `;`, `}` or the start of the file (or
# another such use), and followed by a declaration, not by the rest of one: `;`, `{`,
# `,`, `=`, or a function's name and parameters (`STDMETHODIMP_(ULONG)` before
# `CFoo::AddRef() {` is a return type).
_MACRO_LINE = re.compile(rb"\n([A-Z][A-Z0-9_]*)[ \t]*\(")
_REST_OF_LINE = re.compile(rb"[ \t\r]*(?:\n|\Z)")
_UPPER_NAME = re.compile(rb"[A-Z][A-Z0-9_]*")
_NEXT_TOKEN = re.compile(rb"\s*(?:((?:[A-Za-z_]\w*\s*::\s*)*~?[A-Za-z_]\w*)\s*(\()?|(\S|\Z))")
# What can follow a function declarator's parameters.
_AFTER_PARAMETERS = re.compile(
    rb"\s*(?:[{;,:=]|->|(?:const|override|final|noexcept|throw|volatile|try|__attribute__)\b)")


def _declaration_macros(code: bytearray, buf: bytearray) -> None:
    depth = 0
    counted = 0
    for m in _MACRO_LINE.finditer(code):
        at = m.start(1)
        depth += code.count(b"{", counted, at) - code.count(b"}", counted, at)
        counted = at
        if depth != 0:
            continue
        close = _match_paren(code, m.end() - 1)
        if close < 0 or _REST_OF_LINE.match(code, close + 1) is None:
            continue
        if _previous_byte(code, at) not in (-1, 59, 125):  # start, ';', '}'
            continue
        if not _declaration_follows(buf, close + 1):
            continue
        # Blanked in `code` too: a use on the next line then follows a `;` or `}` as
        # this one did.
        blanked = code[at:close + 1].translate(_BLANK)
        code[at:close + 1] = blanked
        buf[at:close + 1] = blanked


def _declaration_follows(view: bytearray, at: int) -> bool:
    """Whether a declaration of its own starts at `at` (after blanks), rather than the
    rest of one begun before it."""
    m = _NEXT_TOKEN.match(view, at)
    if m is None or m.group(3) is not None:
        return False  # `;`, `{`, `,`, `=`, ... or the end of the file
    if m.group(2) is None:
        return True  # a type or a keyword: `NTSTATUS`, `typedef`, `static`
    close = _match_paren(view, m.end() - 1)
    if close < 0:
        return True
    after = _AFTER_PARAMETERS.match(view, close + 1)
    # `Name(...)` then a body or the rest of a declarator: a function of which the macro
    # was the return type; but `MACRO(...);` is another use of a macro, with its `;`.
    # Anything else: another use of a macro.
    return after is None or (after.group(0).endswith(b";")
                             and _UPPER_NAME.fullmatch(m.group(1)) is not None)


def _previous_byte(code: bytes | bytearray, at: int) -> int:
    """The last byte before `at` that is not a blank, or -1 at the start of the file."""
    window = 256
    while True:
        lo = max(0, at - window)
        part = bytes(code[lo:at]).rstrip()
        if part:
            return part[-1]
        if lo == 0:
            return -1
        window *= 8


# Structured exception handling written with the WDK's macros (excpt.h defines `try`,
# `except`, `finally` and `leave` as `__try`, `__except`, `__finally` and `__leave`), as
# the file-system samples write it: `try { ... } except (Filter) { ... }`. The parser
# knows only the `__` keywords; read as names, the block was an error that cost the rest
# of the function. A `try` whose block is followed by `except (` or `finally {`, that
# word, and each `leave;` inside the block are read with the two underscores (C++'s own
# `try` is followed by `catch`, and stays). Class drivers spell them in capitals, from a
# header of their own (`TRY { ... } FINALLY { ... }`, `LEAVE;`): read the same way. One
# set of patterns per spelling: each starts with a plain word, which the regex engine
# searches for fast (an alternation of the two made the search test every `t` and `T`).
_SEH_SPELLINGS = tuple(
    (re.compile(try_ + rb"\b(?=\s*\{)"),  # (at a word's start: `_word_starts`)
     re.compile(rb"\s*(" + except_ + rb"\b(?=\s*\()|" + finally_ + rb"\b(?=\s*\{))"),
     re.compile(leave + rb"\b(?=\s*;)"))
    for try_, except_, finally_, leave in ((b"try", b"except", b"finally", b"leave"),
                                           (b"TRY", b"EXCEPT", b"FINALLY", b"LEAVE")))


def _seh_keywords(code: bytes | bytearray, result: Preprocessed, upper: bool) -> None:
    """The SEH words of one spelling (`upper`: the capitals, unless the file defines one
    of them itself: then they are its own macros) as rewrites to `__try` and the rest."""
    if upper and any(w in result.macros for w in ("TRY", "EXCEPT", "FINALLY", "LEAVE")):
        return
    seh_try, seh_after, seh_leave = _SEH_SPELLINGS[upper]
    words: dict[int, bytes] = {}
    pairs: dict[int, int] | None = None
    for m in _word_starts(seh_try, code):
        if pairs is None:
            pairs = _brace_pairs(code)
        open_at = code.index(b"{", m.end())
        close = pairs.get(open_at, -1)
        after = seh_after.match(code, close + 1) if close >= 0 else None
        if after is None:
            continue
        words[m.start()] = m.group(0)
        words[after.start(1)] = after.group(1)
        for leave in _word_starts(seh_leave, code, open_at, close):
            words[leave.start()] = leave.group(0)
    result.rewrites.extend((at, len(w), b"__" + w.lower()) for at, w in sorted(words.items()))


_BRACES = re.compile(rb"[{}]")


def _brace_pairs(code: bytes | bytearray) -> dict[int, int]:
    """Each `{` of `code` that is closed, with the offset of its `}` (one pass)."""
    pairs: dict[int, int] = {}
    opened: list[int] = []
    for m in _BRACES.finditer(code):
        at = m.start()
        if code[at] == 123:  # '{'
            opened.append(at)
        elif opened:
            pairs[opened.pop()] = at
    return pairs


# A string literal followed by a macro's name, which C++ reads as one string when the
# macro is one (`L"\\" SBIESVC_EXE`, `"%" PRIu64`): C's grammar takes it, C++'s does not,
# and the function around it lost its handle checks (Sandboxie's service). The name may be
# on the next line (ImDisk: `L"Error creating device '"`, then `IMDISK_CTL_DEVICE_NAME`
# below it). In C++ the name is blanked: what the string says is never a finding. A name
# then, in `code` (the strings' insides blanked), can only follow a closing quote. Left
# alone: `extern "C" NTSTATUS`, a name that prefixes the next string (`L"a" L"b"`), a call
# (`"a" _T("b")`), and a literal suffix (`"a"_x`: no blank, lower case).
_STRING_THEN_NAME = re.compile(
    rb'"[ \t\r\n]*((?:[A-Z]|_[A-Z_])[A-Za-z0-9_]*)\b(?![ \t]*\()(?![\'"])')
_EXTERN_BEFORE = re.compile(rb"\bextern[ \t\r\n]*\Z")


class StringScanner:
    """Whether offsets of a parse view (comments blanked, strings kept), asked in increasing
    order, are inside a string literal, by the count of quotes before each on its line (an
    escaped quote does not count): odd, inside. One pass over the text for all the
    questions: a generated file on one line of a megabyte, asked at every match, costs its
    length once."""

    __slots__ = ("count", "pos", "text")

    def __init__(self, text: bytes | bytearray) -> None:
        self.text = text
        self.pos = 0
        self.count = 0

    def inside(self, at: int) -> bool:
        text = self.text
        line = text.rfind(b"\n", self.pos, at)
        if line >= 0:
            self.pos, self.count = line + 1, 0
        part = text[self.pos:at]
        self.count += part.count(b'"') - part.count(b'\\"')
        self.pos = at
        return self.count % 2 == 1


def cplusplus_view_differs(data: bytes, view: bytes) -> bool:
    """Whether `preprocess(data, cplusplus=True)` may give another view than the C one,
    `view`: the file tests `__cplusplus`, uses C++/CLI words, or has a macro's name after a
    string (`_string_macros`: a quote then a name, the quote a closing one)."""
    if b"__cplusplus" in data or any(w in data for w in CLI_WORDS):
        return True
    quotes = StringScanner(view)
    return any(quotes.inside(m.start()) for m in _STRING_THEN_NAME.finditer(view))


def _string_macros(code: bytes | bytearray, buf: bytearray) -> None:
    for m in _STRING_THEN_NAME.finditer(code):
        opening = code.rfind(b'"', 0, m.start())
        if opening >= 0 and _EXTERN_BEFORE.search(code, max(0, opening - 40), opening):
            continue
        s, e = m.span(1)
        buf[s:e] = b" " * (e - s)


# C++/CLI (managed C++, in user-mode tools beside the drivers): `#using <x.dll>`, `ref
# class`, `gcnew`. Its handle declarator `Type^ name` is no C++ and sends tree-sitter into
# error recovery at every one (a 250 KB generated schema header of the samples took 275 ms
# to parse, 44 ms with the handles read as pointers). In such a file only, a `^` right
# after a name, `>` or `]` and before a space or a declarator's next token becomes `*`;
# `ref`/`value` before `class`/`struct` are blanked and `gcnew` reads `  new`.
CLI_WORDS = (b"#using", b"gcnew", b"ref class", b"ref struct", b"value class", b"value struct")
_CLI_SYNTAX = re.compile(rb"(?<=[\w>\]])\^(?=[ \t\r\n%&*,)>\]])"
                         rb"|\b(?:ref|value)(?=[ \t]+(?:class|struct)\b)|\bgcnew\b")


def _cli_syntax(scan: bytes | bytearray, buf: bytearray) -> None:
    for m in _CLI_SYNTAX.finditer(scan):
        s, e = m.span()
        word = m.group(0)
        buf[s:e] = b"*" if word == b"^" else (b"  new" if word == b"gcnew" else b" " * (e - s))


_PAREN_STOPS = re.compile(rb"[();{}]")


def _top_level_commas(code: bytes | bytearray, start: int, end: int,
                      first: bool = False) -> list[int]:
    """The offsets of the commas in `code[start:end]` outside any nested parentheses,
    brackets or braces (with `first`: the first one only)."""
    out: list[int] = []
    depth = 0
    for i in range(start, end):
        c = code[i]
        if c in (40, 91, 123):  # '(', '[', '{'
            depth += 1
        elif c in (41, 93, 125):
            depth -= 1
        elif c == 44 and depth == 0:  # ','
            out.append(i)
            if first:
                break
    return out


class _ParenBudget:
    """`_match_paren` for an edit that asks it at many places: the bytes it may scan in all
    are a few times the file's size (each question scans up to `_PAREN_LIMIT`, so a file of
    unclosed `(` asked at each would be quadratic); `close` answers None once they are
    spent, and the edit stops there (its construct stays a parse error)."""

    __slots__ = ("code", "left")

    def __init__(self, code: bytes | bytearray) -> None:
        self.code = code
        self.left = 4 * len(code) + 65536

    def close(self, open_index: int) -> int | None:
        if self.left <= 0:
            return None
        found = _match_paren(self.code, open_index)
        self.left -= found - open_index if found >= 0 else _PAREN_LIMIT
        return found


_PAREN_LIMIT = 4096


def _match_paren(data: bytes | bytearray, open_index: int, limit: int = _PAREN_LIMIT) -> int:
    """The offset of the `)` that closes the `(` at `open_index` (within `limit` bytes),
    or -1 when a `;`, `{` or `}` (never inside an annotation) comes first."""
    depth = 0
    stop = min(len(data), open_index + limit)
    for m in _PAREN_STOPS.finditer(data, open_index, stop):
        c = data[m.start()]
        if c == 40:
            depth += 1
        elif c == 41:
            depth -= 1
            if depth == 0:
                return m.start()
        else:  # ';', '{', '}'
            return -1
    return -1


def _split_args(text: str) -> list[str]:
    parts: list[str] = []
    depth = 0
    cur: list[str] = []
    for ch in text:
        if ch == "," and depth == 0:
            parts.append("".join(cur).strip())
            cur = []
            continue
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        cur.append(ch)
    tail = "".join(cur).strip()
    if tail or parts:
        parts.append(tail)
    return parts


split_macro_args = _split_args
