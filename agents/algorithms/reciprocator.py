"""Reciprocators, decentralised (Zhou, Hong & Kao 2024; algorithms.md §4.1–4.5).

A Reciprocator is a PPO learner that is also rewarded for returning what the others did to it: it
keeps, per opponent j, a balance of j's value of influence on it net of what it paid back, and is paid
for influencing j in the direction of that balance. Every Reciprocator is its own process with its own
estimators, fitted in its own observation frame from the disclosed actions and rewards only (deviation
"shared estimator", §4.4): nothing is shared with any other agent.

Value of influence (§4.1), from 2(N+1) MLP estimators fitted by MSE (Adam) on the last `buffer_episodes`
episode batches: R̂(s, a) (everyone's immediate reward), Q̂(s, a) (everyone's future return
G_{t+1} = Σ_{l>t} γ^{l−t−1} r_l) and, for every influencer k (itself included), the pair
(R̂^{−k}, Q̂^{−k}) fitted on the same data with k's action removed from the input, so that they regress
onto the expectation over k's empirical behaviour. Input: own observation s_t (flattened), one-hot
joint action (`action_encoding = "scalar"`: the indices), steps remaining T − 1 − t. Then
    VI^{k→m}_t = [R̂_m(s_t, a_t) − R̂^{−k}_m(s_t, a^{−k}_t)] + γ [Q̂_m(s_t, a_t) − Q̂^{−k}_m(s_t, a^{−k}_t)].
`double_discount = true` fits Q̂ on γ G_{t+1} and still multiplies by γ, as the reference does.

IPD (`estimator = "frequency"`, §4.2): the state is the previous joint action (start state at t = 0),
p̂_k(a | s) is k's empirical action frequency per state over the last `table_episodes` batches with a
Dirichlet(1, …, 1) prior (Beta(1, 1) for two actions; 1/|A| when unseen), refreshed every
`table_refresh_every` episodes, and the payoff R_m(a) of each joint action is the mean disclosed reward
for it. VI^{k→m}_t = r_{m,t} − Σ_{a'} p̂_k(a' | s_t) R_m(a_t with a^k = a') (reward only, no future term).

Reciprocal reward, own seat i, opponents j (computed after the episode, estimators frozen):
- `petty_payoff` (§4.3): B^j_t = γ B^j_{t−1} + VI^{j→i}_t − VI^{i→j}_t, B^j_{−1} = 0,
  r^rec_t = (1/(N−1)) Σ_j B^j_{t−1} · VI^{i→j}_t (the balance before step t);
- `petty`: the same with B^j_t = γ B^j_{t−1} + VI^{j→i}_t (no debit);
- `previous_product` (IPD, §4.2): r^rec_t = (1/(N−1)) Σ_j VI^{j→i}_{t−1} · VI^{i→j}_t, r^rec_0 = 0.
PPO (`agents.algorithms.ppo`, the NL-PPO settings of `nl_ppo`) trains on r^ext + w · r^rec.

Schedule (§4.4), counting training episodes e = 1, 2, …: push the batch into the buffer; refit the
estimators (from their current weights: `estimator_epochs` epochs over `estimator_samples` samples drawn
from the buffer, minibatch `estimator_minibatch`, Adam `estimator_lr`) if e ≤ `warmup` or
e % `refit_every` == 0; from e > `warmup` on, compute r^rec and make one PPO update (during warm-up the
policy does not learn). The run-level `warmup_episodes` (the reference freezes every agent, naive
learners too) counts as warm-up here as well, and each of its episodes refits. The estimator buffer
is not checkpointed: a resumed agent refills it.

Presets: `paper` (one-hot actions, single discount) and `reference` (scalar actions, double discount),
over the per-game defaults (IPD: frequency table, `previous_product`, w = 5, no warm-up; other games:
network estimators, `petty_payoff`, w = 1, warm-up 2) and the NL-PPO settings.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from pydantic import model_validator
from torch import nn
from torch.nn import functional as F

from agents.algorithm import RunFacts, SeatInfo, Trajectory
from agents.algorithms.nl_ppo import NL_DEFAULTS
from agents.algorithms.ppo import PPOOptions, RecurrentPPO
from agents.learners.common import GameFamily, TrajectoryTensors
from agents.learners.networks import flat_dim, mlp
from agents.learners.reinforce import discounted_returns

Variant = Literal["petty_payoff", "petty", "previous_product"]
Estimator = Literal["network", "frequency"]
ActionEncoding = Literal["onehot", "scalar"]
NEEDS = frozenset({"actions", "rewards"})


class ReciprocatorOptions(PPOOptions):
    preset: Literal["paper", "reference"] | None = None  # type: ignore[assignment]
    reciprocal_weight: float = 1.0
    reciprocal: Variant = "petty_payoff"
    zscore_reciprocal: bool = False
    estimator: Estimator = "network"
    double_discount: bool = False
    action_encoding: ActionEncoding = "onehot"
    warmup: int = 2
    buffer_episodes: int = 3
    refit_every: int = 2
    estimator_epochs: int = 20
    estimator_samples: int = 16 * 4096
    estimator_minibatch: int = 4096
    estimator_lr: float = 0.01
    estimator_hidden: list[int] = [64, 64]
    table_refresh_every: int = 3
    table_episodes: int = 1

    @model_validator(mode="after")
    def _check_reciprocator(self) -> ReciprocatorOptions:
        if self.reciprocal_weight < 0 or self.warmup < 0:
            raise ValueError("reciprocal_weight and warmup must be ≥ 0")
        counts = ("buffer_episodes", "refit_every", "estimator_epochs", "estimator_samples", "estimator_minibatch",
                  "table_refresh_every", "table_episodes")
        if any(getattr(self, name) < 1 for name in counts):
            raise ValueError(f"{', '.join(counts)} must be ≥ 1")
        return self


#: §4.5 over the NL-PPO settings: IPD from configs/ipd.yaml, everything else from configs/coins.yaml.
RECIPROCATOR_DEFAULTS: Mapping[GameFamily, Mapping[str, Any]] = {
    "ipd": {**NL_DEFAULTS["ipd"], "estimator": "frequency", "reciprocal": "previous_product",
            "reciprocal_weight": 5.0, "warmup": 0},
    "other": {**NL_DEFAULTS["other"], "estimator": "network", "reciprocal": "petty_payoff",
              "reciprocal_weight": 1.0, "warmup": 2},
}
PAPER = {"double_discount": False, "action_encoding": "onehot"}
REFERENCE = {"double_discount": True, "action_encoding": "scalar"}
RECIPROCATOR_PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "paper": {"ipd": PAPER, "coin_game": PAPER},
    "reference": {"ipd": REFERENCE, "coin_game": REFERENCE},
}


def missing_disclosures(disclosed: frozenset[str]) -> str | None:
    """The error to raise when the run does not disclose what the estimators are fitted from."""
    missing = sorted(NEEDS - disclosed)
    if not missing:
        return None
    return (f"reciprocator fits its value-of-influence estimators from everyone's actions and rewards, but this "
            f"run does not disclose {', '.join(missing)}: add {', '.join(repr(m) for m in missing)} to "
            "[arena] disclose")


# ----- the value-of-influence estimators (§4.1) ------------------------------------------------------
def encode_actions(joint: torch.Tensor, sizes: list[int], encoding: ActionEncoding, drop: int | None
                   ) -> torch.Tensor:
    """Joint action `[..., N]` as estimator input, without influencer `drop`'s action (None: everyone's)."""
    keep = [k for k in range(len(sizes)) if k != drop]
    if encoding == "scalar":
        return joint[..., keep].float()
    return torch.cat([F.one_hot(joint[..., k], sizes[k]).float() for k in keep], dim=-1)


def action_width(sizes: list[int], encoding: ActionEncoding, drop: int | None) -> int:
    keep = [k for k in range(len(sizes)) if k != drop]
    return len(keep) if encoding == "scalar" else sum(sizes[k] for k in keep)


class InfluenceEstimators(nn.Module):
    """R̂, Q̂ and (R̂^{−k}, Q̂^{−k}) for every influencer k: 2(N+1) MLPs, each input → N values."""

    def __init__(self, state_dim: int, sizes: list[int], hidden: list[int], encoding: ActionEncoding) -> None:
        super().__init__()
        self.sizes, self.encoding = sizes, encoding
        n = len(sizes)

        def net(drop: int | None) -> nn.Sequential:
            return mlp(state_dim + action_width(sizes, encoding, drop) + 1, hidden, n)

        self.r, self.q = net(None), net(None)
        self.r_without = nn.ModuleList([net(k) for k in range(n)])
        self.q_without = nn.ModuleList([net(k) for k in range(n)])

    def forward(self, state: torch.Tensor, joint: torch.Tensor, remaining: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """`state` `[..., D]`, `joint` `[..., N]`, `remaining` `[...]` → R̂, Q̂ `[..., N]` and R̂^{−k}, Q̂^{−k}
        `[..., K=N, N]` (k: the influencer removed)."""
        def inputs(drop: int | None) -> torch.Tensor:
            actions = encode_actions(joint, self.sizes, self.encoding, drop)
            return torch.cat([state, actions, remaining.unsqueeze(-1).float()], dim=-1)

        full = inputs(None)
        without = [inputs(k) for k in range(len(self.sizes))]
        r_wo = torch.stack([net(x) for net, x in zip(self.r_without, without)], dim=-2)
        q_wo = torch.stack([net(x) for net, x in zip(self.q_without, without)], dim=-2)
        return self.r(full), self.q(full), r_wo, q_wo

    def loss(self, state: torch.Tensor, joint: torch.Tensor, remaining: torch.Tensor, rewards: torch.Tensor,
             future: torch.Tensor) -> torch.Tensor:
        """Sum over the 2(N+1) networks of the MSE to everyone's reward (R̂ family) or future return (Q̂)."""
        r, q, r_wo, q_wo = self(state, joint, remaining)
        n = len(self.sizes)
        return (F.mse_loss(r, rewards) + F.mse_loss(q, future)
                + n * F.mse_loss(r_wo, rewards.unsqueeze(-2).expand_as(r_wo))
                + n * F.mse_loss(q_wo, future.unsqueeze(-2).expand_as(q_wo)))


def value_of_influence(r: torch.Tensor, q: torch.Tensor, r_without: torch.Tensor, q_without: torch.Tensor,
                       gamma: float) -> torch.Tensor:
    """VI `[..., K, N]`: entry [k, m] is the value of k's action to m (§4.1)."""
    return (r.unsqueeze(-2) - r_without) + gamma * (q.unsqueeze(-2) - q_without)


def future_returns(rewards: torch.Tensor, valid: torch.Tensor, gamma: float, double_discount: bool
                   ) -> torch.Tensor:
    """Q̂'s target `[T, B, N]`: G_{t+1} (0 at the last step), or γ G_{t+1} = G_t − r_t with the double discount."""
    mask = valid.unsqueeze(-1).expand_as(rewards)
    g = discounted_returns(rewards, mask, gamma)
    after = torch.cat([g[1:], torch.zeros_like(g[:1])]) * mask
    return gamma * after if double_discount else after


# ----- the IPD frequency table (§4.2) ----------------------------------------------------------------
class FrequencyTable:
    """p̂_k(a | s) over states s = previous joint action (index A^N: start), with a Dirichlet(1) prior,
    and the mean disclosed reward of each joint action; owned by one agent (nothing is shared)."""

    def __init__(self, sizes: list[int], episodes: int, device: torch.device) -> None:
        self.sizes = sizes
        self.strides = [int(np.prod(sizes[k + 1:])) for k in range(len(sizes))]
        self.n_joint = int(np.prod(sizes))
        self.recent: deque[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = deque(maxlen=episodes)
        width = max(sizes)
        self.probs = torch.zeros(self.n_joint + 1, len(sizes), width, device=device)
        for k, n in enumerate(sizes):
            self.probs[:, k, :n] = 1.0 / n
        self.payoff_sum = torch.zeros(self.n_joint, len(sizes), device=device)
        self.payoff_count = torch.zeros(self.n_joint, device=device)

    def joint_index(self, joint: torch.Tensor) -> torch.Tensor:
        return sum(joint[..., k] * s for k, s in enumerate(self.strides))

    def states(self, joint: torch.Tensor) -> torch.Tensor:
        """`[T, B]` state at each step: the start state at t = 0, else the previous joint action."""
        index = self.joint_index(joint)
        return torch.cat([torch.full_like(index[:1], self.n_joint), index[:-1]])

    def push(self, joint: torch.Tensor, rewards: torch.Tensor, valid: torch.Tensor) -> None:
        """Record one episode batch (`[T, B, N]` actions and rewards, `[T, B]` valid)."""
        keep = valid > 0
        self.recent.append((self.states(joint)[keep], joint[keep], rewards[keep]))
        index = self.joint_index(joint)[keep]
        self.payoff_sum.index_add_(0, index, rewards[keep])
        self.payoff_count.index_add_(0, index, torch.ones_like(index, dtype=self.payoff_count.dtype))

    def refresh(self) -> None:
        """p̂_k(a | s) = (count(s, a) + 1) / (count(s) + |A_k|) over the recent batches."""
        states = torch.cat([s for s, _, _ in self.recent])
        joint = torch.cat([a for _, a, _ in self.recent])
        for k, n in enumerate(self.sizes):
            counts = torch.zeros(self.n_joint + 1, n, device=states.device)
            counts.index_put_((states, joint[:, k]), torch.ones_like(states, dtype=counts.dtype), accumulate=True)
            self.probs[:, k, :n] = (counts + 1.0) / (counts.sum(-1, keepdim=True) + n)

    @property
    def payoffs(self) -> torch.Tensor:
        """`[A^N, N]` mean disclosed reward of each joint action (0 where never seen)."""
        return self.payoff_sum / self.payoff_count.clamp(min=1).unsqueeze(-1)

    def value_of_influence(self, joint: torch.Tensor, rewards: torch.Tensor) -> torch.Tensor:
        """VI `[T, B, K, N]`: r_{m,t} − Σ_{a'} p̂_k(a' | s_t) R_m(a_t with a^k = a')."""
        states = self.states(joint)
        payoffs = self.payoffs
        per_influencer = []
        for k, n in enumerate(self.sizes):
            baseline = torch.zeros_like(rewards)
            for alt in range(n):
                swapped = joint.clone()
                swapped[..., k] = alt
                baseline = baseline + self.probs[states, k, alt].unsqueeze(-1) * payoffs[self.joint_index(swapped)]
            per_influencer.append(rewards - baseline)
        return torch.stack(per_influencer, dim=-2)


# ----- the reciprocal reward (§4.2, §4.3) ------------------------------------------------------------
def reciprocal_reward(vi_in: torch.Tensor, vi_out: torch.Tensor, gamma: float, variant: Variant
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """r^rec `[T, B]` and the balances after each step `[T, B, J]` from VI^{j→i} (`vi_in`) and VI^{i→j}
    (`vi_out`), both `[T, B, J]` and 0 on padding; the balance that weighs step t is the one before it."""
    if variant == "previous_product":
        before = torch.cat([torch.zeros_like(vi_in[:1]), vi_in[:-1]])
        return (before * vi_out).mean(-1), vi_in
    balance = torch.zeros_like(vi_in[0])
    rewards, balances = [], []
    for t in range(vi_in.shape[0]):
        rewards.append((balance * vi_out[t]).mean(-1))
        debit = vi_out[t] if variant == "petty_payoff" else torch.zeros_like(vi_out[t])
        balance = gamma * balance + vi_in[t] - debit
        balances.append(balance)
    return torch.stack(rewards), torch.stack(balances)


@dataclass
class EstimatorBatch:
    """One episode batch's valid steps as estimator samples."""

    state: torch.Tensor
    joint: torch.Tensor
    remaining: torch.Tensor
    rewards: torch.Tensor
    future: torch.Tensor


class Reciprocator(RecurrentPPO):
    """NL-PPO plus its own value-of-influence estimators and the reciprocal reward."""

    needs: ClassVar[frozenset[str]] = NEEDS
    options_model: ClassVar[type[ReciprocatorOptions]] = ReciprocatorOptions
    presets: ClassVar[dict[str, dict[str, dict[str, Any]]]] = RECIPROCATOR_PRESETS
    defaults: ClassVar[Mapping[GameFamily, Mapping[str, Any]]] = RECIPROCATOR_DEFAULTS
    opts: ReciprocatorOptions

    @classmethod
    def check_run(cls, options: dict[str, Any], run: RunFacts, seat: int) -> list[str]:
        if run.n_agents < 2:
            return ["a Reciprocator reciprocates the others' influence: the run needs at least 2 agents"]
        return super().check_run(options, run, seat)

    def build_extra_modules(self, info: SeatInfo, o: PPOOptions) -> None:
        if not isinstance(o, ReciprocatorOptions):
            raise TypeError(f"Reciprocator needs ReciprocatorOptions, got {type(o).__name__}")
        problem = missing_disclosures(info.disclosed)
        if problem is not None:
            raise ValueError(problem)
        self.episode = 0
        self.estimator_loss = float("nan")
        if o.estimator == "frequency":
            self.table = FrequencyTable(self.sizes, o.table_episodes, self.device)
            return
        self.estimators = InfluenceEstimators(flat_dim(info.observation_space), self.sizes, o.estimator_hidden,
                                              o.action_encoding).to(self.device)
        self.estimator_opt = torch.optim.Adam(self.estimators.parameters(), lr=o.estimator_lr)
        self.buffer: deque[EstimatorBatch] = deque(maxlen=o.buffer_episodes)

    # ----- estimator data and fitting -------------------------------------------------------------
    def disclosed(self, traj: Trajectory) -> tuple[torch.Tensor, torch.Tensor]:
        """Everyone's actions `[T, B, N]` and extrinsic rewards `[T, B, N]`, refused if not disclosed."""
        if traj.joint_actions is None or traj.joint_rewards is None:
            raise ValueError(missing_disclosures(frozenset()) or "")
        joint = torch.as_tensor(np.asarray(traj.joint_actions), dtype=torch.int64, device=self.device)
        rewards = torch.as_tensor(np.asarray(traj.joint_rewards), dtype=torch.float32, device=self.device)
        return joint.clamp(min=0), rewards

    def estimator_inputs(self, tt: TrajectoryTensors) -> tuple[torch.Tensor, torch.Tensor]:
        """Own observation s_t flattened `[T, B, D]` and steps remaining T − 1 − t `[T, B]`."""
        steps, batch = tt.actions.shape
        state = tt.obs[:steps].reshape(steps, batch, -1).float()
        t = torch.arange(steps, device=self.device, dtype=torch.float32)
        remaining = (self.info.max_steps - 1 - t).unsqueeze(1).expand(steps, batch)
        return state, remaining

    def refit(self) -> float:
        """Refit every estimator from its current weights on samples drawn from the buffer; mean loss."""
        o = self.opts
        data = [torch.cat([getattr(b, name) for b in self.buffer]) for name in
                ("state", "joint", "remaining", "rewards", "future")]
        drawn = torch.randint(data[0].shape[0], (o.estimator_samples,), generator=self.gen, device=self.device)
        sample = [x[drawn] for x in data]
        total, count = 0.0, 0
        for _ in range(o.estimator_epochs):
            perm = torch.randperm(o.estimator_samples, generator=self.gen, device=self.device)
            for mb in perm.split(o.estimator_minibatch):
                loss = self.estimators.loss(*(x[mb] for x in sample))
                self.estimator_opt.zero_grad(set_to_none=True)
                loss.backward()
                self.estimator_opt.step()
                total, count = total + float(loss.detach()), count + 1
        return total / count

    def update_estimators(self, traj: Trajectory, warmup: bool = False) -> dict[str, float]:
        """Push this batch and refit (network) or refresh (table) on schedule (§4.2, §4.4); every
        warm-up episode refits."""
        o = self.opts
        joint, rewards = self.disclosed(traj)
        tt = TrajectoryTensors(traj, self.device, self.info.max_steps)
        if o.estimator == "frequency":
            self.table.push(joint, rewards, tt.valid)
            refreshed = warmup or (self.episode - 1) % o.table_refresh_every == 0
            if refreshed:
                self.table.refresh()
            return {"refit": float(refreshed)}
        keep = tt.valid > 0
        state, remaining = self.estimator_inputs(tt)
        future = future_returns(rewards, tt.valid, o.gamma, o.double_discount)
        self.buffer.append(EstimatorBatch(state[keep], joint[keep], remaining[keep], rewards[keep], future[keep]))
        refit = warmup or self.episode <= o.warmup or self.episode % o.refit_every == 0
        if refit:
            self.estimator_loss = self.refit()
        return {"refit": float(refit), "estimator_loss": self.estimator_loss}

    @torch.no_grad()
    def influence(self, traj: Trajectory, tt: TrajectoryTensors) -> torch.Tensor:
        """VI `[T, B, K, N]` of every player's action to every player on this batch, 0 on padding."""
        o = self.opts
        joint, rewards = self.disclosed(traj)
        if o.estimator == "frequency":
            vi = self.table.value_of_influence(joint, rewards)
        else:
            state, remaining = self.estimator_inputs(tt)
            vi = value_of_influence(*self.estimators(state, joint, remaining), o.gamma)
        return vi * tt.valid[..., None, None]

    # ----- the learning step ----------------------------------------------------------------------
    def learning_reward(self, traj: Trajectory, tt: TrajectoryTensors, logits: torch.Tensor
                        ) -> tuple[torch.Tensor, dict[str, float]]:
        o = self.opts
        seat, others = self.info.seat, self.info.others
        vi = self.influence(traj, tt)
        vi_in, vi_out = vi[:, :, others, seat], vi[:, :, seat, others]  # VI^{j→i}, VI^{i→j}
        rec, balance = reciprocal_reward(vi_in, vi_out, o.gamma, o.reciprocal)
        rec = rec * tt.valid
        steps = tt.valid.sum().clamp(min=1)
        mean = rec.sum() / steps
        if o.zscore_reciprocal:
            std = ((rec - mean).pow(2) * tt.valid).sum().div(steps).sqrt()
            rec = (rec - mean) / (std + 1e-5) * tt.valid
        metrics = {"reciprocal_reward": float(mean), "reciprocal_weight": o.reciprocal_weight,
                   "vi_in": float(vi_in.sum() / (steps * len(others))),
                   "vi_out": float(vi_out.sum() / (steps * len(others))),
                   "vi_self": float(vi[:, :, seat, seat].sum() / steps),
                   "balance_end": float(balance[-1].mean())}
        if o.estimator == "frequency":
            for j in others:
                for s in range(self.table.n_joint + 1):
                    metrics[f"p_hat_{j}_a0_s{s}"] = float(self.table.probs[s, j, 0])
        return tt.rewards + o.reciprocal_weight * rec, metrics

    def end_episode(self, trajectory: Trajectory, summary: dict[str, Any]) -> dict[str, float]:
        self.episode += 1
        metrics = self.update_estimators(trajectory)
        if self.episode <= self.opts.warmup:
            return {**metrics, "warmup": 1.0}
        return {**metrics, **super().end_episode(trajectory, summary), "warmup": 0.0}

    def warmup_episode(self, trajectory: Trajectory, summary: dict[str, Any]) -> dict[str, float]:
        """The run's warm-up counts as the Reciprocator's own (§4.4): estimators fit, no PPO update."""
        self.episode += 1
        return {**self.update_estimators(trajectory, warmup=True), "warmup": 1.0}

    def state_objects(self) -> dict[str, Any]:
        if self.opts.estimator == "frequency":
            return super().state_objects()
        return {**super().state_objects(), "estimators": self.estimators, "estimator_opt": self.estimator_opt}

    def extra_state(self) -> dict[str, Any]:
        state = {**super().extra_state(), "episode": self.episode}
        if self.opts.estimator == "frequency":
            state |= {"probs": self.table.probs.cpu(), "payoff_sum": self.table.payoff_sum.cpu(),
                      "payoff_count": self.table.payoff_count.cpu()}
        return state

    def load_extra_state(self, state: dict[str, Any]) -> None:
        super().load_extra_state(state)
        self.episode = int(state["episode"])
        if self.opts.estimator == "frequency":
            for name in ("probs", "payoff_sum", "payoff_count"):
                setattr(self.table, name, state[name].to(self.device))
