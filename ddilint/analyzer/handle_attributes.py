"""Handle attributes at handle-creating calls: which calls can create a handle without
`OBJ_KERNEL_HANDLE`, and which routines cannot take attributes at all.

`missing_kernel_handle` answers DDI101/DDI102: for every call of a routine whose knowledge
entry has an attributes parameter (`HandleAttributes`) or an `OBJECT_ATTRIBUTES` parameter,
the possible values (from `values.py`) that surely lack the flag, each with where it was
set. `attributes_form` answers DDI103: for a routine that creates a handle but takes no
attributes, the documented routine that does (`NtOpenProcessToken` -> `NtOpenProcessTokenEx`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from ddilint.analyzer.handles import address_of_name
from ddilint.analyzer.ir import CallSite, Expr, FileIR, Function
from ddilint.analyzer.values import (
    Bits,
    CallValues,
    FileValues,
    Origin,
    describe_origin,
    describe_value,
    file_values,
    source_text,
)
from ddilint.findings import Fix, TextEdit
from ddilint.knowledge import Knowledge, Routine, call_routines

if TYPE_CHECKING:
    from ddilint.analyzer.project import Project

KERNEL_HANDLE_FLAG = "OBJ_KERNEL_HANDLE"


@dataclass(slots=True)
class MissingFlag:
    """A call whose handle attributes can lack OBJ_KERNEL_HANDLE.

    `arg` is the argument (the attributes, or the pointer to the OBJECT_ATTRIBUTES);
    `lacking` the possible values without the flag, one per place they were set."""

    site: CallSite
    routine: Routine
    param: int
    object_attributes: bool
    arg: Expr
    lacking: tuple[Bits, ...]
    values: CallValues
    # The position of the parameter of the calling function through which the handle
    # leaves it for its callers (`*Handle = h;`, `RtlCopyMemory(OutBuffer, &h, ...)`, or
    # created straight into `Handle`), if it does: whether the callers hand it to the
    # requester is phase three's question (`handed_to_requester`).
    through: int | None = None

    def requirement(self) -> str:
        """The documented requirement, in our words, with the page section it is in."""
        pname = self.routine.param_name(self.param)
        what = (f"set {KERNEL_HANDLE_FLAG} in the OBJECT_ATTRIBUTES" if self.object_attributes
                else f"specify {KERNEL_HANDLE_FLAG}")
        return (f"{self.routine.name} (Parameters: {pname}): a caller that is not in the "
                f"system process must {what}")

    def lacking_text(self, fir: FileIR) -> str:
        """Which values lack the flag and where they were set."""
        constants = self.values.owner.constants
        parts = [f"{describe_value(b, fir, constants, 'OBJ_')} "
                 f"({describe_origin(b.origin, fir, b.known)})" for b in self.lacking[:3]]
        more = f" and {len(self.lacking) - 3} more" if len(self.lacking) > 3 else ""
        pname = self.routine.param_name(self.param)
        if self.object_attributes:
            obj = source_text(fir, Origin("arg", self.arg.start, self.arg.end, self.arg.via))
            head = f"the Attributes of the OBJECT_ATTRIBUTES `{obj}` ({pname}) can be "
        else:
            head = f"{pname} can be "
        return head + "; ".join(parts) + more + f", without {KERNEL_HANDLE_FLAG}"

    def fix(self, fir: FileIR) -> tuple[Fix, ...]:
        """Add OBJ_KERNEL_HANDLE where the attributes are written: the call's argument, or
        the attributes argument of InitializeObjectAttributes; never inside a macro, and
        only when one place sets every value that lacks it."""
        if len({(b.origin.start, b.origin.end) for b in self.lacking}) != 1:
            return ()
        o = self.lacking[0].origin
        e = o.expr
        if e is None or o.via or e.via or self.site.via:
            return ()
        if o.kind == "arg":
            if self.object_attributes or (e.start, e.end) != (self.arg.start, self.arg.end):
                return ()
        elif o.kind != "init":
            return ()
        text = fir.text(e.start, e.end)
        s = e.strip()
        if (s.kind == "number" and s.value == 0) or (s.kind == "name" and s.text == "NULL"):
            new = KERNEL_HANDLE_FLAG
        elif e.kind in ("cond", "assign", "comma") or (
                e.kind == "binary" and e.op in ("&&", "||")):
            new = f"({text}) | {KERNEL_HANDLE_FLAG}"
        else:
            new = f"{text} | {KERNEL_HANDLE_FLAG}"
        return (Fix(f"Add {KERNEL_HANDLE_FLAG}", (TextEdit(e.start, e.end, new),)),)


def missing_kernel_handle(fir: FileIR, knowledge: Knowledge) -> list[MissingFlag]:
    """Every call in the file whose handle attributes can lack OBJ_KERNEL_HANDLE (cached:
    DDI101 and DDI102 share the answer)."""
    cached: tuple[Knowledge, list[MissingFlag]] | None = fir.memo.get("handle_attributes")
    if cached is not None and cached[0] is knowledge:
        return cached[1]
    fv = file_values(fir, knowledge)
    flag = fv.constants.get(KERNEL_HANDLE_FLAG) or 0
    out: list[MissingFlag] = []
    for site, documented in zip(fir.calls, call_routines(fir, knowledge), strict=True):
        if documented is None or site.indirect or site.function is None:
            continue
        routine = fv.routine(site.callee)  # None where the file defines the name
        if routine is None:
            continue
        index = routine.attributes_param
        is_oa = False
        if index is None:
            index = routine.object_attributes_param
            is_oa = True
        # A routine that takes attributes but makes no handle (`ZwDeleteFile`,
        # `ZwQueryFullAttributesFile`) leaves no handle in any table: not this rule's business.
        if index is None or routine.handle_out_param is None or _for_another_process(routine):
            continue
        cv = fv.at_call(site)
        if cv is None or index >= len(cv.call.args) or _for_user_mode(cv, routine):
            continue
        arg = cv.call.args[index]
        values = cv.object_attributes(arg) if is_oa else cv.values(arg)
        lacking: dict[tuple[int, int], Bits] = {}
        for b in sorted(values, key=lambda b: (b.origin.start, b.ones)):
            if b.lacks(flag) and not _chosen_by_requestor_mode(b.origin.expr):
                lacking.setdefault((b.origin.start, b.origin.end), b)
        if lacking and not _for_the_requester(site, routine, cv) and not (
                _used_as_user_handle(fir, site, routine, cv, fv)):
            out.append(MissingFlag(site, routine, index, is_oa, arg, tuple(lacking.values()),
                                   cv, _handed_out_through(site, routine, cv)))
    fir.memo["handle_attributes"] = (knowledge, out)
    return out


def _for_another_process(routine: Routine) -> bool:
    """The handle is created in the table of a process the caller names (a documented
    TargetProcessHandle parameter): it may be meant for that process, so the attributes are
    not judged."""
    return any(name == "TargetProcessHandle" for name, _ in routine.params)


# Names that say who asked: the processor mode of the request or of the calling thread.
_REQUESTOR_MODE = re.compile(r"(?:Requestor|Previous|Access|Processor|Caller)Mode$"
                             r"|^(?:UserMode|ExGetPreviousMode|KeGetPreviousMode)$")


def _chosen_by_requestor_mode(e: Expr | None) -> bool:
    """`(RequestorMode ? 0 : OBJ_KERNEL_HANDLE)`: the attributes are chosen by who asked,
    with OBJ_KERNEL_HANDLE written in one arm. The handle without it is made for the user
    process that made the request, on purpose (as `_for_user_mode`). A choice on anything
    else (a flag of the driver's) still lands a user handle in whatever process runs."""
    if e is None:
        return False
    e = e.strip()
    if e.kind != "cond" or len(e.children) != 3:
        return False
    test, *arms = e.children
    return (any(n == KERNEL_HANDLE_FLAG for arm in arms for n in arm.names())
            and any(_REQUESTOR_MODE.search(n) for n in test.names()))


def _for_user_mode(cv: CallValues, routine: Routine) -> bool:
    """The call asks for a handle for user mode (a documented AccessMode parameter given
    UserMode): a handle made for an application on purpose must not be a kernel handle."""
    for i, (name, _) in enumerate(routine.params):
        if name == "AccessMode" and _maybe_user_mode(cv, i):
            return True
    return False


def _maybe_user_mode(cv: CallValues, index: int) -> bool:
    """Whether argument `index` of the call can be `UserMode` (or a mode the code cannot
    see, such as the request's `RequestorMode`)."""
    if index >= len(cv.call.args):
        return False
    user = cv.owner.constants.get("UserMode")
    return any(b.value is None or b.value == user for b in cv.values(cv.call.args[index]))


# The parameters of a routine that takes a handle (`Handle`, in) and the processor mode to
# look it up or close it in.
_MODE_PARAMS = ("AccessMode", "PreviousMode")


def _used_as_user_handle(fir: FileIR, site: CallSite, routine: Routine, cv: CallValues,
                         fv: FileValues) -> bool:
    """The function then looks the handle up or closes it as a user-mode handle
    (`ObReferenceObjectByHandle(h, ..., UserMode, ...)`, `ObCloseHandle(h, UserMode)`): a
    kernel handle would not be found there, so the handle is meant for the current
    process on purpose (as `_for_user_mode`), and `OBJ_KERNEL_HANDLE` would break the
    code."""
    out = routine.handle_out_param
    if out is None or out >= len(cv.call.args):
        return False
    dest = cv.call.args[out].strip()
    if dest.kind != "unary" or dest.op != "&" or not dest.children:
        return False
    held = dest.children[0].strip().render()
    for _ci, other in _other_calls(fir, site):
        r = fv.routine(other.callee)
        if r is None:
            continue
        handle = next((i for i, (n, d) in enumerate(r.params) if n == "Handle" and d == "in"),
                      None)
        mode = next((i for i, (n, _d) in enumerate(r.params) if n in _MODE_PARAMS), None)
        if handle is None or mode is None:
            continue
        ocv = fv.at_call(other)
        if (ocv is not None and handle < len(ocv.call.args)
                and ocv.call.args[handle].strip().render() == held
                and _maybe_user_mode(ocv, mode)):
            return True
    return False


# Where a dispatch routine writes its reply: the IRP's buffers (`AssociatedIrp.SystemBuffer`,
# `UserBuffer`, METHOD_NEITHER's `Type3InputBuffer`), the system address of its MDL, and the
# buffers a KMDF request hands out.
_REPLY_FIELDS = frozenset({"SystemBuffer", "UserBuffer", "Type3InputBuffer"})
_REPLY_CALLS = frozenset({"MmGetSystemAddressForMdlSafe", "MmGetSystemAddressForMdl"})
_REPLY_RETRIEVERS = frozenset({"WdfRequestRetrieveOutputBuffer",
                               "WdfRequestRetrieveInputBuffer"})
_COPY_CALLS = frozenset({"RtlCopyMemory", "RtlMoveMemory", "RtlCopyBytes", "memcpy",
                         "memmove", "memcpy_s", "memmove_s"})


def _for_the_requester(site: CallSite, routine: Routine, cv: CallValues) -> bool:
    """The handle goes into the reply to the request being served (created there, or
    copied there from the variable it was created in): a handle made for the application
    that asked, on purpose, which must not be a kernel handle (as `_for_user_mode`)."""
    fn = site.function
    out = routine.handle_out_param
    if fn is None or out is None or out >= len(cv.call.args):
        return False
    exprs, reply = _reply_places(fn)
    dest = cv.call.args[out]
    if _into_reply(dest, reply) or _pointer_from_copy(dest, _request_copies(fn, reply)):
        return True
    var = address_of_name(dest)
    return var is not None and _copied_into_reply(exprs, var, reply)


def _reply_places(fn: Function) -> tuple[list[Expr], set[str]]:
    """The expressions of a function's statements, and its local names that point into the
    reply: `auto data = (T*)Irp->AssociatedIrp.SystemBuffer` (declared or assigned), or
    filled in by a KMDF request's retrieve routine."""
    exprs = _statement_exprs(fn)
    reply: set[str] = set()
    for st in fn.body.walk():
        for d in st.decls:
            if d.init is not None and _into_reply(d.init, reply):
                reply.add(d.name)
    for e in exprs:
        for x in e.walk():
            if x.kind == "assign" and x.op == "=" and len(x.children) == 2:
                target = x.children[0].strip()
                if target.kind == "name" and _into_reply(x.children[1], reply):
                    reply.add(target.text)
            elif x.kind == "call" and x.callee in _REPLY_RETRIEVERS and len(x.args) > 2:
                held = address_of_name(x.args[2])
                if held is not None:
                    reply.add(held)
    return exprs, reply


def _request_copies(fn: Function, reply: set[str]) -> set[str]:
    """The local buffers a function copies the request into, and the names that point to
    them (`memcpy(captured, Type3InputBuffer, length); input = captured;`): a
    METHOD_NEITHER dispatcher's captured input, whose pointers are the requester's own (a
    handle written through one goes to the requester, see `_pointer_from_copy`). In the
    order of the text: the copy comes before its uses."""
    copies: set[str] = set()
    for st in fn.body.walk():
        for d in st.decls:
            if d.init is not None and _names_copy(d.init, copies):
                copies.add(d.name)
        if st.expr is None:
            continue
        for x in st.expr.walk():
            if (x.kind == "call" and x.callee in _COPY_CALLS and len(x.args) >= 3
                    and _into_reply(x.args[2 if x.callee.endswith("_s") else 1], reply)):
                dest = x.args[0].strip()
                name = dest.text if dest.kind == "name" else address_of_name(dest)
                if name is not None:
                    copies.add(name)
            elif x.kind == "assign" and x.op == "=" and len(x.children) == 2:
                target = x.children[0].strip()
                if target.kind == "name" and _names_copy(x.children[1], copies):
                    copies.add(target.text)
    return copies


def _names_copy(e: Expr, copies: set[str]) -> bool:
    """`e` is one of `copies`, or its address (casts aside)."""
    plain = e.strip()
    return (plain.kind == "name" and plain.text in copies) or address_of_name(e) in copies


def _pointer_from_copy(e: Expr, copies: set[str]) -> bool:
    """`e` reads a field of a copy of the request (`input->ProcessHandle`): a pointer the
    requester sent. (The address of a field of the copy, `&copy.Handle`, is a place in the
    driver's own memory, not the requester's.)"""
    plain = e.strip()
    if not copies or plain.kind != "field" or not plain.children:
        return False
    base = plain.children[0].strip()
    return base.kind == "name" and base.text in copies


def _statement_exprs(fn: Function) -> list[Expr]:
    """The expressions of a function's statements, and its declarations' initializers."""
    return [e for st in fn.body.walk()
            for e in ([st.expr] if st.expr is not None else [])
            + [d.init for d in st.decls if d.init is not None]]


def _copied_into_reply(exprs: list[Expr], var: str, reply: set[str], after: int = -1) -> bool:
    """Whether the function writes the value of `var` into the reply (with `after`: at a
    place after that offset, with `var` not written again in between)."""
    return any(_copy_of(x, reply) == ("name", var) and _still_holds(exprs, var, after, x.start)
               for e in exprs for x in e.walk())


def _still_holds(exprs: list[Expr], var: str, after: int, at: int) -> bool:
    """Whether, between the offsets `after` and `at` (in the order of the text), nothing
    assigns `var` or gives its address to a call; `after` -1: anywhere."""
    if after < 0:
        return True
    if at <= after:
        return False
    for e in exprs:
        for x in e.walk():
            if not after < x.start < at:
                continue
            if x.kind == "assign" and x.children and x.children[0].strip().kind == "name" and (
                    x.children[0].strip().text == var):
                return False
            if x.kind == "call" and any(address_of_name(a) == var for a in x.args):
                return False
    return True


def _copy_of(x: Expr, into: set[str]) -> tuple[str, str] | None:
    """What `x` writes where `_into_reply` (with the names `into`) says the reply is:
    ("name", v) for the value of `v` (`*(PHANDLE)reply = v;`, `RtlCopyMemory(reply, &v,
    n)`; `memcpy_s` takes the source third), ("pointee", p) for what `p` points to
    (`RtlCopyMemory(reply, p, n)`, `*reply = *p`); None for anything else."""
    if x.kind == "assign" and x.op == "=" and len(x.children) == 2:
        if not _into_reply(x.children[0], into):
            return None
        value = x.children[1].strip()
        if value.kind == "name":
            return ("name", value.text)
        if value.kind == "unary" and value.op == "*" and value.children:
            inner = value.children[0].strip()
            if inner.kind == "name":
                return ("pointee", inner.text)
        return None
    if x.kind == "call" and x.callee in _COPY_CALLS and len(x.args) >= 3:
        if not _into_reply(x.args[0], into):
            return None
        src = x.args[2 if x.callee.endswith("_s") else 1]
        var = address_of_name(src)
        if var is not None:
            return ("name", var)
        plain = src.strip()
        if plain.kind == "name":
            return ("pointee", plain.text)
    return None


def _handed_out_through(site: CallSite, routine: Routine, cv: CallValues) -> int | None:
    """The position of the parameter of the calling function through which the handle
    goes to its callers: the call writes it straight through that parameter
    (`ZwOpenKey(KeyHandle, ...)`), or the function then writes the variable it went to
    where the parameter points (`*KeyHandle = key;`, `RtlCopyMemory(OutBuffer, &key, 4)`,
    `Reply->Handle = key;`). None when it does not."""
    fn = site.function
    out = routine.handle_out_param
    if fn is None or out is None or out >= len(cv.call.args):
        return None
    params = {p.name: p.index for p in fn.params if p.name}
    dest = cv.call.args[out].strip()
    if dest.kind == "name":
        return params.get(dest.text)
    var = address_of_name(dest)
    if var is None:
        return None
    for e in _statement_exprs(fn):
        for x in e.walk():
            for name in params:
                if _copy_of(x, {name}) == ("name", var) and _points_with(x, name):
                    return params[name]
    return None


def _points_with(x: Expr, name: str) -> bool:
    """Whether the copy `x` writes through the pointer `name` (`*name = v`,
    `RtlCopyMemory(name, ...)`, `name->Handle = v`, `name[0] = v`), not merely with `name`
    somewhere in the place it writes to (`table[name] = v`)."""
    dest = (x.children[0] if x.kind == "assign" else x.args[0]).strip()
    while dest.children and (dest.kind in ("field", "index", "cast")
                             or (dest.kind == "unary" and dest.op == "*")):
        dest = dest.children[0].strip()
    return dest.kind == "name" and dest.text == name


# How many functions up `handed_to_requester` follows a parameter passed on unchanged.
_MAX_HOPS = 4


def handed_to_requester(model: Project, n: int, param: int,
                        path: frozenset[tuple[int, int]] = frozenset()) -> bool:
    """Phase three of `MissingFlag.through`: whether every caller of function node `n`
    (and there is one) hands what it gets through parameter `param` to the requester, as
    `_for_the_requester` does in one function: it passes a pointer into the reply there,
    or `&v` of a variable it then writes into the reply itself or gives to a function
    that copies it there (`CopyToReply(Irp, &v, sizeof(v))`), or one of its own
    parameters that its callers treat so (`_MAX_HOPS` functions up at most). Reads the
    callers' code again (`Project.call_ir`): asked only for a call already found to lack
    the flag. The answers, and each function's reply places, are kept in `model.memo`."""
    answers: dict[tuple[int, int], bool] = model.memo.setdefault("handed_to_requester", {})
    if not path and (n, param) in answers:
        return answers[(n, param)]
    answer = _handed_to_requester(model, n, param, path)
    if not path:
        answers[(n, param)] = answer
    return answer


def _handed_to_requester(model: Project, n: int, param: int,
                         path: frozenset[tuple[int, int]]) -> bool:
    if (n, param) in path or len(path) >= _MAX_HOPS:
        return False
    path = path | {(n, param)}
    callers = model.nodes[n].callers
    if not callers:
        return False
    for g, ci in callers:
        got = model.call_ir(g, ci)
        if got is None:
            return False
        fir, site = got
        fn = site.function
        if fn is None or param >= len(site.args):
            return False
        arg = site.args[param]
        exprs, reply = _reply_places_of(model, g, fn)
        if _into_reply(arg, reply) or _pointer_from_copy(
                arg, _request_copies_of(model, g, fn, reply)):
            continue
        var = address_of_name(arg)
        if var is not None:
            if _copied_into_reply(exprs, var, reply, site.end) or _given_to_a_copier(
                    model, g, fir, site, var, exprs):
                continue
            return False
        plain = arg.strip()
        names = [p.name for p in fn.params]
        if not (plain.kind == "name" and plain.text in names and handed_to_requester(
                model, g, names.index(plain.text), path)):
            return False
    return True


def _given_to_a_copier(model: Project, g: int, fir: FileIR, site: CallSite, var: str,
                       exprs: list[Expr]) -> bool:
    """Whether function node `g`, after the call `site` and before `var` is written again,
    passes `&var` to a project function that copies what that parameter points to into
    the reply."""
    calls = model.files[model.nodes[g].file].calls
    for ci, other in _other_calls(fir, site):
        if ci >= len(calls) or calls[ci].callee != other.callee:
            continue  # the file read again is not the one summarized
        if not _still_holds(exprs, var, site.end, other.start):
            continue
        for j, a in enumerate(other.args):
            if address_of_name(a) != var:
                continue
            if any(c == ci and _copies_into_reply(model, h, j)
                   for h, c in model.nodes[g].callees):
                return True
    return False


def _other_calls(fir: FileIR, site: CallSite) -> Iterator[tuple[int, CallSite]]:
    """(index in `fir.calls`, call) of the direct calls of `site`'s function but `site`."""
    by_function: dict[int, list[tuple[int, CallSite]]] | None = fir.memo.get("direct_calls")
    if by_function is None:
        # Once per file: looking through all its calls for each question made a file of
        # 3,000 functions, each opening a handle, quadratic (5 s of 18).
        by_function = fir.memo["direct_calls"] = {}
        for ci, other in enumerate(fir.calls):
            if not other.indirect:
                by_function.setdefault(id(other.function), []).append((ci, other))
    for ci, other in by_function.get(id(site.function), ()):
        if other is not site:
            yield ci, other


def _copies_into_reply(model: Project, h: int, param: int) -> bool:
    """Whether function node `h` copies what its parameter `param` points to into the
    reply (`RtlCopyMemory(reply + start, Source, Size)`)."""
    got = model.function_ir(h)
    if got is None:
        return False
    _fir, fn = got
    if param >= len(fn.params) or not fn.params[param].name:
        return False
    name = fn.params[param].name
    exprs, reply = _reply_places_of(model, h, fn)
    return any(_copy_of(x, reply) == ("pointee", name) for e in exprs for x in e.walk())


def _reply_places_of(model: Project, n: int, fn: Function) -> tuple[list[Expr], set[str]]:
    """`_reply_places` of function node `n` (whose IR is `fn`), once per model."""
    return _once(model, "reply_places", n, lambda: _reply_places(fn))


def _request_copies_of(model: Project, n: int, fn: Function, reply: set[str]) -> set[str]:
    """`_request_copies` of function node `n` (whose IR is `fn`), once per model."""
    return _once(model, "request_copies", n, lambda: _request_copies(fn, reply))


_T = TypeVar("_T")


def _once(model: Project, what: str, n: int, compute: Callable[[], _T]) -> _T:
    """`compute()` for function node `n`, kept in `model.memo[what]` for the next question."""
    kept: dict[int, _T] = model.memo.setdefault(what, {})
    if n not in kept:
        kept[n] = compute()
    return kept[n]


def _into_reply(e: Expr, reply: set[str]) -> bool:
    """Whether an expression points into the request's reply (see `_REPLY_FIELDS`)."""
    for x in e.walk():
        if x.kind == "field" and x.text in _REPLY_FIELDS:
            return True
        if x.kind == "name" and x.text in reply:
            return True
        if x.kind == "call" and x.callee in _REPLY_CALLS:
            return True
    return False


def attributes_form(knowledge: Knowledge, name: str) -> str | None:
    """For a routine that creates a handle but has no attributes parameter of any kind, the
    routine of the same family that takes `HandleAttributes` (`<name>Ex`), else None."""
    r = knowledge.get(name)
    if r is None or r.handle_out_param is None:
        return None
    if r.attributes_param is not None or r.object_attributes_param is not None:
        return None
    ex = knowledge.get(name + "Ex")
    if ex is None or ex.attributes_param is None:
        return None
    return ex.name
