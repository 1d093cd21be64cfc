"""What a rule is, and the context it is given.

A rule is a small object: its metadata (code, name, severity, the requirement it enforces
and the documentation section it comes from, an explanation with a bad and a good
example) and a `check_file` method that asks the engine questions through `FileContext`
and yields findings. Rules never walk syntax trees: they read the IR and the engine's
analyses.

A rule runs in two steps, so that no parsed file has to wait for the whole program:

1. `check_file(ctx)`, in phase one, right after the file is parsed (in a worker process,
   cached by content): the IR and the per-file analyses are there, the project model is
   not. It yields findings, and `Pending` parts for what depends on the whole program
   (`ctx.defer(...)`): the call or function the answer is about, a finding built from the
   IR so far, and the rule's own plain data.
2. `resolve(pending, view)`, in phase three, once the project model is built from every
   file's summary: `view` (a `ProjectView`) answers the whole-program questions for the
   pending's file (how a function or call runs, which entry reaches it, whether the driver
   is a StorPort miniport, the annotated project function a call reaches), and the rule
   yields the findings. Neither the IR nor the syntax tree exists any more.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

from ddilint.analyzer.context import UNKNOWN_CONTEXT, ExecutionContext
from ddilint.analyzer.handle_attributes import handed_to_requester
from ddilint.analyzer.ir import CallSite, FileIR, Function
from ddilint.analyzer.pickling import compact_pickle
from ddilint.analyzer.project import Project
from ddilint.analyzer.summary import CallInfo, summarize
from ddilint.findings import Citation, Finding, Fix, Location, Severity, TextEdit, TraceStep
from ddilint.knowledge import Knowledge, Routine, call_routines

__all__ = ["Citation", "FileContext", "Pending", "ProjectView", "Rule", "cite_fact"]

DOCS_BASE = "https://learn.microsoft.com/windows-hardware/drivers/ddi/"

# Sections of a page as the knowledge table names them ("req.irql", "Returns") -> how the
# published page titles them, and that heading's anchor on learn.microsoft.com.
_SECTION_TITLES: dict[str, tuple[str, str]] = {
    "req.irql": ("Requirements: IRQL", "requirements"),
    "req.ddi-compliance": ("Requirements: DDI compliance rules", "requirements"),
    "req.header": ("Requirements: Header", "requirements"),
    "Returns": ("Return value", "return-value"),
    "Remarks": ("Remarks", "remarks"),
    "Parameters": ("Parameters", "parameters"),
    "api_name": ("", ""),
    "ms.keywords": ("", ""),
}


def _section_title(section: str) -> tuple[str, str]:
    """(title, anchor) of a table section name; "Parameters: X" keeps the parameter."""
    head = section.split(":", 1)[0].strip()
    if head in _SECTION_TITLES:
        title, anchor = _SECTION_TITLES[head]
        if head == "Parameters" and ":" in section:
            title = section.strip()
        return title, anchor
    return section.strip(), ""


def cite_fact(
    knowledge: Knowledge | None,
    routine: str | Routine,
    facts: Iterable[str],
    fallback_section: str = "",
) -> Citation:
    """The page and section that state the first of `facts` the routine has.

    The table records for every fact "page#section" (see `Routine.sources`); the citation
    gives the routine's name as the page title, the section as the page titles it, and the
    page's URL with the section's anchor. Without a source for any of `facts`,
    `fallback_section` (a rule's `doc_section`) is used; without a page, the DDI index.
    """
    if isinstance(routine, Routine):  # an entry not in the shared table (a project one)
        r: Routine | None = routine
        routine = routine.name
    else:
        r = knowledge.get(routine) if knowledge is not None and routine else None
    section, anchor = "", ""
    if r is not None:
        for fact in facts:
            source = r.source(fact)
            if "#" not in source:
                continue
            raw = source.split("#", 1)[1].removesuffix("(overlay.toml)").strip()
            section, anchor = _section_title(raw)
            if r.project:  # a project annotation: say where it is written
                section, anchor = f"{raw} at {source.split('#', 1)[0]}", ""
            if section:
                break
    if not section and fallback_section:
        section, anchor = _section_title(fallback_section)
    url = r.url if r is not None and r.url else ""
    if url and anchor:
        url = f"{url}#{anchor}"
    return Citation(title=routine, section=section, url=url or DOCS_BASE)


class Rule:
    """Base class of every rule. Subclasses set the class attributes and `check_file`."""

    code: ClassVar[str] = ""
    name: ClassVar[str] = ""
    severity: ClassVar[Severity] = Severity.WARNING
    summary: ClassVar[str] = ""
    # The documented requirement: the routine and the section of its page.
    routine: ClassVar[str] = ""
    doc_section: ClassVar[str] = ""
    # The knowledge facts the rule enforces, most specific first ("attributes_param",
    # "object_attributes_param"; "max_irql"; "release"; "compliance"). A finding about a
    # call of routine R cites the page section R's fact comes from (see `citation`).
    facts: ClassVar[tuple[str, ...]] = ()
    requirement: ClassVar[str] = ""
    explanation: ClassVar[str] = ""
    bad_example: ClassVar[str] = ""
    good_example: ClassVar[str] = ""
    fix_text: ClassVar[str] = ""

    def check_file(self, ctx: FileContext) -> Iterable[Finding | Pending]:
        """Findings for one file, and `Pending` parts (`ctx.defer`) that need the whole
        program. The default finds nothing."""
        return ()

    def resolve(self, pending: Pending, view: ProjectView) -> Iterable[Finding]:
        """The findings of one of this rule's `Pending` parts, once the project model is
        built. The default yields the pending's finding as it is, if it has one."""
        if pending.finding is not None:
            yield pending.finding

    def citation(
        self,
        knowledge: Knowledge | None = None,
        routine: str | Routine | None = None,
        fact: str | None = None,
    ) -> Citation:
        """Where the requirement is documented: for `routine` (the routine a finding is
        about) or, without one, the rule's own `routine`. `fact`: the knowledge fact the
        finding rests on, when it is not the first of the rule's `facts` (an
        "irql_conditions" bound rather than "max_irql").

        `Citation(title, section, url)`: "ZwOpenProcessTokenEx", "Parameters:
        HandleAttributes", the learn.microsoft.com page with the section's anchor. SARIF
        (`help`, `helpUri`) and LSP (`codeDescription`) take it from here, per finding when
        `Finding.citation` is set.
        """
        name = routine or self.routine
        if not name:
            return Citation(title=self.name, section=self.doc_section, url=DOCS_BASE)
        facts = (fact, *self.facts) if fact else self.facts
        return cite_fact(knowledge, name, facts, self.doc_section)

    def help_uri(self, knowledge: Knowledge | None = None) -> str:
        """The documentation page (and section) the rule's requirement comes from."""
        return self.citation(knowledge).url

    def applies_to(self, knowledge: Knowledge) -> list[str]:
        """Routines of the table that have one of the rule's `facts` (sorted)."""
        def has(r: Routine, fact: str) -> bool:
            value = getattr(r, fact, None)
            return value not in (None, (), "", False)

        table = knowledge.routines
        return sorted(n for n, r in table.items() if any(has(r, f) for f in self.facts))

    def describe(self, knowledge: Knowledge | None = None) -> str:
        """`ddilint explain`: what it does, why it matters, examples, the fix, and the
        documentation it rests on."""
        parts = [f"{self.code} {self.name} ({self.severity.value})", "", self.summary]
        cite = self.citation(knowledge)
        if self.requirement:
            label = cite.label if self.routine else self.doc_section
            parts += ["", f"Requirement ({label}):", f"  {self.requirement}"]
        if self.explanation:
            parts += ["", "Why it matters:", _indent(self.explanation)]
        if self.bad_example:
            parts += ["", "Example (fires):", _indent(self.bad_example)]
        if self.good_example:
            parts += ["", "Instead (silent):", _indent(self.good_example)]
        if self.fix_text:
            parts += ["", "Fix:", _indent(self.fix_text)]
        parts += ["", f"Documentation: {cite.label}", f"  {cite.url}"]
        if knowledge is not None and self.facts:
            names = self.applies_to(knowledge)
            if names:
                shown = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
                parts += [
                    f"Applies to {len(names)} documented routines ({shown}); a finding cites"
                    " the page of the routine it is about (ddilint knowledge show NAME).",
                ]
        return "\n".join(parts)


def _indent(text: str) -> str:
    return "\n".join("    " + line if line else "" for line in text.strip("\n").splitlines())


# Compact: a run unpickles one for each call a rule asks the project model about (17,000
# on Windows-driver-samples), in the main process, while the workers go on.
@compact_pickle
@dataclass(frozen=True, slots=True)
class Pending:
    """The part of a rule's check that waits for the project model (see the module doc).

    `function`: the start offset of the function the answer is about (-1: none); `call`:
    the index of the call (into `FileIR.calls`, the same as `FileSummary.calls`; -1:
    none); `finding`: the finding as far as the file alone tells (its location, trace,
    fixes, citation), for `resolve` to complete or drop; `data`: the rule's own plain,
    picklable values. A pending crosses processes and the cache: nothing in it may hold
    the IR or a syntax tree.
    """

    rule: str
    function: int = -1
    call: int = -1
    finding: Finding | None = None
    data: tuple[Any, ...] = ()


class ProjectView:
    """What phase three can ask about one file of the project: `Rule.resolve`'s view.

    Built on the project model alone (summaries, no IR); every answer is about the file
    `path`.
    """

    def __init__(self, model: Project, knowledge: Knowledge, path: str) -> None:
        self.model = model
        self.knowledge = knowledge
        self.path = path
        fi = model.file_index.get(path)
        self._summary = model.files[fi] if fi is not None else None
        self._routines: dict[int, Routine] | None = None

    def _node(self, function: int) -> int | None:
        return self.model.node_for(self.path, function) if function >= 0 else None

    def execution_context(self, function: int) -> ExecutionContext:
        """How the function starting at offset `function` runs (see
        `FileContext.execution_context`)."""
        n = self._node(function)
        return UNKNOWN_CONTEXT if n is None else self.model.function_context(n)

    def call_context(self, call: int) -> ExecutionContext:
        """How call `call` of the file runs (see `FileContext.call_context`)."""
        cc = self.model.call_context(self.path, call) if call >= 0 else None
        return cc if cc is not None else UNKNOWN_CONTEXT

    def call_irql_max(self, call: int) -> int:
        """`call_context(call).irql_max`, without building the reason and trace."""
        return self.model.call_irql_max(self.path, call) if call >= 0 else 0

    def reached_from(
        self, function: int, role: str, major: str = "", call: int = -1
    ) -> tuple[str, tuple[TraceStep, ...]] | None:
        """See `FileContext.reached_from` (`call`: the index of the call it is asked for,
        which tells whether a dispatcher shared by several majors runs it for `major`)."""
        n = self._node(function)
        if n is None:
            return None
        entry = self.model.nearest_entry(n, role, major, call)
        if entry is None:
            return None
        return self.model.entry_story(entry, n, role, major)

    def is_storport_miniport(self) -> bool:
        """See `FileContext.is_storport_miniport`."""
        return self.model.is_storport(self.path)

    def handed_to_requester(self, function: int, param: int) -> bool:
        """Whether every caller of the function starting at offset `function` hands what
        it gets through its parameter `param` (a handle) to the request's reply (see
        `handle_attributes.handed_to_requester`)."""
        n = self._node(function)
        return n is not None and handed_to_requester(self.model, n, param)

    def is_virtual_miniport(self) -> bool:
        """See `FileContext.is_virtual_miniport`."""
        return self.model.is_virtual_miniport(self.path)

    def project_routines(self) -> dict[int, Routine]:
        """Call index -> the entry made from the IRQL annotation of the project function
        the call reaches (`project_knowledge`), for every such call of the file."""
        if self._routines is None:
            from ddilint.analyzer.project_knowledge import project_routines

            self._routines = project_routines(self.model, self.path)
        return self._routines

    def call_info(self, call: int) -> CallInfo | None:
        """The summary of call `call` of the file (callee, place, macro, function)."""
        s = self._summary
        return s.calls[call] if s is not None and 0 <= call < len(s.calls) else None

    def finding_at_call(
        self,
        rule: Rule,
        call: int,
        message: str,
        *,
        trace: Iterable[TraceStep] = (),
        routine: Routine | None = None,
        fact: str | None = None,
    ) -> Finding | None:
        """A finding of `rule` at call `call` of the file (the callee's name, or the
        macro's), made from the summary alone, with the anchor `Function:callee` and, like
        `FileContext.finding`, the citation of `routine` (by default the documented
        routine called, for a rule that declares `facts`). None: no such call."""
        info = self.call_info(call)
        if info is None:
            return None
        if routine is None and rule.facts:
            routine = self.knowledge.routines.get(info.callee)
        return Finding(
            code=rule.code,
            name=rule.name,
            severity=rule.severity,
            message=message,
            location=Location(self.path, info.line, info.column),
            trace=tuple(trace),
            anchor=f"{self.function_name(info)}:{info.callee}",
            citation=rule.citation(self.knowledge, routine, fact) if routine else None,
        )

    def function_name(self, info: CallInfo) -> str:
        """The qualified name of the function a call is in ("" outside functions)."""
        s = self._summary
        return s.functions[info.function].qualname if s is not None and info.function >= 0 else ""


def complete(finding: Finding, message: str, trace: Iterable[TraceStep] = ()) -> Finding:
    """A pending's finding with its message (and more trace steps) filled in."""
    return replace(finding, message=message, trace=(*finding.trace, *trace))


@dataclass
class FileContext:
    """What a rule may ask about one file: its IR, its mode, the knowledge table, and the
    project model (how each function and call runs, across every file of the driver)."""

    file: FileIR
    knowledge: Knowledge
    mode: str  # "kernel" or "user"
    options: Mapping[str, Any] = field(default_factory=dict)
    project: Project | None = None
    _call_index: dict[int, int] | None = field(default=None, init=False, repr=False)
    _view: ProjectView | None = field(default=None, init=False, repr=False)
    _calls_at: dict[int, CallSite] | None = field(default=None, init=False, repr=False)
    _defined: frozenset[str] | None = field(default=None, init=False, repr=False)
    _known_calls: list[tuple[CallSite, Routine]] | None = field(default=None, init=False,
                                                                 repr=False)

    def mode_at(self, offset: int) -> str:
        """The mode the code at byte `offset` is compiled in: the file's, but inside an
        analyzed branch that only one mode compiles (`#ifndef KERNEL_MODE`, the innermost
        such branch), that mode."""
        regions = self.file.mode_regions
        if not regions:
            return self.mode
        best: tuple[int, str] | None = None
        for start, end, side in regions:
            if start <= offset < end and (best is None or start > best[0]):
                best = (start, side)
        return self.mode if best is None else best[1]

    def has_mode(self, mode: str) -> bool:
        """Whether some of the file is compiled in `mode`: the file's own mode, or an
        analyzed branch that only `mode` compiles (`#ifdef _KERNEL_MODE` in a tool built
        for both). A rule that applies in one mode checks a file only then, and each call
        where `mode_at` is that mode."""
        if self.mode == mode:
            return True
        regions = self.file.mode_regions  # (most files have none: no generator for them)
        return bool(regions) and any(side == mode for _s, _e, side in regions)

    def in_mode(self, mode: str) -> FileContext:
        """This context in another mode, sharing what it has found about the file."""
        other = replace(self, mode=mode)
        other._call_index, other._calls_at = self._call_index, self._calls_at
        other._defined, other._known_calls = self._defined, self._known_calls
        other._view = self._view
        return other

    @property
    def model(self) -> Project:
        """The project model (a driver of this one file when none was given)."""
        if self.project is None or self.project.file_index.get(self.file.path) is None:
            fir = self.file
            self.project = Project([summarize(fir, self.knowledge)], self.knowledge,
                                   reader=lambda path: fir if path == fir.path else None)
        return self.project

    @property
    def view(self) -> ProjectView:
        """The whole-program answers for this file (on `model`)."""
        model = self.model
        if self._view is None or self._view.model is not model:
            self._view = ProjectView(model, self.knowledge, self.file.path)
        return self._view

    def execution_context(self, fn: Function | None) -> ExecutionContext:
        """How `fn` runs: its IRQL range on entry, whether every way in is from the system
        process, and why. A function nobody is known to call and with no role (or None:
        code outside any function) runs at PASSIVE_LEVEL outside the system process."""
        return UNKNOWN_CONTEXT if fn is None else self.view.execution_context(fn.start)

    def reached_from(
        self, fn: Function | None, role: str, major: str = ""
    ) -> tuple[str, tuple[TraceStep, ...]] | None:
        """When an entry function with `role` (a role name or its prefix, e.g. "dispatch";
        `major` the IRP_MJ_ code it was registered for) reaches `fn` through calls: one
        line and the trace steps of the nearest such way. None otherwise."""
        return None if fn is None else self.view.reached_from(fn.start, role, major)

    def is_storport_miniport(self) -> bool:
        """Does the file belong to a StorPort miniport (it or a file of its driver includes
        storport.h or calls StorPortInitialize)?"""
        return self.view.is_storport_miniport()

    def is_virtual_miniport(self) -> bool:
        """Does the file belong to a StorPort virtual miniport (it or a file of its driver
        sets STOR_FEATURE_VIRTUAL_MINIPORT or fills VIRTUAL_HW_INITIALIZATION_DATA)?"""
        return self.view.is_virtual_miniport()

    def call_context(self, call: CallSite) -> ExecutionContext:
        """How one call runs: the IRQL range at the call (the entry range of its function
        changed by raises, locks and `KeGetCurrentIrql()` checks on the way), the system
        context of its function, and why."""
        i = self.call_index(call)
        return self.execution_context(call.function) if i < 0 else self.view.call_context(i)

    @property
    def path(self) -> str:
        return self.file.path

    def location(self, offset: int, end: int | None = None) -> Location:
        """The location of a byte offset (and optional end offset)."""
        line, col = self.file.position(offset)
        if end is None:
            return Location(self.file.path, line, col)
        eline, ecol = self.file.position(end)
        return Location(self.file.path, line, col, eline, ecol)

    def step(self, offset: int, message: str) -> TraceStep:
        """A trace step at a byte offset."""
        return TraceStep(self.location(offset), message)

    def finding(
        self,
        rule: Rule,
        offset: int,
        message: str,
        *,
        end: int | None = None,
        trace: Iterable[TraceStep] = (),
        fixes: Iterable[Fix] = (),
        anchor: str = "",
        routine: str | Routine | None = None,
        fact: str | None = None,
    ) -> Finding:
        """A finding of `rule` whose primary location is the byte offset `offset`.

        `routine`: the routine the finding is about (the callee: a name, or the `Routine`
        that `calls()`/`routine_of()` gave, which may be a project entry); the finding then
        cites that routine's page and section (`Finding.citation`), for `fact` when given
        (see `Rule.citation`). Without it, a rule that declares `facts` cites the routine
        called at `offset`, if any.
        """
        if routine is None and rule.facts:
            # A rule whose requirement is a per-routine fact, reporting at a call (the
            # primary location is the callee's name): cite that callee's page.
            call = self.call_at(offset)
            if call is not None:
                routine = self.routine_of(call)
        citation = rule.citation(self.knowledge, routine, fact) if routine else None
        return Finding(
            code=rule.code,
            name=rule.name,
            severity=rule.severity,
            message=message,
            location=self.location(offset, end),
            trace=tuple(trace),
            fixes=tuple(fixes),
            anchor=anchor,
            citation=citation,
        )

    def call_at(self, offset: int) -> CallSite | None:
        """The call whose primary location (callee or macro name) starts at `offset`."""
        if self._calls_at is None:
            self._calls_at = {}
            for c in self.file.calls:
                self._calls_at.setdefault(c.name_start, c)
        return self._calls_at.get(offset)

    def call_index(self, call: CallSite) -> int:
        """The index of `call` in `FileIR.calls` (the same in `FileSummary.calls`), -1 when
        it is not one of the file's calls."""
        if self._call_index is None:
            self._call_index = {id(c): i for i, c in enumerate(self.file.calls)}
        return self._call_index.get(id(call), -1)

    def defer(
        self,
        rule: Rule,
        *,
        function: Function | None = None,
        call: CallSite | None = None,
        finding: Finding | None = None,
        data: Iterable[Any] = (),
    ) -> Pending:
        """A `Pending` part of `rule`'s check, about `function` or `call`, for
        `rule.resolve` to finish once the project model is built."""
        return Pending(rule.code,
                       function.start if function is not None else -1,
                       self.call_index(call) if call is not None else -1,
                       finding, tuple(data))

    def routine_of(self, call: CallSite) -> Routine | None:
        """The facts that apply to a call: the documented routine of that name, else None
        (also for a name written with a class or namespace: the WDK's routines are in the
        global one, and `::ZwClose` is theirs).

        Given a project model (`FileContext(..., project=...)`), the entry made from the
        IRQL annotation of the project function the call reaches comes first
        (`Routine.project`, see `project_knowledge`). In a run, rules get no model in
        phase one: a rule that checks project annotations asks `ProjectView` in
        `resolve` (DDI301 does)."""
        if self.project is not None:
            own = self.view.project_routines().get(self.call_index(call))
            if own is not None:
                return own
        if call.scope:
            return None  # `Undocumented::NtClose(h)`: a namespace's or class's own function
        return self.knowledge.routines.get(call.callee)

    def calls(self) -> Iterator[tuple[CallSite, Routine]]:
        """Every call of a routine the knowledge table knows (documented, or a project
        function with an IRQL annotation), with its facts."""
        # Every rule asks; most calls reach no known routine: look them up once per file.
        known = self._known_calls
        if known is None:
            # What `routine_of` answers for each call: the project's entry, else the
            # documented routine.
            own = self.view.project_routines() if self.project is not None else {}
            documented = call_routines(self.file, self.knowledge)
            known = [(call, r) for i, call in enumerate(self.file.calls)
                     if (r := own.get(i, documented[i])) is not None]
            self._known_calls = known
        yield from known

    def defines_function(self, name: str) -> bool:
        """True when the analyzed file itself defines a function of this name (so a call of
        it is a call of the driver's own code, not of the documented routine)."""
        if self._defined is None:  # rules ask once per call: a set, not a scan
            self._defined = frozenset(f.name for f in self.file.functions if f.kind != "lambda")
        return name in self._defined


def rename_callee(call: CallSite, new_name: str) -> Fix:
    """The fix that makes `call` call `new_name` instead (written at the call, not in a
    macro: callers check `call.via` first)."""
    start = call.name_start
    return Fix(f"Call {new_name}", (TextEdit(start, start + len(call.callee), new_name),))
