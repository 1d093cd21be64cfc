"""Building the plugin manager and collecting the rules it provides."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
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
            pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
        except Exception as exc:  # a broken third-party plugin must not hide the others' name
            raise PluginError(f"could not load a ddilint plugin: {exc}") from exc
    for plugin in extra:
        pm.register(plugin)
    return pm


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
