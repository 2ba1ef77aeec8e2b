"""PG-c: REINFORCE with a continuous give-reward head (algorithms.md §2.10; LIO paper's PG-c baseline).

Factorised policy π(a, x|o, a_−i) = π(a|o)·N(x; μ_η(o, a_−i), 1): the movement is the ε-mixed policy of
PG, the gift head has the incentive-net architecture without output squashing, and the agent pays
Rmax·σ(x) per recipient through `pay()` so the arena's ledger records every gift. Both heads take one
SGD step on −Σ_t [log π̃(a_t|o_t) + Σ_j log N(x_tj; μ_tj, 1)]·G_t − c_H Σ_t H with G on
r = r^ext + r^in − cost_coeff·given (ER: the giver bears the full amount). The Jacobian of σ does not
depend on parameters and is dropped. Gift samples and their inputs are recorded in `pay()`.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
import torch

from agents.algorithm import SeatInfo, StepView, Trajectory
from agents.algorithms.pg import PG_DEFAULTS, PGOptions, PolicyGradient
from agents.learners.common import TrajectoryTensors, onehot_others
from agents.learners.networks import IncentiveNet, n_actions
from agents.learners.reinforce import discounted_returns, reinforce_loss


class PGCOptions(PGOptions):
    gift_hidden: list[int] = [64, 16]
    cost_coeff: float = 1.0


PGC_DEFAULTS: dict[str, dict[str, Any]] = {
    **PG_DEFAULTS,
    "ipd": {**PG_DEFAULTS["ipd"], "gift_hidden": [16, 8]},
    "cleanup": {**PG_DEFAULTS["cleanup"], "gift_hidden": [64, 64], "cost_coeff": 1e-4},
}


class PolicyGradientContinuousGive(PolicyGradient):
    """PG plus a Gaussian gift head paid through the arena."""

    pays: ClassVar[bool] = True
    options_model = PGCOptions
    defaults = PGC_DEFAULTS

    def setup(self, info: SeatInfo) -> None:
        super().setup(info)
        o: Any = self.opts
        self.action_sizes = [n_actions(s) for s in info.action_spaces]
        feature_dim = sum(n for j, n in enumerate(self.action_sizes) if j != info.seat)
        with self.seeded():
            self.gift = IncentiveNet(info.observation_space, feature_dim, info.n_agents, o.gift_hidden, info.rmax,
                                     o.conv_channels, o.obs_scale, layout=info.observation_layout).to(self.device)
        self.learner.opt.add_param_group({"params": list(self.gift.parameters())})
        self._gift_x: list[torch.Tensor] = []
        self._gift_in: list[tuple[torch.Tensor, torch.Tensor]] = []

    def act(self, view: StepView) -> np.ndarray:
        if view.t == 0:
            self._gift_x.clear()
            self._gift_in.clear()
        return super().act(view)

    @torch.inference_mode()  # acting builds no graph; cheaper than no_grad
    def pay(self, view: StepView, joint_action: np.ndarray) -> np.ndarray:
        """Sample x ~ N(μ, 1) per recipient and pay Rmax·σ(x), self entry 0."""
        obs = self.obs_tensor(view.obs)
        features = onehot_others(torch.as_tensor(joint_action, dtype=torch.int64, device=self.device),
                                 self.info.seat, self.action_sizes)
        mu = self.gift(obs, features, raw=True)
        x = mu + torch.randn(mu.shape, generator=self.gen, device=self.device)
        self._gift_x.append(x)
        self._gift_in.append((obs, features))
        amounts = self.info.rmax * torch.sigmoid(x)
        amounts[:, self.info.seat] = 0.0
        return amounts.cpu().numpy().astype(np.float32)

    def end_episode(self, trajectory: Trajectory, summary: dict[str, Any]) -> dict[str, float]:
        tt = TrajectoryTensors(trajectory, self.device, self.info.max_steps)
        if len(self._gift_x) < tt.T:
            raise RuntimeError(f"pg_c recorded {len(self._gift_x)} gifts for a {tt.T}-step episode: "
                               "the runtime must call pay() at every step")
        o: Any = self.opts
        eps, seat = self.epsilon.value, self.info.seat
        paid = (torch.as_tensor(np.asarray(trajectory.paid), dtype=torch.float32, device=self.device)
                if trajectory.paid is not None else torch.zeros(tt.T, tt.valid.shape[1], self.info.n_agents))
        given = paid.sum(-1) - paid[..., seat]
        returns = discounted_returns(tt.rewards - o.cost_coeff * given, tt.valid, o.gamma)
        loss = reinforce_loss(self.policy(tt.obs[: tt.T]), tt.actions, returns, tt.valid, eps, o.entropy_coeff)
        x = torch.stack(self._gift_x[: tt.T])
        mu = self.gift(torch.stack([i[0] for i in self._gift_in[: tt.T]]),
                       torch.stack([i[1] for i in self._gift_in[: tt.T]]), raw=True)
        log_gauss = -0.5 * (x - mu).pow(2) - 0.5 * math.log(2 * math.pi)
        log_gauss = log_gauss.sum(-1) - log_gauss[..., seat]
        loss = loss - (log_gauss * returns.detach() * tt.valid).sum() / tt.valid.shape[1]
        self.learner.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.learner.opt.step()
        self.epsilon.step()
        given_per_episode = float((given * tt.valid).sum() / tt.valid.shape[1])
        return {"policy_loss": float(loss.detach()), "epsilon": eps, "given": given_per_episode}

    def state_objects(self) -> dict[str, Any]:
        return {**super().state_objects(), "gift": self.gift}
