"""PG-d: REINFORCE over discrete give-reward actions (algorithms.md §2.10; LIO paper's PG-d baseline).

As in the paper (reference `room_symmetric_baseline.py`), the gift is part of the environment action:
the game's give-action variant (`escape_room` with `give_actions = true`: A × {no-op, give}^{N−1},
fixed gift, the giver charged `gift_cost_coeff` × gift inside the game) carries it, so the learner is
plain PG on that action space. The game, not `pay()`, moves the reward, hence `pays = False`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from agents.algorithm import RunFacts, SeatInfo, Trajectory
from agents.algorithms.pg import PolicyGradient


def give_actions(names: list[str]) -> np.ndarray:
    """Which of a seat's actions give (the give-action variants name them "...give...")."""
    return np.array(["give" in name.lower() for name in names])


def missing_give_actions(names: list[str]) -> str | None:
    if give_actions(names).any():
        return None
    return ("pg-d needs the game's give-action variant (e.g. escape_room with [arena.params] give_actions = "
            f"true); this seat's actions are {names}")


class PolicyGradientDiscreteGive(PolicyGradient):
    """PG on a game's give-action variant; reports how often it gives."""

    @classmethod
    def check_run(cls, options: dict[str, Any], run: RunFacts, seat: int) -> list[str]:
        problem = missing_give_actions(run.action_names[seat])
        return [problem] if problem else []

    def setup(self, info: SeatInfo) -> None:
        problem = missing_give_actions(info.action_names[info.seat])
        if problem:
            raise ValueError(problem)
        self.give_actions = give_actions(info.action_names[info.seat])
        super().setup(info)

    def end_episode(self, trajectory: Trajectory, summary: dict[str, Any]) -> dict[str, float]:
        actions = np.asarray(trajectory.actions)
        valid = np.asarray(trajectory.valid, dtype=bool)
        gave = self.give_actions[np.clip(actions, 0, None)] & valid
        metrics = super().end_episode(trajectory, summary)
        return {**metrics, "give_rate": float(gave.sum() / max(valid.sum(), 1))}
