"""Scripted agents: baselines, fixtures for tests, and reference points for the IPD payoffs."""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from agents.algorithm import Algorithm, SeatInfo, StepView

COOPERATE, DEFECT = 0, 1


class RandomAgent(Algorithm):
    """Uniformly random over the available actions of any Discrete action space."""

    def setup(self, info: SeatInfo) -> None:
        super().setup(info)
        self.rng = np.random.default_rng(info.seed)
        self.n_actions = int(info.action_space.n)

    def act(self, view: StepView) -> np.ndarray:
        if view.action_mask is None:
            return self.rng.integers(0, self.n_actions, size=len(view.obs))
        keys = self.rng.random(view.action_mask.shape) * view.action_mask
        return keys.argmax(axis=1)


class ConstantAgent(Algorithm):
    """Plays one fixed action in every copy."""

    action: ClassVar[int]

    def act(self, view: StepView) -> np.ndarray:
        return np.full(len(view.obs), self.action, dtype=np.int64)


class AlwaysCooperate(ConstantAgent):
    action = COOPERATE


class AlwaysDefect(ConstantAgent):
    action = DEFECT


class TitForTat(Algorithm):
    """IPD: cooperate first, then copy what the other player did last step (needs others' actions)."""

    needs = frozenset({"actions"})

    def act(self, view: StepView) -> np.ndarray:
        other = 1 - self.info.seat
        last = view.others_actions[:, other]
        return np.where(last < 0, COOPERATE, last).astype(np.int64)


class PaysForCooperation(Algorithm):
    """IPD payer: defects, and pays `amount` (option, default 1.0) to every agent that cooperated."""

    pays = True

    def setup(self, info: SeatInfo) -> None:
        super().setup(info)
        self.amount = float(info.options.get("amount", 1.0))
        if not 0 <= self.amount <= info.rmax:
            raise ValueError(f"option amount = {self.amount} must be within [0, rmax = {info.rmax}]")

    def act(self, view: StepView) -> np.ndarray:
        return np.full(len(view.obs), DEFECT, dtype=np.int64)

    def pay(self, view: StepView, joint_action: np.ndarray) -> np.ndarray:
        amounts = np.where(joint_action == COOPERATE, self.amount, 0.0).astype(np.float32)
        amounts[:, self.info.seat] = 0.0
        return amounts
