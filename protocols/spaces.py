"""Gymnasium space descriptions as plain data, for the `welcome` message.

A description is a msgpack-friendly dict, e.g. `{"type": "Discrete", "n": 3}` or
`{"type": "Box", "low": 0.0, "high": 1.0, "shape": [5], "dtype": "float32"}`; SPEC.md lists them.
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


def describe_space(space: gym.Space) -> dict[str, Any]:
    """Turn a gymnasium space into its wire description."""
    if isinstance(space, gym.spaces.Discrete):
        return {"type": "Discrete", "n": int(space.n), "start": int(space.start)}
    if isinstance(space, gym.spaces.Box):
        return {"type": "Box", "low": _bound(space.low), "high": _bound(space.high),
                "shape": list(space.shape), "dtype": np.dtype(space.dtype).name}
    if isinstance(space, gym.spaces.MultiDiscrete):
        return {"type": "MultiDiscrete", "nvec": space.nvec.tolist()}
    if isinstance(space, gym.spaces.Dict):
        return {"type": "Dict", "spaces": {k: describe_space(v) for k, v in space.spaces.items()}}
    raise TypeError(f"space {space!r} has no wire description; use Discrete, Box, MultiDiscrete or Dict")


def space_from_description(desc: dict[str, Any]) -> gym.Space:
    """Rebuild a gymnasium space from its wire description."""
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
