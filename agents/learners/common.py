"""Plumbing every learning algorithm shares: options, seeding, devices, checkpoints, trajectory tensors.

Kept out of the algorithm files so that those read as the method and nothing else.
"""

from __future__ import annotations

import copy
import os
import pickle
import re
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, ClassVar, Literal, TypeVar

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict

from agents.algorithm import Algorithm, SeatInfo, Trajectory

GameFamily = Literal["er", "ipd", "cleanup", "other"]
M = TypeVar("M", bound=BaseModel)

#: Marker `LearningAlgorithm.save` writes as "_format"; `load` refuses a file without it.
CHECKPOINT_FORMAT = "social-arena-checkpoint/1"
_PLAIN = (str, int, float, bool, type(None))


class CheckpointError(ValueError):
    """A checkpoint cannot be resumed from: the message names the file, what is wrong and what to do."""


def _check_plain(obj: Any, where: str) -> None:
    """Refuse, at save time, anything `torch.load(weights_only=True)` would refuse at resume time."""
    if isinstance(obj, torch.Tensor) or type(obj) in _PLAIN:
        return
    if type(obj) in (dict, OrderedDict):
        for key, value in obj.items():
            if type(key) not in _PLAIN:
                raise TypeError(f"{where}: key {key!r} is a {type(key).__name__}, not plain data")
            _check_plain(value, f"{where}[{key!r}]")
        return
    if type(obj) in (list, tuple):
        for k, value in enumerate(obj):
            _check_plain(value, f"{where}[{k}]")
        return
    raise TypeError(f"{where} is a {type(obj).__module__}.{type(obj).__qualname__}: a checkpoint holds only "
                    "tensors and dicts/lists/tuples of str/int/float/bool/None (convert it in extra_state)")


def _first_line(err: BaseException) -> str:
    """`Type: first sentence` of an exception (the line after it too when the first ends in a colon)."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    if not lines:
        return type(err).__name__
    text = f"{lines[0]} {lines[1]}" if lines[0].endswith(":") and len(lines) > 1 else lines[0]
    text = text.split(". ")[0].rstrip(".")
    return f"{type(err).__name__}: {text[:300]}"


def _weights_only_refusal(err: BaseException) -> tuple[bool, str]:
    """(whether torch's weights-only reader met code — a global, a call, an object build —, what it said),
    without torch's advice to retry with weights_only=False."""
    text = str(err)
    found = re.search(r"GLOBAL (\S+)", text)
    if found:
        return True, f"it references {found.group(1).rstrip('.')}"
    found = re.search(r"(Trying to call reduce for unrecognized function .*|Can only (?:create new object|build) .*)",
                      text)
    if found:
        return True, found.group(1).split(" via `add_safe_globals`")[0].strip()
    found = re.search(r"WeightsUnpickler error:\s*(\S[^\n]*)", text)
    return False, found.group(1).split(" Please use")[0].strip() if found else "refused by the weights-only reader"


def read_checkpoint(path: str, kind: str, device: torch.device | str = "cpu") -> dict[str, Any]:
    """A checkpoint written by `LearningAlgorithm.save` of class `kind`, read with `weights_only=True`
    (a file holding anything but tensors and plain data is refused unread, never unpickled); every
    failure is one `CheckpointError` naming the file, what is wrong and what to do."""
    fix = f"point `resume` at a checkpoints/*.pt file written by an agent of this kind ({kind})"
    if not os.path.exists(path):
        raise CheckpointError(f"cannot resume from {path}: no such file; {fix}")
    if not os.path.isfile(path):
        raise CheckpointError(f"cannot resume from {path}: not a file; {fix}")
    try:
        payload = torch.load(path, map_location=device, weights_only=True)
    except pickle.UnpicklingError as err:
        if "weights only load failed" not in str(err).lower():
            raise CheckpointError(f"cannot resume from {path}: not a readable torch checkpoint "
                                  f"({_first_line(err)}); {fix}") from None
        code, said = _weights_only_refusal(err)
        if not code:
            raise CheckpointError(f"cannot resume from {path}: not a readable torch checkpoint ({said}: "
                                  f"damaged, not written by torch.save, or not plain data); {fix}") from None
        raise CheckpointError(
            f"refused to resume from {path}: it contains Python objects other than tensors and plain data "
            f"({said}), so loading it could run arbitrary code; it was not written by this version's `save`; "
            f"{fix}") from None
    except OSError as err:
        raise CheckpointError(f"cannot resume from {path}: {err.strerror or err}; {fix}") from None
    except Exception as err:  # torch reports a damaged file as RuntimeError, KeyError, EOFError, ...
        raise CheckpointError(f"cannot resume from {path}: not a readable torch checkpoint "
                              f"({_first_line(err)}); {fix}") from None
    found = payload.get("_format") if isinstance(payload, dict) else None
    found = found if isinstance(found, str) else None
    if found != CHECKPOINT_FORMAT:
        what = (f"it is in checkpoint format {found!r}, this version reads {CHECKPOINT_FORMAT!r}"
                if found is not None and found.startswith("social-arena-checkpoint/")
                else f"it is not a social-arena checkpoint (no {CHECKPOINT_FORMAT!r} marker; "
                     "checkpoints written before that marker existed cannot be resumed)")
        raise CheckpointError(f"cannot resume from {path}: {what}; {fix}")
    written_by = payload.get("_kind")
    if not isinstance(written_by, str) or written_by != kind:
        raise CheckpointError(f"cannot resume from {path}: it was written by a {written_by!s} agent; this "
                              f"agent's kind is {kind}; {fix}")
    return payload


def torch_threads() -> int:
    """Threads a CPU learner gives torch: `ARENA_TORCH_THREADS` (default 1)."""
    value = os.environ.get("ARENA_TORCH_THREADS", "1")
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"ARENA_TORCH_THREADS = {value!r}: give a whole number of threads, at least 1")
    return int(value)


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


def options_for(model: type[M], game: str | None, options: Mapping[str, Any],
                defaults: Mapping[GameFamily, Mapping[str, Any]]) -> M:
    """Validate `options` over the paper defaults for this game (explicit options win)."""
    base = dict(defaults.get(game_family(game or ""), defaults.get("other", {})))
    return model.model_validate({**base, **options})


def parse_options(model: type[M], info: SeatInfo, defaults: Mapping[GameFamily, Mapping[str, Any]]) -> M:
    """`options_for` this seat's game and options."""
    return options_for(model, info.game, info.options, defaults)


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


def onehot_codes(codes: torch.Tensor, n: int) -> torch.Tensor:
    """`[..., n]` one-hot of `codes`, all zeros where a code is −1 (an action hidden, a symbol nobody sent)."""
    return torch.nn.functional.one_hot(codes.clamp(min=0), n).float() * (codes >= 0).unsqueeze(-1)


def onehot_others(joint_action: torch.Tensor, seat: int, sizes: list[int]) -> torch.Tensor:
    """One-hot actions of every agent but `seat`, ascending seat id, concatenated: [..., Σ_j |A_j|]."""
    return torch.cat([onehot_codes(joint_action[..., j], n) for j, n in enumerate(sizes) if j != seat], dim=-1)


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

    Subclasses build their nets inside `self.seeded()` and list what to checkpoint in `state_objects`,
    and declare `options_model` with the per-game `defaults` it is validated over.
    """

    uses_device: ClassVar[bool] = True
    defaults: ClassVar[Mapping[GameFamily, Mapping[str, Any]]] = {}

    @classmethod
    def validate_options(cls, options: dict[str, Any], game: str | None = None) -> None:
        if cls.options_model is not None:
            options_for(cls.options_model, game, options, cls.defaults)

    def setup_common(self, info: SeatInfo) -> None:
        """Device, own RNGs (never the process-global ones) and single-threaded torch on shared CPUs."""
        self.info = info
        self.device = torch.device(info.device)
        if self.device.type == "cpu":  # several agent processes share few cores: one thread each by default
            torch.set_num_threads(torch_threads())
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
        """State beyond modules (schedules, phase counters) as tensors and plain data only: dicts,
        lists, tuples, str, int, float, bool, None (no dataclasses or numpy scalars; `save` checks)."""
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        """Inverse of `extra_state`."""

    def save(self, path: str) -> None:
        """Checkpoint models, optimizers, schedules and this agent's own RNG states (torch, numpy).

        Only tensors and plain data go in, so that `load` can read it with `weights_only=True`; the
        format marker and the algorithm's class name let `load` tell a checkpoint of this kind from
        any other file. Written to a temporary name and moved into place, so a crash mid-write never
        leaves a truncated checkpoint under the final name.
        """
        payload: dict[str, Any] = {"_format": CHECKPOINT_FORMAT, "_kind": type(self).__name__}
        payload |= {name: obj.state_dict() for name, obj in self.state_objects().items()}
        payload["_extra"] = self.extra_state()
        payload["_rng"] = {"torch": self.gen.get_state().cpu(), "numpy": copy.deepcopy(self.np_rng.bit_generator.state)}
        _check_plain(payload, "checkpoint")
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        partial = f"{path}.partial"
        torch.save(payload, partial)
        os.replace(partial, path)

    def load(self, path: str) -> None:
        """Restore a checkpoint written by `save` into an agent already `setup` with the same seat.

        Reads with `weights_only=True` only: a file holding anything but tensors and plain data is
        refused unread, never unpickled. Every failure is one `CheckpointError` naming the file.
        """
        kind = type(self).__name__
        fix = f"point `resume` at a checkpoints/*.pt file written by an agent of this kind ({kind})"
        payload = read_checkpoint(path, kind, self.device)
        missing = [name for name in (*self.state_objects(), "_extra", "_rng") if name not in payload]
        if missing:
            raise CheckpointError(f"cannot resume from {path}: it has no {', '.join(missing)} (written by "
                                  f"{kind} with other options?); {fix} and the same options")
        try:
            for name, obj in self.state_objects().items():
                obj.load_state_dict(payload[name])
            self.load_extra_state(payload["_extra"])
            self.gen.set_state(payload["_rng"]["torch"].cpu())
            self.np_rng.bit_generator.state = payload["_rng"]["numpy"]
        except Exception as err:
            raise CheckpointError(f"cannot resume from {path}: it does not fit this agent ({_first_line(err)}); "
                                  f"{fix} for the same seat, game and options") from None

    def obs_tensor(self, obs: np.ndarray) -> torch.Tensor:
        """Hot-path conversion of one step's observations to the device."""
        return torch.as_tensor(obs, device=self.device)
