"""Running the rules over files: discovery, the three phases of a run, notices.

1. `file_facts` is the per-file unit of work: decode, preprocess, parse, summarize and run
   each rule's `check_file`, then let the IR and the syntax tree go. What it returns
   (`FileFacts`: the summary, the findings the file alone decides, and the rules'
   `Pending` parts) is small and picklable, a pure function of the file and the run's
   settings, so it runs in worker processes and is cached by content.
2. The project model is built from the summaries alone (`project.py`).
3. `resolve` finishes each file's pending parts on the model (`Rule.resolve`).

No parsed file waits for the whole program, so memory stays at one file per process
whatever the size of the tree. Any failure becomes a DDI9xx notice naming the file (and
the rule); nothing escapes to the caller.
"""

from __future__ import annotations

import gc
import os
import time
import traceback
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ddilint.analyzer.budget import (
    DEFAULT_FILE_TIMEOUT,
    BudgetExceeded,
    Deadline,
    checkpoint,
    time_budget,
)
from ddilint.analyzer.frontend import MAX_DEPTH, SOURCE_SUFFIXES, parse_file
from ddilint.analyzer.ir import FileIR
from ddilint.analyzer.mode import include_modes
from ddilint.analyzer.project import Project
from ddilint.analyzer.source import MAX_FILE_BYTES, SourceText, decode_bytes, read_file
from ddilint.analyzer.summary import FileSummary, summarize
from ddilint.cache import (
    RACY_NS,
    ResultCache,
    Stat,
    content_hash,
    project_digest,
    stat_key,
)
from ddilint.findings import Finding, Location
from ddilint.knowledge import Knowledge
from ddilint.rules.base import FileContext, Pending, ProjectView, Rule
from ddilint.rules.catalogue import notice_entry

SKIP_DIRS = frozenset({
    ".git", ".hg", ".svn", ".vs", ".vscode", ".idea", "node_modules", "__pycache__",
    ".ddilint_cache", ".mypy_cache", ".ruff_cache", ".pytest_cache", ".tox", ".venv",
    "venv", "build", "out", "bin", "obj", "Debug", "Release", "x64", "x86", "ARM", "ARM64",
    "Win32", "objfre", "objchk",
})


def notice(code: str, path: str, message: str, line: int = 1, column: int = 1) -> Finding:
    """A DDI9xx analysis notice."""
    entry = notice_entry(code)
    return Finding(code, entry.name, entry.severity, message, Location(path, line, column))


@dataclass
class FileResult:
    """What analyzing one file produced."""

    path: str
    findings: list[Finding] = field(default_factory=list)
    analyzed: bool = False
    seconds: float = 0.0
    error_nodes: int = 0
    mode: str = ""


@dataclass
class Options:
    """Per-run settings every file analysis sees."""

    mode_override: str | None = None
    debug: bool = False
    # Seconds one file may take in each phase before it becomes a DDI905 notice (0: none).
    file_timeout: float = DEFAULT_FILE_TIMEOUT
    defined: dict[str, int] = field(default_factory=dict)
    undefined: frozenset[str] = frozenset()
    extra: dict[str, Any] = field(default_factory=dict)
    # Function name -> role, from the project config (`roles = {"MyDpc" = "dpc"}`).
    roles: dict[str, str] = field(default_factory=dict)
    # File path (as the engine names it) -> "kernel"/"user", from the config's `mode` globs;
    # `mode_override` (the command line's --mode) wins over it.
    file_modes: dict[str, str] = field(default_factory=dict)


def discover(
    paths: Sequence[str | Path], exclude: Iterable[str] = ()
) -> tuple[list[Path], list[str]]:
    """Source files under `paths` (sorted, unique) and the paths that do not exist."""
    from fnmatch import fnmatch

    patterns = list(exclude)
    found: dict[str, str] = {}  # normalized path -> the path as found
    missing: list[str] = []

    def excluded(s: str) -> bool:
        if not patterns:
            return False
        s = s.replace(os.sep, "/") if os.sep != "/" else s
        name = s.rpartition("/")[2]
        return any(fnmatch(s, pat) or fnmatch(name, pat) or fnmatch(s, f"*/{pat}")
                   for pat in patterns)

    # Directory symlinks are not followed inside a walk, and a directory reached twice
    # (a symlinked path given on the command line) is walked once: loops end. (Paths are
    # strings until the end: a `Path` per file was a quarter of a warm run's start-up.)
    seen_dirs: set[tuple[int, int]] = set()
    join = os.path.join
    for raw in paths:
        p = Path(raw)
        if p.is_file():
            if not excluded(p.as_posix()):
                found.setdefault(os.path.normpath(p), str(p))
            continue
        if not p.is_dir():
            # A dangling link, a named pipe, a device: analyzed, each becomes an
            # unreadable-file notice (`read_file`).
            if p.is_symlink() or p.exists():
                found.setdefault(os.path.normpath(p), str(p))
            else:
                missing.append(str(raw))
            continue
        for root, dirs, files in os.walk(p, followlinks=False):
            try:
                st = os.stat(root)
                key = (st.st_dev, st.st_ino)
                if key in seen_dirs:
                    dirs[:] = []
                    continue
                seen_dirs.add(key)
            except OSError:
                continue
            dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS and not d.startswith(".")
                             and not excluded(join(root, d)))
            for name in sorted(files):
                dot = name.rfind(".")
                if dot < 0 or name[dot:].lower() not in SOURCE_SUFFIXES:
                    continue
                fp = join(root, name)
                if excluded(fp):
                    continue
                found.setdefault(os.path.normpath(fp), fp)
    return _unique_files([found[k] for k in sorted(found)]), missing


def _unique_files(paths: list[str]) -> list[Path]:
    """Drop later names of a file already listed (hard links, symlinks to it)."""
    seen: set[tuple[int, int]] = set()
    out: list[Path] = []
    for p in paths:
        try:
            st = os.stat(p)
        except OSError:
            out.append(Path(p))  # unreadable: reported by the analysis as a notice
            continue
        key = (st.st_dev, st.st_ino)
        if key in seen:
            continue
        seen.add(key)
        out.append(Path(p))
    return out


def read_source(path: str, raw: bytes) -> tuple[SourceText | None, list[Finding]]:
    """Decode a file's bytes, with notices for what was lossy or impossible."""
    notes: list[Finding] = []
    if len(raw) > MAX_FILE_BYTES:
        # (`read_file` reads no more than the limit and a byte: the size past it is unknown.)
        notes.append(notice("DDI904", path, "file is larger than the "
                            f"{MAX_FILE_BYTES // (1024 * 1024)} MiB limit; not analyzed"))
        return None, notes
    decoded = decode_bytes(raw)
    if decoded.text is None:
        notes.append(notice(decoded.notice_code or "DDI902", path, decoded.notice or "skipped"))
        return None, notes
    if decoded.notice:
        notes.append(notice(decoded.notice_code or "DDI903", path, decoded.notice))
    elif decoded.encoding == "cp1252":
        notes.append(notice("DDI903", path, "not valid UTF-8; decoded as Windows-1252"))
    return SourceText(path, decoded.text, decoded.encoding), notes


@dataclass
class FileFacts:
    """What phase one says about a file (see the module doc): picklable, cached.

    `summary`: None when the file could not be read, parsed or summarized; `findings`: its
    reading notices, the findings the rules decided from the file alone and the limit
    notices; `pending`: the rules' parts that wait for the project model; `checked`: the
    rules ran (False: only summarized, for a file that feeds the model but is not
    reported).
    """

    summary: FileSummary | None
    findings: list[Finding] = field(default_factory=list)
    pending: list[Pending] = field(default_factory=list)
    checked: bool = False
    analyzed: bool = False
    error_nodes: int = 0
    mode: str = ""
    # For a file whose own includes show no mode (its rules ran in the mode its calls
    # show, else kernel mode): the other mode, with the findings and pending parts of its
    # rules run in that mode, taken when the project headers it includes show that mode
    # (`settle_modes`).
    if_other: tuple[str, list[Finding], list[Pending]] | None = None


def ir_reader(options: Options,
              texts: Mapping[str, bytes] | None = None) -> Callable[[str], FileIR | None]:
    """How phase three reads a file's IR again (`Project.file_ir`), for the rare question
    about another function's code that the summaries do not answer: the bytes in `texts`
    (the file being analyzed, an editor's buffers) or on disk, parsed as phase one parses
    them, within the file's time budget; None when that fails."""
    def read(path: str) -> FileIR | None:
        try:
            raw = texts[path] if texts is not None and path in texts else read_file(path)
            with time_budget(options.file_timeout):
                source, _notes = read_source(path, raw)
                if source is None:
                    return None
                return parse_file(source, defined=options.defined,
                                  undefined=options.undefined)
        except (Exception, BudgetExceeded):  # no answer: the finding stays
            return None
    return read


def file_facts(
    path: str,
    raw: bytes,
    rules: Sequence[Rule],
    knowledge: Knowledge,
    options: Options | None = None,
    check: bool = True,
) -> FileFacts:
    """Phase one for a file: parse, summarize and (with `check`) run every rule's
    `check_file`. Never raises: a failure becomes a DDI906 notice (DDI905 when over the
    file's time budget); a file that could not be summarized gets no rules."""
    options = options or Options()
    stage = "reading"
    facts = FileFacts(None, checked=check)
    fir: FileIR | None = None
    try:
        with time_budget(options.file_timeout) as deadline:
            source, notes = read_source(path, raw)
            facts.findings.extend(notes)
            if source is None:
                return facts
            stage = "parsing"
            fir = parse_file(source, defined=options.defined, undefined=options.undefined)
            facts.error_nodes = fir.error_nodes
            stage = "summarizing"
            facts.summary = summarize(fir, knowledge)
            facts.analyzed = True
            if check:
                stage = "running the rules"
                summary = facts.summary
                forced = forced_mode(options, path)
                # Steps 1, 3 and 4 of `ddilint.analyzer.mode`, as `detect_mode` takes them,
                # on what the summary found.
                facts.mode = forced or summary.header_mode or summary.call_mode or "kernel"
                ctx = FileContext(fir, knowledge, facts.mode, options.extra)
                _collect(check_rules(ctx, rules, options, deadline), facts.findings,
                         facts.pending)
                if not summary.header_mode and forced is None:
                    other = "user" if facts.mode == "kernel" else "kernel"
                    alt: tuple[str, list[Finding], list[Pending]] = (other, list(notes), [])
                    _collect(check_rules(ctx.in_mode(other), rules, options, deadline),
                             alt[1], alt[2])
                    facts.if_other = alt
    except BudgetExceeded:
        facts.findings.append(over_budget(path, stage, options))
    except Exception as exc:  # the file fails, the run goes on
        facts.findings.append(internal_error(path, stage, exc, options))
    if facts.summary is None:
        facts.analyzed = False
    if fir is not None:
        limits = limit_notices(fir)
        facts.findings.extend(limits)
        if facts.if_other is not None:
            facts.if_other[1].extend(limits)
        fir.dispose()  # most of it is freed now, not at the next full collection
    return facts


def _collect(items: Iterable[Finding | Pending], findings: list[Finding],
             pending: list[Pending]) -> None:
    for item in items:
        if isinstance(item, Pending):
            pending.append(item)
        else:
            findings.append(item)


def forced_mode(options: Options, path: str) -> str | None:
    """The mode the command line (`--mode`) or the config fixes for a file, if any."""
    forced = options.mode_override or options.file_modes.get(path)
    return forced if forced in ("kernel", "user") else None


def check_rules(ctx: FileContext, rules: Sequence[Rule], options: Options,
                deadline: Deadline | None = None) -> Iterator[Finding | Pending]:
    """Each rule's `check_file` on a parsed file, in `ctx`; a failing rule becomes a
    DDI906 notice (and keeps none of its findings for the file)."""
    fir = ctx.file
    for rule in rules:
        if deadline is not None:
            deadline.check()
        try:
            yield from list(rule.check_file(ctx))
        except BudgetExceeded:
            raise
        except Exception as exc:
            yield rule_failed(fir.path, rule, exc, options)


def rule_failed(path: str, rule: Rule, exc: BaseException, options: Options) -> Finding:
    """The DDI906 notice of a rule that raised on a file."""
    detail = traceback.format_exc() if options.debug else f"{type(exc).__name__}: {exc}"
    return notice("DDI906", path, f"rule {rule.code} {rule.name} failed on this file: "
                  f"{detail}")


def resolve(
    facts: FileFacts, path: str, rules: Sequence[Rule], knowledge: Knowledge,
    options: Options, project: Project,
) -> list[Finding]:
    """Phase three for a file: its findings and what its pending parts give on the
    project model. A rule that raises becomes a DDI906 notice; the file's time budget holds
    here too (a DDI905 notice: the parts not resolved by then give nothing)."""
    out = list(facts.findings)
    if not facts.pending:
        return out
    by_code = {r.code: r for r in rules}
    view = ProjectView(project, knowledge, path)
    failed: set[str] = set()
    try:
        with time_budget(options.file_timeout):
            for p in facts.pending:
                checkpoint()  # where no timer interrupts (a thread, Windows)
                rule = by_code.get(p.rule)
                if rule is None or p.rule in failed:
                    continue
                try:
                    out.extend(rule.resolve(p, view))
                except Exception as exc:
                    failed.add(p.rule)
                    out.append(rule_failed(path, rule, exc, options))
    except BudgetExceeded:
        out.append(over_budget(path, "resolving the rules' whole-program parts", options))
    return out


def analyze_bytes(
    path: str,
    raw: bytes,
    rules: Sequence[Rule],
    knowledge: Knowledge,
    options: Options | None = None,
    project: Project | None = None,
) -> FileResult:
    """Analyze one file's bytes with `rules`: all three phases. Never raises. Without a
    `project`, the file is a driver of its own; a given `project` should hold the file's
    summary (the language server builds it with the buffer's)."""
    options = options or Options()
    started = time.perf_counter()
    facts = file_facts(path, raw, rules, knowledge, options)
    model = project
    if model is None:
        model = Project([facts.summary] if facts.summary is not None else [], knowledge,
                        options.roles, reader=ir_reader(options, {path: raw}))
    findings = resolve(facts, path, rules, knowledge, options, model)
    return FileResult(path, findings, facts.analyzed, time.perf_counter() - started,
                      facts.error_nodes, facts.mode)


def over_budget(path: str, stage: str, options: Options) -> Finding:
    """The DDI905 notice of a file whose time budget ran out while at `stage`."""
    return notice("DDI905", path, f"analysis stopped after {options.file_timeout:g} s (the "
                  f"per-file time budget) while {stage}; findings after that point are missing")


def internal_error(path: str, stage: str, exc: BaseException, options: Options) -> Finding:
    """The DDI906 notice of an exception while at `stage` (the traceback with --debug)."""
    detail = traceback.format_exc() if options.debug else f"{type(exc).__name__}: {exc}"
    return notice("DDI906", path, f"internal error while {stage} the file: {detail}")


def limit_notices(fir: FileIR) -> list[Finding]:
    """DDI905 notices for the limits a file ran into: the frontend's, and those of the
    analyses its rules ran (`FileIR.limits`)."""
    budget = fir.expansion_budget
    out: list[Finding] = []
    if budget is not None and budget.exhausted_at is not None:
        line, column = fir.position(budget.exhausted_at)
        out.append(notice("DDI905", fir.path, "macro expansions in this file went over their "
                          "budget from here on; calls written through later macro uses are not "
                          "analyzed", line, column))
    if budget is not None and budget.deep_at is not None:
        line, column = fir.position(budget.deep_at)
        out.append(notice("DDI905", fir.path, f"code nested more than {MAX_DEPTH} levels deep "
                          "is not analyzed from here on", line, column))
    for offset, what in fir.limits:
        line, column = fir.position(offset)
        out.append(notice("DDI905", fir.path, what, line, column))
    return out


def summarize_bytes(
    path: str, raw: bytes, knowledge: Knowledge, options: Options | None = None
) -> tuple[FileSummary | None, FileIR | None, list[Finding]]:
    """Phase one for a file: its summary (picklable), its IR, and reading notices. Never
    raises: a failure becomes a DDI906 notice (DDI905 when over its time budget) and no
    summary."""
    options = options or Options()
    stage = "reading"
    notes: list[Finding] = []
    try:
        with time_budget(options.file_timeout):
            source, notes = read_source(path, raw)
            if source is None:
                return None, None, notes
            stage = "parsing"
            fir = parse_file(source, defined=options.defined, undefined=options.undefined)
            stage = "summarizing"
            return summarize(fir, knowledge), fir, notes
    except BudgetExceeded:
        return None, None, [*notes, over_budget(path, stage, options)]
    except Exception as exc:
        return None, None, [*notes, internal_error(path, stage, exc, options)]


def analyze_file(
    path: Path, rules: Sequence[Rule], knowledge: Knowledge, options: Options | None = None,
    project: Project | None = None,
) -> FileResult:
    """Read and analyze one file from disk. Never raises."""
    name = path.as_posix()
    try:
        raw = read_file(path)
    except OSError as exc:
        return FileResult(name, [cannot_read(name, exc)])
    return analyze_bytes(name, raw, rules, knowledge, options, project)


@dataclass
class RunResult:
    """The outcome of a run over many files."""

    findings: list[Finding]
    files: int
    analyzed: int
    seconds: float
    error_nodes: int = 0
    cache_hits: int = 0
    jobs: int = 1


@dataclass
class Phase3:
    """What the rules said about a file (with its reading and limit notices)."""

    findings: list[Finding]
    analyzed: bool
    error_nodes: int


def build_project(
    files: Sequence[Path], knowledge: Knowledge, options: Options | None = None,
    jobs: int = 1,
) -> tuple[Project, dict[str, list[Finding]]]:
    """Phase one (summaries only, in `jobs` processes when more than one: this one and
    `jobs - 1` forked workers) over `files` and phase two: the project model and each
    file's notices."""
    options = options or Options()
    with quiet_gc():
        sizes, notes = file_sizes(p.as_posix() for p in files)
        facts = phase_one(sizes, (), [], knowledge, options, None, {},
                          max(1, min(jobs, len(sizes))))
        for name, f in facts.items():
            notes[name] = f.findings
        project = Project([s for n in sizes if (s := facts[n].summary) is not None],
                          knowledge, options.roles)
    return project, notes


def cacheable(findings: Iterable[Finding]) -> bool:
    """Results that hit the time budget depend on the machine's load: never cached."""
    return not any(f.code == "DDI905" and "time budget" in f.message for f in findings)


# Whether `quiet_gc` froze the objects alive when it started (and so whether
# `collect_garbage` freezes too). A flag, not `gc.get_freeze_count()`: that counts the
# frozen objects one by one, and with the knowledge table frozen it cost a worker 0.9 s
# of a 6 s run on Windows-driver-samples.
_frozen = False

# The collector's thresholds while a process keeps many long-lived objects (the knowledge
# table, summaries): the young generation collected every 50,000 allocations, not every
# 700, so that the older ones are walked rarely.
QUIET_GC_THRESHOLD = (50_000, 20, 100)


@contextmanager
def quiet_gc() -> Iterator[None]:
    """Fewer garbage collections while a run builds many long-lived objects.

    The knowledge table, the kept IRs and the summaries live until the run ends; the
    default thresholds make the collector walk them again and again (about a tenth of a
    run). Objects alive now are frozen out of the collector, the young generation is
    collected less often, and both are put back afterwards.
    """
    global _frozen
    old = gc.get_threshold()
    was = _frozen
    gc.freeze()
    _frozen = True
    gc.set_threshold(*QUIET_GC_THRESHOLD)
    try:
        yield
    finally:
        gc.set_threshold(*old)
        gc.unfreeze()
        _frozen = was


@contextmanager
def loading_without_gc() -> Iterator[None]:
    """No garbage collection while cached results are unpickled: that builds many objects
    and no garbage, and the collector, run every 50,000 of them (`quiet_gc`), walked the
    ones loaded so far again and again (on the samples' 2,273 cached files, a third of
    the time spent loading them). In a run that froze what lived before it, what was
    loaded is frozen too: it lives until the run ends."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
        if _frozen:
            gc.freeze()


def run(
    files: Sequence[Path],
    rules: Sequence[Rule],
    knowledge: Knowledge,
    options: Options | None = None,
    progress: Callable[[int, int], None] | None = None,
    *,
    jobs: int = 1,
    cache: ResultCache | None = None,
    report: Collection[str] | None = None,
) -> RunResult:
    """Analyze `files` as one driver: summaries, the project model, then the rules on each
    file; findings sorted by place, the same whatever `jobs`.

    `jobs` > 1 runs phase one in that many processes: this one and `jobs - 1` forked
    workers (`ddilint.analyzer.parallel`). With a `cache`,
    unchanged files reuse their summaries and, when no file of the run changed, their
    findings. `report` limits the rules to those paths (the others still feed the
    whole-program model). `progress(done, total)` is called as files are checked.
    """
    with quiet_gc():
        return _run(files, rules, knowledge, options or Options(), progress, jobs, cache,
                    report)


def _run(
    files: Sequence[Path], rules: Sequence[Rule], knowledge: Knowledge, options: Options,
    progress: Callable[[int, int], None] | None, jobs: int, cache: ResultCache | None,
    report: Collection[str] | None,
) -> RunResult:
    started = time.perf_counter()
    names = [p.as_posix() for p in files]
    wanted = [n for n in names if report is None or n in report]
    # With a cache, each file's content hash (the keys) is the remembered one when `stat`
    # shows the file unchanged, else the file is read and hashed here; whoever analyzes it
    # reads it again: the main process keeps no file's bytes, and the workers it forks
    # inherit none. Without a cache, its size is all this needs (to order the work).
    # A cache that remembers none of the files (a first run, a CI runner's empty cache)
    # holds no result of theirs to look up: then no file is read up front, and each is
    # keyed by the hash of the bytes it is analyzed from (`first_stats`, below).
    caching = cache is not None and cache.enabled
    digests: dict[str, str] = {}
    known = cache.known_digests(names) if cache is not None and caching else {}
    first_stats: dict[str, Stat] | None = None
    stamp = 0
    if cache is not None and caching and known:
        sizes, unreadable, digests = file_digests(names, cache, known)
    elif cache is not None and caching:
        stamp = time.time_ns()  # before any file is looked at (see `cache.RACY_NS`)
        sizes, unreadable, first_stats = file_stats(names)
    else:
        sizes, unreadable = file_sizes(names)
    results: dict[str, Phase3] = {n: Phase3(unreadable[n], False, 0) for n in unreadable}
    hits = 0
    fkeys: dict[str, str] = {}
    if cache is not None and caching and first_stats is None:
        fkeys = findings_keys(cache, digests, wanted)
        cached = cache.get_many(list(fkeys.values()))
        for n, key in fkeys.items():
            if key in cached:
                results[n] = cached[key]
                hits += 1
    todo = [n for n in wanted if n not in results]
    workers = max(1, min(jobs, len(sizes)))
    if workers > 1 and len(sizes) < 2 * workers:
        workers = 1
    if todo:
        done = [len(wanted) - len(todo)]
        wanted_set = set(todo)

        def tick(name: str) -> None:
            if name in wanted_set:
                done[0] += 1
                if progress is not None:
                    progress(done[0], len(wanted))

        changed: set[str] = set()
        facts = phase_one(sizes, wanted_set, rules, knowledge, options, cache, digests,
                          workers, tick, changed)
        if cache is not None and first_stats is not None:
            # `phase_one` took each file's hash from the bytes it analyzed; `stat` was
            # asked before they were read, so a later edit shows in the next run's `stat`.
            cache.remember_digests((n, st, digests[n], stamp) for n, st in first_stats.items()
                                   if n in digests)
            fkeys = findings_keys(cache, digests, wanted)
        settle_modes(facts, todo)
        # Phase three answers about the `todo` files only: on a few of them (a pre-commit
        # run, `--project`), the model computes the IRQL flow only where they need it.
        project = Project([s for n in sizes if (s := facts[n].summary) is not None],
                          knowledge, options.roles,
                          focus=set(todo) if 2 * len(todo) < len(sizes) else None,
                          reader=ir_reader(options))
        fresh: dict[str, Phase3] = {}
        for name in todo:
            f = facts[name]
            fresh[name] = Phase3(resolve(f, name, rules, knowledge, options, project),
                                 f.analyzed, f.error_nodes)
        results.update(fresh)
        if cache is not None and fkeys:
            cache.put_many((fkeys[n], r) for n, r in fresh.items()
                           if n in fkeys and n not in changed and cacheable(r.findings))
    findings: list[Finding] = []
    analyzed = errors = 0
    for n in wanted:
        r = results[n]
        findings.extend(r.findings)
        analyzed += r.analyzed
        errors += r.error_nodes
    findings.sort(key=Finding.sort_key)
    return RunResult(findings, len(files), analyzed, time.perf_counter() - started, errors,
                     hits, workers)


def findings_keys(cache: ResultCache, digests: Mapping[str, str],
                  wanted: Iterable[str]) -> dict[str, str]:
    """The cache keys of the findings of the `wanted` files with a content hash: each
    file's own hash and the project digest over every file's."""
    proj = project_digest(cache.salt, digests.items())
    return {n: cache.findings_key(n, digests[n], proj) for n in wanted if n in digests}


def settle_modes(
    facts: dict[str, FileFacts], targets: Iterable[str],
    summaries: Iterable[FileSummary] | None = None,
) -> None:
    """Step 2 of `ddilint.analyzer.mode`: a file of `targets` whose own includes show no
    mode ran its rules in the mode its calls show, else in kernel mode; where the project
    headers it includes show the other mode, it takes its rules' results in that mode
    (`FileFacts.if_other`). `summaries`: every project file's (default: those in
    `facts`), for their includes. `facts` is updated in place."""
    undecided = [n for n in targets if (f := facts.get(n)) is not None
                 and f.if_other is not None]
    if not undecided:
        return
    if summaries is None:
        summaries = [f.summary for f in facts.values() if f.summary is not None]
    includes: dict[str, tuple[Sequence[str], str]] = {}
    sided: dict[str, Sequence[tuple[str, str]]] = {}
    for s in summaries:
        includes[s.path] = (s.includes, s.header_mode)
        if s.sided_includes:
            sided[s.path] = s.sided_includes
    for n, mode in include_modes(includes, undecided, sided).items():
        f = facts[n]
        if f.if_other is not None and mode == f.if_other[0]:
            facts[n] = replace(f, findings=f.if_other[1], pending=f.if_other[2], mode=mode,
                               if_other=None)


def file_sizes(names: Iterable[str]) -> tuple[dict[str, int], dict[str, list[Finding]]]:
    """Each file's size (to order the work), and the DDI901 notices of those that cannot
    be looked at."""
    sizes, unreadable, _stats = file_stats(names)
    return sizes, unreadable


def file_stats(names: Iterable[str]) -> tuple[
        dict[str, int], dict[str, list[Finding]], dict[str, Stat]]:
    """`file_sizes`, with what `stat` said about each file (for its remembered hash)."""
    sizes: dict[str, int] = {}
    unreadable: dict[str, list[Finding]] = {}
    stats: dict[str, Stat] = {}
    for name in names:
        try:
            st = os.stat(name)
        except OSError as exc:
            unreadable[name] = [cannot_read(name, exc)]
            continue
        sizes[name] = st.st_size
        stats[name] = stat_key(st)
    return sizes, unreadable, stats


def file_digests(names: Sequence[str], cache: ResultCache,
                 known: Mapping[str, tuple[Stat, str, int]] | None = None) -> tuple[
        dict[str, int], dict[str, list[Finding]], dict[str, str]]:
    """Each file's size, the DDI901 notices of those that cannot be read, and each file's
    content hash: remembered by the cache where `stat` shows the file unchanged since it
    was hashed (see `ddilint.cache`; `known`: what `cache.known_digests` said already),
    else read and hashed (and remembered)."""
    sizes: dict[str, int] = {}
    unreadable: dict[str, list[Finding]] = {}
    digests: dict[str, str] = {}
    if known is None:
        known = cache.known_digests(names)
    hashed: list[tuple[str, Stat, str, int]] = []
    for name in names:
        try:
            st = os.stat(name)
            key = stat_key(st)
            seen = known.get(name)
            if seen is not None and seen[0] == key and seen[2] - st.st_mtime_ns > RACY_NS:
                digests[name] = seen[1]
                sizes[name] = st.st_size
                continue
            raw = read_file(name)
        except OSError as exc:
            unreadable[name] = [cannot_read(name, exc)]
            continue
        digests[name] = content_hash(raw)
        sizes[name] = len(raw)
        hashed.append((name, key, digests[name], time.time_ns()))
    cache.remember_digests(hashed)
    return sizes, unreadable, digests


def cannot_read(name: str, exc: OSError) -> Finding:
    """The DDI901 notice of a file that cannot be read."""
    return notice("DDI901", name, f"cannot read file: {exc.strerror or exc}")


def read_and_facts(
    name: str, rules: Sequence[Rule], knowledge: Knowledge, options: Options, check: bool,
    digest: bool = True,
) -> tuple[FileFacts, str]:
    """Read a file and compute its `FileFacts`; also, with `digest`, the hash of the bytes it
    read, which only the cache needs ("" without, or when the file could not be read: the
    facts then hold the DDI901 notice)."""
    try:
        raw = read_file(name)
    except OSError as exc:
        return FileFacts(None, [cannot_read(name, exc)]), ""
    facts = file_facts(name, raw, rules, knowledge, options, check)
    return facts, content_hash(raw) if digest else ""


# Files analyzed in one process between two garbage collections. A disposed IR holds no
# reference cycle (tests/test_memory.py), so a collection finds little (what a rule that
# failed part-way, or a plugin's analysis, left); what it is for is the freeze after it
# (`collect_garbage`), which keeps the collector from walking the facts kept so far.
COLLECT_EVERY = 8


def collect_garbage() -> None:
    """A full collection, then (in a run, where `quiet_gc` froze what was alive before
    it) freeze what survived: the facts of the files so far, so that the next collection
    walks only what came after them. Without the freeze every collection walked every
    file's facts again: on Windows-driver-samples at -j 1, 30 s of a 44 s run."""
    gc.collect()
    if _frozen:
        gc.freeze()


def phase_one(
    sizes: Mapping[str, int], checked: Collection[str], rules: Sequence[Rule],
    knowledge: Knowledge, options: Options, cache: ResultCache | None,
    digests: dict[str, str], workers: int = 1,
    tick: Callable[[str], None] | None = None, changed: set[str] | None = None,
) -> dict[str, FileFacts]:
    """`FileFacts` of every file of `sizes` (path -> size): from the cache, else read and
    computed (in `workers` processes when more than one) and cached. The files in
    `checked` get the rules; the others only their summaries (a file with its rules'
    facts cached serves both). `digests` are the content hashes the cache keys use; a
    file that changed since it was hashed is analyzed as it is now, not cached, and
    named in `changed`. A file without a hash there is not looked up: it gets the hash of
    the bytes it is analyzed from, in `digests`, and is cached under it."""
    out: dict[str, FileFacts] = {}
    on = cache is not None and cache.enabled
    if cache is not None and on:
        # A file to check needs its rules' facts; any other is served by those too, or by
        # its summary alone.
        keys = {n: [cache.facts_key(n, digests[n], True)]
                + ([] if n in checked else [cache.facts_key(n, digests[n], False)])
                for n in sizes if n in digests}
        with loading_without_gc():
            found = cache.get_many([k for ks in keys.values() for k in ks])
        for n, ks in keys.items():
            f = next((found[k] for k in ks if k in found), None)
            if isinstance(f, FileFacts):
                out[n] = f
                if tick is not None:
                    tick(n)
    todo = [n for n in sizes if n not in out]
    blobs: dict[str, bytes] = {}
    read_digests: dict[str, str] = {}
    if workers > 1 and len(todo) >= 2 * workers:
        from ddilint.analyzer.parallel import facts_in_parallel

        fresh = facts_in_parallel(todo, sizes, checked, rules, knowledge, options, workers,
                                  blobs if on else None, read_digests, tick)
    else:
        fresh = {}
        for i, n in enumerate(todo, 1):
            fresh[n], read_digests[n] = read_and_facts(n, rules, knowledge, options,
                                                       n in checked, on)
            if tick is not None:
                tick(n)
            if i % COLLECT_EVERY == 0:
                collect_garbage()
    if on:
        # A file not hashed up front is keyed by the bytes it was analyzed from.
        for n in fresh:
            if n not in digests and read_digests.get(n):
                digests[n] = read_digests[n]
    if changed is not None and on:
        changed.update(n for n in fresh if read_digests.get(n) != digests.get(n))
    if cache is not None and on:
        import pickle

        cache.put_many_raw(
            (cache.facts_key(n, digests[n], f.checked),
             blobs.get(n) or pickle.dumps(f, pickle.HIGHEST_PROTOCOL))
            for n, f in fresh.items()
            if n in digests and read_digests.get(n) == digests[n] and cacheable(f.findings))
    out.update(fresh)
    return out
