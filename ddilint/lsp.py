"""`ddilint lsp`: a language server (LSP over stdio, built on pygls) for editors.

It analyzes a C/C++ buffer when it is opened, after edits (debounced: the analysis runs once
typing pauses for `debounce` seconds, on the latest text) and when it is saved, with the
project config of the file (found by walking up from it). Each finding becomes a diagnostic
with its code, severity, the documentation link as `codeDescription`, and the trace steps
as `relatedInformation`; the fixes findings carry are offered as quick-fix code actions.
Positions are converted to the position encoding negotiated with the client (UTF-16 by
default). The analysis runs in a worker thread so the server keeps answering meanwhile.
"""

from __future__ import annotations

import asyncio
import bisect
import gc
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lsprotocol import types as lsp
from pygls.lsp.server import LanguageServer
from pygls.uris import from_fs_path, to_fs_path

from ddilint import __version__
from ddilint.analyzer.engine import (
    QUIET_GC_THRESHOLD,
    Options,
    analyze_bytes,
    discover,
    file_facts,
    ir_reader,
    resolve,
    settle_modes,
    summarize_bytes,
)
from ddilint.analyzer.frontend import SOURCE_SUFFIXES
from ddilint.analyzer.project import Project
from ddilint.analyzer.source import read_file
from ddilint.analyzer.summary import FileSummary
from ddilint.config import Config, ConfigError, find_config_file, find_project_root
from ddilint.findings import Finding, Location, Severity
from ddilint.knowledge import Knowledge
from ddilint.rules.base import Rule

log = logging.getLogger(__name__)

DEBOUNCE_SECONDS = 0.3
# A project root (config folder or repository root) with more source files than this is
# not summarized as one driver: the buffer is analyzed on its own.
MAX_PROJECT_FILES = 3000
SEVERITY = {Severity.ERROR: lsp.DiagnosticSeverity.Error,
            Severity.WARNING: lsp.DiagnosticSeverity.Warning,
            Severity.NOTE: lsp.DiagnosticSeverity.Information}


class LineIndex:
    """Converts between ddilint positions (UTF-8 byte offsets, code-point columns) and LSP
    positions (line, character in the negotiated encoding's code units)."""

    def __init__(self, text: str, encoding: str = "utf-16") -> None:
        self.text = text
        self.data = text.encode("utf-8")
        self.encoding = encoding
        self.starts = [0]
        pos = self.data.find(b"\n")
        while pos >= 0:
            self.starts.append(pos + 1)
            pos = self.data.find(b"\n", pos + 1)
        # The line asked about last (0-based), its text and whether it is ASCII: diagnostics
        # come line by line, and a generated line of 380 KB with 64,000 of them was decoded
        # and measured again for each (27 s).
        self._last: tuple[int, str, bool] = (-1, "", True)

    def _text(self, line0: int) -> tuple[str, bool]:
        """The text of a 0-based line without its ending, and whether it is ASCII."""
        if self._last[0] != line0:
            text = self._line_bytes(line0).decode("utf-8", errors="replace").rstrip("\r\n")
            self._last = (line0, text, text.isascii())
        return self._last[1], self._last[2]

    def _width(self, text: str, ascii_text: bool, n: int) -> int:
        """`_units` of the first `n` characters of a line's `text`."""
        return min(n, len(text)) if ascii_text else self._units(text[:n])

    def _line_bytes(self, line0: int) -> bytes:
        start = self.starts[line0]
        end = self.starts[line0 + 1] if line0 + 1 < len(self.starts) else len(self.data)
        return self.data[start:end]

    def line(self, line: int) -> str:
        """The text of a 1-based line without its line ending."""
        return self._text(max(0, min(line - 1, len(self.starts) - 1)))[0]

    def _units(self, prefix: str) -> int:
        if self.encoding == "utf-8":
            return len(prefix.encode("utf-8"))
        if self.encoding == "utf-32":
            return len(prefix)
        return len(prefix.encode("utf-16-le")) // 2

    def from_offset(self, offset: int) -> lsp.Position:
        offset = max(0, min(offset, len(self.data)))
        line0 = bisect.bisect_right(self.starts, offset) - 1
        prefix = self.data[self.starts[line0]:offset].decode("utf-8", errors="replace")
        return lsp.Position(line=line0, character=self._units(prefix))

    def from_column(self, line: int, column: int) -> lsp.Position:
        """A 1-based line and code-point column as an LSP position."""
        line0 = max(0, min(line - 1, len(self.starts) - 1))
        text, ascii_text = self._text(line0)
        return lsp.Position(line=line0, character=self._width(text, ascii_text,
                                                              max(0, column - 1)))

    def word_end(self, line: int, column: int) -> lsp.Position:
        """The end of the identifier starting at a 1-based line and column (one character
        when there is none)."""
        line0 = max(0, min(line - 1, len(self.starts) - 1))
        text, ascii_text = self._text(line0)
        i = max(0, column - 1)
        j = i
        while j < len(text) and (text[j].isalnum() or text[j] == "_"):
            j += 1
        if j == i:
            j = min(i + 1, len(text))
        return lsp.Position(line=line0, character=self._width(text, ascii_text, j))

    def range_of(self, loc: Location) -> lsp.Range:
        start = self.from_column(loc.line, loc.column)
        if loc.end_line is not None and loc.end_column is not None:
            end = self.from_column(loc.end_line, loc.end_column)
        else:
            end = self.word_end(loc.line, loc.column)
        return lsp.Range(start=start, end=end)


@dataclass
class ProjectState:
    """A project's settings as the server uses them (cached per config file)."""

    config: Config
    rules: list[Rule]
    knowledge: Knowledge
    select: list[str]
    ignore: list[str]
    stamp: tuple[int, int] | None = None
    root: Path | None = None
    files: list[Path] | None = None  # the project's source files (found once)
    summaries: dict[str, tuple[tuple[int, int], FileSummary | None]] = field(
        default_factory=dict)

    def project_files(self) -> list[Path]:
        """The source files of the project (absolute), found on first use."""
        if self.files is None:
            found: list[Path] = []
            if self.root is not None:
                found, _ = discover([self.root])
                found = [Path(p).absolute() for p in found if not self.config.excluded(p)]
            self.files = found if len(found) <= MAX_PROJECT_FILES else []
        return self.files

    def summary(self, path: Path, options: Options) -> FileSummary | None:
        """The summary of a file on disk (cached by modification time and size)."""
        name = path.as_posix()
        try:
            st = path.stat()
            stamp = (st.st_mtime_ns, st.st_size)
        except OSError:
            return None
        cached = self.summaries.get(name)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        try:
            raw = read_file(path)
        except OSError:
            return None
        summary, _, _ = summarize_bytes(name, raw, self.knowledge, options)
        self.summaries[name] = (stamp, summary)
        return summary

    @property
    def active(self) -> list[Rule]:
        from ddilint.cli import selected

        return [r for r in self.rules if selected(r.code, r.name, self.select, self.ignore)]


@dataclass
class DocState:
    """What the server knows about an open document."""

    findings: list[Finding] = field(default_factory=list)
    index: LineIndex | None = None
    version: int | None = None  # of the text the findings were computed on
    pending: asyncio.Task[None] | None = None


class DdilintServer(LanguageServer):
    """The ddilint language server."""

    def __init__(self, debounce: float = DEBOUNCE_SECONDS) -> None:
        super().__init__("ddilint", __version__,
                         text_document_sync_kind=lsp.TextDocumentSyncKind.Incremental)
        self.debounce = debounce
        self.docs: dict[str, DocState] = {}
        self.projects: dict[str, ProjectState] = {}
        self.reported_errors: set[str] = set()
        self.analysis_lock = asyncio.Lock()
        self.busy: set[asyncio.Task[None]] = set()  # refreshes whose analysis is running

    def position_encoding(self) -> str:
        """The position encoding agreed with the client ("utf-16" before initialization)."""
        try:
            enc = self.workspace.position_encoding or "utf-16"
        except RuntimeError:
            return "utf-16"
        return str(getattr(enc, "value", enc))

    # -- settings ---------------------------------------------------------------------------
    def project_for(self, path: Path) -> ProjectState:
        """The settings for a file: its config (re-read when the file changed)."""
        from ddilint.cli import load_project

        cfg_path = find_config_file(path)
        key = str(cfg_path) if cfg_path else ""
        if not key:
            root = find_project_root(path)
            key = str(root) if root is not None else ""
        stamp = None
        if cfg_path is not None:
            st = cfg_path.stat()
            stamp = (st.st_mtime_ns, st.st_size)
        cached = self.projects.get(key)
        if cached is not None and cached.stamp == stamp:
            return cached
        args: Any = type("Args", (), {"config": str(cfg_path) if cfg_path else None,
                                      "isolated": cfg_path is None})()
        try:
            cfg, rules, knowledge = load_project([str(path)], args)
        except ConfigError as exc:
            message = f"ddilint: {exc} (using the default settings)"
            if message not in self.reported_errors:
                self.reported_errors.add(message)
                self.window_show_message(lsp.ShowMessageParams(
                    type=lsp.MessageType.Error, message=message))
            args.config, args.isolated = None, True
            cfg, rules, knowledge = load_project([str(path)], args)
        root = cfg.root if cfg.path is not None else find_project_root(path)
        state = ProjectState(cfg, rules, knowledge, list(cfg.select), list(cfg.ignore), stamp,
                             root)
        if key or root is not None:
            self.projects[key or str(root)] = state
        return state

    # -- analysis ---------------------------------------------------------------------------
    def analyze(self, uri: str, text: str,
                buffers: dict[str, str] | None = None) -> list[Finding]:
        """Findings for a buffer, in the context of its project (runs in a worker thread).
        `buffers` are the texts of the open documents (path -> text): unsaved edits of other
        files count too."""
        from ddilint.cli import keep_findings

        fs_path = to_fs_path(uri)
        if fs_path is None:
            return []
        path = Path(fs_path).absolute()
        project = self.project_for(path)
        if project.config.excluded(path):
            return []
        name = path.as_posix()
        options = Options(roles=dict(project.config.roles), file_modes={
            p.as_posix(): m for p in [path, *project.project_files()]
            if (m := project.config.mode_for(p)) is not None})
        active = project.active
        data = text.encode("utf-8")
        if not project.project_files():
            findings = analyze_bytes(name, data, active, project.knowledge, options).findings
        else:
            # Parse once: the buffer's summary joins the project model, its pending parts
            # are resolved on it.
            facts = file_facts(name, data, active, project.knowledge, options)
            model = self.project_model(project, facts.summary, options, buffers or {}, data)
            settled = {name: facts}
            settle_modes(settled, [name], model.files)
            facts = settled[name]
            findings = resolve(facts, name, active, project.knowledge, options, model)
        return keep_findings(findings, project.config, project.select, project.ignore,
                             active, {name}, lambda p: text if p == name else None)

    def project_model(self, project: ProjectState, own: FileSummary | None, options: Options,
                      buffers: dict[str, str], data: bytes = b"") -> Project:
        """The whole-program model with this buffer's summary (and other open buffers) in
        place of their files on disk; `data`, this buffer's bytes."""
        summaries: list[FileSummary] = [own] if own is not None else []
        name = own.path if own is not None else ""
        for p in project.project_files():
            pname = p.as_posix()
            if pname == name:
                continue
            if pname in buffers:
                s, _, _ = summarize_bytes(pname, buffers[pname].encode("utf-8"),
                                          project.knowledge, options)
            else:
                s = project.summary(p, options)
            if s is not None:
                summaries.append(s)
        # Only this buffer's answers are asked of it (`Project`'s focus).
        texts = {p: t.encode("utf-8") for p, t in buffers.items()}
        if name and data:
            texts[name] = data
        return Project(summaries, project.knowledge, options.roles,
                       focus={name} if name else None, reader=ir_reader(options, texts))

    def diagnostics(self, uri: str, text: str, findings: Sequence[Finding]) -> list[
            lsp.Diagnostic]:
        index = LineIndex(text, self.position_encoding())
        self.docs.setdefault(uri, DocState()).index = index
        out: list[lsp.Diagnostic] = []
        for i, f in enumerate(findings):
            related = [
                lsp.DiagnosticRelatedInformation(
                    location=lsp.Location(uri=self._uri_of(step.location.path, uri),
                                          range=self._step_range(step.location, index, uri)),
                    message=step.message)
                for step in (*f.trace, *f.related)
            ]
            href = self._doc_url(f)
            out.append(lsp.Diagnostic(
                range=index.range_of(f.location),
                severity=SEVERITY[f.severity],
                code=f.code,
                code_description=lsp.CodeDescription(href=href) if href else None,
                source="ddilint",
                message=f"{f.message} ({f.name})",
                related_information=related or None,
                data={"index": i},
            ))
        return out

    def _doc_url(self, f: Finding) -> str:
        if f.citation is not None and f.citation.url.startswith("http"):
            return f.citation.url
        for project in self.projects.values():
            for r in project.rules:
                if r.code == f.code:
                    return r.help_uri(project.knowledge)
        return ""

    def _uri_of(self, path: str, default: str) -> str:
        doc_path = to_fs_path(default)
        if doc_path is not None and Path(doc_path).as_posix() == path:
            return default
        return from_fs_path(path) or default

    def _step_range(self, loc: Location, index: LineIndex, uri: str) -> lsp.Range:
        if self._uri_of(loc.path, uri) == uri:
            return index.range_of(loc)
        pos = lsp.Position(line=max(0, loc.line - 1), character=max(0, loc.column - 1))
        return lsp.Range(start=pos, end=pos)

    async def refresh(self, uri: str, delay: float = 0.0) -> None:
        """Analyze the document's current text (after `delay`) and publish diagnostics,
        unless it changed again meanwhile."""
        if delay:
            await asyncio.sleep(delay)
        # One analysis at a time (they are CPU-bound: two at once only slow each other); a
        # running one is never cancelled, a newer edit waits here and then reads the
        # latest text.
        async with self.analysis_lock:
            if uri not in self.docs:
                return
            doc = self.workspace.get_text_document(uri)
            version, text = doc.version, doc.source
            buffers: dict[str, str] = {}
            for other_uri, other in self.workspace.text_documents.items():
                other_path = to_fs_path(other_uri)
                if other_uri != uri and other_path is not None:
                    buffers[Path(other_path).absolute().as_posix()] = other.source
            task = asyncio.current_task()
            if task is not None:
                self.busy.add(task)
            try:
                findings = await asyncio.to_thread(self.analyze, uri, text, buffers)
            except Exception as exc:  # never take the server down
                log.exception("analysis failed")
                self.window_log_message(lsp.LogMessageParams(
                    type=lsp.MessageType.Error, message=f"ddilint: analysis failed: {exc}"))
                return
            finally:
                if task is not None:
                    self.busy.discard(task)
        current = self.workspace.get_text_document(uri)
        if current.version != version or uri not in self.docs:
            return  # a newer edit will publish
        diagnostics = self.diagnostics(uri, text, findings)
        self.docs[uri].findings = list(findings)
        self.docs[uri].version = version
        self.text_document_publish_diagnostics(lsp.PublishDiagnosticsParams(
            uri=uri, diagnostics=diagnostics, version=version))

    def schedule(self, uri: str, delay: float) -> None:
        state = self.docs.setdefault(uri, DocState())
        if (state.pending is not None and not state.pending.done()
                and state.pending not in self.busy):
            state.pending.cancel()  # still waiting: the new edit supersedes it
        state.pending = asyncio.ensure_future(self.refresh(uri, delay))

    # -- code actions -------------------------------------------------------------------------
    def code_actions(self, params: lsp.CodeActionParams) -> list[lsp.CodeAction]:
        """Quick fixes for the findings in the range: each fix a finding carries, and a
        suppression comment for the line. Edits are for the version the diagnostics were
        computed on (a client that supports versioned edits rejects them if stale)."""
        uri = params.text_document.uri
        state = self.docs.get(uri)
        if state is None or state.index is None:
            return []
        index = state.index
        wanted = {(d.range.start.line, d.code) for d in params.context.diagnostics}
        out: list[lsp.CodeAction] = []
        suppress: list[lsp.CodeAction] = []
        diags = self.diagnostics(uri, index.text, state.findings)
        for f, diag in zip(state.findings, diags, strict=True):
            r = diag.range
            inside = (r.start.line <= params.range.end.line
                      and params.range.start.line <= r.end.line)
            if f.is_notice or (not inside and (r.start.line, f.code) not in wanted):
                continue
            for fix in f.fixes:
                edits = [lsp.TextEdit(range=lsp.Range(start=index.from_offset(e.start),
                                                      end=index.from_offset(e.end)),
                                      new_text=e.replacement) for e in fix.edits]
                out.append(lsp.CodeAction(
                    title=f"{fix.description} ({f.code})",
                    kind=lsp.CodeActionKind.QuickFix,
                    diagnostics=[diag],
                    is_preferred=True,
                    edit=self._edit(uri, state.version, edits),
                ))
            edit = suppression_edit(index, f.location.line, f.code)
            if edit is not None:
                suppress.append(lsp.CodeAction(
                    title=f"Suppress {f.code} on this line (// ddilint: ignore[{f.code}])",
                    kind=lsp.CodeActionKind.QuickFix,
                    diagnostics=[diag],
                    edit=self._edit(uri, state.version, [edit]),
                ))
        return out + suppress

    def _edit(self, uri: str, version: int | None,
              edits: list[lsp.TextEdit]) -> lsp.WorkspaceEdit:
        try:
            caps = self.client_capabilities.workspace
            versioned = bool(caps and caps.workspace_edit and
                             caps.workspace_edit.document_changes)
        except Exception:  # before initialization
            versioned = False
        if versioned:
            return lsp.WorkspaceEdit(document_changes=[lsp.TextDocumentEdit(
                text_document=lsp.OptionalVersionedTextDocumentIdentifier(uri=uri,
                                                                          version=version),
                edits=list(edits))])
        return lsp.WorkspaceEdit(changes={uri: list(edits)})


def suppression_edit(index: LineIndex, line: int, code: str) -> lsp.TextEdit | None:
    """The edit that silences `code` on a 1-based line: the code added to the line's
    `ddilint: ignore[...]` comment, or a new `// ddilint: ignore[CODE]` at the line's end.
    None on a line that continues a macro (a comment there would end it)."""
    text = index.line(line)
    if text.rstrip().endswith("\\"):
        return None
    m = re.search(r"ddilint:\s*ignore\[([^\]\n]*)\]", text)
    if m is not None:
        if code in [c.strip() for c in m.group(1).split(",")]:
            return None
        at = index.from_column(line, m.end(1) + 1)
        sep = ", " if m.group(1).strip() else ""
        return lsp.TextEdit(range=lsp.Range(start=at, end=at), new_text=f"{sep}{code}")
    body = text.rstrip()
    at = index.from_column(line, len(body) + 1)
    end = index.from_column(line, len(text) + 1)
    return lsp.TextEdit(range=lsp.Range(start=at, end=end),
                        new_text=f"  // ddilint: ignore[{code}]")


def _is_source(uri: str) -> bool:
    dot = uri.rfind(".")
    return dot >= 0 and uri[dot:].lower() in SOURCE_SUFFIXES


def build_server(debounce: float = DEBOUNCE_SECONDS) -> DdilintServer:
    """A server with its handlers registered."""
    server = DdilintServer(debounce)

    @server.feature(lsp.TEXT_DOCUMENT_DID_OPEN)
    async def did_open(ls: DdilintServer, params: lsp.DidOpenTextDocumentParams) -> None:
        if _is_source(params.text_document.uri):
            ls.docs.setdefault(params.text_document.uri, DocState())
            ls.schedule(params.text_document.uri, 0.0)

    @server.feature(lsp.TEXT_DOCUMENT_DID_CHANGE)
    async def did_change(ls: DdilintServer, params: lsp.DidChangeTextDocumentParams) -> None:
        if _is_source(params.text_document.uri):
            ls.schedule(params.text_document.uri, ls.debounce)

    @server.feature(lsp.TEXT_DOCUMENT_DID_SAVE)
    async def did_save(ls: DdilintServer, params: lsp.DidSaveTextDocumentParams) -> None:
        if _is_source(params.text_document.uri):
            # The saved file may change what other open files see (callers, roles).
            for uri in list(ls.docs):
                ls.schedule(uri, 0.0 if uri == params.text_document.uri else ls.debounce)

    @server.feature(lsp.TEXT_DOCUMENT_DID_CLOSE)
    async def did_close(ls: DdilintServer, params: lsp.DidCloseTextDocumentParams) -> None:
        state = ls.docs.pop(params.text_document.uri, None)
        if state is not None and state.pending is not None:
            state.pending.cancel()
        ls.text_document_publish_diagnostics(lsp.PublishDiagnosticsParams(
            uri=params.text_document.uri, diagnostics=[]))

    @server.feature(lsp.TEXT_DOCUMENT_CODE_ACTION, lsp.CodeActionOptions(
        code_action_kinds=[lsp.CodeActionKind.QuickFix]))
    def code_action(ls: DdilintServer, params: lsp.CodeActionParams) -> list[lsp.CodeAction]:
        return ls.code_actions(params)

    return server


def serve(debounce: float = DEBOUNCE_SECONDS) -> int:
    """Run the server on stdin/stdout until the client says exit."""
    # The server keeps the knowledge table and its projects' summaries for its whole life,
    # and an analysis allocates hundreds of thousands of short-lived objects: with the
    # default thresholds the collector walked the long-lived ones several times per
    # analysis (`QUIET_GC_THRESHOLD`). Cyclic garbage is still collected, less often.
    gc.set_threshold(*QUIET_GC_THRESHOLD)
    build_server(debounce).start_io()
    return 0
