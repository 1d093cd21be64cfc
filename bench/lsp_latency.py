"""How long from `textDocument/didChange` to the diagnostics of that version, on a generated
3,000-line driver file, through `ddilint lsp` over a real stdio pipe.

    .venv/bin/python bench/lsp_latency.py [--lines 3000] [--edits 5] [--debounce 0.3]

Prints the median and max latency with the configured debounce, and the time the analysis
itself takes (debounce 0).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.lsp_client import LspClient  # noqa: E402

FUNCTION = """
_IRQL_requires_max_(PASSIVE_LEVEL)
NTSTATUS
Worker{n}(_In_ PDEVICE_OBJECT DeviceObject, _Inout_ PIRP Irp)
{{
    HANDLE token = NULL;
    NTSTATUS status;
    ULONG i;

    UNREFERENCED_PARAMETER(DeviceObject);
    for (i = 0; i < {n} % 7; i++) {{
        if (Irp->IoStatus.Information > i) {{
            break;
        }}
    }}
    status = ZwOpenProcessTokenEx(NtCurrentProcess(), TOKEN_QUERY,
                                  OBJ_KERNEL_HANDLE, &token);
    if (!NT_SUCCESS(status)) {{
        goto Exit;
    }}
    __try {{
        status = STATUS_SUCCESS;
    }} __finally {{
        {close}(token);
    }}
Exit:
    Irp->IoStatus.Status = status;
    return status;
}}
"""


def make_driver(lines: int) -> str:
    parts = ["#include <ntifs.h>\n"]
    n = 0
    while sum(p.count("\n") for p in parts) < lines:
        parts.append(FUNCTION.format(n=n, close="NtClose" if n % 10 == 0 else "ZwClose"))
        n += 1
    return "".join(parts)


def measure(text: str, debounce: float, edits: int, others: int) -> list[float]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bigdriver.c"
        path.write_text(text)
        if others:  # a project: the config marks its root, the other files are summarized
            (Path(tmp) / ".ddilint.toml").write_text("")
            for i in range(others):
                (Path(tmp) / f"other{i}.c").write_text(make_driver(300).replace(
                    "Worker", f"Other{i}Worker"))
        uri = path.as_uri()
        exe = Path(sys.executable).with_name("ddilint")
        cmd = [str(exe) if exe.exists() else sys.executable, *(
            [] if exe.exists() else ["-m", "ddilint"]), "lsp", "--debounce", str(debounce)]
        c = LspClient(cmd)
        c.initialize(Path(tmp))
        c.notify("textDocument/didOpen", {"textDocument": {
            "uri": uri, "languageId": "c", "version": 1, "text": text}})
        c.diagnostics(uri, 1, timeout=120)
        out: list[float] = []
        line = text.count("\n") // 2
        for k in range(edits):
            version = k + 2
            started = time.perf_counter()
            c.notify("textDocument/didChange", {
                "textDocument": {"uri": uri, "version": version},
                "contentChanges": [{"range": {"start": {"line": line, "character": 0},
                                              "end": {"line": line, "character": 0}},
                                    "text": f"/* edit {k} */"}]})
            c.diagnostics(uri, version, timeout=120)
            out.append(time.perf_counter() - started)
        c.close()
        return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lines", type=int, default=3000)
    ap.add_argument("--edits", type=int, default=5)
    ap.add_argument("--debounce", type=float, default=0.3)
    ap.add_argument("--others", type=int, default=20,
                    help="other 300-line files in the project (whole-program context)")
    a = ap.parse_args()
    text = make_driver(a.lines)
    print(f"driver: {text.count(chr(10))} lines, {len(text)} bytes, "
          f"{text.count('NTSTATUS') // 2} functions")
    for others in (0, a.others):
        for debounce in (a.debounce, 0.0):
            t = measure(text, debounce, a.edits, others)
            where = f"in a project of {others + 1} files" if others else "alone"
            print(f"{where}, debounce {debounce:.2f}s: didChange -> diagnostics median "
                  f"{statistics.median(t) * 1000:.0f} ms, max {max(t) * 1000:.0f} ms "
                  f"({a.edits} edits)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
