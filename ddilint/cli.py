"""The `ddilint` command line: check, rules, explain, knowledge."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ddilint import __version__, build
from ddilint.analyzer.budget import DEFAULT_FILE_TIMEOUT
from ddilint.analyzer.engine import Options, RunResult, build_project, discover, run
from ddilint.baseline import BaselineError, filter_baseline, write_baseline
from ddilint.cache import ResultCache, default_cache_dir, run_salt
from ddilint.config import (
    Config,
    ConfigError,
    check_against,
    find_project_root,
    resolve_config,
)
from ddilint.findings import Finding
from ddilint.fingerprint import SourceCache, fingerprints
from ddilint.fixes import FileFix, fix_files, stamp, unified_diff
from ddilint.knowledge import Knowledge, build_knowledge, load_knowledge
from ddilint.plugins import PluginError, collect_knowledge, collect_rules, plugin_manager
from ddilint.progress import ProgressBar
from ddilint.progress import wanted as progress_wanted
from ddilint.report.github import format_github
from ddilint.report.json_report import format_json
from ddilint.report.sarif import format_sarif
from ddilint.report.text import format_text, printable, shared_causes
from ddilint.rules.base import Rule
from ddilint.rules.catalogue import BY_CODE, BY_NAME, CATALOGUE
from ddilint.suppress import apply_suppressions

EXIT_CLEAN, EXIT_FINDINGS, EXIT_ERROR = 0, 1, 2


class UsageError(Exception):
    """Bad arguments: exit status 2 with the message."""


def _split(values: Sequence[str] | None) -> list[str]:
    out: list[str] = []
    for v in values or ():
        out.extend(x.strip() for x in v.split(",") if x.strip())
    return out


def matches(code: str, name: str, selector: str) -> bool:
    """Does a rule (code, name) match a selector: a code, a code prefix, a name or ALL?"""
    s = selector.strip()
    if s.upper() == "ALL":
        return True
    if _code_like(s):
        return code.startswith(s.upper())
    return name == s.lower()


def _code_like(selector: str) -> bool:
    """Codes and prefixes: `DDI101`, `ddi4`, a plugin's `XDBG` (upper case); names are
    lower-case kebab (`nt-routine-in-kernel-mode`)."""
    return selector.upper().startswith("DDI") or (selector == selector.upper()
                                                   and "-" not in selector)


def _check_selectors(selectors: Sequence[str], rules: Sequence[Rule]) -> None:
    names = {e.name for e in CATALOGUE} | {r.name for r in rules}
    codes = [e.code for e in CATALOGUE] + [r.code for r in rules]
    for s in selectors:
        if s.upper() == "ALL":
            continue
        if _code_like(s):
            if not any(c.startswith(s.upper()) for c in codes):
                raise UsageError(f"unknown rule code or prefix: {s}")
        elif s.lower() not in names:
            raise UsageError(f"unknown rule name: {s}")


def selected(code: str, name: str, select: Sequence[str], ignore: Sequence[str]) -> bool:
    """Whether a code is on after --select and --ignore (notices are on unless ignored)."""
    if select and not code.startswith("DDI9") and not any(matches(code, name, s) for s in select):
        return False
    return not any(matches(code, name, s) for s in ignore)


def load_rules_and_knowledge(
        extra: Mapping[str, Mapping[str, Any]] | None = None) -> tuple[list[Rule], Knowledge]:
    """The installed rules (built-in and third-party plugins) and the knowledge table, with
    `extra` routine facts (from the project config) over the plugins' ones."""
    pm = plugin_manager()
    rules = collect_rules(pm)
    if not rules:
        raise PluginError(
            "no rules are registered: ddilint must be installed (pip install .) so that its "
            "'ddilint.rules' entry points exist"
        )
    merged: dict[str, Mapping[str, Any]] = dict(collect_knowledge(pm))
    merged.update(extra or {})
    return rules, load_knowledge(merged or None)


def _validate_routines(extra: Mapping[str, Mapping[str, Any]]) -> None:
    build_knowledge({}, {}, extra)


def load_project(paths: Sequence[str], args: argparse.Namespace) -> tuple[
        Config, list[Rule], Knowledge]:
    """The project config (checked against the rules and knowledge), rules and knowledge."""
    cfg = resolve_config(paths, getattr(args, "config", None), getattr(args, "isolated", False))
    rules, knowledge = load_rules_and_knowledge()
    check_against(cfg, set(knowledge.roles) | set(knowledge.role_typedefs.values()),
                  _validate_routines,
                  lambda sel: _check_selectors(sel, rules))
    if cfg.routines:
        rules, knowledge = load_rules_and_knowledge(cfg.routines)
    return cfg, rules, knowledge


@dataclass
class Analysis:
    """What one pass over the files produced, after selection and suppressions."""

    findings: list[Finding]
    files: list[Path]
    reported: list[Path]
    result: RunResult
    stamps: dict[str, tuple[int, int]]
    # The texts of the files with findings, read for the suppression comments; the
    # fingerprints read their lines from the same copies.
    sources: SourceCache


def _project_naming(relative: bool) -> Callable[[Path], Path]:
    """A file's name in a `--project` run: relative to the working directory, or absolute.
    The folder part is worked out once per folder (`abspath` and `relpath` for every file
    of a large project were a fifth of a pre-commit run on unchanged files); a file name
    adds no `.` or `..` to normalize."""
    folders: dict[str, str] = {}

    def name(p: Path) -> Path:
        head, sep, tail = str(p).rpartition(os.sep)
        if os.altsep:  # Windows: `C:/x/a.c` is a path too
            h2, s2, t2 = str(p).rpartition(os.altsep)
            if len(h2) > len(head):
                head, sep, tail = h2, s2, t2
        if not sep:  # `a.c`, or `C:a.c` on Windows
            full = os.path.abspath(p)
            return Path(os.path.relpath(full) if relative else full)
        if not head:  # a file in the root folder: `/a.c`
            head = sep
        folder = folders.get(head)
        if folder is None:
            full = os.path.abspath(head)
            folder = folders[head] = os.path.relpath(full) if relative else full
        return Path(tail if folder == os.curdir else os.path.join(folder, tail))

    return name


def _analyze(args: argparse.Namespace, cfg: Config, rules: Sequence[Rule],
             knowledge: Knowledge, select: list[str], ignore: list[str]) -> Analysis:
    paths = list(args.paths or ["."])
    cli_exclude = _split(args.exclude)
    reported, missing = discover(paths, cli_exclude)
    if missing:
        raise MissingPaths(missing)
    reported = [p for p in reported if not cfg.excluded(p)]
    files = reported
    if args.project and reported:
        root = find_project_root(reported[0]) if cfg.path is None else cfg.root
        if root is not None:
            # One naming for every file of the project (the whole-program phase relates
            # files by their paths): relative to the working directory when the files
            # passed are relative (pre-commit), else absolute.
            name = _project_naming(relative=not Path(paths[0]).is_absolute())
            reported = [name(p) for p in reported]
            project, _ = discover([root], cli_exclude)
            files = sorted({name(p) for p in project if not cfg.excluded(p)} | set(reported),
                           key=lambda p: p.as_posix())
    active = [r for r in rules if selected(r.code, r.name, select, ignore)]
    options = Options(mode_override=args.mode, debug=args.debug, roles=dict(cfg.roles),
                      file_timeout=args.file_timeout,
                      file_modes={p.as_posix(): m for p in files
                                  if (m := cfg.mode_for(p)) is not None})
    stamps = stamp(files) if (args.fix or args.diff) else {}
    names = {p.as_posix() for p in reported}
    cache: ResultCache | None = None
    if not args.no_cache:
        where = Path(args.cache_dir) if args.cache_dir else default_cache_dir(
            cfg.root if cfg.path is not None else None)
        cache = ResultCache(where, run_salt(active, knowledge, options))
    jobs = _jobs(args)
    try:
        with ProgressBar(progress_wanted(quiet=args.quiet)) as bar:
            result = run(files, active, knowledge, options, progress=bar.update, jobs=jobs,
                         cache=cache, report=names if len(names) < len(files) else None)
    finally:
        if cache is not None:
            cache.close()
    sources = SourceCache()
    findings = keep_findings(result.findings, cfg, select, ignore, active, names, sources,
                             args.report_unused_suppressions)
    return Analysis(findings, files, reported, result, stamps, sources)


def keep_findings(findings: Sequence[Finding], cfg: Config, select: Sequence[str],
                  ignore: Sequence[str], active: Sequence[Rule], paths: set[str],
                  text_of: Callable[[str], str | None],
                  report_unused: bool = False) -> list[Finding]:
    """The findings to report: on `paths` only, selected, not ignored for their file by
    `per-file-ignores`, not silenced by a suppression comment (CLI and language server)."""
    kept = [f for f in findings
            if f.location.path in paths and selected(f.code, f.name, select, ignore)]
    if cfg.per_file_ignores:
        kept = [f for f in kept
                if not any(matches(f.code, f.name, s) for s in cfg.ignored_for(f.location.path))]
    return apply_suppressions(kept, text_of, report_unused, [(r.code, r.name) for r in active],
                              sorted(paths))


MAX_FIX_PASSES = 10


def _print_skipped(fixed: Sequence[FileFix]) -> None:
    for fx in fixed:
        for why in fx.skipped:
            print(f"ddilint: {fx.path}: {why}", file=sys.stderr)


_JOBS_HELP = "processes for the per-file work, this one included (default 0: one per core)"


def _jobs(args: argparse.Namespace) -> int:
    """`--jobs`, where 0 (the default) means one process per core."""
    return int(args.jobs) if args.jobs and args.jobs > 0 else (os.cpu_count() or 1)


class MissingPaths(Exception):
    """Input paths that do not exist."""


def _unwritable(target: str | None) -> str | None:
    """Why a report or baseline cannot be written to `target`, if it plainly cannot: said
    before the analysis, not after it."""
    if not target:
        return None
    path = Path(target)
    if path.is_dir():
        return f"cannot write to {target}: it is a directory"
    if not path.parent.is_dir():
        return f"cannot write to {target}: no such directory: {path.parent}"
    return None


def _cannot_write(target: str, exc: OSError) -> str:
    return f"cannot write to {target}: {exc.strerror or exc}"


def _write(target: str, text: str) -> str | None:
    """Write a report to `target`; why it could not be, if it could not."""
    try:
        # A file name that is not UTF-8 is written as its own bytes, as on standard output.
        Path(target).write_text(text, encoding="utf-8", errors="surrogateescape")
    except OSError as exc:
        return _cannot_write(target, exc)
    return None


def cmd_check(args: argparse.Namespace) -> int:
    paths = list(args.paths or ["."])
    for target in (args.output, args.write_baseline):
        if (why := _unwritable(target)) is not None:
            print(f"ddilint: error: {why}", file=sys.stderr)
            return EXIT_ERROR
    try:
        cfg, rules, knowledge = load_project(paths, args)
    except ConfigError as exc:
        print(f"ddilint: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    select = _split(args.select) or cfg.select
    ignore = cfg.ignore + _split(args.ignore)
    _check_selectors(_split(args.select) + _split(args.ignore), rules)
    try:
        an = _analyze(args, cfg, rules, knowledge, select, ignore)
    except MissingPaths as exc:
        for m in exc.args[0]:
            print(f"ddilint: error: no such file or directory: {m}", file=sys.stderr)
        return EXIT_ERROR
    if args.diff:
        fixed = fix_files(an.findings, write=False, stamps=an.stamps)
        _print_skipped(fixed)
        sys.stdout.write("".join(unified_diff(fx) for fx in fixed if fx.changed))
        return EXIT_FINDINGS if any(fx.changed for fx in fixed) else EXIT_CLEAN
    if args.fix:
        n_fixes, files_changed = 0, set[str]()
        for _ in range(MAX_FIX_PASSES):  # fixes left out for overlapping go in a later pass
            fixed = fix_files(an.findings, write=True, stamps=an.stamps)
            changed = [fx for fx in fixed if fx.changed]
            if not changed:
                break
            n_fixes += sum(fx.applied for fx in changed)
            files_changed.update(fx.path for fx in changed)
            an = _analyze(args, cfg, rules, knowledge, select, ignore)
        _print_skipped(fixed)
        if not args.quiet:
            print(f"ddilint: fixed {n_fixes} finding(s) in {len(files_changed)} file(s)",
                  file=sys.stderr)
    findings = an.findings
    prints = fingerprints(findings, an.sources.line)
    if args.write_baseline:
        try:
            n = write_baseline(Path(args.write_baseline), findings, prints)
        except OSError as exc:
            print(f"ddilint: error: {_cannot_write(args.write_baseline, exc)}", file=sys.stderr)
            return EXIT_ERROR
        if not args.quiet:
            print(f"ddilint: wrote {n} finding(s) to {args.write_baseline}", file=sys.stderr)
        return EXIT_CLEAN
    if args.baseline:
        try:
            findings, prints = filter_baseline(Path(args.baseline), findings, prints)
        except BaselineError as exc:
            print(f"ddilint: error: {exc}", file=sys.stderr)
            return EXIT_ERROR
    active = [r for r in rules if selected(r.code, r.name, select, ignore)]
    if args.format == "json":
        text = format_json(findings)
    elif args.format == "sarif":
        text = format_sarif(findings, prints, active, knowledge)
    elif args.format == "github":
        text = format_github(findings)
    else:
        text = format_text(findings, args.show_trace)
    if args.output:
        if (why := _write(args.output, text)) is not None:
            print(f"ddilint: error: {why}", file=sys.stderr)
            return EXIT_ERROR
    else:
        sys.stdout.write(text)
    if args.format == "text" and not args.quiet:
        for line in shared_causes(findings):
            print(f"ddilint: {line}", file=sys.stderr)
    if args.statistics:
        _statistics(findings, an.result.files, an.result.seconds)
    if an.files and an.result.analyzed == 0:
        print("ddilint: error: none of the files could be analyzed", file=sys.stderr)
        return EXIT_ERROR
    return EXIT_FINDINGS if any(not f.is_notice for f in findings) else EXIT_CLEAN


def _statistics(findings: Sequence[Finding], files: int, seconds: float) -> None:
    counts: dict[tuple[str, str], int] = {}
    for f in findings:
        counts[(f.code, f.name)] = counts.get((f.code, f.name), 0) + 1
    for (code, name), n in sorted(counts.items()):
        print(f"{n:6d}  {code} {name}", file=sys.stderr)
    print(f"{files} files in {seconds:.2f}s", file=sys.stderr)


def cmd_lsp(args: argparse.Namespace) -> int:
    from ddilint.lsp import serve

    return serve(max(0.0, args.debounce))


def cmd_roles(args: argparse.Namespace) -> int:
    """`ddilint roles PATH`: each function's role, IRQL range, context and why."""
    import json

    from ddilint.analyzer.context import irql_name

    paths = list(args.paths or ["."])
    cfg, _rules, knowledge = load_project(paths, args)
    files, missing = discover(paths, _split(args.exclude))
    if missing:
        for m in missing:
            print(f"ddilint: error: no such file or directory: {m}", file=sys.stderr)
        return EXIT_ERROR
    files = [p for p in files if not cfg.excluded(p)]
    project, _notes = build_project(files, knowledge, Options(roles=dict(cfg.roles)),
                                    _jobs(args))
    rows = []
    for fn, role, ctx, path in project.role_rows():
        if args.with_role and not role:
            continue
        irql = irql_name(ctx.irql_max) if ctx.irql_min == ctx.irql_max else (
            f"{irql_name(ctx.irql_min)}..{irql_name(ctx.irql_max)}")
        rows.append({"path": path, "line": fn.line, "function": fn.qualname,
                     "role": role, "irql": irql, "system": ctx.system_only,
                     "why": ctx.reason})
    if args.format == "json":
        print(json.dumps(rows, indent=2))
        return EXIT_CLEAN
    for r in rows:
        context = "system process" if r["system"] else "any process"
        print(printable(f"{r['path']}:{r['line']}: {r['function']}: {r['role'] or '-'}; "
                        f"{r['irql']}; {context}; {r['why']}"))
    return EXIT_CLEAN


def cmd_rules(args: argparse.Namespace) -> int:
    rules, _ = load_rules_and_knowledge()
    loaded = {r.code: r for r in rules}
    rows: list[tuple[str, str, str, str, str]] = []
    for e in CATALOGUE:
        r = loaded.get(e.code)
        if e.code.startswith("DDI9"):
            status = "notice"
        else:
            status = "yes" if r is not None else "not yet implemented"
        rows.append((e.code, e.name, e.severity.value, status, e.summary))
    for code, r in loaded.items():
        if code not in BY_CODE:
            rows.append((r.code, r.name, r.severity.value, "plugin", r.summary))
    print(f"{'code':7} {'name':34} {'severity':8} {'implemented':20} summary")
    for code, name, sev, status, summary in rows:
        print(f"{code:7} {name:34} {sev:8} {status:20} {summary}")
    return EXIT_CLEAN


def cmd_explain(args: argparse.Namespace) -> int:
    rules, knowledge = load_rules_and_knowledge()
    key = args.rule.strip()
    for r in rules:
        if r.code == key.upper() or r.name == key.lower():
            print(r.describe(knowledge))
            return EXIT_CLEAN
    entry = BY_CODE.get(key.upper()) or BY_NAME.get(key.lower())
    if entry is not None:
        print(f"{entry.code} {entry.name} ({entry.severity.value})\n\n{entry.summary}")
        if not entry.code.startswith("DDI9"):
            print("\nThis rule is in the catalogue but not implemented yet: it never runs.")
        return EXIT_CLEAN
    raise UsageError(f"unknown rule: {args.rule}")


def cmd_knowledge(args: argparse.Namespace) -> int:
    if args.knowledge_command == "import":
        from ddilint.knowledge import importer

        argv = list(args.rest)
        return importer.main(argv)
    if args.knowledge_command == "show":
        from ddilint.knowledge.describe import describe_routine, suggestions

        try:  # the project's extra routines (config found from the working directory) count
            _, rules, knowledge = load_project([], argparse.Namespace())
        except ConfigError as exc:
            print(f"ddilint: error: {exc}", file=sys.stderr)
            return EXIT_ERROR
        r = knowledge.get(args.name)
        if r is None:
            print(f"ddilint: {args.name} is not in the knowledge table", file=sys.stderr)
            near = suggestions(knowledge, args.name)
            if near:
                print(f"ddilint: did you mean: {', '.join(near)}", file=sys.stderr)
            return EXIT_FINDINGS
        print("\n".join(describe_routine(r, [(x.code, x.facts) for x in rules])))
        return EXIT_CLEAN
    raise UsageError("knowledge: expected 'import' or 'show NAME'")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="ddilint",
        description="Check Windows kernel-driver C/C++ against the documented requirements "
                    "of kernel routines.",
    )
    p.add_argument("--version", action="version", version=f"ddilint {__version__} ({build()})")
    sub = p.add_subparsers(dest="command", required=True)
    c = sub.add_parser("check", help="analyze files and folders")
    c.add_argument("paths", nargs="*", help="files or folders (default: .)")
    c.add_argument("--format", choices=("text", "json", "sarif", "github"), default="text",
                   help="text (default), json, sarif (SARIF 2.1.0), github (Actions annotations)")
    c.add_argument("--select", action="append", help="codes, prefixes (DDI2) or names")
    c.add_argument("--ignore", action="append", help="codes, prefixes or names to skip")
    c.add_argument("--exclude", action="append", help="glob patterns of paths to skip")
    c.add_argument("--output", "-o", help="write the report to this file")
    c.add_argument("--mode", choices=("kernel", "user"), help="treat every file as this mode")
    c.add_argument("--show-trace", action="store_true", help="print trace steps (text format)")
    c.add_argument("--statistics", action="store_true", help="counts per rule on stderr")
    c.add_argument("--quiet", "-q", action="store_true",
                   help="print the findings only: no progress bar, no summaries")
    c.add_argument("--config", help="use this config file instead of searching for one")
    c.add_argument("--isolated", action="store_true", help="ignore every config file")
    c.add_argument("--project", action="store_true",
                   help="the paths are some files of a project (pre-commit): analyze the whole "
                        "project they belong to (up to the config file or repository root) and "
                        "report only on them")
    c.add_argument("--fix", action="store_true", help="apply the findings' fixes to the files")
    c.add_argument("--diff", action="store_true",
                   help="show the fixes as a unified diff, change nothing")
    c.add_argument("--baseline", metavar="FILE",
                   help="report only findings that are not in this baseline file")
    c.add_argument("--write-baseline", metavar="FILE",
                   help="write all current findings to a baseline file and exit 0")
    c.add_argument("--report-unused-suppressions", action="store_true",
                   help="report 'ddilint: ignore' comments that silenced nothing (DDI907)")
    c.add_argument("--debug", action="store_true", help="tracebacks in internal-error notices")
    c.add_argument("--jobs", "-j", type=int, default=0, metavar="N", help=_JOBS_HELP)
    c.add_argument("--no-cache", action="store_true",
                   help="neither read nor write the result cache")
    c.add_argument("--cache-dir", metavar="DIR",
                   help="where the result cache lives (default: .ddilint_cache in the project "
                        "root, the folder of the config file, else the working directory)")
    c.add_argument("--file-timeout", type=float, default=DEFAULT_FILE_TIMEOUT, metavar="SECONDS",
                   help="stop analyzing a file after this long, with a DDI905 notice "
                        f"(default {DEFAULT_FILE_TIMEOUT:g}; 0: no limit)")
    c.set_defaults(func=cmd_check)
    ro = sub.add_parser("roles", help="each function's role, IRQL range, process context, why")
    ro.add_argument("paths", nargs="*", help="files or folders, analyzed as one driver")
    ro.add_argument("--format", choices=("text", "json"), default="text")
    ro.add_argument("--exclude", action="append", help="glob patterns of paths to skip")
    ro.add_argument("--with-role", action="store_true",
                    help="only functions with a role of their own (entry points)")
    ro.add_argument("--config", help="use this ddilint.toml")
    ro.add_argument("--jobs", "-j", type=int, default=0, metavar="N", help=_JOBS_HELP)
    ro.add_argument("--isolated", action="store_true", help="ignore configuration files")
    ro.set_defaults(func=cmd_roles)
    r = sub.add_parser("rules", help="list the rule catalogue")
    r.set_defaults(func=cmd_rules)
    e = sub.add_parser("explain", help="explain a rule")
    e.add_argument("rule", help="a code (DDI101) or name (missing-kernel-handle)")
    e.set_defaults(func=cmd_explain)
    ls = sub.add_parser("lsp", help="run the language server on stdin/stdout (for editors)")
    ls.add_argument("--debounce", type=float, default=0.3, metavar="SECONDS",
                    help="analyze once edits pause this long (default 0.3)")
    ls.set_defaults(func=cmd_lsp)
    k = sub.add_parser("knowledge", help="the routine knowledge table")
    ksub = k.add_subparsers(dest="knowledge_command", required=True)
    ki = ksub.add_parser("import", help="regenerate the table from the documentation pages",
                         add_help=False)
    ki.add_argument("rest", nargs=argparse.REMAINDER)
    ks = ksub.add_parser("show", help="what ddilint knows about a routine")
    ks.add_argument("name")
    k.set_defaults(func=cmd_knowledge)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code) if isinstance(exc.code, int) else EXIT_ERROR
    try:
        os.getcwd()  # paths, the config, the cache and the report are found from it
    except OSError:
        print("ddilint: error: the current directory does not exist any more",
              file=sys.stderr)
        return EXIT_ERROR
    try:
        return int(args.func(args))
    except UsageError as exc:
        print(f"ddilint: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except PluginError as exc:
        print(f"ddilint: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        # A fault of ddilint's own outside the analysis (which turns its own into DDI906
        # notices): said in a line, the traceback with --debug.
        print(f"ddilint: internal error: {type(exc).__name__}: {exc}", file=sys.stderr)
        if getattr(args, "debug", False):
            traceback.print_exc()
        else:
            where = "; `--debug` shows where it happened" if hasattr(args, "debug") else ""
            print(f"ddilint: please report it{where}", file=sys.stderr)
        return EXIT_ERROR


def entry() -> None:
    """The `ddilint` command: `main`, then the process ends without tearing down the
    interpreter. Everything a run writes is written and closed by then (the report, the
    cache), and the worker processes are joined; what is left is freeing the knowledge
    table, the compiled queries and whatever the run's last phase held, object by object
    (0.1 s of a run on Windows-driver-samples) for a process that is about to end (mypy
    ends the same way)."""
    code = main()
    for stream in (sys.stdout, sys.stderr):
        # A closed pipe (`ddilint check | head`) takes nothing more: nothing to say.
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(code)


if __name__ == "__main__":
    entry()
