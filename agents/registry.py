"""Find an agent implementation by kind: an `arena.agents` entry point, or `module:Class`."""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points

from agents.algorithm import Algorithm

GROUP = "arena.agents"


def available_kinds() -> list[str]:
    return sorted(ep.name for ep in entry_points(group=GROUP))


def load_algorithm(kind: str) -> type[Algorithm]:
    """The class registered as `kind`, or imported from `module:Class`."""
    matches = [ep for ep in entry_points(group=GROUP) if ep.name == kind]
    if matches:
        cls = matches[0].load()
    elif ":" in kind:
        module, _, name = kind.partition(":")
        cls = getattr(importlib.import_module(module), name)
    else:
        raise ValueError(f"unknown agent kind {kind!r}; installed kinds: {', '.join(available_kinds())} "
                         "(or give module:Class)")
    if not (isinstance(cls, type) and issubclass(cls, Algorithm)):
        raise TypeError(f"{kind!r} resolves to {cls!r}, which is not an agents.Algorithm subclass")
    return cls
