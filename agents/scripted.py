"""Scripted agents: baselines, fixtures for tests, and reference points for the IPD payoffs."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from agents.algorithm import Algorithm, RunFacts, SeatInfo, StepView

COOPERATE, DEFECT = 0, 1


class NoOptions(BaseModel):
    """Scripted agents take no options: any key is a mistake worth reporting."""

    model_config = ConfigDict(extra="forbid")


class PaymentOptions(NoOptions):
    amount: float = Field(1.0, ge=0, description="paid to each agent that cooperated, per step (≤ rmax)")


class RandomAgent(Algorithm):
    """Uniformly random over the available actions of any Discrete action space."""

    options_model = NoOptions

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
    options_model = NoOptions

    def act(self, view: StepView) -> np.ndarray:
        return np.full(len(view.obs), self.action, dtype=np.int64)


class AlwaysCooperate(ConstantAgent):
    action = COOPERATE


class AlwaysDefect(ConstantAgent):
    action = DEFECT


class TitForTat(Algorithm):
    """IPD: cooperate first, then copy what the other player did last step (needs others' actions)."""

    needs = frozenset({"actions"})
    games = frozenset({"ipd"})
    options_model = NoOptions

    def act(self, view: StepView) -> np.ndarray:
        other = 1 - self.info.seat
        last = view.others_actions[:, other]
        return np.where(last < 0, COOPERATE, last).astype(np.int64)


class PaysForCooperation(Algorithm):
    """IPD payer: defects, and pays `amount` (option, default 1.0) to every agent that cooperated."""

    pays = True
    games = frozenset({"ipd"})
    options_model = PaymentOptions

    @classmethod
    def check_run(cls, options: dict, run: RunFacts, seat: int) -> list[str]:
        amount = PaymentOptions.model_validate(options).amount
        if run.rmax > 0 and amount > run.rmax:
            return [f"option amount = {amount:g} exceeds the run's rmax = {run.rmax:g}; lower it or raise rmax"]
        return []

    def setup(self, info: SeatInfo) -> None:
        super().setup(info)
        self.amount = PaymentOptions.model_validate(info.options).amount

    def act(self, view: StepView) -> np.ndarray:
        return np.full(len(view.obs), DEFECT, dtype=np.int64)

    def pay(self, view: StepView, joint_action: np.ndarray) -> np.ndarray:
        amounts = np.where(joint_action == COOPERATE, self.amount, 0.0).astype(np.float32)
        amounts[:, self.info.seat] = 0.0
        return amounts


class BoxEscapee(Algorithm):
    """Box trapped, trapped seat: stays while the box is closed; once it is open, walks left to the
    apples at columns 1–2 and steps between them. A policy whose actions depend on the opener's
    OPEN_BOX, so an influence learner has something to influence (a probe, as tit-for-tat is in IPD).

    Reads the observation planes of games.md §7 `[B, 5, 9, 5]` (channels last): 1 = closed box wall,
    3 = self.
    """

    games = frozenset({"box_trapped"})
    options_model = NoOptions
    LEFT, RIGHT, STAY = 0, 1, 4

    def act(self, view: StepView) -> np.ndarray:
        planes = np.asarray(view.obs)
        closed = planes[..., 1].any(axis=(1, 2))
        column = planes[..., 3].any(axis=1).argmax(axis=1)
        walk = np.where(column == 1, self.RIGHT, self.LEFT)
        return np.where(closed, self.STAY, walk).astype(np.int64)
