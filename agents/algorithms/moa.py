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

Communication (§3.6, `communication = true`): every step the agent also sends a symbol from the
run's `message_vocab` through the arena's `messages` channel, from a message head π_m (with its own
value V_m) on the policy LSTM's output; everyone's symbols of step t − 1 are inputs at t of the policy
LSTM (the others') and of the MOA (own and others', own first). The two heads learn apart: π_e, V_e
from the extrinsic reward e alone; π_m, V_m from α·e + w·c with its own entropy coefficient, by a
clipped surrogate scaled by `message_loss_weight`. The influence c is the formula above over k's own
symbol instead of its action: one counterfactual MOA pass per symbol m̃ at t − 1, marginal under k's
frozen message policy π_m(·|o_{t−1}); the same divergence, visibility mask, shift, clip and weight.
Logged (§6): `speaker_consistency`, the coordination `ic_message_action` = max_j I(m^k_t; a^j_{t+1})
(`ic_message_action_influential` on the steps whose c ≥ its mean) and `ic_action_action`, and
`messages_heard` (the others' symbols that arrived).

MOA steps (our deviation): `moa_steps` more optimiser steps on the MOA loss alone follow each policy
update, and a warm-up batch (run setting `warmup_episodes`) gets 1 + moa_steps of them instead of an
update. The paper trains the MOA for 10^8 steps with the policy's learning rate; in a run of 100
updates the MOA learns a rare effective action (Box trapped's OPEN_BOX) only after the policy has
stopped trying it, and Adam scales the MOA's steps to the learning rate whatever `moa_loss_weight`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from pydantic import model_validator
from torch import nn
from torch.nn import functional as F

from agents.algorithm import RunFacts, SeatInfo, StepView, Trajectory
from agents.algorithms.ppo import PAPER_A3C, SSD_PPO, ExtraLoss, PPOOptions, RecurrentPPO, lr_anneal, schedule
from agents.learners.common import TrajectoryTensors, onehot_codes, onehot_others
from agents.learners.networks import mlp
from agents.learners.ppo import gae

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
    #: §3.6: talk through the `messages` channel and be rewarded for influence through the symbols.
    communication: bool = False
    #: the message head's entropy coefficient and loss weight (Table 2, Cleanup influence comm.)
    message_entropy_coeff: float = 0.000789
    message_loss_weight: float = 0.0758
    #: α, the extrinsic reward's weight in the message head's reward α·e + w·c (Table 2: Cleanup 0, Harvest 1)
    message_extrinsic_weight: float = 1.0

    @model_validator(mode="after")
    def _check_moa(self) -> MOAOptions:
        weights = (self.influence_weight, self.moa_loss_weight, self.moa_steps, self.message_entropy_coeff,
                   self.message_loss_weight, self.message_extrinsic_weight)
        if min(weights) < 0:
            raise ValueError("influence_weight, moa_loss_weight, moa_steps and the message_* weights must be ≥ 0")
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


def joint_counts(x: torch.Tensor, y: torch.Tensor, nx: int, ny: int) -> torch.Tensor:
    """`[nx, ny]` counts of the paired codes in the 1-D `x` and `y`."""
    return torch.bincount(x * ny + y, minlength=nx * ny).reshape(nx, ny).double()


def mutual_information(counts: torch.Tensor) -> float:
    """I(X; Y) in nats of the empirical joint distribution in `counts` `[nx, ny]` (0 for no samples)."""
    if counts.sum() == 0:
        return 0.0
    p = counts / counts.sum()
    independent = p.sum(1, keepdim=True) * p.sum(0, keepdim=True)
    seen = p > 0
    return float((p[seen] * (p[seen] / independent[seen]).log()).sum())


def consistency(counts: torch.Tensor) -> float:
    """mean over the rows that occur of 1 − H(row)/log(columns): 1 when each row is a single column."""
    rows = counts[counts.sum(1) > 0]
    if rows.numel() == 0:
        return 0.0
    p = rows / rows.sum(1, keepdim=True)
    entropy = -(p * p.clamp(min=1e-300).log()).sum(1)
    return float((1.0 - entropy / np.log(counts.shape[1])).mean())


def speaker_consistency(counts: torch.Tensor) -> float:
    """§6 (paper eq. 8) from the counts `[V, A]` of (own symbol, own action) at the same step:
    ½[mean_c (1 − H(a | m = c)/log|A|) + mean_a (1 − H(m | a)/log|V|)]."""
    return 0.5 * (consistency(counts) + consistency(counts.T))


@dataclass
class Speech:
    """One batch's message-head rollout (rollout parameters, no gradient): what its loss trains on."""

    extra: torch.Tensor  # the policy's extra inputs [T+1, B, ...]
    symbols: torch.Tensor  # own symbols [T, B]
    logp_old: torch.Tensor  # their log-probabilities under π_m [T, B]
    advantages: torch.Tensor  # GAE on α·e + w·c with V_m [T, B]
    targets: torch.Tensor  # V_m's targets [T, B]
    metrics: dict[str, float]


class MOA(RecurrentPPO):
    """PPO/A2C agent with its own model of the others and the social-influence reward."""

    needs: ClassVar[frozenset[str]] = frozenset({"actions", "visibility"})
    options_model: ClassVar[type[MOAOptions]] = MOAOptions
    presets: ClassVar[dict[str, dict[str, dict[str, Any]]]] = MOA_PRESETS

    @classmethod
    def talks_with(cls, options: dict[str, Any]) -> bool:
        """As the validated options say (pydantic reads "false" as False; `bool("false")` is True)."""
        return cls.resolve_options(options, None).communication

    @classmethod
    def check_run(cls, options: dict[str, Any], run: RunFacts, seat: int) -> list[str]:
        if run.n_agents < 2:
            return ["MOA models the other agents: the run needs at least 2"]
        if cls.talks_with(options) and "messages" not in run.disclose:
            return ["communication = true hears the others' symbols: add \"messages\" to [arena] disclose"]
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
            "core": nn.LSTM(o.hidden[-1] + sum(sizes) + self.vocab * info.n_agents, o.core_size),
            "head": nn.Linear(o.core_size, sum(others)),
        }).to(self.device)
        self.own_actions = sizes[seat]
        self.speaker = nn.ModuleDict()  # the message head π_m and its value V_m, with communication only
        if self.vocab:
            self.speaker.update({"policy": nn.Linear(o.core_size, self.vocab), "value": nn.Linear(o.core_size, 1)})
            self.speaker.to(self.device)

    @property
    def vocab(self) -> int:
        """Symbols the agent speaks and hears; 0 without communication."""
        if not self.opts.communication:
            return 0
        if self.info.message_vocab < 2:
            raise ValueError(f"communication needs [arena] message_vocab ≥ 2, not {self.info.message_vocab}")
        return self.info.message_vocab

    def trained_parameters(self) -> list[nn.Parameter]:
        return [*self.net.parameters(), *self.moa.parameters(), *self.speaker.parameters()]

    # ----- what the policy hears ------------------------------------------------------------------
    def policy_extra_dim(self, info: SeatInfo, o: PPOOptions) -> int:
        return super().policy_extra_dim(info, o) + self.vocab * (info.n_agents - 1)

    def with_heard(self, extra: torch.Tensor | None, said: torch.Tensor) -> torch.Tensor | None:
        """`extra` with the others' symbols of the previous step `said` `[..., N]`, one-hot, appended."""
        if not self.opts.communication:
            return extra
        heard = onehot_others(said, self.info.seat, [self.vocab] * self.info.n_agents)
        return heard if extra is None else torch.cat([extra, heard], -1)

    def view_extra(self, view: StepView) -> torch.Tensor | None:
        said = None if view.messages is None else torch.as_tensor(view.messages, dtype=torch.int64,
                                                                  device=self.device)
        return self.with_heard(super().view_extra(view), said)

    def trajectory_extra(self, traj: Trajectory) -> torch.Tensor | None:
        said = self.said(traj)
        previous = None if said is None else torch.cat([torch.full_like(said[:1], -1), said])
        return self.with_heard(super().trajectory_extra(traj), previous)

    @torch.inference_mode()
    def act(self, view: StepView) -> np.ndarray:
        """Without communication, PPO's. With it, the action and the symbol from the same LSTM output."""
        if not self.opts.communication:
            return super().act(view)
        if view.t == 0:
            self.state = self.net.initial_state(self.info.batch_size, self.device)
        out, self.state = self.net.features(self.obs_tensor(view.obs)[None], self.state, self.view_extra(view)[None])
        actions = torch.multinomial(torch.softmax(self.net.policy(out[0]), -1), 1, generator=self.gen)
        self.symbols = torch.multinomial(torch.softmax(self.speaker["policy"](out[0]), -1), 1, generator=self.gen)
        return actions.squeeze(-1).cpu().numpy()

    def speak(self, view: StepView) -> np.ndarray:
        return self.symbols.squeeze(-1).cpu().numpy()

    # ----- the model of the others ----------------------------------------------------------------
    def moa_inputs(self, obs: torch.Tensor, joint: torch.Tensor, said: torch.Tensor | None) -> torch.Tensor:
        """`[S, B, in]` MOA inputs from observations `[S, B, ...]`, everyone's actions `[S, B, N]` at s and,
        with communication, everyone's symbols `said` `[S, B, N]` at s: features, own action, the others'
        actions, own symbol, the others' symbols."""
        seat = self.info.seat
        features = self.moa["fc"](self.net.encoder.trunk(obs))
        own = F.one_hot(joint[..., seat], self.own_actions).float()
        parts = [features, own, onehot_others(joint, seat, self.sizes)]
        if said is not None:
            parts += [onehot_codes(said[..., seat], self.vocab),
                      onehot_others(said, seat, [self.vocab] * len(self.sizes))]
        return torch.cat(parts, dim=-1)

    def own_block(self) -> tuple[int, int]:
        """(first index, width) of the MOA input the counterfactuals vary: the own symbol with
        communication, else the own action."""
        features = self.opts.hidden[-1]
        if self.opts.communication:
            return features + sum(self.sizes), self.vocab
        return features, self.own_actions

    def moa_logits(self, out: torch.Tensor) -> torch.Tensor:
        """`[..., J, n]` logits of the others' next actions from the MOA core's output."""
        return self.moa["head"](out).reshape(*out.shape[:-1], self.n_others, self.n_other_actions)

    @torch.no_grad()
    def influence(self, obs: torch.Tensor, joint: torch.Tensor, said: torch.Tensor | None, own_logits: torch.Tensor,
                  taken: torch.Tensor, visible: torch.Tensor) -> torch.Tensor:
        """`[T, B]` influence value computed at each step t (0 at t = 0): the prediction of the others'
        actions at t from the MOA state before t − 1, over all own counterfactual actions (or symbols,
        `own_block`) at t − 1; `own_logits` `[≥T−1, B, A]` of the policy that chose them, `taken` `[T, B]` what
        it chose."""
        steps, batch = joint.shape[:2]
        inputs = self.moa_inputs(obs[:steps], joint, said)  # [T, B, in]
        core = self.moa["core"]
        h = c = torch.zeros(1, batch, core.hidden_size, device=self.device)
        before_h, before_c = [], []
        for s in range(steps - 1):  # the state before each step s whose successor s + 1 exists
            before_h.append(h)
            before_c.append(c)
            _, (h, c) = core(inputs[s : s + 1], (h, c))
        start, A = self.own_block()
        S = steps - 1
        if S == 0:
            return torch.zeros(steps, batch, device=self.device)
        state_h = torch.cat(before_h, 1).reshape(1, S, 1, batch, -1).expand(1, S, A, batch, -1)
        state_c = torch.cat(before_c, 1).reshape(1, S, 1, batch, -1).expand(1, S, A, batch, -1)
        cf_inputs = inputs[:S, None].repeat(1, A, 1, 1)  # [S, A, B, in]
        cf_inputs[..., start : start + A] = torch.eye(A, device=self.device)[None, :, None, :]
        flat = (1, S * A * batch, -1)
        out, _ = core(cf_inputs.reshape(flat), (state_h.reshape(flat).contiguous(), state_c.reshape(flat).contiguous()))
        cf_probs = torch.softmax(self.moa_logits(out.reshape(S, A, batch, -1)), -1)  # [S, A, B, J, n]
        own_probs = torch.softmax(own_logits[:S], -1)
        mask = visible[:S] if self.opts.visibility_mask else torch.ones_like(visible[:S])
        others_next = torch.stack([joint[1:, :, j] for j in self.info.others], -1)
        value = counterfactual_influence(cf_probs, own_probs, taken[:S], self.opts.divergence, mask, others_next)
        return torch.cat([torch.zeros_like(value[:1]), value])  # index t = s + 1

    def moa_loss(self, obs: torch.Tensor, joint: torch.Tensor, said: torch.Tensor | None, visible: torch.Tensor,
                 valid: torch.Tensor, mb: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """w_moa · mean_{t,j} v^{kj}_t · CE(a^j_t, q) over the copies `mb` (§3.3)."""
        steps = joint.shape[0]
        out, _ = self.moa["core"](self.moa_inputs(obs[:steps, mb], joint[:, mb], None if said is None else said[:, mb]))
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
    def tensors(self, traj: Trajectory) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        """Everyone's actions `[T, B, N]`, everyone's symbols `[T, B, N]` (None without communication) and
        the others' visibility to this agent `[T+1, B, J]`."""
        joint = torch.as_tensor(traj.joint_actions, dtype=torch.int64, device=self.device)
        visible = torch.as_tensor(traj.visibility, dtype=torch.float32, device=self.device)[..., self.info.others]
        return joint, self.said(traj), visible

    def said(self, traj: Trajectory) -> torch.Tensor | None:
        """Everyone's symbols sent at each step `[T, B, N]` as the arena delivered them; None without talk."""
        if not self.opts.communication:
            return None
        return torch.as_tensor(traj.joint_messages, dtype=torch.int64, device=self.device)

    def influence_credit(self, traj: Trajectory, tt: TrajectoryTensors, own_logits: torch.Tensor,
                         taken: torch.Tensor) -> tuple[torch.Tensor, float, dict[str, float]]:
        """The clipped influence credit of each own action (or symbol) `[T, B]` (§3.2), its weight w, and
        metrics."""
        o = self.opts
        joint, said, visible = self.tensors(traj)
        raw = credit_shift(self.influence(tt.obs, joint, said, own_logits, taken, visible)) * tt.valid
        clipped = raw.clamp(-o.influence_clip, o.influence_clip)
        weight = o.influence_weight * schedule(o.influence_knots, 1.0, self.env_steps)
        steps = tt.valid.sum().clamp(min=1)
        mean = float(clipped.sum() / steps)
        above = float(((clipped > mean) & (tt.valid > 0)).float().sum() / steps)
        return clipped, weight, {"influence": mean, "influence_sparsity": above, "influence_weight": weight}

    def learning_reward(self, traj: Trajectory, tt: TrajectoryTensors, logits: torch.Tensor
                        ) -> tuple[torch.Tensor, dict[str, float]]:
        if self.opts.communication:  # §3.6: π_e learns from e alone; the influence rewards the symbols
            return tt.rewards, {}
        own = torch.as_tensor(traj.joint_actions[..., self.info.seat], dtype=torch.int64, device=self.device)
        credit, weight, metrics = self.influence_credit(traj, tt, logits, own)
        return tt.rewards + weight * credit, metrics

    @torch.no_grad()
    def message_rollout(self, traj: Trajectory, tt: TrajectoryTensors) -> Speech:
        """π_m and V_m over the batch with the rollout's parameters, the influence of the symbols, and the
        message head's advantages on α·e + w·c."""
        o = self.opts
        extra = self.trajectory_extra(traj)
        out, _ = self.net.features(tt.obs, self.net.initial_state(tt.obs.shape[1], self.device), extra)
        logits, values = self.speaker["policy"](out), self.speaker["value"](out).squeeze(-1)
        symbols = torch.as_tensor(traj.messages, dtype=torch.int64, device=self.device)
        credit, weight, metrics = self.influence_credit(traj, tt, logits, symbols)
        rewards = o.message_extrinsic_weight * tt.rewards + weight * credit
        advantages = gae(rewards, values, tt.valid, tt.terminal, o.gamma, o.lam)
        logp_old = torch.log_softmax(logits[: tt.T], -1).gather(-1, symbols.unsqueeze(-1)).squeeze(-1)
        metrics |= self.talk_metrics(traj, symbols, credit, tt.valid)
        return Speech(extra, symbols, logp_old, advantages, advantages + values[: tt.T], metrics)

    def message_loss(self, tt: TrajectoryTensors, speech: Speech, mb: torch.Tensor
                     ) -> tuple[torch.Tensor, dict[str, float]]:
        """w_m · (clipped surrogate + value + entropy) of the message head over the copies `mb` (§3.6),
        whole episodes (no truncation); gradients reach the shared layers, never π_e's head."""
        o, T = self.opts, tt.T
        out, _ = self.net.features(tt.obs[:, mb], self.net.initial_state(len(mb), self.device), speech.extra[:, mb])
        logp_all = torch.log_softmax(self.speaker["policy"](out[:T]), -1)
        values = self.speaker["value"](out[:T]).squeeze(-1)
        logp = logp_all.gather(-1, speech.symbols[:, mb].unsqueeze(-1)).squeeze(-1)
        a, m = speech.advantages[:, mb], tt.valid[:, mb]
        if o.clip is None:
            surrogate = logp * a
        else:
            ratio = torch.exp(logp - speech.logp_old[:, mb])
            surrogate = torch.min(ratio * a, ratio.clamp(1 - o.clip, 1 + o.clip) * a)
        n = m.sum().clamp(min=1)
        pg = -(surrogate * m).sum() / n
        value = ((values - speech.targets[:, mb]).pow(2) * m).sum() / n
        entropy = (-(logp_all.exp() * logp_all).sum(-1) * m).sum() / n
        loss = o.message_loss_weight * (pg + o.value_coeff * value - o.message_entropy_coeff * entropy)
        return loss, {"message_policy_loss": float(pg.detach()), "message_value_loss": float(value.detach()),
                      "message_entropy": float(entropy.detach())}

    def talk_metrics(self, traj: Trajectory, symbols: torch.Tensor, credit: torch.Tensor, valid: torch.Tensor
                     ) -> dict[str, float]:
        """§6 from this batch: speaker consistency, instantaneous coordination (all steps and the steps
        whose credit is at least its mean), and the share of the others' symbols that arrived."""
        joint, said, _ = self.tensors(traj)
        seat, V, A = self.info.seat, self.vocab, self.own_actions
        now = valid > 0
        nxt = now[:-1] & now[1:]  # step t with its successor t + 1
        moments = nxt & (credit[:-1] >= credit[now].mean())
        own_a = joint[..., seat]
        ic = {"ic_message_action": 0.0, "ic_message_action_influential": 0.0, "ic_action_action": 0.0}
        for j in self.info.others:
            listener = joint[1:, :, j]
            n = self.sizes[j]
            ic["ic_message_action"] = max(ic["ic_message_action"], mutual_information(
                joint_counts(symbols[:-1][nxt], listener[nxt], V, n)))
            ic["ic_message_action_influential"] = max(ic["ic_message_action_influential"], mutual_information(
                joint_counts(symbols[:-1][moments], listener[moments], V, n)))
            ic["ic_action_action"] = max(ic["ic_action_action"], mutual_information(
                joint_counts(own_a[:-1][nxt], listener[nxt], A, n)))
        others = said[..., self.info.others][now]
        heard = float(((others >= 0) & (others < V)).float().mean()) if others.numel() else 0.0
        return {"speaker_consistency": speaker_consistency(joint_counts(symbols[now], own_a[now], V, A)),
                **ic, "messages_heard": heard}

    def extra_loss(self, traj: Trajectory, tt: TrajectoryTensors) -> ExtraLoss | None:
        joint, said, visible = self.tensors(traj)
        speech = self.message_rollout(traj, tt) if self.opts.communication else None

        def loss(mb: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
            total, metrics = self.moa_loss(tt.obs, joint, said, visible, tt.valid, mb)
            if speech is not None:
                more, more_metrics = self.message_loss(tt, speech, mb)
                total, metrics = total + more, {**speech.metrics, **more_metrics, **metrics}
            return total, metrics

        return loss

    def fit_moa(self, traj: Trajectory, steps: int) -> dict[str, float]:
        """`steps` optimiser steps on the MOA loss alone over the whole batch; the policy's own
        parameters get no gradient (the shared conv does, as in the joint update)."""
        tt = TrajectoryTensors(traj, self.device, self.info.max_steps)
        joint, said, visible = self.tensors(traj)
        every = torch.arange(joint.shape[1], device=self.device)
        metrics: dict[str, float] = {}
        for _ in range(steps):
            loss, metrics = self.moa_loss(tt.obs, joint, said, visible, tt.valid, every)
            self.learner.step(loss)
        return metrics

    def end_episode(self, trajectory: Trajectory, summary: dict[str, Any]) -> dict[str, float]:
        metrics = super().end_episode(trajectory, summary)
        return {**metrics, **self.fit_moa(trajectory, self.opts.moa_steps)}

    def warmup_episode(self, trajectory: Trajectory, summary: dict[str, Any]) -> dict[str, float]:
        """The policy does not learn; the MOA does, so the influence reward is there when it starts."""
        return {**self.fit_moa(trajectory, 1 + self.opts.moa_steps), "warmup": 1.0}

    def state_objects(self) -> dict[str, Any]:
        talk = {"speaker": self.speaker} if self.opts.communication else {}
        return {**super().state_objects(), "moa": self.moa, **talk}
