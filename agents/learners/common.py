"""Plumbing every learning algorithm shares: options, seeding, devices, checkpoints, trajectory tensors.

Kept out of the algorithm files so that those read as the method and nothing else.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Literal, TypeVar

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict

from agents.algorithm import Algorithm, SeatInfo, Trajectory

GameFamily = Literal["er", "ipd", "cleanup", "other"]
M = TypeVar("M", bound=BaseModel)


class Options(BaseModel):
    """Base for per-algorithm options: unknown keys are errors, so typos fail at setup."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def game_family(game: str) -> GameFamily:
    """Map the arena's game name to the paper setting whose hyperparameters apply (algorithms.md §2.9)."""
    name = game.lower()
    if "ipd" in name or "prisoner" in name:
        return "ipd"
    if "escape" in name or "room" in name or name in ("er", "er21", "er32"):
        return "er"
    if "cleanup" in name:
        return "cleanup"
    return "other"


def parse_options(model: type[M], info: SeatInfo, defaults: Mapping[GameFamily, Mapping[str, Any]]) -> M:
    """Validate `info.options` over the paper defaults for this game (explicit options win)."""
    base = dict(defaults.get(game_family(info.game), defaults.get("other", {})))
    return model.model_validate({**base, **info.options})


class LinearSchedule:
    """ε_k = max(end, start − k·(start − end)/div), stepped once per training iteration (§1.1)."""

    def __init__(self, start: float, end: float, div: float) -> None:
        self.start, self.end, self.div, self.k = start, end, max(div, 1e-12), 0

    @property
    def value(self) -> float:
        if self.start <= self.end:
            return self.start
        return max(self.end, self.start - self.k * (self.start - self.end) / self.div)

    def step(self) -> None:
        self.k += 1


def onehot_others(joint_action: torch.Tensor, seat: int, sizes: list[int]) -> torch.Tensor:
    """One-hot actions of every agent but `seat`, ascending seat id, concatenated: [..., Σ_j |A_j|]."""
    parts = [torch.nn.functional.one_hot(joint_action[..., j].clamp(min=0), n).float()
             * (joint_action[..., j : j + 1] >= 0)
             for j, n in enumerate(sizes) if j != seat]
    return torch.cat(parts, dim=-1)


class TrajectoryTensors:
    """A Trajectory's own arrays as tensors on the learner's device, with the terminal mask derived.

    A step is a true termination when the arena flags it (`Trajectory.terminated`); without the
    flag (an older arena), when the copy stops being valid before the step limit. Reaching
    `max_steps` is truncation and bootstraps (algorithms.md §1.2 Deviation).
    """

    def __init__(self, traj: Trajectory, device: torch.device, max_steps: int) -> None:
        t = traj.length
        self.T = t
        self.obs = torch.as_tensor(np.asarray(traj.obs), device=device)
        self.actions = torch.as_tensor(np.asarray(traj.actions), dtype=torch.int64, device=device)
        self.rewards = torch.as_tensor(np.asarray(traj.rewards), dtype=torch.float32, device=device)
        self.extrinsic = torch.as_tensor(np.asarray(traj.extrinsic), dtype=torch.float32, device=device)
        self.incentives = torch.as_tensor(np.asarray(traj.incentives), dtype=torch.float32, device=device)
        valid = torch.as_tensor(np.asarray(traj.valid), dtype=torch.bool, device=device)
        self.valid = valid.float()
        if traj.terminated is not None:
            terminated = torch.as_tensor(np.asarray(traj.terminated), dtype=torch.bool, device=device)
            self.terminal = (valid & terminated).float()
        else:
            valid_next = torch.cat([valid[1:], torch.zeros_like(valid[:1])], dim=0)
            steps = torch.arange(t, device=device).unsqueeze(1)
            self.terminal = (valid & ~valid_next & (steps < max_steps - 1)).float()


class LearningAlgorithm(Algorithm):
    """An Algorithm with torch modules: owns device, seeded generators and the checkpoint format.

    Subclasses build their nets inside `self.seeded()` and list what to checkpoint in `state_objects`.
    """

    def setup_common(self, info: SeatInfo) -> None:
        """Device, own RNGs (never the process-global ones) and single-threaded torch on shared CPUs."""
        self.info = info
        self.device = torch.device(info.device)
        if self.device.type == "cpu":
            torch.set_num_threads(1)
        self.gen = torch.Generator(device=self.device)
        self.gen.manual_seed(int(info.seed))
        self.np_rng = np.random.default_rng(int(info.seed))

    @contextmanager
    def seeded(self) -> Iterator[None]:
        """Context for building nets: initialisation depends only on this seat's seed."""
        with torch.random.fork_rng(devices=[] if self.device.type == "cpu" else [self.device]):
            torch.manual_seed(int(self.info.seed))
            yield

    def state_objects(self) -> dict[str, Any]:
        """Name → object with state_dict/load_state_dict (modules, optimizers)."""
        return {}

    def extra_state(self) -> dict[str, Any]:
        """Plain picklable state beyond modules (schedules, phase counters)."""
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        """Inverse of `extra_state`."""

    def save(self, path: str) -> None:
        """Checkpoint models, optimizers, schedules and this agent's own RNG states (torch, numpy)."""
        payload = {name: obj.state_dict() for name, obj in self.state_objects().items()}
        payload["_extra"] = self.extra_state()
        payload["_rng"] = {"torch": self.gen.get_state(), "numpy": self.np_rng.bit_generator.state}
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        torch.save(payload, path)

    def load(self, path: str) -> None:
        """Restore a checkpoint written by `save` into an agent already `setup` with the same seat."""
        payload = torch.load(path, map_location=self.device, weights_only=False)
        for name, obj in self.state_objects().items():
            obj.load_state_dict(payload[name])
        self.load_extra_state(payload["_extra"])
        self.gen.set_state(payload["_rng"]["torch"].cpu())
        self.np_rng.bit_generator.state = payload["_rng"]["numpy"]

    def obs_tensor(self, obs: np.ndarray) -> torch.Tensor:
        """Hot-path conversion of one step's observations to the device."""
        return torch.as_tensor(obs, device=self.device)
