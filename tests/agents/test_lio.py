"""LIO-dec: the incentive gradient, the recipient's fictitious step, opponent cloning, the τ/τ̂ schedule."""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pytest
import torch
from torch.func import grad

from agents.algorithms.lio import LIO, Episode, Recipient, fictitious_step, recipient_reward
from agents.learners.common import TrajectoryTensors
from tests.agents.helpers import random_trajectory, seat_info, step_view

CPU = torch.device("cpu")


def make_lio(n_agents: int = 2, seed: int = 0, **options: object) -> LIO:
    info = seat_info(n_agents=n_agents, obs_dim=3 * n_agents, own_obs_dim=4 * n_agents - 1, seed=seed,
                     options={"policy_hidden": [8, 4], "incentive_hidden": [8, 4], **options})
    agent = LIO()
    agent.setup(info)
    return agent


def episode_of(agent: LIO, traj) -> Episode:  # type: ignore[no-untyped-def]
    return agent.episode(traj, TrajectoryTensors(traj, CPU, agent.info.max_steps))


def to_double(ep: Episode) -> Episode:
    def conv(x: torch.Tensor) -> torch.Tensor:
        return x.double() if x.is_floating_point() else x

    recipients = {j: Recipient(*(conv(getattr(r, f.name)) for f in dataclasses.fields(r)))
                  for j, r in ep.recipients.items()}
    fields = {f.name: conv(getattr(ep, f.name)) for f in dataclasses.fields(ep) if f.name != "recipients"}
    return Episode(**fields, recipients=recipients)


def test_incentive_gradient_matches_finite_differences() -> None:
    agent = make_lio(n_agents=3, entropy_coeff=0.05, lr_actor=0.5)
    agent.incentive.double()
    agent.opponents.double()
    rng = np.random.default_rng(3)
    tau = to_double(episode_of(agent, random_trajectory(rng, agent.info)))
    tau_hat = to_double(episode_of(agent, random_trajectory(rng, agent.info, steps=5)))
    psi = agent.credit(tau_hat)
    eps = 0.2
    eta = {n: p.detach().clone() for n, p in agent.incentive.named_parameters()}
    analytic = grad(agent.outer_loss)(eta, tau, tau_hat, psi, eps)
    gen = torch.Generator().manual_seed(0)
    for _ in range(4):
        direction = {n: torch.randn(p.shape, generator=gen, dtype=p.dtype) for n, p in eta.items()}
        h = 1e-6
        plus = agent.outer_loss({n: p + h * direction[n] for n, p in eta.items()}, tau, tau_hat, psi, eps)
        minus = agent.outer_loss({n: p - h * direction[n] for n, p in eta.items()}, tau, tau_hat, psi, eps)
        finite = float((plus - minus) / (2 * h))
        along = float(sum((analytic[n] * direction[n]).sum() for n in eta))
        assert abs(along) > 1e-6
        assert abs(finite - along) <= 1e-6 + 1e-5 * abs(along)


def seen_by_j(traj, j: int) -> np.ndarray:  # type: ignore[no-untyped-def]
    """j's Escape Room observation as its policy sees it: raw obs, then what j gave each other agent
    (ascending seat) on the steps before t, loop by loop."""
    steps, batch, n = traj.joint_actions.shape
    block = np.zeros((steps + 1, batch, n - 1), np.float32)
    for t in range(1, steps + 1):
        for col, k in enumerate(k for k in range(n) if k != j):
            block[t, :, col] = block[t - 1, :, col] + traj.payments[t - 1, :, j, k]
    return np.concatenate([traj.joint_obs[j], block], axis=-1)


def _hand_phi_hat(model: torch.nn.Module, traj, j: int, reward: torch.Tensor, beta: float, c_h: float,  # type: ignore[no-untyped-def]
                  eps: float, gamma: float) -> dict[str, torch.Tensor]:
    """One REINFORCE step of a copy of `model`, written out loop by loop."""
    model = copy.deepcopy(model)
    steps, batch = traj.actions.shape
    valid = torch.as_tensor(traj.valid).float()
    obs = torch.as_tensor(seen_by_j(traj, j)[:steps])
    actions = torch.as_tensor(traj.joint_actions[..., j])
    probs = (1 - eps) * torch.softmax(model(obs), -1) + eps / 3
    loss = torch.zeros(())
    for b in range(batch):
        for t in range(steps):
            g = sum(gamma ** (u - t) * reward[u, b] * valid[u, b] for u in range(t, steps))
            entropy = -(probs[t, b] * probs[t, b].log()).sum()
            loss = loss - valid[t, b] * (probs[t, b, actions[t, b]].log() * g + c_h * entropy)
    grads = torch.autograd.grad(loss / batch, list(model.parameters()))
    return {n: p.detach() - beta * g for (n, p), g in zip(model.named_parameters(), grads, strict=True)}


def test_fictitious_step_uses_disclosed_rewards_plus_incentives() -> None:
    agent = make_lio(n_agents=3, entropy_coeff=0.1, lr_actor=0.3)
    rng = np.random.default_rng(1)
    traj = random_trajectory(rng, agent.info)
    ep = episode_of(agent, traj)
    j, third, eps, gamma = 1, 2, 0.25, agent.opts.gamma
    with torch.no_grad():
        own_pay = agent.incentive(ep.own_obs, ep.action_features)
    # r_j = disclosed extrinsic + what i's η pays j (not the recorded i→j payment) + what agent 2 paid j
    expected_reward = (torch.as_tensor(traj.joint_rewards[..., j]) + own_pay[..., j]
                       + torch.as_tensor(traj.payments[..., third, j]))
    model = agent.opponents[str(j)]
    phi = {n: p.detach() for n, p in model.named_parameters()}
    reward = recipient_reward(own_pay, ep.recipients[j], j)
    torch.testing.assert_close(reward, expected_reward)
    got = fictitious_step(model, phi, ep.recipients[j], reward, ep.valid, 0.3, 0.1, eps, gamma)
    want = _hand_phi_hat(model, traj, j, expected_reward, 0.3, 0.1, eps, gamma)
    for name in want:
        torch.testing.assert_close(got[name], want[name], rtol=1e-4, atol=1e-6)

    # i's own rewards and receipts are not the recipient's: changing them changes nothing
    traj.rewards = traj.rewards + 5.0
    traj.extrinsic = traj.extrinsic + 5.0
    again = episode_of(agent, traj).recipients[j]
    torch.testing.assert_close(recipient_reward(own_pay, again, j), expected_reward)


def test_two_agents_need_no_payments_disclosure_and_more_do() -> None:
    """N = 2: nobody else pays j, and j's given block is what i received. N > 2: third-party payments
    enter r_j, so LIO asks for `payments` (item 6 of the integrity issue: they used to be dropped silently)."""
    assert "payments" not in LIO.needs_for(2) and "payments" in LIO.needs_for(3)
    agent = make_lio(n_agents=2)
    traj = random_trajectory(np.random.default_rng(2), agent.info)
    with_payments = episode_of(agent, traj).recipients[1]
    traj.payments = None
    without = episode_of(agent, traj).recipients[1]
    assert float(without.third_party.abs().sum()) == 0.0
    torch.testing.assert_close(without.obs, with_payments.obs)
    three = make_lio(n_agents=3)
    traj = random_trajectory(np.random.default_rng(2), three.info)
    traj.payments = None
    with pytest.raises(RuntimeError, match="payments"):
        episode_of(three, traj)


def test_opponent_models_see_the_given_block_the_recipient_sees() -> None:
    """Escape Room appends to a payer's observation what it has given so far; φ_j must be fed that, not
    j's raw observation (item 7)."""
    agent = make_lio(n_agents=3)
    raw = agent.info.observation_spaces[1].shape[0]
    assert agent.opponents["1"].encoder.obs_shape == (raw + 2,)
    traj = random_trajectory(np.random.default_rng(4), agent.info)
    ep = episode_of(agent, traj)
    for j in (1, 2):
        torch.testing.assert_close(ep.recipients[j].obs, torch.as_tensor(seen_by_j(traj, j)[:traj.length]))


def test_fictitious_step_ignores_hidden_actions() -> None:
    """A hidden public action (-1) gives no log-probability term (it used to index out of range): with no
    entropy bonus, what j observed at hidden steps cannot move φ̂_j, while the same change at a known
    step does."""
    agent = make_lio()
    traj = random_trajectory(np.random.default_rng(5), agent.info)
    ep = episode_of(agent, traj)
    model = agent.opponents["1"]
    phi = {n: p.detach() for n, p in model.named_parameters()}
    hidden = dataclasses.replace(ep.recipients[1], actions=ep.recipients[1].actions.clone())
    hidden.actions[1:] = -1

    def step_with_obs_changed_at(t: int) -> dict[str, torch.Tensor]:
        obs = hidden.obs.clone()
        obs[t] += 1.0
        return fictitious_step(model, phi, dataclasses.replace(hidden, obs=obs), hidden.extrinsic, ep.valid,
                               0.3, 0.0, 0.1, 0.99)

    base = fictitious_step(model, phi, hidden, hidden.extrinsic, ep.valid, 0.3, 0.0, 0.1, 0.99)
    assert all(torch.isfinite(p).all() for p in base.values())
    for name in base:
        torch.testing.assert_close(step_with_obs_changed_at(2)[name], base[name])
    assert any(not torch.allclose(step_with_obs_changed_at(0)[n], base[n]) for n in base)


def test_opponent_model_converges_to_fixed_policy() -> None:
    agent = make_lio(lr_opp=0.03)
    table = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8], [0.3, 0.4, 0.3]])
    gen = torch.Generator().manual_seed(0)
    steps, batch = 4, 128
    for _ in range(300):
        states = torch.randint(0, 3, (steps, batch), generator=gen)
        obs = torch.nn.functional.one_hot(states, 7).float()  # 6 raw + j's (here zero) given block
        actions = torch.multinomial(table[states].view(-1, 3), 1, generator=gen).view(steps, batch)
        zeros = torch.zeros(steps, batch)
        recipient = Recipient(obs=obs, actions=actions, extrinsic=zeros, third_party=zeros)
        agent.fit_opponents(Episode(own_obs=obs, action_features=obs, own_extrinsic=zeros,
                                    valid=torch.ones(steps, batch), terminal=zeros, obs_all=obs,
                                    recipients={1: recipient}))
    with torch.no_grad():
        probs = torch.softmax(agent.opponents["1"](torch.eye(7)[:3]), -1)
    assert float((probs - table).abs().max()) < 0.05


def test_pay_is_bounded_and_skips_self() -> None:
    agent = make_lio(n_agents=3, seed=4)
    obs = np.random.default_rng(0).uniform(size=(8, 11)).astype(np.float32)
    joint = np.random.default_rng(1).integers(0, 3, (8, 3))
    amounts = agent.pay(step_view(obs), joint)
    assert amounts.shape == (8, 3) and amounts.dtype == np.float32
    assert np.all(amounts[:, 0] == 0.0)
    assert np.all((amounts >= 0.0) & (amounts <= 2.0))


def test_iteration_updates_policy_after_tau_and_only_eta_after_tau_hat() -> None:
    agent = make_lio(lr_actor=0.1, lr_reward=0.01)
    rng = np.random.default_rng(5)

    def snapshot(module: torch.nn.Module) -> list[torch.Tensor]:
        return [p.detach().clone() for p in module.parameters()]

    def changed(before: list[torch.Tensor], module: torch.nn.Module) -> bool:
        return any(not torch.equal(a, b) for a, b in zip(before, module.parameters(), strict=True))

    policy, eta, opp = snapshot(agent.policy), snapshot(agent.incentive), snapshot(agent.opponents)
    metrics = agent.end_episode(random_trajectory(rng, agent.info), {})
    assert metrics["lio_phase"] == 0.0 and agent.phase == 1
    assert changed(policy, agent.policy) and changed(opp, agent.opponents) and not changed(eta, agent.incentive)

    policy, opp = snapshot(agent.policy), snapshot(agent.opponents)
    metrics = agent.end_episode(random_trajectory(rng, agent.info), {})
    assert "incentive_cost" in metrics and agent.phase == 0 and agent.epsilon.k == 1
    assert not changed(policy, agent.policy) and changed(eta, agent.incentive) and changed(opp, agent.opponents)


def test_ac_target_critics_soft_update_after_the_incentive_step_too() -> None:
    """§2.8 f: the reference soft-updates the target critic after the policy step and again after the
    incentive step; the critics themselves do not change on τ̂."""
    agent = make_lio(learner="ac")
    rng = np.random.default_rng(6)
    agent.end_episode(random_trajectory(rng, agent.info), {})
    targets = {"target": agent.learner.target, "ext_target": agent.ext_target}
    critics = {"target": agent.learner.critic, "ext_target": agent.ext_critic}
    before = {k: [p.detach().clone() for p in m.parameters()] for k, m in targets.items()}
    agent.end_episode(random_trajectory(rng, agent.info), {})
    for key, target in targets.items():
        for old, new, critic in zip(before[key], target.parameters(), critics[key].parameters(), strict=True):
            torch.testing.assert_close(new, torch.lerp(old, critic.detach(), agent.opts.tau))
