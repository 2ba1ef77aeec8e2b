"""LIO-dec: Learning to Incentivize Others, decentralised (Yang et al. 2020; algorithms.md §2.1–2.9).

Our arena never discloses parameters, so LIO is LIO-dec (§2.4–2.5): agent i learns its policy θ_i, an
incentive function η_i paid through `pay()`, and a behaviour-cloned model φ_j of every other agent
fitted only from disclosed observations and actions. Episodes alternate τ, τ̂ (one iteration):

  after τ : (2) one BC step per φ_j on τ; (3) one own policy step on τ with r^ext + r^in.
  after τ̂ : (5) incentive step — for each j the fictitious update φ̂_j(η_i) on τ with
            r_j = r^ext_j + r_η_i(o_i, a_−i)[j] + sg(third-party payments to j), then Adam on
            L_out = −Σ_j Σ_t log π̃_φ̂_j(â_j|ô_j)·Ψ_t (+ cost); (6) one BC step per φ_j on τ̂; ε decays.

The differentiable step is built with torch.func (functional_call + nested grad), so only η_i moves.
Ψ: PG form G_t(r̂^ext_i); AC form (Cleanup) the TD error of an extrinsic-only critic (Deviation e), fitted
on τ and evaluated on τ̂ like the reference's critic; both target critics are soft-updated twice an
iteration, after the policy step and after the incentive step (§2.8 f).
φ_j models what j's policy sees: in Escape Room a payer's observation carries what it has given so far
(SPEC §11.4), rebuilt from disclosed payments (N = 2: from i's own received incentives). With N > 2 the
third-party payments in r_j need the `payments` disclosure, so LIO asks for it there (`needs_for`).
Hidden public actions (-1) give no policy-gradient term in the fictitious step or the BC loss.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import gymnasium as gym
import numpy as np
import torch
from torch import nn
from torch.func import functional_call, grad

from agents.algorithm import RunFacts, SeatInfo, StepView, Trajectory
from agents.learners.actor_critic import ActorCriticLearner, td_errors
from agents.learners.common import (
    LearningAlgorithm,
    LinearSchedule,
    Options,
    TrajectoryTensors,
    onehot_others,
    options_for,
    parse_options,
)
from agents.learners.networks import IncentiveNet, PolicyNet, ValueNet, n_actions
from agents.learners.reinforce import Reinforce, discounted_returns, log_mixed, reinforce_loss, sample_mixed

Params = dict[str, torch.Tensor]


class LIOOptions(Options):
    learner: Literal["pg", "ac"] = "pg"
    lr_actor: float = 1e-4
    lr_reward: float = 1e-3
    lr_cost: float = 1e-4
    lr_opp: float = 1e-3
    lr_v: float = 1e-3
    tau: float = 0.01
    cost: Literal["separate", "inline", "none"] = "separate"
    cost_coeff: float = 0.0
    entropy_coeff: float = 0.01
    epsilon_start: float = 0.5
    epsilon_end: float = 0.1
    epsilon_div: float = 1000
    gamma: float = 0.99
    policy_hidden: list[int] = [64, 32]
    incentive_hidden: list[int] = [64, 16]
    conv_channels: int = 6
    obs_scale: float | None = None
    incentive_action_input: Literal["onehot", "clean"] = "onehot"
    outer_logp_mixed: bool = True


#: Reference configs (§2.9). Cleanup: α_ours = 1e-4 / Rmax (Deviation d), ε_div of the 7×7 map.
LIO_DEFAULTS: dict[str, dict[str, Any]] = {
    "er": {},
    "ipd": {"lr_actor": 1e-3, "cost": "none", "entropy_coeff": 0.1, "epsilon_start": 1.0, "epsilon_end": 0.01,
            "epsilon_div": 5000, "policy_hidden": [16, 8], "incentive_hidden": [16, 8]},
    "cleanup": {"learner": "ac", "cost": "inline", "cost_coeff": 5e-5, "entropy_coeff": 0.1,
                "epsilon_start": 0.5, "epsilon_end": 0.05, "epsilon_div": 100, "policy_hidden": [64, 64],
                "incentive_hidden": [64, 64], "incentive_action_input": "clean"},
}


@dataclass
class Recipient:
    """What i knows of recipient j on one episode, all disclosed: `[T, B, ...]`."""

    obs: torch.Tensor
    actions: torch.Tensor
    extrinsic: torch.Tensor
    third_party: torch.Tensor


@dataclass
class Episode:
    """One episode batch as the incentive update reads it."""

    own_obs: torch.Tensor
    action_features: torch.Tensor
    own_extrinsic: torch.Tensor
    valid: torch.Tensor
    terminal: torch.Tensor
    obs_all: torch.Tensor
    recipients: dict[int, Recipient]


def clean_action_missing(names: list[str]) -> str | None:
    """Why incentive_action_input = "clean" cannot work with an agent of these actions, or None."""
    if any("clean" in name.lower() for name in names):
        return None
    return f'incentive_action_input = "clean" needs an action named clean (Cleanup); an agent has {names}'


def fictitious_step(model: nn.Module, phi: Params, data: Recipient, reward: torch.Tensor, valid: torch.Tensor,
                    beta: float, entropy_coeff: float, eps: float, gamma: float) -> Params:
    """φ̂ = φ − β∇_φ L_PG(φ; o_j, a_j, r_j): the recipient's one REINFORCE step, differentiable in `reward`."""

    known = (data.actions >= 0).to(valid.dtype)  # a hidden public action (-1) gives no log-probability term

    def inner_loss(params: Params, r: torch.Tensor) -> torch.Tensor:
        logits = functional_call(model, params, (data.obs,))
        returns = discounted_returns(r, valid, gamma) * known  # the entropy bonus still counts every valid step
        return reinforce_loss(logits, data.actions.clamp(min=0), returns, valid, eps, entropy_coeff)

    g = grad(inner_loss)(phi, reward)
    return {name: p - beta * g[name] for name, p in phi.items()}


def recipient_reward(payments: torch.Tensor, data: Recipient, j: int) -> torch.Tensor:
    """r_j = r^ext_j + r_η_i[j] + sg(c_j): disclosed extrinsic reward plus every incentive j received."""
    return data.extrinsic + payments[..., j] + data.third_party.detach()


def incentive_cost(payments: torch.Tensor, valid: torch.Tensor, seat: int, gamma: float) -> torch.Tensor:
    """L_cost = mean_b Σ_t γ^t ‖r_η(o_t, a_−i,t)‖₁ with the self entry excluded (payments ≥ 0)."""
    given = payments.sum(-1) - payments[..., seat]
    discount = gamma ** torch.arange(given.shape[0], device=given.device, dtype=given.dtype)
    return (given * discount.unsqueeze(1) * valid).sum() / valid.shape[1]


class LIO(LearningAlgorithm):
    """LIO-dec agent: PG (ER, IPD) or actor-critic (Cleanup) policy, incentive net, opponent models."""

    needs: ClassVar[frozenset[str]] = frozenset({"actions", "rewards", "observations"})
    pays: ClassVar[bool] = True
    options_model = LIOOptions
    defaults = LIO_DEFAULTS

    @classmethod
    def needs_for(cls, n_agents: int) -> frozenset[str]:
        """With N > 2 a recipient's reward includes third parties' payments (§2.7): those must be disclosed."""
        return cls.needs | {"payments"} if n_agents > 2 else cls.needs

    def setup(self, info: SeatInfo) -> None:
        self.setup_common(info)
        self.opts = parse_options(self.options_model, info, self.defaults)
        o, dev = self.opts, self.device
        self.action_sizes = [n_actions(s) for s in info.action_spaces]
        self.clean_index = self._clean_actions() if o.incentive_action_input == "clean" else []
        feature_dim = (2 * (info.n_agents - 1) if o.incentive_action_input == "clean"
                       else sum(n for j, n in enumerate(self.action_sizes) if j != info.seat))
        space = info.observation_space
        with self.seeded():
            self.policy = PolicyNet(space, self.action_sizes[info.seat], o.policy_hidden,
                                    conv_channels=o.conv_channels, obs_scale=o.obs_scale,
                                    layout=info.observation_layout).to(dev)
            self.incentive = IncentiveNet(space, feature_dim, info.n_agents, o.incentive_hidden, info.rmax,
                                          o.conv_channels, o.obs_scale, layout=info.observation_layout).to(dev)
            self.opponents = nn.ModuleDict({
                str(j): PolicyNet(self.seen_by(j), self.action_sizes[j], o.policy_hidden,
                                  conv_channels=o.conv_channels, obs_scale=o.obs_scale,
                                  layout=info.observation_layouts[j])
                for j in info.others}).to(dev)
            if o.learner == "ac":
                critic = ValueNet(space, o.policy_hidden, 0, o.conv_channels, o.obs_scale,
                                  layout=info.observation_layout).to(dev)
                self.ext_critic = ValueNet(space, o.policy_hidden, 0, o.conv_channels, o.obs_scale,
                                           layout=info.observation_layout).to(dev)
        if o.learner == "ac":
            self.learner: Reinforce | ActorCriticLearner = ActorCriticLearner(
                self.policy, critic, copy.deepcopy(critic), o.lr_actor, o.lr_v, o.gamma, o.entropy_coeff, o.tau)
            self.ext_target = copy.deepcopy(self.ext_critic).requires_grad_(False)
            self.opt_ext = torch.optim.Adam(self.ext_critic.parameters(), lr=o.lr_v)
        else:
            self.learner = Reinforce(self.policy, o.lr_actor, o.gamma, o.entropy_coeff)
        self.opt_opp = {j: torch.optim.Adam(self.opponents[str(j)].parameters(), lr=o.lr_opp) for j in info.others}
        self.opt_reward = torch.optim.Adam(self.incentive.parameters(), lr=o.lr_reward)
        self.opt_cost = torch.optim.Adam(self.incentive.parameters(), lr=o.lr_cost)
        self.epsilon = LinearSchedule(o.epsilon_start, o.epsilon_end, o.epsilon_div)
        self.phase = 0
        self.tau_episode: Episode | None = None

    @property
    def given_block(self) -> bool:
        """The game appends each payer's incentives-given block to its observation (Escape Room, SPEC §11.4):
        i's own delivered observation is then longer than its raw one."""
        info = self.info
        return info.observation_space.shape != info.observation_spaces[info.seat].shape

    def seen_by(self, j: int) -> gym.Space:
        """The observation j's policy acts on: its raw one, plus the given block where the game has one.
        For a j that never pays the block stays zero, which a model cannot tell from no block at all."""
        raw = self.info.observation_spaces[j]
        if not self.given_block:
            return raw
        extra = self.info.n_agents - 1
        return gym.spaces.Box(np.concatenate([raw.low.ravel(), np.zeros(extra, np.float32)]),
                              np.concatenate([raw.high.ravel(), np.full(extra, np.inf, np.float32)]),
                              dtype=np.float32)

    def given_by(self, j: int, payments: torch.Tensor | None, received: torch.Tensor) -> torch.Tensor:
        """j's block `[T+1, B, N−1]`: what j has given each other agent (ascending seat) before step t, from
        disclosed payments, or with N = 2 from i's own received incentives (all of which came from j)."""
        if payments is not None:
            per_step = payments[..., j, [k for k in range(self.info.n_agents) if k != j]]
        else:
            per_step = received.unsqueeze(-1)
        cumulative = per_step.cumsum(0)
        return torch.cat([torch.zeros_like(cumulative[:1]), cumulative], dim=0)

    @classmethod
    def check_run(cls, options: dict[str, Any], run: RunFacts, seat: int) -> list[str]:
        opts = options_for(cls.options_model, run.game, options, cls.defaults)
        if opts.incentive_action_input == "clean":
            return [why for why in (clean_action_missing(names) for names in run.action_names) if why]
        return []

    def _clean_actions(self) -> list[int]:
        """Index of each agent's clean action (Cleanup's 'cleaned' one-hot incentive input)."""
        for names in self.info.action_names:
            if why := clean_action_missing(names):
                raise ValueError(why)
        return [next(k for k, name in enumerate(names) if "clean" in name.lower()) for names in self.info.action_names]

    def action_features(self, joint_action: torch.Tensor) -> torch.Tensor:
        """Incentive input for the others' actions this step, ascending seat id, self omitted."""
        if self.opts.incentive_action_input == "onehot":
            return onehot_others(joint_action, self.info.seat, self.action_sizes)
        cleaned = torch.stack([(joint_action[..., j] == self.clean_index[j]).long()
                               for j in self.info.others], dim=-1)
        return onehot_others(cleaned, -1, [2] * cleaned.shape[-1])

    # ----- acting and paying (hot path) -----

    @torch.inference_mode()  # acting builds no graph; cheaper than no_grad
    def act(self, view: StepView) -> np.ndarray:
        logits = self.policy(self.obs_tensor(view.obs))
        eps = 0.0 if view.evaluate else self.epsilon.value  # evaluation: no exploration (§1.1)
        return sample_mixed(logits, eps, self.gen).cpu().numpy()

    @torch.inference_mode()  # acting builds no graph; cheaper than no_grad
    def pay(self, view: StepView, joint_action: np.ndarray) -> np.ndarray:
        """r_η_i(o_i,t, a_−i,t) with the self entry zeroed."""
        actions = torch.as_tensor(joint_action, dtype=torch.int64, device=self.device)
        amounts = self.incentive(self.obs_tensor(view.obs), self.action_features(actions))
        amounts[:, self.info.seat] = 0.0
        return amounts.cpu().numpy().astype(np.float32)

    # ----- learning -----

    def episode(self, traj: Trajectory, tt: TrajectoryTensors) -> Episode:
        """Extract the disclosed per-recipient data; fails loudly if a needed channel is missing."""
        if traj.joint_actions is None or traj.joint_obs is None or traj.joint_rewards is None:
            raise RuntimeError("LIO needs the 'actions', 'observations' and 'rewards' disclosures")
        dev, steps = self.device, tt.T
        joint_actions = torch.as_tensor(np.asarray(traj.joint_actions), dtype=torch.int64, device=dev)
        joint_rewards = torch.as_tensor(np.asarray(traj.joint_rewards), dtype=torch.float32, device=dev)
        payments = (torch.as_tensor(np.asarray(traj.payments), dtype=torch.float32, device=dev)
                    if traj.payments is not None else None)
        if payments is None and self.info.n_agents > 2:
            raise RuntimeError("LIO with more than two agents needs the 'payments' disclosure")
        recipients = {}
        for j in self.info.others:
            if payments is None:
                third = torch.zeros_like(tt.extrinsic)
            else:
                third = payments[..., :, j].sum(-1) - payments[..., self.info.seat, j] - payments[..., j, j]
            obs = torch.as_tensor(np.asarray(traj.joint_obs[j])[:steps], device=dev)
            if self.given_block:
                given = self.given_by(j, payments, tt.incentives)[:steps]
                obs = torch.cat([obs.flatten(2).float(), given.float()], dim=-1)
            recipients[j] = Recipient(obs=obs, actions=joint_actions[..., j], extrinsic=joint_rewards[..., j],
                                      third_party=third)
        return Episode(own_obs=tt.obs[:steps], action_features=self.action_features(joint_actions),
                       own_extrinsic=tt.extrinsic, valid=tt.valid, terminal=tt.terminal, obs_all=tt.obs,
                       recipients=recipients)

    def fit_opponents(self, ep: Episode) -> float:
        """One Adam step per φ_j on mean CE(a_j, logits_φ_j(o_j)) over valid steps (behaviour cloning)."""
        n_valid = ep.valid.sum().clamp(min=1)
        total = 0.0
        for j, data in ep.recipients.items():
            logits = self.opponents[str(j)](data.obs)
            ce = nn.functional.cross_entropy(logits.flatten(0, 1), data.actions.flatten().clamp(min=0),
                                             reduction="none").view_as(ep.valid)
            loss = (ce * ep.valid * (data.actions >= 0)).sum() / n_valid
            self.opt_opp[j].zero_grad(set_to_none=True)
            loss.backward()
            self.opt_opp[j].step()
            total += float(loss.detach())
        return total / max(len(ep.recipients), 1)

    def credit(self, ep: Episode) -> torch.Tensor:
        """Ψ on τ̂: G_t(r̂^ext_i) (PG) or the extrinsic critic's TD error (AC); no gradient."""
        with torch.no_grad():
            if self.opts.learner == "pg":
                return discounted_returns(ep.own_extrinsic, ep.valid, self.opts.gamma)
            return td_errors(self.ext_critic, ep.obs_all, ep.own_extrinsic, ep.terminal, self.opts.gamma)

    def outer_loss(self, eta: Params, tau: Episode, tau_hat: Episode, psi: torch.Tensor, eps: float) -> torch.Tensor:
        """L_out(η) = −Σ_j mean_b Σ_t log π̃_φ̂_j(η)(â_j|ô_j)·Ψ_t on τ̂ (paper eq. 10, Ψ constant)."""
        o = self.opts
        payments = functional_call(self.incentive, eta, (tau.own_obs, tau.action_features))
        total = torch.zeros((), device=self.device)
        for j, data in tau.recipients.items():
            model = self.opponents[str(j)]
            phi = {n: p.detach() for n, p in model.named_parameters()}
            phi_hat = fictitious_step(model, phi, data, recipient_reward(payments, data, j), tau.valid,
                                      o.lr_actor, o.entropy_coeff, eps, o.gamma)
            new = tau_hat.recipients[j]
            logp = log_mixed(functional_call(model, phi_hat, (new.obs,)), eps if o.outer_logp_mixed else 0.0)
            taken = logp.gather(-1, new.actions.clamp(min=0).unsqueeze(-1)).squeeze(-1)
            mask = tau_hat.valid * (new.actions >= 0)
            total = total - (taken * psi * mask).sum() / mask.shape[1]
        return total

    def cost_loss(self, eta: Params, tau: Episode) -> torch.Tensor:
        payments = functional_call(self.incentive, eta, (tau.own_obs, tau.action_features))
        return incentive_cost(payments, tau.valid, self.info.seat, self.opts.gamma)

    def update_incentive(self, tau: Episode, tau_hat: Episode, eps: float) -> dict[str, float]:
        """One Adam step on L_out over η_i only; the L1 cost by its own Adam (ER) or inside L_out."""
        o = self.opts
        eta = {n: p.detach() for n, p in self.incentive.named_parameters()}
        psi = self.credit(tau_hat)
        g_out = grad(self.outer_loss)(eta, tau, tau_hat, psi, eps)
        g_cost = grad(self.cost_loss)(eta, tau) if o.cost != "none" else None
        params = dict(self.incentive.named_parameters())
        for name, p in params.items():
            p.grad = g_out[name]
            if o.cost == "inline" and g_cost is not None:
                p.grad = p.grad + o.cost_coeff * g_cost[name]
        self.opt_reward.step()
        if o.cost == "separate" and g_cost is not None:
            for name, p in params.items():
                p.grad = g_cost[name]
            self.opt_cost.step()
        self.incentive.zero_grad(set_to_none=True)
        with torch.no_grad():
            cost = float(self.cost_loss(eta, tau))
        return {"incentive_cost": cost}

    def update_ext_critic(self, ep: Episode) -> None:
        """Extrinsic-only critic for the AC credit Ψ (Deviation e): one Adam TD(0) step, soft target."""
        delta = td_errors(self.ext_critic, ep.obs_all, ep.own_extrinsic, ep.terminal, self.opts.gamma,
                          target=self.ext_target)
        loss = (delta.pow(2) * ep.valid).sum() / ep.valid.sum().clamp(min=1)
        self.opt_ext.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_ext.step()
        self.soft_update_ext_target()

    def soft_update_ext_target(self) -> None:
        with torch.no_grad():
            for p_t, p in zip(self.ext_target.parameters(), self.ext_critic.parameters(), strict=True):
                p_t.lerp_(p, self.opts.tau)

    def end_episode(self, trajectory: Trajectory, summary: dict[str, Any]) -> dict[str, float]:
        tt = TrajectoryTensors(trajectory, self.device, self.info.max_steps)
        ep = self.episode(trajectory, tt)
        eps = self.epsilon.value
        metrics: dict[str, float] = {"epsilon": eps, "lio_phase": float(self.phase)}
        if self.phase == 0:
            metrics["opponent_bc_loss"] = self.fit_opponents(ep)
            if isinstance(self.learner, ActorCriticLearner):
                self.update_ext_critic(ep)
                metrics |= self.learner.update(tt.obs, tt.actions, tt.rewards, tt.valid, tt.terminal, eps)
            else:
                metrics |= self.learner.update(ep.own_obs, tt.actions, tt.rewards, tt.valid, eps)
            self.tau_episode = ep
            self.phase = 1
        else:
            if self.tau_episode is None:
                raise RuntimeError("LIO reached τ̂ without a stored τ")
            metrics |= self.update_incentive(self.tau_episode, ep, eps)
            if isinstance(self.learner, ActorCriticLearner):  # the reference soft-updates twice an iteration
                self.learner.soft_update()
                self.soft_update_ext_target()
            metrics["opponent_bc_loss"] = self.fit_opponents(ep)
            self.tau_episode = None
            self.phase = 0
            self.epsilon.step()
        return metrics

    def state_objects(self) -> dict[str, Any]:
        objects: dict[str, Any] = {"policy": self.policy, "incentive": self.incentive, "opponents": self.opponents,
                                   "opt_reward": self.opt_reward, "opt_cost": self.opt_cost}
        objects |= {f"opt_opp_{j}": opt for j, opt in self.opt_opp.items()}
        if isinstance(self.learner, ActorCriticLearner):
            objects |= {"critic": self.learner.critic, "target": self.learner.target,
                        "opt_actor": self.learner.opt_actor, "opt_v": self.learner.opt_v,
                        "ext_critic": self.ext_critic, "ext_target": self.ext_target, "opt_ext": self.opt_ext}
        else:
            objects["opt_actor"] = self.learner.opt
        return objects

    def extra_state(self) -> dict[str, Any]:
        """Schedule, phase and the stored τ as plain dicts of tensors (checkpoints load weights-only)."""
        tau = self.tau_episode
        return {"epsilon_k": self.epsilon.k, "phase": self.phase,
                "tau_episode": None if tau is None else _episode_to_plain(tau)}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        tau = state["tau_episode"]
        self.epsilon.k, self.phase = int(state["epsilon_k"]), int(state["phase"])
        self.tau_episode = None if tau is None else _episode_from_plain(tau)


def _episode_to_plain(ep: Episode) -> dict[str, Any]:
    """An Episode as {field: tensor, "recipients": {j: {field: tensor}}} (seat ids stay int keys)."""
    plain: dict[str, Any] = {name: value for name, value in vars(ep).items() if name != "recipients"}
    plain["recipients"] = {int(j): dict(vars(r)) for j, r in ep.recipients.items()}
    return plain


def _episode_from_plain(plain: dict[str, Any]) -> Episode:
    """Inverse of `_episode_to_plain`."""
    fields = {name: value for name, value in plain.items() if name != "recipients"}
    return Episode(**fields, recipients={int(j): Recipient(**r) for j, r in plain["recipients"].items()})
