"""PG / AC / IA / PG-c / PPO learn a bandit; checkpoints restore identical actions; networks by space."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch

from agents.algorithm import Algorithm, Trajectory
from agents.algorithms.ac import ActorCritic
from agents.algorithms.ia import InequityAversion
from agents.algorithms.lio import LIO
from agents.algorithms.pg import PolicyGradient
from agents.algorithms.pg_c import PolicyGradientContinuousGive
from agents.learners.common import TrajectoryTensors
from agents.learners.networks import IncentiveNet, PolicyNet, RecurrentActorCritic
from agents.learners.ppo import PPO
from tests.agents.helpers import random_trajectory, seat_info, step_view

PAYOFF = np.array([0.0, 1.0, 0.2], np.float32)
BATCH = 32


def bandit_episode(agent: Algorithm, obs: np.ndarray) -> Trajectory:
    """One-step episode (a true termination: the seat's step limit is 5) paying PAYOFF[a]."""
    view = step_view(obs)
    actions = agent.act(view)
    paid = agent.pay(view, np.stack([actions, np.ones_like(actions)], 1)) if agent.pays else None
    reward = PAYOFF[actions][None]
    joint_rewards = np.stack([reward, reward], -1)
    return Trajectory(obs=np.stack([obs, obs]), actions=actions[None], rewards=reward, extrinsic=reward,
                      incentives=np.zeros_like(reward), valid=np.ones((1, BATCH), bool),
                      paid=None if paid is None else paid[None], joint_rewards=joint_rewards,
                      joint_actions=np.stack([actions, np.ones_like(actions)], -1)[None])


def best_action_prob(agent: Any, obs: np.ndarray) -> float:
    with torch.no_grad():
        x = torch.as_tensor(obs)
        logits = agent.policy(x, torch.zeros(len(obs), 2)) if isinstance(agent, InequityAversion) else agent.policy(x)
        return float(torch.softmax(logits, -1)[:, 1].mean())


@pytest.mark.parametrize(("cls", "options"), [
    (PolicyGradient, {"lr": 0.5}),
    (ActorCritic, {"lr_actor": 0.5, "lr_v": 0.05}),
    (InequityAversion, {"lr_actor": 0.5, "lr_v": 0.05}),
    (PolicyGradientContinuousGive, {"lr": 0.5, "cost_coeff": 0.0}),
])
def test_learner_improves_on_bandit(cls: type[Any], options: dict[str, Any]) -> None:
    agent = cls()
    agent.setup(seat_info(obs_dim=3, batch_size=BATCH, options={
        "epsilon_start": 0.1, "epsilon_end": 0.1, "hidden": [16, 8], **options}))
    obs = np.ones((BATCH, 3), np.float32)
    before = best_action_prob(agent, obs)
    returns = []
    for _ in range(150):
        traj = bandit_episode(agent, obs)
        returns.append(float(traj.rewards.mean()))
        agent.end_episode(traj, {})
    assert best_action_prob(agent, obs) > max(0.8, before + 0.3)
    assert np.mean(returns[-20:]) > max(0.8, np.mean(returns[:3]) + 0.2)


def test_ppo_recurrent_learner_improves() -> None:
    space = gym.spaces.Box(0.0, 1.0, (3,), np.float32)
    torch.manual_seed(0)
    net = RecurrentActorCritic(space, 3, [16], core="gru", core_size=16)
    learner = PPO(net, lr=0.02, clip=0.2, epochs=4, minibatches=2, chunk=2, entropy_coeff=0.0)
    gen = torch.Generator().manual_seed(0)
    steps = 3
    obs = torch.ones(steps + 1, BATCH, 3)
    payoff = torch.as_tensor(PAYOFF)
    means = []
    for _ in range(40):
        state = net.initial_state(BATCH)
        actions = []
        for t in range(steps):
            a, state = learner.act(obs[t], state, gen)
            actions.append(a)
        acts = torch.stack(actions)
        rewards = payoff[acts]
        means.append(float(rewards.mean()))
        ones = torch.ones(steps, BATCH)
        learner.update(obs, acts, rewards, ones, torch.zeros(steps, BATCH), gen)
    assert np.mean(means[-5:]) > 0.85


def test_terminal_mask_separates_termination_from_truncation() -> None:
    info = seat_info(max_steps=3)
    traj = random_trajectory(np.random.default_rng(0), info, steps=3, batch=3)
    traj.valid = np.array([[1, 1, 1], [1, 1, 0], [1, 1, 0]], bool)  # copy 2 ends after step 0
    tt = TrajectoryTensors(traj, torch.device("cpu"), info.max_steps)
    assert tt.terminal.tolist() == [[0, 0, 1], [0, 0, 0], [0, 0, 0]]


def test_inequity_aversion_reward() -> None:
    agent = InequityAversion()
    agent.setup(seat_info(options={"ia_alpha": 0.5, "ia_beta": 0.05}))
    traj = random_trajectory(np.random.default_rng(0), agent.info, ended_early=False)
    tt = TrajectoryTensors(traj, torch.device("cpu"), agent.info.max_steps)
    decay = agent.opts.gamma * 0.95
    e = np.zeros((traj.valid.shape[1], 2))
    for t in range(tt.T):
        e = decay * e + traj.joint_rewards[t]
        diff = e[:, 1] - e[:, 0]
        want = traj.rewards[t] - 0.5 * np.maximum(diff, 0) - 0.05 * np.maximum(-diff, 0)
        np.testing.assert_allclose(agent.learning_reward(traj, tt)[t].numpy(), want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("cls", [PolicyGradient, ActorCritic, InequityAversion, PolicyGradientContinuousGive, LIO])
def test_checkpoint_round_trip_restores_identical_actions(cls: type[Any], tmp_path: Path) -> None:
    info = seat_info(obs_dim=6, own_obs_dim=7, batch_size=6, seed=7)
    agent = cls()
    agent.setup(info)
    rng = np.random.default_rng(0)
    for _ in range(3):
        traj = random_trajectory(rng, agent.info)
        for t in range(traj.length):
            view = step_view(traj.obs[t], t)
            agent.act(view)
            if cls.pays:
                agent.pay(view, traj.joint_actions[t])
        agent.end_episode(traj, {})
    path = str(tmp_path / "ckpt.pt")
    agent.save(path)
    clone = cls()
    clone.setup(info)
    clone.load(path)
    obs = rng.uniform(size=(6, 7)).astype(np.float32)
    joint = rng.integers(0, 3, (6, 2))
    for _ in range(4):
        np.testing.assert_array_equal(agent.act(step_view(obs)), clone.act(step_view(obs)))
        if cls.pays:
            np.testing.assert_array_equal(agent.pay(step_view(obs), joint), clone.pay(step_view(obs), joint))


def test_networks_follow_the_observation_space() -> None:
    image = gym.spaces.Box(0, 255, (7, 7, 3), np.uint8)
    policy = PolicyNet(image, 6, [64, 64], layout="HWC")
    x = torch.randint(0, 255, (5, 4, 7, 7, 3), dtype=torch.uint8)
    assert policy(x).shape == (5, 4, 6)
    incentive = IncentiveNet(image, 2, 2, [64, 64], rmax=2.0, layout="HWC")
    out = incentive(x, torch.zeros(5, 4, 2))
    assert out.shape == (5, 4, 2) and float(out.detach().max()) <= 2.0
    lstm = RecurrentActorCritic(image, 6, [32, 32], core="lstm", core_size=16, layout="HWC")
    logits, values, state = lstm(x, lstm.initial_state(4))
    assert logits.shape == (5, 4, 6) and values.shape == (5, 4) and state[0].shape == (1, 4, 16)
