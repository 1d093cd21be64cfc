"""The whole plugin API of ddilint (pluggy hook specifications).

A plugin is any module or object with `@hookimpl` functions. Built-in rules are plugins
registered through the `ddilint.rules` entry-point group, exactly like third-party ones:

    [project.entry-points."ddilint.rules"]
    my-rule = "my_package.my_rule"

and `my_package/my_rule.py` has

    from ddilint.hookspecs import hookimpl

    @hookimpl
    def ddilint_rules():
        return [MyRule()]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from ddilint.rules.base import Rule

PROJECT = "ddilint"
ENTRY_POINT_GROUP = "ddilint.rules"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


class DdilintSpec:
    """Hook specifications."""

    @hookspec
    def ddilint_rules(self) -> Sequence[Rule]:  # type: ignore[empty-body]
        """Return the rules this plugin provides (instances of `ddilint.rules.base.Rule`)."""

    @hookspec
    def ddilint_knowledge(self) -> Mapping[str, Mapping[str, Any]]:  # type: ignore[empty-body]
        """Return extra routine facts, keyed by routine name, in the `overlay.toml` format
        (for example `{"MyOpen": {"handle_out_param": 0, "max_irql": "PASSIVE_LEVEL"}}`)."""
