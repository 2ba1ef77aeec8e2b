"""MOA's communication variant (§3.6): the influence through messages against a step-by-step
computation, ≈ 0 for a listener that ignores the symbols and clearly > 0 for one that copies them, the
message head's loss reaching the message head and never the action head, and the §6 metrics."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from agents.algorithm import RunFacts, StepView, Trajectory
from agents.algorithms.moa import (
    MOA,
    divergence,
    joint_counts,
    mutual_information,
    speaker_consistency,
)
from agents.learners.common import TrajectoryTensors
from agents.preflight import run_problems
from tests.agents.helpers import seat_info

VOCAB, ACTIONS = 3, 3


def talker(seed: int = 0, options: dict | None = None) -> MOA:
    info = seat_info(game="ipd", n_actions=ACTIONS, batch_size=64, max_steps=10, seed=seed,
                     options={"lr": 0.01, "clip": 0, "value_clip": 0, "epochs": 1, "communication": True,
                              **(options or {})})
    info = dataclasses.replace(info, disclosed=frozenset({"actions", "visibility", "messages"}), noop_action=0,
                               message_vocab=VOCAB)
    agent = MOA()
    agent.setup(info)
    return agent


def episode(rng: np.random.Generator, copier: bool, steps: int = 10, batch: int = 64) -> Trajectory:
    """Agent 0 speaks uniformly at random; agent 1's next action is agent 0's symbol (`copier`) or random.
    Both act at random otherwise, so only the symbol can move agent 1."""
    said = rng.integers(0, VOCAB, (steps, batch, 2))
    own = rng.integers(0, ACTIONS, (steps, batch))
    first = rng.integers(0, ACTIONS, (1, batch))
    other = np.concatenate([first, said[:-1, :, 0]]) if copier else rng.integers(0, ACTIONS, (steps, batch))
    zeros = np.zeros((steps, batch), np.float32)
    return Trajectory(obs=rng.uniform(size=(steps + 1, batch, 3)).astype(np.float32), actions=own, rewards=zeros,
                      extrinsic=zeros, incentives=zeros, valid=np.ones((steps, batch), bool),
                      joint_actions=np.stack([own, other], -1), visibility=np.ones((steps + 1, batch, 2), bool),
                      messages=said[..., 0], joint_messages=said)


def test_message_influence_equals_a_step_by_step_computation() -> None:
    torch.manual_seed(0)
    agent = talker()
    traj = episode(np.random.default_rng(0), copier=True, steps=4, batch=3)
    joint, said, visible = agent.tensors(traj)
    obs = torch.as_tensor(traj.obs)
    policy = torch.randn(5, 3, VOCAB) * 2  # π_m's logits at each step
    value = agent.influence(obs, joint, said, policy, said[..., 0], visible)

    moa = agent.moa
    features = moa["fc"](agent.net.encoder.trunk(obs[:4]))
    expected = torch.zeros(4, 3)
    for b in range(3):
        for s in range(3):  # the prediction of step s + 1 from the MOA's state after steps 0..s−1
            def row(t: int, symbol: int, b: int = b) -> torch.Tensor:
                return torch.cat([features[t, b], F.one_hot(joint[t, b, 0], ACTIONS),
                                  F.one_hot(joint[t, b, 1], ACTIONS), F.one_hot(torch.tensor(symbol), VOCAB),
                                  F.one_hot(said[t, b, 1], VOCAB)]).float()
            state = (torch.zeros(1, 128), torch.zeros(1, 128))
            for t in range(s):
                _, state = moa["core"](row(t, int(said[t, b, 0]))[None], state)
            with torch.no_grad():
                p = [torch.softmax(moa["head"](moa["core"](row(s, m)[None], state)[0])[0], -1) for m in range(VOCAB)]
            pi = torch.softmax(policy[s, b], -1)
            marginal = sum(pi[m] * p[m] for m in range(VOCAB))
            expected[s + 1, b] = divergence(p[int(said[s, b, 0])], marginal, "kl")
    assert torch.allclose(value, expected, atol=1e-5), (value, expected)
    assert float(expected.abs().sum()) > 0  # an untrained MOA is still moved a little by the symbol


def train(copier: bool, episodes: int = 60) -> dict[str, float]:
    rng = np.random.default_rng(1)
    agent = talker(options={"moa_steps": 4})
    for _ in range(episodes):
        metrics = agent.end_episode(episode(rng, copier), {})
    return metrics


def test_influence_through_messages_is_there_only_for_a_listener_that_uses_them() -> None:
    copier, ignorer = train(copier=True), train(copier=False)
    # the copier's next action is fixed by our symbol: KL(δ ‖ π_m-marginal) ≈ log 3 under a uniform π_m
    assert copier["moa_accuracy"] > 0.9 and copier["influence"] > 0.5, copier
    assert ignorer["influence"] < 0.05, ignorer
    # I(m^k_t; a^j_{t+1}) is log 3 for the copier, 0 (up to the plug-in bias) for the ignorer
    assert copier["ic_message_action"] == pytest.approx(math.log(3), abs=0.05), copier
    assert ignorer["ic_message_action"] < 0.05 and copier["ic_action_action"] < 0.05, ignorer
    assert copier["messages_heard"] == 1.0


def test_the_message_loss_trains_the_message_head_and_never_the_action_head() -> None:
    agent = talker()
    traj = episode(np.random.default_rng(2), copier=True)
    tt = TrajectoryTensors(traj, agent.device, agent.info.max_steps)
    speech = agent.message_rollout(traj, tt)
    assert speech.advantages.abs().sum() > 0  # influence reward, α·e = 0 here
    loss, metrics = agent.message_loss(tt, speech, torch.arange(64))
    assert metrics["message_entropy"] == pytest.approx(math.log(VOCAB), abs=0.05)
    action_head = [p.detach().clone() for p in agent.net.policy.parameters()]
    message_head = [p.detach().clone() for p in agent.speaker.parameters()]
    agent.learner.step(loss)
    assert agent.net.policy.weight.grad is None  # the loss never reaches π_e
    assert agent.net.core.weight_ih_l0.grad.abs().sum() > 0  # the shared LSTM learns to speak
    assert all(torch.equal(a, b) for a, b in zip(action_head, agent.net.policy.parameters(), strict=True))
    assert not any(torch.equal(a, b) for a, b in zip(message_head, agent.speaker.parameters(), strict=True))
    # and the action head's reward is e alone, whatever the influence
    assert torch.equal(agent.learning_reward(traj, tt, torch.zeros(11, 64, ACTIONS))[0], tt.rewards)


def test_speaker_consistency_and_coordination_from_counts() -> None:
    symbols = torch.tensor([0, 1, 2, 0, 1, 2])
    assert speaker_consistency(joint_counts(symbols, symbols, 3, 3)) == pytest.approx(1.0)
    assert mutual_information(joint_counts(symbols, symbols, 3, 3)) == pytest.approx(math.log(3))
    every = torch.arange(9)
    uniform = joint_counts(every // 3, every % 3, 3, 3)  # each symbol with each action once
    assert speaker_consistency(uniform) == pytest.approx(0.0, abs=1e-9)
    assert mutual_information(uniform) == pytest.approx(0.0, abs=1e-12)


def test_acts_and_speaks_from_what_it_heard() -> None:
    agent = talker()
    batch = agent.info.batch_size
    view = StepView(t=0, obs=np.zeros((batch, 3), np.float32), reward=np.zeros(batch, np.float32),
                    extrinsic=np.zeros(batch, np.float32), incentives=np.zeros(batch, np.float32),
                    active=np.ones(batch, bool), others_actions=np.zeros((batch, 2), np.int64),
                    messages=np.full((batch, 2), -1, np.int64))
    actions = agent.act(view)
    symbols = agent.speak(view)
    assert actions.shape == symbols.shape == (batch,)
    assert symbols.min() >= 0 and symbols.max() < VOCAB and len(set(symbols.tolist())) == VOCAB


def test_preflight_asks_for_the_talk_channel_and_the_messages_disclosure() -> None:
    run = RunFacts(game="ipd", n_agents=2, disclose=frozenset({"actions", "visibility"}), rmax=0.0,
                   action_names=[["C", "D"]] * 2)
    found = [p.message for p in run_problems(MOA, "moa", run, {"communication": True}, 0)]
    assert any("message_vocab" in m for m in found) and any('"messages"' in m for m in found), found
    talking = dataclasses.replace(run, disclose=frozenset({"actions", "visibility", "messages"}), message_vocab=4)
    assert run_problems(MOA, "moa", talking, {"communication": True}, 0) == []
    assert run_problems(MOA, "moa", run, {}, 0) == []
