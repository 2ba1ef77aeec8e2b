"""Memory-1 Iterated Prisoner's Dilemma (games.md §1), vectorized over B copies."""

from __future__ import annotations

from typing import Literal

import gymnasium as gym
import numpy as np
from pydantic import Field

from arena.games.base import Game, GameParams, StepResult

COOPERATE, DEFECT = 0, 1
#: PAYOFF[a0, a1] = (r0, r1)
PAYOFF = np.array([[[-1.0, -1.0], [-3.0, 0.0]], [[0.0, -3.0], [-2.0, -2.0]]], dtype=np.float32)
START = 4


class IPDParams(GameParams):
    max_steps: int = Field(32, ge=1, description="episode length T (LIO: 5, Reciprocators: 32, LOLA: 150)")
    obs_encoding: Literal["onehot5", "pair"] = "onehot5"
    swap_for_agent1: bool = False


class IteratedPrisonersDilemma(Game):
    """Two players, actions 0 = C, 1 = D; both observe the previous joint action (or START)."""

    name = "ipd"
    Params = IPDParams
    default_action = COOPERATE

    def __init__(self, params: IPDParams, batch_size: int) -> None:
        super().__init__(params, batch_size)
        self.p: IPDParams = params
        shape = (5,) if params.obs_encoding == "onehot5" else (2,)
        low = 0.0 if params.obs_encoding == "onehot5" else -1.0
        self.observation_spaces = [gym.spaces.Box(low, 1.0, shape, np.float32) for _ in range(2)]
        self.action_spaces = [gym.spaces.Discrete(2) for _ in range(2)]
        self.action_names = [["cooperate", "defect"]] * 2
        self._last = np.full((batch_size, 2), -1, dtype=np.int64)
        self._t = 0

    def reset(self, seeds: np.ndarray) -> list[np.ndarray]:
        self.rng.reseed(seeds)
        self._last[:] = -1
        self._t = 0
        return self.observe()

    def step(self, actions: np.ndarray) -> StepResult:
        actions = np.asarray(actions, dtype=np.int64)
        rewards = PAYOFF[actions[:, 0], actions[:, 1]]
        self._last = actions.copy()
        self._t += 1
        done = np.full(self.batch_size, self._t >= self.p.max_steps)
        events = {"cooperated": (actions == COOPERATE).astype(np.float32)}
        return StepResult(self.observe(), rewards, np.zeros(self.batch_size, bool), done, events)

    def _encode(self, first: np.ndarray, second: np.ndarray) -> np.ndarray:
        started = first >= 0
        if self.p.obs_encoding == "pair":
            return np.where(started[:, None], np.stack([first, second], 1), [-1, 0]).astype(np.float32)
        index = np.where(started, 2 * first + second, START)
        return np.eye(5, dtype=np.float32)[index]

    def observe(self) -> list[np.ndarray]:
        a0, a1 = self._last[:, 0], self._last[:, 1]
        shared = self._encode(a0, a1)
        other = self._encode(a1, a0) if self.p.swap_for_agent1 else shared
        return [shared, other.copy()]

    def render(self, mode: str = "ansi", index: int = 0) -> str | np.ndarray:
        last = self._last[index]
        if mode == "rgb_array":
            image = np.full((32, 64, 3), 40, np.uint8)
            colours = {-1: (128, 128, 128), COOPERATE: (60, 180, 75), DEFECT: (220, 50, 50)}
            for i, a in enumerate(last):
                image[4:28, 4 + 32 * i : 28 + 32 * i] = colours[int(a)]
            return image
        if mode != "ansi":
            raise ValueError(f"unknown render mode {mode!r}; use 'ansi' or 'rgb_array'")
        if last[0] < 0:
            return f"t={self._t} START"
        word = {COOPERATE: "\x1b[32mC\x1b[0m", DEFECT: "\x1b[31mD\x1b[0m"}
        return f"t={self._t} agent0={word[int(last[0])]} agent1={word[int(last[1])]}"
