"""Hand computations of the Reciprocator's pieces (algorithms.md §4.1–4.3)."""

from __future__ import annotations

import torch

from agents.algorithms.reciprocator import (
    FrequencyTable,
    InfluenceEstimators,
    reciprocal_reward,
    value_of_influence,
)
from agents.learners.ppo import zscored_returns


def test_value_of_influence_equals_hand_computation() -> None:
    r = torch.tensor([1.0, 2.0])  # R̂ for players 0, 1
    q = torch.tensor([3.0, 4.0])
    r_without = torch.tensor([[0.5, 1.0], [1.0, 0.0]])  # [influencer k, player m]
    q_without = torch.tensor([[2.0, 4.0], [3.0, 1.0]])
    vi = value_of_influence(r, q, r_without, q_without, gamma=0.5)
    expected = torch.tensor([[(1 - 0.5) + 0.5 * (3 - 2), (2 - 1) + 0.5 * (4 - 4)],
                             [(1 - 1) + 0.5 * (3 - 3), (2 - 0) + 0.5 * (4 - 1)]])
    torch.testing.assert_close(vi, expected)


def test_petty_payoff_balance_and_reward_step_by_step() -> None:
    vi_in = torch.tensor([1.0, -2.0, 0.5]).reshape(3, 1, 1)  # VI^{j→i}_t, one copy, one opponent
    vi_out = torch.tensor([0.25, 1.0, -1.0]).reshape(3, 1, 1)  # VI^{i→j}_t
    gamma, balance, rewards, balances = 0.9, 0.0, [], []
    for t in range(3):  # §4.3: r_t = B_{t-1}·VI^{i→j}_t, then B_t = γB_{t-1} + VI^{j→i}_t − VI^{i→j}_t
        rewards.append(balance * vi_out[t].item())
        balance = gamma * balance + vi_in[t].item() - vi_out[t].item()
        balances.append(balance)
    got_rewards, got_balances = reciprocal_reward(vi_in, vi_out, gamma, "petty_payoff")
    torch.testing.assert_close(got_rewards.flatten(), torch.tensor(rewards))
    torch.testing.assert_close(got_balances.flatten(), torch.tensor(balances))
    petty, _ = reciprocal_reward(vi_in, vi_out, gamma, "petty")  # no debit: B_t = γB_{t-1} + VI^{j→i}_t
    torch.testing.assert_close(petty.flatten(), torch.tensor([0.0, 1.0 * 1.0, -(0.9 * 1.0 - 2.0)]))


def test_ipd_reciprocal_reward_is_the_previous_step_product() -> None:
    vi_in = torch.tensor([2.0, 3.0, 5.0]).reshape(3, 1, 1)
    vi_out = torch.tensor([7.0, 11.0, 13.0]).reshape(3, 1, 1)
    rewards, _ = reciprocal_reward(vi_in, vi_out, 0.96, "previous_product")
    torch.testing.assert_close(rewards.flatten(), torch.tensor([0.0, 2.0 * 11.0, 3.0 * 13.0]))


def test_frequency_table_smooths_and_marginalises_the_influencer() -> None:
    table = FrequencyTable([2, 2], episodes=1, device=torch.device("cpu"))
    # one copy, 3 steps: (C, C), (C, D), (C, D); rewards from the IPD matrix
    joint = torch.tensor([[[0, 0]], [[0, 1]], [[0, 1]]])
    rewards = torch.tensor([[[-1.0, -1.0]], [[-3.0, 0.0]], [[-3.0, 0.0]]])
    table.push(joint, rewards, torch.ones(3, 1))
    table.refresh()
    # state "start" (index 4) saw player 1 play C once: Beta(1, 1) → p̂(C) = 2/3; state CC saw D once → 1/3
    torch.testing.assert_close(table.probs[4, 1, :2], torch.tensor([2 / 3, 1 / 3]))
    torch.testing.assert_close(table.probs[0, 1, :2], torch.tensor([1 / 3, 2 / 3]))
    torch.testing.assert_close(table.probs[3, 1, :2], torch.tensor([0.5, 0.5]))  # DD never seen
    vi = table.value_of_influence(joint, rewards)  # [T, B, K, N]
    # step 1, state CC, player 1 played D: VI^{1→0} = r_0 − (1/3·R_0(C,C) + 2/3·R_0(C,D)) = −3 − (−1/3 − 2)
    torch.testing.assert_close(vi[1, 0, 1, 0], torch.tensor(-3.0 - (-1 / 3 - 2.0)))


def test_counterfactual_estimator_converges_to_the_influencers_empirical_mean() -> None:
    torch.manual_seed(0)
    estimators = InfluenceEstimators(state_dim=1, sizes=[2, 2], hidden=[16], encoding="onehot")
    optimizer = torch.optim.Adam(estimators.parameters(), lr=0.02)
    samples = 4096
    state, remaining = torch.zeros(samples, 1), torch.zeros(samples)
    mine = torch.zeros(samples, dtype=torch.long)  # player 0 always plays 0
    theirs = (torch.rand(samples) < 0.25).long()  # player 1 plays 1 a quarter of the time
    joint = torch.stack([mine, theirs], -1)
    rewards = torch.stack([4.0 * theirs, torch.zeros(samples)], -1)  # player 0 gets 4 when 1 plays 1
    for _ in range(300):
        optimizer.zero_grad()
        estimators.loss(state, joint, remaining, rewards, torch.zeros_like(rewards)).backward()
        optimizer.step()
    with torch.no_grad():
        r, _, r_without, _ = estimators(state[:2], torch.tensor([[0, 1], [0, 1]]), remaining[:2])
    assert abs(r[0, 0].item() - 4.0) < 0.2  # with 1's action: the reward it caused
    assert abs(r_without[0, 1, 0].item() - 1.0) < 0.2  # without it: E over 1's behaviour = 0.25 · 4


def test_two_reciprocators_share_no_estimator_parameter() -> None:
    a = InfluenceEstimators(state_dim=3, sizes=[2, 2], hidden=[8], encoding="onehot")
    b = InfluenceEstimators(state_dim=3, sizes=[2, 2], hidden=[8], encoding="onehot")
    assert not {p.data_ptr() for p in a.parameters()} & {p.data_ptr() for p in b.parameters()}


def test_nl_ppo_advantage_is_the_z_scored_monte_carlo_return() -> None:
    rewards = torch.tensor([[1.0, 0.0], [2.0, 5.0], [3.0, 0.0]])  # [T, B]; copy 1 ends after step 1
    valid = torch.tensor([[1.0, 1.0], [1.0, 1.0], [1.0, 0.0]])
    g = torch.tensor([1 + 0.5 * 2 + 0.25 * 3, 2 + 0.5 * 3, 3.0, 0 + 0.5 * 5, 5.0])  # valid steps, γ = 0.5
    z = (g - g.mean()) / (g.std() + 1e-5)
    got = zscored_returns(rewards, valid, 0.5)
    torch.testing.assert_close(got[valid > 0], z[[0, 3, 1, 4, 2]])
    assert got[2, 1] == 0.0
