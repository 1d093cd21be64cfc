"""Building the plugin manager and collecting the rules it provides."""

from __future__ import annotations

import importlib
import os
import re
import sys
from collections.abc import Iterable, Mapping
from importlib.machinery import PathFinder
from typing import Any

import pluggy

from ddilint.hookspecs import ENTRY_POINT_GROUP, PROJECT, DdilintSpec
from ddilint.rules.base import Rule


class PluginError(Exception):
    """A plugin could not be loaded or returned something that is not a rule."""


def plugin_manager(load_entry_points: bool = True, extra: Iterable[object] = ()) -> (
        pluggy.PluginManager):
    """A plugin manager with the hook specs, the installed `ddilint.rules` entry points
    (built-in rules included) and any `extra` plugin objects registered."""
    pm = pluggy.PluginManager(PROJECT)
    pm.add_hookspecs(DdilintSpec)
    if load_entry_points:
        try:
            found = entry_points(ENTRY_POINT_GROUP)
            if found is None:
                pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
            for name, value in found or ():
                if not pm.has_plugin(name) and not pm.is_blocked(name):
                    pm.register(_load(value), name=name)
        except Exception as exc:  # a broken third-party plugin must not hide the others' name
            raise PluginError(f"could not load a ddilint plugin: {exc}") from exc
    for plugin in extra:
        pm.register(plugin)
    return pm


_ENTRY_POINT = re.compile(r"^\s*([\w.]+)\s*(?::\s*([\w.]+)\s*)?(?:\[[^\]]*\]\s*)?$")


def entry_points(group: str) -> list[tuple[str, str]] | None:
    """(name, value) of the entry points of `group` that the installed distributions
    declare, in `sys.path` order: read from their `entry_points.txt` files directly.
    `importlib.metadata` answers the same, but importing it alone took 25-35 ms, about a
    tenth of a run whose results all come from the cache.

    None when `sys.path` holds something only `importlib.metadata` can read (a zip file,
    an egg) or another finder that lists distributions: the caller then asks it."""
    if any(hasattr(f, "find_distributions") and f is not PathFinder for f in sys.meta_path):
        return None
    header = f"[{group}]"
    out: list[tuple[str, str]] = []
    for entry in sys.path:
        folder = entry or "."
        if entry.lower().endswith(".egg") or os.path.isfile(folder):
            return None
        try:
            names = sorted(os.listdir(folder))
        except OSError:
            continue
        for name in names:
            if not name.lower().endswith((".dist-info", ".egg-info")):
                continue
            try:
                with open(os.path.join(folder, name, "entry_points.txt"),
                          encoding="utf-8") as f:
                    text = f.read()
            except OSError:
                continue
            if header in text:
                out.extend(_section(text, group))
    return out


def _section(text: str, group: str) -> list[tuple[str, str]]:
    """The `name = value` lines of the section `[group]` of an entry_points.txt."""
    out: list[tuple[str, str]] = []
    section = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1].strip()
        elif section == group and "=" in line:
            name, value = line.split("=", 1)
            out.append((name.strip(), value.strip()))
    return out


def _load(value: str) -> object:
    """The object an entry point's value names: `module` or `module:attr.attr`."""
    m = _ENTRY_POINT.match(value)
    if m is None:
        raise ValueError(f"not an entry point: {value!r}")
    obj: object = importlib.import_module(m.group(1))
    for attr in m.group(2).split(".") if m.group(2) else ():
        obj = getattr(obj, attr)
    return obj


def collect_rules(pm: pluggy.PluginManager) -> list[Rule]:
    """Every rule the registered plugins provide, sorted by code; duplicates are an error."""
    rules: dict[str, Rule] = {}
    for batch in pm.hook.ddilint_rules():
        for rule in batch:
            if not isinstance(rule, Rule):
                raise PluginError(f"a plugin returned {rule!r}, which is not a ddilint Rule")
            if rule.code in rules and type(rules[rule.code]) is not type(rule):
                raise PluginError(f"two plugins define rule {rule.code}")
            rules[rule.code] = rule
    return [rules[c] for c in sorted(rules)]


def collect_knowledge(pm: pluggy.PluginManager) -> dict[str, Mapping[str, Any]]:
    """Extra routine facts from plugins (later plugins win)."""
    out: dict[str, Mapping[str, Any]] = {}
    for batch in pm.hook.ddilint_knowledge():
        if batch:
            out.update(batch)
    return out
