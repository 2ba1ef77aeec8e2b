"""One-step actor-critic with a target critic (algorithms.md §1.2; reference `lio_ac.py`).

Per episode batch: (1) one Adam step of V_ψ on mean (r + γ(1−d)V_ψ̄(o') − V_ψ(o))²; (2) one SGD step of
the ε-mixed actor on −Σ_t log π̃·δ_t − c_H Σ_t H with δ from the just-updated critic as constants;
(3) soft target update. d masks true terminations only; time-limit truncation bootstraps.
"""

from __future__ import annotations

import torch
from torch import nn

from agents.learners.reinforce import reinforce_loss


def td_errors(critic: nn.Module, obs: torch.Tensor, rewards: torch.Tensor, terminal: torch.Tensor,
              gamma: float, extra: torch.Tensor | None = None, target: nn.Module | None = None) -> torch.Tensor:
    """δ_t = r_t + γ(1−d_t)·V(o_{t+1}) − V(o_t) on `[T, B]`; `obs` has T+1 entries. Bootstrap from `target`
    when given (critic regression), else from `critic` itself."""
    args = (obs,) if extra is None else (obs, extra)
    values = critic(*args)
    with torch.no_grad():
        boot = (target or critic)(*args)[1:]
    return rewards + gamma * (1.0 - terminal) * boot - values[:-1]


class ActorCriticLearner:
    """Actor (SGD), critic (Adam) and target critic; `update` is one §1.2 iteration."""

    def __init__(self, policy: nn.Module, critic: nn.Module, target: nn.Module, lr_actor: float, lr_v: float,
                 gamma: float, entropy_coeff: float, tau: float) -> None:
        self.policy, self.critic, self.target = policy, critic, target
        self.target.load_state_dict(critic.state_dict())
        self.target.requires_grad_(False)
        self.gamma, self.entropy_coeff, self.tau = gamma, entropy_coeff, tau
        self.opt_actor = torch.optim.SGD(policy.parameters(), lr=lr_actor)
        self.opt_v = torch.optim.Adam(critic.parameters(), lr=lr_v)

    def soft_update(self) -> None:
        """ψ̄ ← τψ + (1−τ)ψ̄."""
        with torch.no_grad():
            for p_t, p in zip(self.target.parameters(), self.critic.parameters(), strict=True):
                p_t.lerp_(p, self.tau)

    def update(self, obs: torch.Tensor, actions: torch.Tensor, rewards: torch.Tensor, valid: torch.Tensor,
               terminal: torch.Tensor, eps: float, extra: torch.Tensor | None = None) -> dict[str, float]:
        """`obs`/`extra` have T+1 entries; the rest are `[T, B]`."""
        n_valid = valid.sum().clamp(min=1)
        delta = td_errors(self.critic, obs, rewards, terminal, self.gamma, extra, self.target)
        v_loss = (delta.pow(2) * valid).sum() / n_valid
        self.opt_v.zero_grad(set_to_none=True)
        v_loss.backward()
        self.opt_v.step()

        with torch.no_grad():
            credit = td_errors(self.critic, obs, rewards, terminal, self.gamma, extra)
        logits = self.policy(obs[:-1]) if extra is None else self.policy(obs[:-1], extra[:-1])
        loss = reinforce_loss(logits, actions, credit, valid, eps, self.entropy_coeff)
        self.opt_actor.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_actor.step()
        self.soft_update()
        return {"policy_loss": float(loss.detach()), "value_loss": float(v_loss.detach())}
