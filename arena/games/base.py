"""The game interface every arena game implements.

A game holds B independent copies of one environment and steps them together with numpy: one call
to `step` advances every copy by one step, with no per-copy Python loop. Each copy draws its
randomness from its own counter-based stream (`BatchRandom`), so a batch of B copies seeded
`s_0 … s_{B-1}` produces exactly what B single copies seeded `s_b` would.

Shapes: every per-agent array is `[B, ...]`; joint arrays are `[B, N]`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import ClassVar, Literal

import gymnasium as gym
import numpy as np
from pydantic import BaseModel, ConfigDict

_MASK64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """Vectorized SplitMix64 finalizer: a high-quality 64-bit mix of a counter."""
    with np.errstate(over="ignore"):
        z = x + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


class BatchRandom:
    """Per-copy counter-based random streams, drawn for all copies at once.

    Copy b's k-th draw of element j depends only on (seed_b, k, j), never on the other copies, which
    is what makes a batch equal to its copies run one by one. Every draw call advances every copy's
    counter by one, so games must issue the same sequence of draw calls whatever the state (draw,
    then mask) — that is the price of vectorization and it is cheap.
    """

    def __init__(self, seeds: np.ndarray) -> None:
        #: `_splitmix64(arange)` of each draw shape a game asks for: the same every step, so mixed once.
        self._element_mix: dict[tuple[int, ...], np.ndarray] = {}
        self.reseed(seeds)

    def reseed(self, seeds: np.ndarray) -> None:
        seeds = np.asarray(seeds, dtype=np.uint64).reshape(-1)
        self._keys = _splitmix64(seeds ^ np.uint64(0x5851F42D4C957F2D))
        self._calls = 0

    @property
    def batch_size(self) -> int:
        return self._keys.shape[0]

    def _bits(self, shape: tuple[int, ...]) -> np.ndarray:
        """Uniform uint64 words of shape [B, *shape]."""
        self._calls += 1
        element_mix = self._element_mix.get(shape)
        if element_mix is None:
            size = int(np.prod(shape, dtype=np.int64)) if shape else 1
            element_mix = _splitmix64(np.arange(size, dtype=np.uint64).reshape(shape) if shape else np.uint64(0))
            self._element_mix[shape] = element_mix
        with np.errstate(over="ignore"):
            call_key = _splitmix64(self._keys + np.uint64(self._calls) * np.uint64(0xD1B54A32D192ED03))
            return _splitmix64(call_key.reshape((-1,) + (1,) * len(shape)) ^ element_mix)

    def uniform(self, *shape: int) -> np.ndarray:
        """Floats in [0, 1) of shape [B, *shape] (53-bit resolution)."""
        return (self._bits(shape) >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))

    def integers(self, high: int | np.ndarray, *shape: int) -> np.ndarray:
        """Integers in [0, high) of shape [B, *shape]; `high` may broadcast against that shape."""
        return np.floor(self.uniform(*shape) * high).astype(np.int64)

    def permutation_keys(self, *shape: int) -> np.ndarray:
        """Random sort keys: `np.argsort(keys, axis=-1)` is a uniform random permutation per copy."""
        return self.uniform(*shape)


class GameParams(BaseModel):
    """Base for each game's parameters: unknown keys are errors, so typos are caught early."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass
class StepResult:
    """What one vectorized step returns.

    `events` holds per-step game counters the arena sums into episode summaries and plots
    (e.g. `{"cleaned": [B, N], "apples": [B, N]}`); keys must be stable for a game.
    """

    obs: list[np.ndarray]
    rewards: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    events: dict[str, np.ndarray] = field(default_factory=dict)


class Game(ABC):
    """B copies of one multi-agent game, stepped in lock-step.

    Subclasses set `name`, `Params`, and fill `observation_spaces`, `action_spaces` (one per agent,
    the space of ONE copy; arrays carry a leading batch dimension) in `__init__`.
    """

    name: ClassVar[str]
    Params: ClassVar[type[GameParams]]
    #: Environments whose observation includes the agent's cumulative incentives given to each other
    #: agent this episode (Escape Room, as in LIO). The arena appends them for agents that pay.
    #: Instances may override it (a variant that carries its own gift bookkeeping turns it off).
    obs_includes_incentives_given: bool = False
    #: Default action the arena uses for a seat that misses a deadline under the `default` policy.
    default_action: int = 0
    #: The action that does nothing (STAY, games.md §3b), shown as every agent's previous action at t = 0 so
    #: that models fed previous actions need no remapping; None where the game has none (the arena sends -1).
    noop_action: int | None = None
    #: Names of the actions, per agent (for renderers, plots and the human agent).
    action_names: list[list[str]]
    #: Axis order of rank-3 observations ("HWC": height, width, channels; "CHW": channels first);
    #: None for flat ones. Sent to agents in `welcome` so their networks never guess.
    observation_layout: ClassVar[Literal["HWC", "CHW"] | None] = None

    def __init__(self, params: GameParams, batch_size: int) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.params = params
        self.batch_size = batch_size
        self.rng = BatchRandom(np.zeros(batch_size, dtype=np.uint64))
        self.observation_spaces: list[gym.Space] = []
        self.action_spaces: list[gym.Space] = []

    @property
    def n_agents(self) -> int:
        return len(self.action_spaces)

    @property
    def max_steps(self) -> int:
        """Step limit T of an episode (`truncated` is set when it is reached): the `max_steps`
        parameter; games whose parameters name it differently override this."""
        return self.params.max_steps

    @abstractmethod
    def reset(self, seeds: np.ndarray) -> list[np.ndarray]:
        """Start a new episode in every copy, copy b seeded with `seeds[b]`; returns per-agent obs."""

    @abstractmethod
    def step(self, actions: np.ndarray) -> StepResult:
        """Advance every copy by one step with the joint action `actions` `[B, N]` (int64)."""

    def state(self) -> np.ndarray:
        """Global state `[B, ...]` (for disclosure `state`); default: all observations concatenated."""
        return np.concatenate([o.reshape(self.batch_size, -1) for o in self.observe()], axis=1)

    @abstractmethod
    def observe(self) -> list[np.ndarray]:
        """Current per-agent observations without stepping."""

    def visibility(self) -> np.ndarray:
        """`[B, N, N]` bool: `v[b, i, j]` = agent j is inside agent i's view. Default: all see all."""
        return np.ones((self.batch_size, self.n_agents, self.n_agents), dtype=bool)

    def action_masks(self) -> list[np.ndarray] | None:
        """Per-agent `[B, A]` bool masks of currently available actions, or None if all always are."""
        return None

    def public_actions(self, actions: np.ndarray) -> np.ndarray:
        """The joint action as others may see it; games with hidden actions replace them by -1."""
        return actions

    @abstractmethod
    def render(self, mode: str = "ansi", index: int = 0) -> str | np.ndarray:
        """Copy `index` as coloured text (`ansi`) or an RGB image `[H, W, 3]` uint8 (`rgb_array`)."""
