"""MOA social influence, decentralised (Jaques et al. 2019; algorithms.md §3.1–3.4, §3.7, §3.8).

Each agent owns a Model of Other Agents (MOA) that predicts every other agent's next action, and is
rewarded for its causal influence on those actions, as estimated by its own MOA. Nothing of any other
agent's parameters is ever seen: the run discloses the others' actions and who was visible to whom.

Network (the reference `moa_model.py`): one conv 3×3 (6 channels, VALID) shared by two branches.
- Policy branch: FC 32 → FC 32 → LSTM 128 (+ the others' previous actions, §3.7a, `visible_actions`)
  → action logits and value; trained by PPO/A2C (`agents.algorithms.ppo`).
- MOA branch: FC 32 → FC 32 → LSTM 128 over `[FC_moa(o_s), onehot(a^k_s), onehot(a^{-k}_s)]` (own
  action first, then the others by seat) → logits of each other agent's action at s + 1.

Influence reward (§3.1, computed after the episode with the rollout's parameters, no gradient): for the
prediction of j's action at t, from the MOA state before step t − 1, one counterfactual pass per own
action ã gives p^j_t(·|ã). With P^j_t = p^j_t(·|a^k_{t−1}) (what k did) and the marginal
M^j_t = Σ_ã π^k(ã|o_{t−1}) p^j_t(·|ã) under k's own frozen policy at t − 1,
    c_t = Σ_{j≠k} v^{kj}_{t−1} · D(P^j_t ‖ M^j_t),    D ∈ {KL, JSD, PMI},
with v^{kj}_{t−1} = "j was visible to k at t − 1" (`visibility_mask`). The value computed at t is the
credit of action t − 1 (§3.2): shifted back one step, 0 on the last step, clipped to ±10, weighted by
w(env steps) and added to the reward before GAE: r_t = e_t + w · c_t.

MOA loss (§3.3): w_moa · mean over (t, j) of v^{kj}_t · CE(a^j_t, q(·)) (masked entries count in the
mean, as in the reference), added to the policy loss; one optimiser, so it trains the shared conv.

MOA steps (our deviation): `moa_steps` more optimiser steps on the MOA loss alone follow each policy
update, and a warm-up batch (run setting `warmup_episodes`) gets 1 + moa_steps of them instead of an
update. The paper trains the MOA for 10^8 steps with the policy's learning rate; in a run of 100
updates the MOA learns a rare effective action (Box trapped's OPEN_BOX) only after the policy has
stopped trying it, and Adam scales the MOA's steps to the learning rate whatever `moa_loss_weight`.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import torch
from pydantic import model_validator
from torch import nn
from torch.nn import functional as F

from agents.algorithm import RunFacts, SeatInfo, Trajectory
from agents.algorithms.ppo import PAPER_A3C, SSD_PPO, ExtraLoss, PPOOptions, RecurrentPPO, lr_anneal, schedule
from agents.learners.common import TrajectoryTensors, onehot_others
from agents.learners.networks import mlp

Divergence = Literal["kl", "jsd", "pmi"]
#: Probabilities are clamped to at least this before logs (deviation §3.7b: per entry, not per batch).
PROB_FLOOR = 1e-8


class MOAOptions(PPOOptions):
    influence_weight: float = 1.0
    #: [[env_step, factor], ...]: w = influence_weight · interp(step, knots); None: constant weight.
    influence_knots: list[tuple[float, float]] | None = None
    influence_clip: float = 10.0
    divergence: Divergence = "kl"
    moa_loss_weight: float = 1.0
    visibility_mask: bool = True
    train_moa_only_when_visible: bool = True
    visible_actions: bool = True
    #: MOA-only optimiser steps on each batch: after the policy's update (whose steps carry the MOA
    #: loss too), and, on a warm-up batch (run setting `warmup_episodes`), 1 + moa_steps in its stead.
    moa_steps: int = 0

    @model_validator(mode="after")
    def _check_moa(self) -> MOAOptions:
        if self.influence_weight < 0 or self.moa_loss_weight < 0 or self.moa_steps < 0:
            raise ValueError("influence_weight, moa_loss_weight and moa_steps must be ≥ 0")
        return self


#: §3.8 with reference deviation d: ssd-ppo takes the reference's tuned PPO scripts and knots
#: {0, 10M, 100M, 300M} → {0, 0, 1, 0.5}; paper-a3c takes Table 3 (influence MOA) with the weight raised
#: linearly from 0 to β over C × 10^6 steps.
REFERENCE_KNOTS = [(0.0, 0.0), (1e7, 0.0), (1e8, 1.0), (3e8, 0.5)]
MOA_PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "ssd-ppo": {
        "cleanup": {**SSD_PPO, "entropy_coeff": 0.00176, "lr": 0.00126, "lr_knots": lr_anneal(0.00126, 0.000012, 2e7),
                    "moa_loss_weight": 0.06663557, "influence_weight": 1.0, "influence_knots": REFERENCE_KNOTS},
        "harvest": {**SSD_PPO, "entropy_coeff": 0.00223, "lr": 0.0012, "lr_knots": lr_anneal(0.0012, 0.000044, 2e7),
                    "moa_loss_weight": 0.091650628, "influence_weight": 2.521, "influence_knots": REFERENCE_KNOTS},
    },
    "paper-a3c": {
        "cleanup": {**PAPER_A3C, "entropy_coeff": 0.00176, "lr": 0.00123, "lr_knots": lr_anneal(0.00123, 0.000012, 3e8),
                    "moa_loss_weight": 15.007, "influence_weight": 0.620, "influence_knots": [(0.0, 0.0), (4e7, 1.0)],
                    "divergence": "kl", "train_moa_only_when_visible": True},
        "harvest": {**PAPER_A3C, "entropy_coeff": 0.00223, "lr": 0.00120, "lr_knots": lr_anneal(0.00120, 0.000044, 3e8),
                    "moa_loss_weight": 10.911, "influence_weight": 2.521,
                    "influence_knots": [(0.0, 0.0), (2.26e8, 1.0)],
                    "divergence": "kl", "train_moa_only_when_visible": True},
    },
}


def divergence(conditional: torch.Tensor, marginal: torch.Tensor, kind: Divergence,
               taken: torch.Tensor | None = None) -> torch.Tensor:
    """D(P ‖ M) over the last axis; PMI is log P(a)/M(a) at the realised actions `taken`."""
    p, m = conditional.clamp(min=PROB_FLOOR), marginal.clamp(min=PROB_FLOOR)
    if kind == "kl":
        return (p * (p.log() - m.log())).sum(-1)
    if kind == "jsd":
        mid = 0.5 * (p + m)
        return 0.5 * (p * (p.log() - mid.log())).sum(-1) + 0.5 * (m * (m.log() - mid.log())).sum(-1)
    if taken is None:
        raise ValueError("PMI needs the realised actions")
    index = taken.unsqueeze(-1)
    return (p.gather(-1, index).log() - m.gather(-1, index).log()).squeeze(-1)


def credit_shift(influence_at: torch.Tensor) -> torch.Tensor:
    """`influence_at[t]` (`[T, ...]`, from the prediction of step t) is the credit of action t − 1: shift
    back one step, 0 on the last step, which has no successor (§3.2)."""
    return torch.cat([influence_at[1:], torch.zeros_like(influence_at[:1])])


def counterfactual_influence(cf_probs: torch.Tensor, own_probs: torch.Tensor, own_actions: torch.Tensor,
                             kind: Divergence, visible: torch.Tensor,
                             others_next: torch.Tensor | None = None) -> torch.Tensor:
    """Influence of each own action on the others' next actions, `[S, B]`.

    `cf_probs` `[S, A, B, J, n]`: the MOA's prediction of the J others' actions at s + 1 had k taken ã at
    s; `own_probs` `[S, B, A]`: k's frozen policy at s; `own_actions` `[S, B]`: what k took; `visible`
    `[S, B, J]`: j visible to k at s (all ones without masking); `others_next` `[S, B, J]`: their realised
    actions at s + 1 (PMI only). Entries that are not finite count as 0 (deviation §3.7b).
    """
    index = own_actions[:, None, :, None, None].expand(-1, 1, -1, *cf_probs.shape[3:])
    conditional = cf_probs.gather(1, index).squeeze(1)  # [S, B, J, n]
    marginal = (own_probs.permute(0, 2, 1)[..., None, None] * cf_probs).sum(1)  # Σ_ã π(ã) p(·|ã)
    value = divergence(conditional, marginal, kind, others_next)  # [S, B, J]
    value = torch.where(torch.isfinite(value), value, torch.zeros_like(value))
    return (value * visible).sum(-1)


class MOA(RecurrentPPO):
    """PPO/A2C agent with its own model of the others and the social-influence reward."""

    needs: ClassVar[frozenset[str]] = frozenset({"actions", "visibility"})
    options_model: ClassVar[type[MOAOptions]] = MOAOptions
    presets: ClassVar[dict[str, dict[str, dict[str, Any]]]] = MOA_PRESETS

    @classmethod
    def check_run(cls, options: dict[str, Any], run: RunFacts, seat: int) -> list[str]:
        if run.n_agents < 2:
            return ["MOA models the other agents: the run needs at least 2"]
        return super().check_run(options, run, seat)

    def build_extra_modules(self, info: SeatInfo, o: PPOOptions) -> None:
        sizes, seat = self.sizes, info.seat
        others = [sizes[j] for j in info.others]
        if len(set(others)) != 1:
            raise ValueError(f"MOA predicts the others' actions with one head shape; their action spaces differ "
                             f"({others})")
        self.n_others, self.n_other_actions = len(others), others[0]
        trunk = self.net.encoder.trunk_dim
        self.moa = nn.ModuleDict({
            "fc": mlp(trunk, o.hidden, None),
            "core": nn.LSTM(o.hidden[-1] + sum(sizes), o.core_size),
            "head": nn.Linear(o.core_size, sum(others)),
        }).to(self.device)
        self.own_actions = sizes[seat]

    def trained_parameters(self) -> list[nn.Parameter]:
        return [*self.net.parameters(), *self.moa.parameters()]

    # ----- the model of the others ----------------------------------------------------------------
    def moa_inputs(self, obs: torch.Tensor, joint: torch.Tensor) -> torch.Tensor:
        """`[S, B, in]` MOA inputs from observations `[S, B, ...]` and everyone's actions `[S, B, N]` at s."""
        seat = self.info.seat
        features = self.moa["fc"](self.net.encoder.trunk(obs))
        own = F.one_hot(joint[..., seat], self.own_actions).float()
        return torch.cat([features, own, onehot_others(joint, seat, self.sizes)], dim=-1)

    def moa_logits(self, out: torch.Tensor) -> torch.Tensor:
        """`[..., J, n]` logits of the others' next actions from the MOA core's output."""
        return self.moa["head"](out).reshape(*out.shape[:-1], self.n_others, self.n_other_actions)

    @torch.no_grad()
    def influence(self, obs: torch.Tensor, joint: torch.Tensor, own_logits: torch.Tensor,
                  visible: torch.Tensor) -> torch.Tensor:
        """`[T, B]` influence value computed at each step t (0 at t = 0): the prediction of the others'
        actions at t from the MOA state before t − 1, over all own counterfactual actions at t − 1."""
        steps, batch = joint.shape[:2]
        inputs = self.moa_inputs(obs[:steps], joint)  # [T, B, in]
        core = self.moa["core"]
        h = c = torch.zeros(1, batch, core.hidden_size, device=self.device)
        before_h, before_c = [], []
        for s in range(steps - 1):  # the state before each step s whose successor s + 1 exists
            before_h.append(h)
            before_c.append(c)
            _, (h, c) = core(inputs[s : s + 1], (h, c))
        S, A = steps - 1, self.own_actions
        seat = self.info.seat
        if S == 0:
            return torch.zeros(steps, batch, device=self.device)
        state_h = torch.cat(before_h, 1).reshape(1, S, 1, batch, -1).expand(1, S, A, batch, -1)
        state_c = torch.cat(before_c, 1).reshape(1, S, 1, batch, -1).expand(1, S, A, batch, -1)
        cf_inputs = inputs[:S, None].repeat(1, A, 1, 1)  # [S, A, B, in]
        start = inputs.shape[-1] - sum(self.sizes)  # where the own one-hot begins
        cf_inputs[..., start : start + A] = torch.eye(A, device=self.device)[None, :, None, :]
        flat = (1, S * A * batch, -1)
        out, _ = core(cf_inputs.reshape(flat), (state_h.reshape(flat).contiguous(), state_c.reshape(flat).contiguous()))
        cf_probs = torch.softmax(self.moa_logits(out.reshape(S, A, batch, -1)), -1)  # [S, A, B, J, n]
        own_probs = torch.softmax(own_logits[:S], -1)
        mask = visible[:S] if self.opts.visibility_mask else torch.ones_like(visible[:S])
        others_next = torch.stack([joint[1:, :, j] for j in self.info.others], -1)
        value = counterfactual_influence(cf_probs, own_probs, joint[:S, :, seat], self.opts.divergence, mask,
                                         others_next)
        return torch.cat([torch.zeros_like(value[:1]), value])  # index t = s + 1

    def moa_loss(self, obs: torch.Tensor, joint: torch.Tensor, visible: torch.Tensor, valid: torch.Tensor,
                 mb: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """w_moa · mean_{t,j} v^{kj}_t · CE(a^j_t, q) over the copies `mb` (§3.3)."""
        steps = joint.shape[0]
        out, _ = self.moa["core"](self.moa_inputs(obs[:steps, mb], joint[:, mb]))
        logits = self.moa_logits(out[: steps - 1])  # predictions of steps 1..T−1
        targets = torch.stack([joint[1:, mb, j] for j in self.info.others], -1)  # [T−1, b, J]
        ce = F.cross_entropy(logits.reshape(-1, self.n_other_actions), targets.reshape(-1),
                             reduction="none").reshape(targets.shape)
        weight = valid[1:, mb, None].expand_as(ce)
        if self.opts.train_moa_only_when_visible:
            weight = weight * visible[1:steps, mb]
        entries = valid[1:, mb].sum().clamp(min=1) * self.n_others
        loss = (ce * weight).sum() / entries
        accuracy = ((logits.argmax(-1) == targets).float() * weight).sum() / weight.sum().clamp(min=1)
        return self.opts.moa_loss_weight * loss, {"moa_loss": float(loss.detach()), "moa_accuracy": float(accuracy)}

    # ----- the learning step ----------------------------------------------------------------------
    def tensors(self, traj: Trajectory) -> tuple[torch.Tensor, torch.Tensor]:
        """Everyone's actions `[T, B, N]` and the others' visibility to this agent `[T+1, B, J]`."""
        joint = torch.as_tensor(traj.joint_actions, dtype=torch.int64, device=self.device)
        visible = torch.as_tensor(traj.visibility, dtype=torch.float32, device=self.device)[..., self.info.others]
        return joint, visible

    def learning_reward(self, traj: Trajectory, tt: TrajectoryTensors, logits: torch.Tensor
                        ) -> tuple[torch.Tensor, dict[str, float]]:
        o = self.opts
        joint, visible = self.tensors(traj)
        raw = credit_shift(self.influence(tt.obs, joint, logits, visible)) * tt.valid
        clipped = raw.clamp(-o.influence_clip, o.influence_clip)
        weight = o.influence_weight * schedule(o.influence_knots, 1.0, self.env_steps)
        steps = tt.valid.sum().clamp(min=1)
        mean = float(clipped.sum() / steps)
        above = float(((clipped > mean) & (tt.valid > 0)).float().sum() / steps)
        return tt.rewards + weight * clipped, {"influence": mean, "influence_sparsity": above,
                                               "influence_weight": weight}

    def extra_loss(self, traj: Trajectory, tt: TrajectoryTensors) -> ExtraLoss | None:
        joint, visible = self.tensors(traj)

        def loss(mb: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
            return self.moa_loss(tt.obs, joint, visible, tt.valid, mb)

        return loss

    def fit_moa(self, traj: Trajectory, steps: int) -> dict[str, float]:
        """`steps` optimiser steps on the MOA loss alone over the whole batch; the policy's own
        parameters get no gradient (the shared conv does, as in the joint update)."""
        tt = TrajectoryTensors(traj, self.device, self.info.max_steps)
        joint, visible = self.tensors(traj)
        every = torch.arange(joint.shape[1], device=self.device)
        metrics: dict[str, float] = {}
        for _ in range(steps):
            loss, metrics = self.moa_loss(tt.obs, joint, visible, tt.valid, every)
            self.learner.step(loss)
        return metrics

    def end_episode(self, trajectory: Trajectory, summary: dict[str, Any]) -> dict[str, float]:
        metrics = super().end_episode(trajectory, summary)
        return {**metrics, **self.fit_moa(trajectory, self.opts.moa_steps)}

    def warmup_episode(self, trajectory: Trajectory, summary: dict[str, Any]) -> dict[str, float]:
        """The policy does not learn; the MOA does, so the influence reward is there when it starts."""
        return {**self.fit_moa(trajectory, 1 + self.opts.moa_steps), "warmup": 1.0}

    def state_objects(self) -> dict[str, Any]:
        return {**super().state_objects(), "moa": self.moa}
