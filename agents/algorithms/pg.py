"""PG: independent REINFORCE on the agent's own total reward (algorithms.md §1.1, §2.10 "PG").

The baseline that LIO beats: it needs nothing from the others and pays nothing. Defaults are the LIO
reference's per-game values (ER `config_room_pg.py`, IPD `config_ipd_lio.py`, Cleanup `config_ssd_pg.py`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from agents.algorithm import SeatInfo, StepView, Trajectory
from agents.learners.common import LearningAlgorithm, LinearSchedule, Options, TrajectoryTensors, parse_options
from agents.learners.networks import PolicyNet, n_actions
from agents.learners.reinforce import Reinforce, sample_mixed


class PGOptions(Options):
    lr: float = 1e-3
    entropy_coeff: float = 0.01
    epsilon_start: float = 1.0
    epsilon_end: float = 0.1
    epsilon_div: float = 1000
    gamma: float = 0.99
    hidden: list[int] = [64, 32]
    conv_channels: int = 6
    obs_scale: float | None = None


PG_DEFAULTS: dict[str, dict[str, Any]] = {
    "er": {},
    "ipd": {"entropy_coeff": 0.1, "epsilon_end": 0.01, "epsilon_div": 5000, "hidden": [16, 8]},
    "cleanup": {"entropy_coeff": 0.1, "epsilon_start": 0.5, "epsilon_end": 0.05, "hidden": [64, 64]},
}


class PolicyGradient(LearningAlgorithm):
    """REINFORCE with ε-mixed exploration; one SGD step per episode batch."""

    options_model: type[PGOptions] = PGOptions
    defaults: dict[str, dict[str, Any]] = PG_DEFAULTS

    def setup(self, info: SeatInfo) -> None:
        self.setup_common(info)
        self.opts = parse_options(self.options_model, info, self.defaults)
        o = self.opts
        with self.seeded():
            self.policy = PolicyNet(info.observation_space, self.policy_actions(), o.hidden,
                                    conv_channels=o.conv_channels, obs_scale=o.obs_scale,
                                    layout=info.observation_layout).to(self.device)
        self.learner = Reinforce(self.policy, o.lr, o.gamma, o.entropy_coeff)
        self.epsilon = LinearSchedule(o.epsilon_start, o.epsilon_end, o.epsilon_div)

    def policy_actions(self) -> int:
        """Size of the policy's output; subclasses that augment the action space override it."""
        return n_actions(self.info.action_space)

    @torch.inference_mode()  # acting builds no graph; cheaper than no_grad
    def act(self, view: StepView) -> np.ndarray:
        logits = self.policy(self.obs_tensor(view.obs))
        eps = 0.0 if view.evaluate else self.epsilon.value  # evaluation: no exploration (§1.1)
        return sample_mixed(logits, eps, self.gen).cpu().numpy()

    def learning_reward(self, traj: Trajectory, tt: TrajectoryTensors) -> torch.Tensor:
        """The reward PG maximises: total reward (extrinsic + incentives received)."""
        return tt.rewards

    def end_episode(self, trajectory: Trajectory, summary: dict[str, Any]) -> dict[str, float]:
        tt = TrajectoryTensors(trajectory, self.device, self.info.max_steps)
        eps = self.epsilon.value
        metrics = self.learner.update(tt.obs[: tt.T], self.policy_action_tensor(tt), self.learning_reward(
            trajectory, tt), tt.valid, eps)
        self.epsilon.step()
        return {**metrics, "epsilon": eps}

    def policy_action_tensor(self, tt: TrajectoryTensors) -> torch.Tensor:
        """Actions as the policy chose them (subclasses may have recorded richer ones)."""
        return tt.actions

    def state_objects(self) -> dict[str, Any]:
        return {"policy": self.policy, "opt": self.learner.opt}

    def extra_state(self) -> dict[str, Any]:
        return {"epsilon_k": self.epsilon.k}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self.epsilon.k = state["epsilon_k"]
