"""IA: inequity aversion (Hughes et al. 2018) on the actor-critic base (algorithms.md §2.10).

Traces e_j ← γλ·e_j + r^ext_j of every agent's extrinsic reward (reset each episode) shape the reward
u_i = r_i − α/(N−1)·Σ_j max(e_j − e_i, 0) − β/(N−1)·Σ_j max(e_i − e_j, 0), and the trace vector is an
extra input after the first dense layer of actor and critic (reference `inequity_aversion.py`).
Needs the others' rewards disclosed. The policy acting at t sees the traces of rewards up to t−1.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch

from agents.algorithm import StepView, Trajectory
from agents.algorithms.ac import AC_DEFAULTS, ACOptions, ActorCritic
from agents.learners.common import TrajectoryTensors


class IAOptions(ACOptions):
    ia_alpha: float = 0.0
    ia_beta: float = 0.05
    ia_lambda: float = 0.95


class InequityAversion(ActorCritic):
    """Actor-critic on the inequity-averse reward, conditioned on everyone's reward traces."""

    needs: ClassVar[frozenset[str]] = frozenset({"rewards"})
    options_model = IAOptions
    defaults = AC_DEFAULTS

    def extra_dim(self) -> int:
        return self.info.n_agents

    def _decay(self) -> float:
        return self.opts.gamma * self.opts.ia_lambda  # type: ignore[attr-defined]

    def step_extra(self, view: StepView) -> torch.Tensor:
        """Traces after the previous step's rewards (zeros at t = 0)."""
        if view.t == 0 or not hasattr(self, "_trace"):
            self._trace = torch.zeros(view.obs.shape[0], self.info.n_agents, device=self.device)
        else:
            if view.others_rewards is None:
                raise RuntimeError("inequity aversion needs the 'rewards' disclosure")
            rewards = np.array(view.others_rewards, dtype=np.float32)
            rewards[:, self.info.seat] = view.extrinsic
            self._trace = self._decay() * self._trace + torch.as_tensor(rewards, device=self.device)
        return self._trace

    def _traces(self, traj: Trajectory, tt: TrajectoryTensors) -> torch.Tensor:
        """e after step t's rewards, `[T, B, N]`."""
        if traj.joint_rewards is None:
            raise RuntimeError("inequity aversion needs the 'rewards' disclosure")
        rewards = torch.as_tensor(np.asarray(traj.joint_rewards), dtype=torch.float32, device=self.device)
        rewards = rewards.clone()
        rewards[..., self.info.seat] = tt.extrinsic
        rewards = rewards * tt.valid.unsqueeze(-1)
        trace = torch.zeros_like(rewards[0])
        out = []
        for t in range(tt.T):
            trace = self._decay() * trace + rewards[t]
            out.append(trace)
        return torch.stack(out)

    def trajectory_extra(self, traj: Trajectory, tt: TrajectoryTensors) -> torch.Tensor:
        traces = self._traces(traj, tt)
        return torch.cat([torch.zeros_like(traces[:1]), traces], dim=0)

    def learning_reward(self, traj: Trajectory, tt: TrajectoryTensors) -> torch.Tensor:
        e = self._traces(traj, tt)
        seat, n = self.info.seat, self.info.n_agents
        diff = e - e[..., seat : seat + 1]
        envy = diff.clamp(min=0).sum(-1) / (n - 1)
        guilt = (-diff).clamp(min=0).sum(-1) / (n - 1)
        o: Any = self.opts
        return tt.rewards - o.ia_alpha * envy - o.ia_beta * guilt
