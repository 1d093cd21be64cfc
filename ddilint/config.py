"""Project configuration: `[tool.ddilint]` in `pyproject.toml` or a `.ddilint.toml`.

The config file is found by walking up from the analyzed path: the first directory that has
a `.ddilint.toml`, or a `pyproject.toml` with a `[tool.ddilint]` table, wins. Globs in the
config (`exclude`, `per-file-ignores`, `mode`) are relative to the config file's directory.
Every key is checked when the file is read: a bad value is a `ConfigError` that names the
file and the key (the command line turns it into exit status 2).

    [tool.ddilint]
    select = ["DDI1", "DDI2", "DDI4"]
    ignore = ["DDI503"]
    exclude = ["third_party/**"]
    mode = {"umdf/**" = "user", "**" = "auto"}      # or one word: "kernel" / "user" / "auto"
    roles = {"MyDpc" = "dpc"}                        # function name -> role
    [tool.ddilint.per-file-ignores]
    "legacy/*.c" = ["DDI401"]
    [tool.ddilint.routines.MyOpenHandle]             # extra knowledge, overlay.toml keys
    handle_out_param = 0
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

CONFIG_NAMES = (".ddilint.toml", "pyproject.toml")
MODES = ("kernel", "user", "auto")
KNOWN_KEYS = frozenset({
    "select", "ignore", "per-file-ignores", "exclude", "mode", "roles", "routines",
})


class ConfigError(Exception):
    """A config file that cannot be used; the message names the file and the key."""


@dataclass
class Config:
    """The settings of one project, with the directory its globs are relative to."""

    path: Path | None = None
    root: Path = field(default_factory=Path.cwd)
    select: list[str] = field(default_factory=list)
    ignore: list[str] = field(default_factory=list)
    per_file_ignores: list[tuple[str, list[str]]] = field(default_factory=list)
    exclude: list[str] = field(default_factory=list)
    modes: list[tuple[str, str]] = field(default_factory=list)  # (glob, mode), first wins
    roles: dict[str, str] = field(default_factory=dict)
    routines: dict[str, dict[str, Any]] = field(default_factory=dict)

    def relative(self, path: str | Path) -> str:
        """`path` relative to the config's directory, POSIX style (or as given if outside)."""
        p = Path(path)
        try:
            return Path(os.path.relpath(p.resolve(), self.root.resolve())).as_posix()
        except ValueError:  # another drive on Windows
            return p.as_posix()

    def mode_for(self, path: str | Path) -> str | None:
        """"kernel" or "user" when the config fixes the mode of this file, else None."""
        if not self.modes:
            return None
        rel = self.relative(path)
        for pattern, mode in self.modes:
            if glob_match(rel, pattern):
                return None if mode == "auto" else mode
        return None

    def ignored_for(self, path: str | Path) -> list[str]:
        """The per-file-ignores selectors that apply to this file."""
        if not self.per_file_ignores:
            return []
        rel = self.relative(path)
        out: list[str] = []
        for pattern, selectors in self.per_file_ignores:
            if glob_match(rel, pattern):
                out.extend(selectors)
        return out

    def excluded(self, path: str | Path) -> bool:
        """Whether the config's `exclude` globs drop this file."""
        if not self.exclude:
            return False
        rel = self.relative(path)
        return any(glob_match(rel, pattern) for pattern in self.exclude)


def glob_match(rel: str, pattern: str) -> bool:
    """Match a POSIX relative path against a glob. `*` also crosses `/` (as in fnmatch), a
    pattern without `/` also matches the file name alone, `dir/**` matches everything under
    `dir`, and a leading `./` is ignored."""
    pattern = pattern.removeprefix("./")
    if fnmatch(rel, pattern):
        return True
    if pattern.endswith("/**") and (rel == pattern[:-3] or rel.startswith(pattern[:-2])):
        return True
    if "/" not in pattern and fnmatch(rel.rsplit("/", 1)[-1], pattern):
        return True
    return pattern.startswith("**/") and glob_match(rel, pattern[3:])


def find_config_file(start: str | Path) -> Path | None:
    """The nearest `.ddilint.toml` or `pyproject.toml` with `[tool.ddilint]`, walking up."""
    p = Path(start).resolve()
    directory = p if p.is_dir() else p.parent
    for d in (directory, *directory.parents):
        candidate = d / ".ddilint.toml"
        if candidate.is_file():
            return candidate
        candidate = d / "pyproject.toml"
        if candidate.is_file() and _has_tool_table(candidate):
            return candidate
    return None


def find_project_root(start: str | Path) -> Path | None:
    """The directory of the nearest config file or, failing that, repository root
    (a directory holding `.git`, `.hg` or `.svn`), walking up from `start`."""
    cfg = find_config_file(start)
    if cfg is not None:
        return cfg.parent
    p = Path(start).resolve()
    directory = p if p.is_dir() else p.parent
    for d in (directory, *directory.parents):
        if any((d / marker).exists() for marker in (".git", ".hg", ".svn")):
            return d
    return None


def _has_tool_table(path: Path) -> bool:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError):
        return False
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        # Broken TOML: ours to report only when it mentions our table.
        return "tool.ddilint" in text
    tool = data.get("tool")
    return isinstance(tool, dict) and "ddilint" in tool


def load_config(path: Path) -> Config:
    """Read and check a config file. Raises ConfigError naming the file and key."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8-sig"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: the config file is not UTF-8 text") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    if path.name == "pyproject.toml":
        table: Any = data.get("tool", {}).get("ddilint", {})
        prefix = "tool.ddilint"
    else:
        table, prefix = data, ""
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: [{prefix}] must be a table")
    return parse_config(table, path, prefix)


def parse_config(table: Mapping[str, Any], path: Path, prefix: str = "") -> Config:
    """Build a Config from an already-read table (keys checked one by one)."""

    def key(name: str) -> str:
        return f"{prefix}.{name}" if prefix else name

    def fail(name: str, what: str) -> ConfigError:
        return ConfigError(f"{path}: key '{key(name)}': {what}")

    def str_list(name: str, value: Any) -> list[str]:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise fail(name, "expected a list of strings")
        out: list[str] = []
        for v in value:
            out.extend(x.strip() for x in v.split(",") if x.strip())
        return out

    cfg = Config(path=path, root=path.parent)
    for name, value in table.items():
        if name not in KNOWN_KEYS:
            known = ", ".join(sorted(KNOWN_KEYS))
            raise fail(name, f"unknown key (known keys: {known})")
        if name == "select":
            cfg.select = str_list(name, value)
        elif name == "ignore":
            cfg.ignore = str_list(name, value)
        elif name == "exclude":
            cfg.exclude = str_list(name, value)
        elif name == "per-file-ignores":
            if not isinstance(value, dict):
                raise fail(name, "expected a table of glob = [codes or names]")
            cfg.per_file_ignores = [(g, str_list(f"{name}.{g}", v)) for g, v in value.items()]
        elif name == "mode":
            cfg.modes = _parse_modes(value, fail)
        elif name == "roles":
            if not isinstance(value, dict) or not all(
                    isinstance(k, str) and isinstance(v, str) and v for k, v in value.items()):
                raise fail(name, 'expected a table of function name = "role"')
            cfg.roles = dict(value)
        elif name == "routines":
            if not isinstance(value, dict) or not all(isinstance(v, dict)
                                                      for v in value.values()):
                raise fail(name, "expected a table of routine name = {facts}")
            cfg.routines = {k: dict(v) for k, v in value.items()}
    return cfg


def _parse_modes(value: Any, fail: Any) -> list[tuple[str, str]]:
    if isinstance(value, str):
        value = {"**": value}
    if not isinstance(value, dict):
        raise fail("mode", 'expected "kernel", "user", "auto" or a table of glob = mode')
    out: list[tuple[str, str]] = []
    for glob, mode in value.items():
        if mode not in MODES:
            raise fail(f"mode.{glob}" if glob != "**" or len(value) > 1 else "mode",
                       f"{mode!r} is not one of kernel, user, auto")
        out.append((glob, mode))
    return out


def check_against(cfg: Config, known_roles: Iterable[str], validate_routines: Any,
                  check_selectors: Any) -> None:
    """Checks that need the loaded rules and knowledge: selectors name real rules, roles are
    known roles, and the extra routines are valid knowledge entries."""
    where = str(cfg.path)
    prefix = "tool.ddilint." if cfg.path is not None and cfg.path.name == "pyproject.toml" \
        else ""
    for name, selectors in (("select", cfg.select), ("ignore", cfg.ignore),
                            *((f"per-file-ignores.{g}", s) for g, s in cfg.per_file_ignores)):
        try:
            check_selectors(selectors)
        except Exception as exc:
            raise ConfigError(f"{where}: key '{prefix}{name}': {exc}") from exc
    roles = set(known_roles)
    for fn, role in cfg.roles.items():
        if roles and role not in roles:
            raise ConfigError(f"{where}: key '{prefix}roles.{fn}': unknown role {role!r} "
                              f"(known roles: {', '.join(sorted(roles))})")
    for routine, facts in cfg.routines.items():
        try:
            validate_routines({routine: facts})
        except Exception as exc:
            raise ConfigError(f"{where}: key '{prefix}routines.{routine}': {exc}") from exc


def resolve_config(paths: Sequence[str | Path], explicit: str | None = None,
                   isolated: bool = False) -> Config:
    """The config for a run over `paths`: `--config FILE`, else found by walking up from the
    first path (or the working directory), else defaults."""
    if isolated:
        return Config()
    if explicit:
        p = Path(explicit)
        if not p.is_file():
            raise ConfigError(f"{explicit}: config file not found")
        return load_config(p)
    start = Path(paths[0]) if paths else Path.cwd()
    found = find_config_file(start if start.exists() else Path.cwd())
    return load_config(found) if found is not None else Config()
