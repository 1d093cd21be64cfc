"""The compiled build (setup.py): a regular install with a C compiler at hand compiles the
engine with mypyc. These tests build that wheel once, from this checkout, and hold it to
the pure-Python build's results: the fixtures, the example driver, the deep and broken
inputs of test_robustness, mutated fixtures, a cache filled and read again, and pickles.
Two more builds check the way back to pure Python: a compiler that fails, and
DDILINT_PURE_PYTHON=1. The rest of the suite runs the pure build (the editable install)."""

from __future__ import annotations

import codecs
import dataclasses
import importlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from hypothesis import Phase, given, settings

from tests.fuzz.mutations import mutated, seed_files
from tests.test_robustness import DEEP

ROOT = Path(__file__).resolve().parents[1]


def _engine_modules() -> list[str]:
    """The modules setup.py compiles, by name."""
    spec = importlib.util.spec_from_file_location("ddilint_setup", ROOT / "setup.py")
    assert spec is not None and spec.loader is not None
    setup_py = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(setup_py)
    paths: list[str] = setup_py.compiled_modules()
    return [p.removesuffix(".py").removesuffix("/__init__").replace("/", ".") for p in paths]


def test_every_frozen_dataclass_of_the_engine_pickles_through_init() -> None:
    # Compiled, a frozen dataclass cannot be unpickled by assigning its fields: each one
    # pickles as (class, values) instead (`compact_pickle`).
    checked = 0
    for name in _engine_modules():
        module = importlib.import_module(name)
        for cls in vars(module).values():
            if (isinstance(cls, type) and cls.__module__ == name
                    and dataclasses.is_dataclass(cls) and cls.__dataclass_params__.frozen):  # type: ignore[attr-defined]
                assert "__reduce__" in vars(cls), f"{name}.{cls.__name__}"
                checked += 1
    assert checked >= 20


def _build_wheel(tmp: Path, **env_changes: str) -> tuple[Path, list[str], str]:
    """Build this checkout's wheel as pip does for a user; its path, the compiled modules
    it holds, and pip's output."""
    src = tmp / "src"
    shutil.copytree(ROOT / "ddilint", src / "ddilint",
                    ignore=shutil.ignore_patterns("__pycache__", "*.so", "*.pyd"))
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    env = {k: v for k, v in os.environ.items() if k != "DDILINT_PURE_PYTHON"}
    env.update(env_changes)
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-v", "--no-deps", "-w", str(tmp / "dist"),
         str(src)], capture_output=True, text=True, timeout=1500, env=env)
    log = built.stdout[-6000:] + built.stderr[-6000:]
    assert built.returncode == 0, log
    wheel = next((tmp / "dist").glob("ddilint-*.whl"))
    with zipfile.ZipFile(wheel) as zf:
        compiled = [n for n in zf.namelist() if n.endswith((".so", ".pyd"))]
        assert "ddilint/analyzer/frontend.py" in zf.namelist()
    return wheel, compiled, built.stdout + built.stderr


@pytest.mark.skipif(sys.platform == "win32", reason="CC=false names a Unix command")
def test_a_failed_compile_installs_the_pure_package(tmp_path: Path) -> None:
    # No compiler (here: one that always fails): the install goes on, pure Python.
    _wheel, compiled, log = _build_wheel(tmp_path, CC="false")
    assert compiled == []
    assert "warning: ddilint: compiling the engine failed" in log


def test_ddilint_pure_python_skips_the_compile(tmp_path: Path) -> None:
    _wheel, compiled, log = _build_wheel(tmp_path, DDILINT_PURE_PYTHON="1")
    assert compiled == []
    assert "compiling the engine failed" not in log


@pytest.fixture(scope="module")
def compiled_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding the compiled build of this checkout, for PYTHONPATH."""
    if not any(shutil.which(cc) for cc in ("cc", "gcc", "clang")):
        pytest.skip("no C compiler here: an install is pure Python (the rest of the suite)")
    tmp = tmp_path_factory.mktemp("compiled")
    wheel, compiled, log = _build_wheel(tmp)
    # With a compiler at hand, a build that fell back to pure Python is a defect.
    assert len(compiled) > len(_engine_modules()), log[-4000:]
    site = tmp / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target",
                    str(site), str(wheel)], check=True, timeout=300)
    return site


def _ddilint(site: Path | None, args: list[str], cwd: Path,
             ) -> subprocess.CompletedProcess[str]:
    """Run ddilint from the compiled build at `site`, or the pure one (None). The working
    folder is never this checkout, whose sources would come first on the path."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    if site is not None:
        env["PYTHONPATH"] = str(site)
    return subprocess.run([sys.executable, "-m", "ddilint", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


def _findings(site: Path | None, paths: list[Path], cwd: Path,
              *extra: str) -> list[dict[str, object]]:
    proc = _ddilint(site, ["check", "--format", "json", "--isolated", *extra,
                           *map(str, paths)], cwd)
    assert proc.returncode in (0, 1), proc.stderr[-4000:]
    out: list[dict[str, object]] = json.loads(proc.stdout)
    return out


def test_the_compiled_build_runs_compiled(compiled_site: Path, tmp_path: Path) -> None:
    proc = _ddilint(compiled_site, ["--version"], tmp_path)
    assert proc.stdout.strip().endswith("(compiled)"), proc.stdout + proc.stderr
    probe = subprocess.run(
        [sys.executable, "-c", "import ddilint.analyzer.frontend as f; print(f.__file__)"],
        cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(compiled_site)},
        capture_output=True, text=True, timeout=60)
    assert probe.stdout.strip().startswith(str(compiled_site))
    assert not probe.stdout.strip().endswith(".py")
    assert _ddilint(None, ["--version"], tmp_path).stdout.strip().endswith("(pure Python)")


def test_the_compiled_build_gives_the_pure_findings(compiled_site: Path, tmp_path: Path) -> None:
    paths = [ROOT / "fixtures", ROOT / "examples"]
    pure = _findings(None, paths, tmp_path, "--no-cache")
    assert len(pure) > 300 and any(f["code"] == "DDI301" for f in pure)
    assert _findings(compiled_site, paths, tmp_path, "--no-cache", "-j", "1") == pure
    assert _findings(compiled_site, paths, tmp_path, "--no-cache", "-j", "2") == pure


def test_the_compiled_build_fills_and_reads_its_cache(compiled_site: Path, tmp_path: Path,
                                                      ) -> None:
    # The cache holds pickles of the compiled classes: a warm run must read them back.
    cache = ["--cache-dir", str(tmp_path / "cache")]
    paths = [ROOT / "fixtures"]
    cold = _findings(None, paths, tmp_path, "--no-cache")
    assert _findings(compiled_site, paths, tmp_path, *cache) == cold
    assert (tmp_path / "cache").exists()
    assert _findings(compiled_site, paths, tmp_path, *cache) == cold
    assert _findings(compiled_site, paths, tmp_path, *cache, "-j", "2") == cold


def test_the_compiled_knowledge_pickles(compiled_site: Path, tmp_path: Path,
                                                     ) -> None:
    script = (
        "import pickle\n"
        "from ddilint.knowledge import load_knowledge\n"
        "k = load_knowledge()\n"
        "table = dict(k.routines.items())\n"
        "again = pickle.loads(pickle.dumps(k.routines))\n"
        "assert dict(again) == table, 'table'\n"
        "assert pickle.loads(pickle.dumps(k)) == k, 'knowledge'\n"
        "print(len(table))\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": str(compiled_site)},
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert int(proc.stdout) > 1000


def _broken_inputs(folder: Path) -> None:
    """The deep inputs of test_robustness, bad encodings, and mutated seeds (tests/fuzz)."""
    folder.mkdir()
    for name, text in DEEP.items():
        (folder / f"deep_{name}.c").write_text(text)
    (folder / "utf16.c").write_bytes(codecs.BOM_UTF16_LE + DEEP["blocks"].encode("utf-16-le"))
    (folder / "binary.c").write_bytes(bytes(range(256)) * 64)
    (folder / "nul.c").write_bytes(b"VOID F(void)\n{\n    NtClose(h);\n\0\0\0 x = 1;\n}\n")
    (folder / "comment.c").write_bytes(b"VOID F(void)\n{\n    NtClose(h);\n}\n/* never ends\n")
    for i, data in enumerate(_mutated_seeds(150)):
        (folder / f"mutated_{i:03}.c").write_bytes(data)


def _mutated_seeds(count: int) -> list[bytes]:
    """`count` fixtures and examples mutated as the fuzz tests mutate them, the same ones
    every run (derandomized)."""
    seeds = [p.read_bytes() for p in seed_files()]
    out: list[bytes] = []

    @settings(max_examples=count, derandomize=True, database=None, deadline=None,
              phases=[Phase.generate])
    @given(mutated(seeds))
    def collect(data: bytes) -> None:
        out.append(data)

    collect()
    return out


def test_the_compiled_build_survives_what_the_pure_one_survives(
        compiled_site: Path, tmp_path: Path) -> None:
    # Compiled frames are C frames: no RecursionError guards them, so every recursion in
    # the engine must stop at its own limit. A crash would show here as a signal.
    folder = tmp_path / "inputs"
    _broken_inputs(folder)
    pure = _findings(None, [folder], tmp_path, "--no-cache")
    assert any(f["code"] == "DDI905" for f in pure)  # the deepest inputs are notices
    assert _findings(compiled_site, [folder], tmp_path, "--no-cache", "-j", "2") == pure
