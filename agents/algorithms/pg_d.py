"""PG-d: REINFORCE over discrete give-reward actions (algorithms.md §2.10; LIO paper's PG-d baseline).

As in the paper (reference `room_symmetric_baseline.py`), the gift is part of the environment action:
the game's give-action variant (`escape_room` with `give_actions = true`: A × {no-op, give}^{N−1},
fixed gift, the giver charged `gift_cost_coeff` × gift inside the game) carries it, so the learner is
plain PG on that action space. The game, not `pay()`, moves the reward, hence `pays = False`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from agents.algorithm import SeatInfo, Trajectory
from agents.algorithms.pg import PolicyGradient


class PolicyGradientDiscreteGive(PolicyGradient):
    """PG on a game's give-action variant; reports how often it gives."""

    def setup(self, info: SeatInfo) -> None:
        names = info.action_names[info.seat]
        self.give_actions = np.array(["give" in name.lower() for name in names])
        if not self.give_actions.any():
            raise ValueError("pg_d needs the game's give-action variant (e.g. escape_room with "
                             f"[arena.params] give_actions = true); this seat's actions are {names}")
        super().setup(info)

    def end_episode(self, trajectory: Trajectory, summary: dict[str, Any]) -> dict[str, float]:
        actions = np.asarray(trajectory.actions)
        valid = np.asarray(trajectory.valid, dtype=bool)
        gave = self.give_actions[np.clip(actions, 0, None)] & valid
        metrics = super().end_episode(trajectory, summary)
        return {**metrics, "give_rate": float(gave.sum() / max(valid.sum(), 1))}
