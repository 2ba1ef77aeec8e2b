"""AC: independent one-step actor-critic with a target critic (algorithms.md §1.2, §2.10 "AC").

The Cleanup baseline family of the LIO paper; defaults from the reference `config_ssd_pg.py`.
Hooks (`extra_dim`, `step_extra`, `trajectory_extra`, `learning_reward`) let inequity aversion reuse it.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch

from agents.algorithm import SeatInfo, StepView, Trajectory
from agents.learners.actor_critic import ActorCriticLearner
from agents.learners.common import LearningAlgorithm, LinearSchedule, Options, TrajectoryTensors, parse_options
from agents.learners.networks import PolicyNet, ValueNet, n_actions
from agents.learners.reinforce import sample_mixed


class ACOptions(Options):
    lr_actor: float = 1e-3
    lr_v: float = 1e-3
    tau: float = 0.01
    entropy_coeff: float = 0.1
    epsilon_start: float = 0.5
    epsilon_end: float = 0.05
    epsilon_div: float = 1000
    gamma: float = 0.99
    hidden: list[int] = [64, 64]
    conv_channels: int = 6
    obs_scale: float | None = None


AC_DEFAULTS: dict[str, dict[str, Any]] = {
    "er": {"entropy_coeff": 0.01, "epsilon_start": 1.0, "epsilon_end": 0.1, "hidden": [64, 32]},
    "ipd": {"epsilon_start": 1.0, "epsilon_end": 0.01, "epsilon_div": 5000, "hidden": [16, 8]},
    "cleanup": {},
}


class ActorCritic(LearningAlgorithm):
    """ε-mixed actor + TD(0) critic with soft target; one update per episode batch."""

    options_model: type[ACOptions] = ACOptions
    defaults: dict[str, dict[str, Any]] = AC_DEFAULTS

    def setup(self, info: SeatInfo) -> None:
        self.setup_common(info)
        self.opts = parse_options(self.options_model, info, self.defaults)
        o = self.opts
        space, extra = info.observation_space, self.extra_dim()
        with self.seeded():
            self.policy = PolicyNet(space, n_actions(info.action_space), o.hidden, extra, o.conv_channels,
                                    o.obs_scale, layout=info.observation_layout).to(self.device)
            self.critic = ValueNet(space, o.hidden, extra, o.conv_channels, o.obs_scale,
                                   layout=info.observation_layout).to(self.device)
        self.learner = ActorCriticLearner(self.policy, self.critic, copy.deepcopy(self.critic), o.lr_actor,
                                          o.lr_v, o.gamma, o.entropy_coeff, o.tau)
        self.epsilon = LinearSchedule(o.epsilon_start, o.epsilon_end, o.epsilon_div)

    def extra_dim(self) -> int:
        """Width of extra inputs joined after the first dense layer (0: none)."""
        return 0

    def step_extra(self, view: StepView) -> torch.Tensor | None:
        """Extra inputs for this step's action, `[B, extra_dim]`."""
        return None

    def trajectory_extra(self, traj: Trajectory, tt: TrajectoryTensors) -> torch.Tensor | None:
        """Extra inputs aligned with `traj.obs` (T+1 entries)."""
        return None

    def learning_reward(self, traj: Trajectory, tt: TrajectoryTensors) -> torch.Tensor:
        """Total reward (extrinsic + incentives received)."""
        return tt.rewards

    @torch.inference_mode()  # acting builds no graph; cheaper than no_grad
    def act(self, view: StepView) -> np.ndarray:
        obs = self.obs_tensor(view.obs)
        extra = self.step_extra(view)
        logits = self.policy(obs) if extra is None else self.policy(obs, extra)
        eps = 0.0 if view.evaluate else self.epsilon.value  # evaluation: no exploration (§1.1)
        return sample_mixed(logits, eps, self.gen).cpu().numpy()

    def end_episode(self, trajectory: Trajectory, summary: dict[str, Any]) -> dict[str, float]:
        tt = TrajectoryTensors(trajectory, self.device, self.info.max_steps)
        eps = self.epsilon.value
        metrics = self.learner.update(tt.obs, tt.actions, self.learning_reward(trajectory, tt), tt.valid,
                                      tt.terminal, eps, self.trajectory_extra(trajectory, tt))
        self.epsilon.step()
        return {**metrics, "epsilon": eps}

    def state_objects(self) -> dict[str, Any]:
        lr = self.learner
        return {"policy": self.policy, "critic": self.critic, "target": lr.target, "opt_actor": lr.opt_actor,
                "opt_v": lr.opt_v}

    def extra_state(self) -> dict[str, Any]:
        return {"epsilon_k": self.epsilon.k}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self.epsilon.k = state["epsilon_k"]
