"""REINFORCE with ε-mixed exploration, LIO style (algorithms.md §1.1).

Behaviour policy π̃ = (1−ε)·softmax(f_θ) + ε/|A| is used for sampling and inside the loss; terms are
summed over steps, no baseline, one plain SGD step per episode. Batched: the B copies of an episode are
averaged (mean over copies of the per-episode sum), so a step has the reference's scale for any B.
The same `reinforce_loss` is LIO-dec's stand-in for a recipient's learner (§2.5 step 5).
"""

from __future__ import annotations

import math

import torch
from torch import nn


def log_mixed(logits: torch.Tensor, eps: float) -> torch.Tensor:
    """log π̃ = logsumexp(log(1−ε) + log_softmax(z), log(ε/|A|)), stable for any ε ∈ [0, 1]."""
    logp = torch.log_softmax(logits, dim=-1)
    if eps <= 0.0:
        return logp
    n = logits.shape[-1]
    if eps >= 1.0:  # uniform, independent of θ; keep the graph so a step is a zero-gradient no-op
        return logp * 0.0 - math.log(n)
    return torch.logaddexp(logp + math.log1p(-eps), torch.full_like(logp, math.log(eps / n)))


def entropy_from_log(logp: torch.Tensor) -> torch.Tensor:
    """H(p) from log-probabilities, over the last dim."""
    return -(logp.exp() * logp).sum(-1)


def discounted_returns(rewards: torch.Tensor, valid: torch.Tensor, gamma: float) -> torch.Tensor:
    """G_t = Σ_{l≥t} γ^{l−t} r_l over `[T, B]`, padding (valid = 0) contributing nothing; differentiable."""
    out = []
    g = torch.zeros_like(rewards[0])
    for t in range(rewards.shape[0] - 1, -1, -1):
        g = rewards[t] * valid[t] + gamma * g
        out.append(g)
    return torch.stack(out[::-1])


def reinforce_loss(logits: torch.Tensor, actions: torch.Tensor, returns: torch.Tensor, valid: torch.Tensor,
                   eps: float, entropy_coeff: float) -> torch.Tensor:
    """L = mean_b[−Σ_t log π̃(a_t|o_t)·G_t − c_H Σ_t H(π̃(·|o_t))] over valid steps; `returns` as given."""
    logp = log_mixed(logits, eps)
    taken = logp.gather(-1, actions.unsqueeze(-1)).squeeze(-1)
    per_step = taken * returns + entropy_coeff * entropy_from_log(logp)
    return -(per_step * valid).sum() / valid.shape[1]


def sample_mixed(logits: torch.Tensor, eps: float, gen: torch.Generator) -> torch.Tensor:
    """Draw a ~ π̃(·|o) for each row, on the logits' device."""
    probs = torch.softmax(logits, dim=-1)
    if eps > 0.0:
        probs = (1.0 - eps) * probs + eps / logits.shape[-1]
    return torch.multinomial(probs, 1, generator=gen).squeeze(-1)


class Reinforce:
    """Policy + plain SGD; `update` takes one episode batch and the reward the algorithm chooses."""

    def __init__(self, policy: nn.Module, lr: float, gamma: float, entropy_coeff: float) -> None:
        self.policy = policy
        self.gamma = gamma
        self.entropy_coeff = entropy_coeff
        self.opt = torch.optim.SGD(policy.parameters(), lr=lr)

    def update(self, obs: torch.Tensor, actions: torch.Tensor, rewards: torch.Tensor, valid: torch.Tensor,
               eps: float, extra: torch.Tensor | None = None) -> dict[str, float]:
        """One SGD step on `[T, B]` data (obs without the final T+1-th entry)."""
        returns = discounted_returns(rewards, valid, self.gamma)
        logits = self.policy(obs, extra) if extra is not None else self.policy(obs)
        loss = reinforce_loss(logits, actions, returns, valid, eps, self.entropy_coeff)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        with torch.no_grad():
            entropy = (entropy_from_log(torch.log_softmax(logits, -1)) * valid).sum() / valid.sum().clamp(min=1)
        return {"policy_loss": float(loss.detach()), "entropy": float(entropy)}
