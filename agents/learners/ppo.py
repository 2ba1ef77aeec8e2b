"""A2C / PPO with GAE for recurrent (conv) policies (algorithms.md §1.3).

One update per episode batch `[T, B]`. The recurrent state is reset at episode start; a no-grad pass
with the rollout parameters stores the state at the start of every training chunk of length `chunk`,
and each chunk is then trained from its stored state (truncated BPTT). GAE masks only true
terminations; truncation bootstraps from V(o_T). `clip=None` gives A2C (ρ ≡ 1, use `epochs=1`).
`value_clip` bounds each value update around the rollout's value as RLlib's `vf_clip_param` does
(the MOA reference's PPO, 10). An algorithm adds its own supervised terms (MOA's model of the others)
through `extra_loss`, trained by the same optimiser step. `advantage="mc-zscore"` is the Reciprocator
reference's naive learner instead of GAE: V regresses on the batch-z-scored Monte-Carlo return z(G_t)
and Â_t = z(G_t) − V(o_t).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Literal

import torch
from torch import nn

from agents.learners.networks import RecurrentActorCritic, RecurrentState, detach_state, index_state
from agents.learners.reinforce import discounted_returns

AdvantageKind = Literal["gae", "mc-zscore"]


def gae(rewards: torch.Tensor, values: torch.Tensor, valid: torch.Tensor, terminal: torch.Tensor,
        gamma: float, lam: float) -> torch.Tensor:
    """Â_t = δ_t + γλ(1−d_t)Â_{t+1}, δ_t = r_t + γ(1−d_t)V_{t+1} − V_t; `values` has T+1 entries."""
    adv = torch.zeros_like(rewards)
    last = torch.zeros_like(rewards[0])
    for t in range(rewards.shape[0] - 1, -1, -1):
        nonterminal = 1.0 - terminal[t]
        delta = rewards[t] + gamma * nonterminal * values[t + 1] - values[t]
        last = (delta + gamma * lam * nonterminal * last) * valid[t]
        adv[t] = last
    return adv


def zscored_returns(rewards: torch.Tensor, valid: torch.Tensor, gamma: float) -> torch.Tensor:
    """z(G_t): Monte-Carlo returns standardised over the valid steps of the batch (1e-5 as in the
    Reciprocator reference), 0 on padding."""
    returns = discounted_returns(rewards, valid, gamma)
    mask = valid > 0
    picked = returns[mask]
    std = picked.std() if picked.numel() > 1 else torch.zeros((), device=returns.device)
    return torch.where(mask, (returns - picked.mean()) / (std + 1e-5), torch.zeros_like(returns))


class PPO:
    """Recurrent actor-critic trained by PPO (or A2C) on whole episode batches."""

    def __init__(self, net: RecurrentActorCritic, lr: float, gamma: float = 0.99, lam: float = 0.95,
                 clip: float | None = 0.2, epochs: int = 4, minibatches: int = 1, chunk: int = 20,
                 value_coeff: float = 0.5, entropy_coeff: float = 0.01, max_grad_norm: float | None = 40.0,
                 kl_coeff: float = 0.0, value_clip: float | None = None,
                 parameters: Iterable[nn.Parameter] | None = None, advantage: AdvantageKind = "gae") -> None:
        self.net = net
        self.gamma, self.lam, self.clip = gamma, lam, clip
        self.epochs, self.minibatches, self.chunk = epochs, minibatches, chunk
        self.value_coeff, self.entropy_coeff, self.value_clip = value_coeff, entropy_coeff, value_clip
        self.max_grad_norm, self.kl_coeff, self.advantage = max_grad_norm, kl_coeff, advantage
        self.params = list(parameters if parameters is not None else net.parameters())
        self.opt = torch.optim.Adam(self.params, lr=lr)

    def set_lr(self, lr: float) -> None:
        """For learning-rate schedules (the MOA paper anneals lr_init → lr_end)."""
        for group in self.opt.param_groups:
            group["lr"] = lr

    @torch.no_grad()
    def act(self, obs: torch.Tensor, state: RecurrentState, gen: torch.Generator,
            extra: torch.Tensor | None = None) -> tuple[torch.Tensor, RecurrentState]:
        """Sample one step for `[B, ...]` observations, advancing the recurrent state."""
        logits, _, state = self.net(obs.unsqueeze(0), state, None if extra is None else extra.unsqueeze(0))
        probs = torch.softmax(logits[0], dim=-1)
        return torch.multinomial(probs, 1, generator=gen).squeeze(-1), state

    @torch.no_grad()
    def rollout_pass(self, obs: torch.Tensor, extra: torch.Tensor | None = None
                     ) -> tuple[torch.Tensor, torch.Tensor, list[RecurrentState]]:
        """Logits and values (T+1) and the state at each chunk start, with the rollout's parameters."""
        state = self.net.initial_state(obs.shape[1], obs.device)
        logits, values, starts = [], [], []
        for c0 in range(0, obs.shape[0], self.chunk):
            starts.append(state)
            lg, v, state = self.net(obs[c0 : c0 + self.chunk], state, _part(extra, c0, c0 + self.chunk))
            logits.append(lg)
            values.append(v)
        return torch.cat(logits), torch.cat(values), starts

    def update(self, obs: torch.Tensor, actions: torch.Tensor, rewards: torch.Tensor, valid: torch.Tensor,
               terminal: torch.Tensor, gen: torch.Generator | None = None, extra: torch.Tensor | None = None,
               extra_loss: Callable[[torch.Tensor], tuple[torch.Tensor, dict[str, float]]] | None = None,
               rollout: tuple[torch.Tensor, torch.Tensor, list[RecurrentState]] | None = None
               ) -> dict[str, float]:
        """`obs` (and `extra`, the policy's extra inputs) `[T+1, B, ...]`; `actions`, `rewards`, `valid`,
        `terminal` `[T, B]`. `extra_loss(mb)` returns a further loss over the copies `mb` of the
        minibatch, and its stats. `rollout`: this batch's `rollout_pass`, when the caller already ran it."""
        steps, batch = actions.shape
        logits_old, values, starts = rollout if rollout is not None else self.rollout_pass(obs, extra)
        logp_old_all = torch.log_softmax(logits_old[:steps], -1)
        logp_old = logp_old_all.gather(-1, actions.unsqueeze(-1)).squeeze(-1)
        if self.advantage == "mc-zscore":
            targets = zscored_returns(rewards, valid, self.gamma)
            adv = (targets - values[:steps]) * valid
        else:
            adv = gae(rewards, values, valid, terminal, self.gamma, self.lam)
            targets = adv + values[:steps]
        stats: dict[str, float] = {}
        for _ in range(self.epochs):
            perm = torch.randperm(batch, generator=gen, device="cpu").to(obs.device)
            for mb in perm.chunk(self.minibatches):
                loss, stats = self._loss(obs, extra, actions, valid, adv, targets, values, logp_old, logp_old_all,
                                         starts, mb)
                if extra_loss is not None:
                    more, more_stats = extra_loss(mb)
                    loss, stats = loss + more, {**stats, **more_stats}
                self.step(loss)
        return stats

    def step(self, loss: torch.Tensor) -> None:
        """One optimiser step on `loss`, gradients clipped to `max_grad_norm` over all trained parameters
        (parameters the loss does not reach get no gradient, so Adam leaves them alone)."""
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        if self.max_grad_norm is not None:
            nn.utils.clip_grad_norm_(self.params, self.max_grad_norm)
        self.opt.step()

    def _loss(self, obs: torch.Tensor, extra: torch.Tensor | None, actions: torch.Tensor, valid: torch.Tensor,
              adv: torch.Tensor, targets: torch.Tensor, values_old: torch.Tensor, logp_old: torch.Tensor,
              logp_old_all: torch.Tensor, starts: list[RecurrentState], mb: torch.Tensor
              ) -> tuple[torch.Tensor, dict[str, float]]:
        """Clipped surrogate + (clipped) value + entropy (+ KL) over the chunks of minibatch `mb`, masked mean."""
        steps = actions.shape[0]
        n_valid = valid[:, mb].sum().clamp(min=1)
        pg_sum = v_sum = h_sum = kl_sum = torch.zeros((), device=obs.device)
        for k, c0 in enumerate(range(0, steps, self.chunk)):
            c1 = min(c0 + self.chunk, steps)
            chunk_extra = None if extra is None else extra[c0:c1, mb]
            logits, values, _ = self.net(obs[c0:c1, mb], detach_state(index_state(starts[k], mb)), chunk_extra)
            m = valid[c0:c1, mb]
            logp_all = torch.log_softmax(logits, -1)
            logp = logp_all.gather(-1, actions[c0:c1, mb].unsqueeze(-1)).squeeze(-1)
            a = adv[c0:c1, mb]
            if self.clip is None:
                surrogate = logp * a
            else:
                ratio = torch.exp(logp - logp_old[c0:c1, mb])
                surrogate = torch.min(ratio * a, ratio.clamp(1 - self.clip, 1 + self.clip) * a)
            pg_sum = pg_sum - (surrogate * m).sum()
            value_error = (values - targets[c0:c1, mb]).pow(2)
            if self.value_clip is not None:
                old = values_old[c0:c1, mb]
                clipped = old + (values - old).clamp(-self.value_clip, self.value_clip)
                value_error = torch.max(value_error, (clipped - targets[c0:c1, mb]).pow(2))
            v_sum = v_sum + (value_error * m).sum()
            h_sum = h_sum + (-(logp_all.exp() * logp_all).sum(-1) * m).sum()
            old = logp_old_all[c0:c1, mb]
            kl_sum = kl_sum + ((old.exp() * (old - logp_all)).sum(-1) * m).sum()
        loss = (pg_sum + self.value_coeff * v_sum - self.entropy_coeff * h_sum + self.kl_coeff * kl_sum) / n_valid
        stats = {name: float(value.detach() / n_valid) for name, value in
                 (("policy_loss", pg_sum), ("value_loss", v_sum), ("entropy", h_sum), ("kl", kl_sum))}
        return loss, stats


def _part(x: torch.Tensor | None, start: int, stop: int) -> torch.Tensor | None:
    return None if x is None else x[start:stop]
