"""A small real LSP client: JSON-RPC 2.0 with Content-Length framing over a subprocess's
stdin/stdout pipes (used by the tests and by bench/lsp_latency.py)."""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any


class LspClient:
    """Starts `ddilint lsp` (or `cmd`) and talks to it over pipes."""

    def __init__(self, cmd: Sequence[str] | None = None, cwd: str | Path | None = None) -> None:
        exe = Path(sys.executable).with_name("ddilint")
        base = [str(exe)] if exe.exists() else [sys.executable, "-m", "ddilint"]
        self.proc = subprocess.Popen(list(cmd or [*base, "lsp"]), stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=cwd)
        self.next_id = 0
        self.messages: queue.Queue[dict[str, Any]] = queue.Queue()
        self.backlog: list[dict[str, Any]] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        out: IO[bytes] = self.proc.stdout  # type: ignore[assignment]
        while True:
            headers: dict[str, str] = {}
            while True:
                line = out.readline()
                if not line:
                    return
                line = line.strip()
                if not line:
                    break
                k, _, v = line.decode("ascii").partition(":")
                headers[k.strip().lower()] = v.strip()
            body = out.read(int(headers["content-length"]))
            self.messages.put(json.loads(body))

    def _send(self, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode("utf-8")
        stdin: IO[bytes] = self.proc.stdin  # type: ignore[assignment]
        stdin.write(f"Content-Length: {len(data)}\r\n\r\n".encode("ascii") + data)
        stdin.flush()

    def notify(self, method: str, params: Any) -> None:
        self._send({"jsonrpc": "2.0", "method": method, "params": params})

    def request(self, method: str, params: Any, timeout: float = 60) -> Any:
        self.next_id += 1
        rid = self.next_id
        self._send({"jsonrpc": "2.0", "id": rid, "method": method, "params": params})
        msg = self.wait(lambda m: m.get("id") == rid and "method" not in m, timeout)
        if "error" in msg:
            raise RuntimeError(f"{method}: {msg['error']}")
        return msg.get("result")

    def wait(self, pred: Any, timeout: float = 60) -> dict[str, Any]:
        """The first message (kept or new) that `pred` accepts."""
        for i, m in enumerate(self.backlog):
            if pred(m):
                return self.backlog.pop(i)
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no matching message from the server")
            try:
                m = self.messages.get(timeout=left)
            except queue.Empty as exc:
                raise TimeoutError("no matching message from the server") from exc
            if m.get("method") and "id" in m:  # a server->client request: answer it
                self._send({"jsonrpc": "2.0", "id": m["id"], "result": None})
                continue
            if pred(m):
                return m
            self.backlog.append(m)

    def diagnostics(self, uri: str, version: int | None = None,
                    timeout: float = 60) -> dict[str, Any]:
        """The next publishDiagnostics for `uri` (for `version` when given)."""
        def pred(m: dict[str, Any]) -> bool:
            if m.get("method") != "textDocument/publishDiagnostics":
                return False
            p = m["params"]
            return bool(p["uri"] == uri and (version is None or p.get("version") == version))
        params: dict[str, Any] = self.wait(pred, timeout)["params"]
        return params

    def initialize(self, root: Path, encodings: Sequence[str] = ("utf-16",)) -> Any:
        result = self.request("initialize", {
            "processId": None, "rootUri": root.as_uri(),
            "capabilities": {"general": {"positionEncodings": list(encodings)},
                             "workspace": {"workspaceEdit": {"documentChanges": True}},
                             "textDocument": {
                "publishDiagnostics": {"relatedInformation": True, "versionSupport": True,
                                       "codeDescriptionSupport": True},
                "codeAction": {"codeActionLiteralSupport": {"codeActionKind": {
                    "valueSet": ["quickfix"]}}}}},
        })
        self.notify("initialized", {})
        return result

    def close(self) -> int:
        try:
            self.request("shutdown", None, timeout=20)
            self.notify("exit", None)
            return self.proc.wait(timeout=20)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
