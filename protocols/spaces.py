"""Gymnasium space descriptions as plain data, for the `welcome` message.

A description is a msgpack-friendly dict, e.g. `{"type": "Discrete", "n": 3}` or
`{"type": "Box", "low": 0.0, "high": 1.0, "shape": [5], "dtype": "float32"}`; SPEC.md lists them.
A rank-3 (image) Box may carry `"layout": "HWC"` or `"CHW"`, the axis order of its observations.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np


def _bound(values: np.ndarray) -> float | list:
    """A Box bound as a scalar when uniform (the common case), else a nested list."""
    flat = np.unique(values)
    if flat.size == 1:
        return float(flat[0])
    return values.tolist()


#: Axis orders a rank-3 Box observation may declare: channels last or channels first.
LAYOUTS = ("HWC", "CHW")


def _check_layout(layout: Any) -> str | None:
    if layout is not None and layout not in LAYOUTS:
        raise ValueError(f"observation layout must be one of {', '.join(LAYOUTS)} or None, got {layout!r}")
    return layout


def describe_space(space: gym.Space, layout: str | None = None) -> dict[str, Any]:
    """Turn a gymnasium space into its wire description.

    `layout` ("HWC" or "CHW") is the axis order of a rank-3 Box and is added to its description as
    `"layout"`; it is an error for any other space.
    """
    _check_layout(layout)
    if layout is not None and not (isinstance(space, gym.spaces.Box) and len(space.shape) == 3):
        raise ValueError(f"layout {layout!r} applies only to rank-3 Box spaces, not {space!r}")
    if isinstance(space, gym.spaces.Discrete):
        return {"type": "Discrete", "n": int(space.n), "start": int(space.start)}
    if isinstance(space, gym.spaces.Box):
        desc: dict[str, Any] = {"type": "Box", "low": _bound(space.low), "high": _bound(space.high),
                                "shape": list(space.shape), "dtype": np.dtype(space.dtype).name}
        if layout is not None:
            desc["layout"] = layout
        return desc
    if isinstance(space, gym.spaces.MultiDiscrete):
        return {"type": "MultiDiscrete", "nvec": space.nvec.tolist()}
    if isinstance(space, gym.spaces.Dict):
        return {"type": "Dict", "spaces": {k: describe_space(v) for k, v in space.spaces.items()}}
    raise TypeError(f"space {space!r} has no wire description; use Discrete, Box, MultiDiscrete or Dict")


def layout_of(desc: dict[str, Any]) -> str | None:
    """The axis order ("HWC" or "CHW") a space description declares, or None; ValueError if invalid."""
    layout = _check_layout(desc.get("layout"))
    if layout is not None and not (desc.get("type") == "Box" and len(desc.get("shape", ())) == 3):
        raise ValueError(f"layout {layout!r} applies only to rank-3 Box descriptions, not {desc!r}")
    return layout


def space_from_description(desc: dict[str, Any]) -> gym.Space:
    """Rebuild a gymnasium space from its wire description (a Box's `"layout"` is read by `layout_of`)."""
    kind = desc.get("type")
    if kind == "Discrete":
        return gym.spaces.Discrete(int(desc["n"]), start=int(desc.get("start", 0)))
    if kind == "Box":
        dtype = np.dtype(desc.get("dtype", "float32"))
        shape = tuple(desc["shape"])
        low = np.broadcast_to(np.asarray(desc["low"], dtype=dtype), shape)
        high = np.broadcast_to(np.asarray(desc["high"], dtype=dtype), shape)
        return gym.spaces.Box(low, high, shape, dtype)
    if kind == "MultiDiscrete":
        return gym.spaces.MultiDiscrete(desc["nvec"])
    if kind == "Dict":
        return gym.spaces.Dict({k: space_from_description(v) for k, v in desc["spaces"].items()})
    raise ValueError(f"unknown space type {kind!r}; expected Discrete, Box, MultiDiscrete or Dict")
