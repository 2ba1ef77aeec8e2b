"""MOA social influence: divergences against hand computation, counterfactual marginal, visibility
masking, credit shift, and an influence that appears only where actions really affect the other."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from agents.algorithm import Trajectory
from agents.algorithms.a2c import A2C
from agents.algorithms.moa import MOA, counterfactual_influence, credit_shift, divergence
from agents.algorithms.ppo import RecurrentPPO
from tests.agents.helpers import seat_info

P = torch.tensor([0.7, 0.2, 0.1])
M = torch.tensor([0.4, 0.4, 0.2])


def test_divergences_equal_hand_computation() -> None:
    kl = 0.7 * math.log(0.7 / 0.4) + 0.2 * math.log(0.2 / 0.4) + 0.1 * math.log(0.1 / 0.2)
    mid = [(0.7 + 0.4) / 2, (0.2 + 0.4) / 2, (0.1 + 0.2) / 2]
    jsd = 0.5 * sum(p * math.log(p / a) for p, a in zip([0.7, 0.2, 0.1], mid, strict=True)) + \
        0.5 * sum(m * math.log(m / a) for m, a in zip([0.4, 0.4, 0.2], mid, strict=True))
    assert float(divergence(P, M, "kl")) == pytest.approx(kl, rel=1e-5)
    assert float(divergence(P, M, "jsd")) == pytest.approx(jsd, rel=1e-5)
    assert float(divergence(P, M, "pmi", torch.tensor(1))) == pytest.approx(math.log(0.2 / 0.4), rel=1e-5)
    assert float(divergence(P, P, "kl")) == pytest.approx(0.0, abs=1e-7)


def test_marginal_is_weighted_by_the_own_policy() -> None:
    # one step, one copy, one other agent, 2 own actions: p(·|ã=0) = P, p(·|ã=1) = M
    cf = torch.stack([P, M])[None, :, None, None, :]  # [S=1, A=2, B=1, J=1, n=3]
    took = torch.tensor([[0]])
    visible = torch.ones(1, 1, 1)
    own = torch.tensor([[[0.25, 0.75]]])  # π(ã) at s
    marginal = 0.25 * P + 0.75 * M
    expected = float(divergence(P, marginal, "kl"))
    assert float(counterfactual_influence(cf, own, took, "kl", visible)) == pytest.approx(expected, rel=1e-5)
    # all mass on the action taken: the marginal is the conditional, no influence
    certain = torch.tensor([[[1.0, 0.0]]])
    assert float(counterfactual_influence(cf, certain, took, "kl", visible)) == pytest.approx(0.0, abs=1e-6)


def test_visibility_masks_invisible_pairs() -> None:
    cf = torch.stack([torch.stack([P, M]), torch.stack([M, P])], dim=-2)[None, :, None]  # [1, 2, 1, J=2, 3]
    own = torch.tensor([[[0.5, 0.5]]])
    took = torch.tensor([[0]])
    both = counterfactual_influence(cf, own, took, "kl", torch.ones(1, 1, 2))
    first = counterfactual_influence(cf, own, took, "kl", torch.tensor([[[1.0, 0.0]]]))
    second = counterfactual_influence(cf, own, took, "kl", torch.tensor([[[0.0, 1.0]]]))
    assert float(first) == pytest.approx(float(divergence(P, 0.5 * (P + M), "kl")), rel=1e-5)
    assert float(both) == pytest.approx(float(first) + float(second), rel=1e-5)
    assert float(counterfactual_influence(cf, own, took, "kl", torch.zeros(1, 1, 2))) == 0.0


def test_credit_shift_puts_step_t_on_action_t_minus_1() -> None:
    values = torch.tensor([[0.0], [1.0], [2.0], [3.0]])
    assert credit_shift(values).squeeze(1).tolist() == [1.0, 2.0, 3.0, 0.0]


def moa_agent(seed: int = 0, options: dict | None = None) -> MOA:
    info = seat_info(game="ipd", n_actions=3, batch_size=64, max_steps=10, seed=seed,
                     options={"lr": 0.01, "clip": 0, "value_clip": 0, "epochs": 1, **(options or {})})
    info = dataclasses.replace(info, disclosed=frozenset({"actions", "visibility"}), noop_action=0)
    agent = MOA()
    agent.setup(info)
    return agent


def episode(rng: np.random.Generator, copier: bool, steps: int = 10, batch: int = 64) -> Trajectory:
    """Agent 1 copies agent 0's previous action (`copier`) or acts at random."""
    own = rng.integers(0, 3, (steps, batch))
    other = np.concatenate([rng.integers(0, 3, (1, batch)), own[:-1]]) if copier else rng.integers(0, 3, (steps, batch))
    zeros = np.zeros((steps, batch), np.float32)
    return Trajectory(obs=rng.uniform(size=(steps + 1, batch, 3)).astype(np.float32), actions=own, rewards=zeros,
                      extrinsic=zeros, incentives=zeros, valid=np.ones((steps, batch), bool),
                      joint_actions=np.stack([own, other], -1), visibility=np.ones((steps + 1, batch, 2), bool))


TRIGGER = 2


def rare_effect_episode(rng: np.random.Generator, steps: int = 10, batch: int = 64) -> Trajectory:
    """Agent 0 plays TRIGGER 1 step in 10, and agent 1 answers it with action 1 at the next step (else 0):
    one rare own action moves the other, as OPEN_BOX moves the trapped agent in Box trapped."""
    own = np.where(rng.uniform(size=(steps, batch)) < 0.1, TRIGGER, rng.integers(0, 2, (steps, batch)))
    other = np.concatenate([np.zeros((1, batch), np.int64), (own[:-1] == TRIGGER).astype(np.int64)])
    traj = episode(rng, copier=False, steps=steps, batch=batch)
    return dataclasses.replace(traj, actions=own, joint_actions=np.stack([own, other], -1))


def influence_on_the_rare_action(agent: MOA, traj: Trajectory) -> float:
    """Mean influence credited to the steps where agent 0 played TRIGGER."""
    joint, said, visible = agent.tensors(traj)
    obs = torch.as_tensor(traj.obs)
    logits, _, _ = agent.learner.rollout_pass(obs, agent.trajectory_extra(traj))
    credit = credit_shift(agent.influence(obs, joint, said, logits, joint[..., 0], visible))
    return float(credit[:-1][joint[:-1, :, 0] == TRIGGER].mean())


def test_influence_appears_only_where_actions_affect_the_other() -> None:
    rng = np.random.default_rng(0)
    found = {}
    for copier in (True, False):
        agent = moa_agent()
        for _ in range(80):
            metrics = agent.end_episode(episode(rng, copier), {})
        found[copier] = metrics
    # a copier's next action is fixed by ours: KL(δ ‖ π-marginal) ≥ log 1/max π, about log 3 when uniform
    assert found[True]["moa_accuracy"] > 0.9 and found[True]["influence"] > 0.5, found[True]
    assert found[False]["influence"] < 0.05, found[False]


def test_influence_uses_the_frozen_own_policy() -> None:
    agent = moa_agent()
    traj = episode(np.random.default_rng(1), copier=True)
    joint, said, visible = agent.tensors(traj)
    obs = torch.as_tensor(traj.obs)
    logits, _, _ = agent.learner.rollout_pass(obs, agent.trajectory_extra(traj))
    value = agent.influence(obs, joint, said, logits, joint[..., 0], visible)
    assert not value.requires_grad
    assert value[0].abs().sum() == 0  # no prediction of step 0
    certain = torch.nn.functional.one_hot(joint[..., 0], 3).float() * 50.0  # π puts all mass on what was done
    assert float(agent.influence(obs, joint, said, torch.cat([certain, certain[:1]]), joint[..., 0],
                                 visible).abs().max()) < 1e-4


def test_zero_turns_clipping_off_and_presets_resolve_per_game() -> None:
    opts = RecurrentPPO.resolve_options({"clip": 0, "value_clip": 0}, "ipd")
    assert opts.clip is None and opts.value_clip is None
    ssd = MOA.resolve_options({"preset": "ssd-ppo"}, "cleanup")
    assert ssd.moa_loss_weight == pytest.approx(0.06663557) and ssd.epochs == 10
    assert MOA.resolve_options({"preset": "paper-a3c", "lr": 0.5}, "harvest").lr == 0.5
    assert A2C.resolve_options({}, "cleanup").clip is None
    with pytest.raises(ValueError, match="preset 'ssd-ppo' has settings for cleanup, harvest only"):
        MOA.resolve_options({"preset": "ssd-ppo"}, "ipd")


def test_moa_checkpoint_round_trip(tmp_path) -> None:
    agent = moa_agent()
    agent.end_episode(episode(np.random.default_rng(2), True), {})
    agent.save(str(tmp_path / "moa.pt"))
    clone = moa_agent()
    clone.load(str(tmp_path / "moa.pt"))
    for a, b in zip(agent.moa.parameters(), clone.moa.parameters(), strict=True):
        assert torch.equal(a, b)
    assert clone.env_steps == agent.env_steps


def test_warmup_fits_the_model_alone_with_moa_steps() -> None:
    agent = moa_agent(options={"moa_steps": 2})
    policy = [p.detach().clone() for p in agent.net.core.parameters()]
    moa = [p.detach().clone() for p in agent.moa.parameters()]
    metrics = agent.warmup_episode(episode(np.random.default_rng(3), copier=True), {})
    assert metrics["warmup"] == 1.0 and metrics["moa_loss"] > 0
    assert all(torch.equal(a, b) for a, b in zip(policy, agent.net.core.parameters(), strict=True))
    assert not any(torch.equal(a, b) for a, b in zip(moa, agent.moa.parameters(), strict=True))
    assert agent.env_steps == 0  # the policy's schedules have not moved
    assert int(agent.learner.opt.state[next(agent.moa.parameters())]["step"]) == 3  # 1 + moa_steps


def test_moa_steps_let_the_model_learn_a_rare_effect_before_the_policy_moves_on() -> None:
    # The Box trapped failure in small: the own action that moves the other is rare (1 step in 10), and
    # the agent has 10 batches. One MOA step per batch learns nothing of it yet; 1 + 9 steps learn it.
    rng = np.random.default_rng(4)
    batches = [rare_effect_episode(rng) for _ in range(10)]
    found = {}
    for steps in (0, 9):
        agent = moa_agent(options={"moa_steps": steps})
        for traj in batches:
            agent.end_episode(traj, {})
        found[steps] = influence_on_the_rare_action(agent, rare_effect_episode(rng))
    assert found[9] > 1.0 > 0.1 > found[0], found
