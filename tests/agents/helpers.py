"""Hand-built seats, views and trajectories for the algorithm tests (no arena, no sockets)."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from agents.algorithm import SeatInfo, StepView, Trajectory


def seat_info(seat: int = 0, n_agents: int = 2, obs_dim: int = 3, own_obs_dim: int | None = None,
              n_actions: int = 3, game: str = "escape_room", options: dict[str, Any] | None = None,
              batch_size: int = 8, max_steps: int = 5, rmax: float = 2.0, seed: int = 0) -> SeatInfo:
    """A flat-observation seat; `own_obs_dim` lets the own observation differ (ER's appended block)."""
    box = gym.spaces.Box(0.0, 1.0, (obs_dim,), np.float32)
    own = gym.spaces.Box(0.0, np.inf, (own_obs_dim or obs_dim,), np.float32)
    return SeatInfo(seat=seat, n_agents=n_agents, names=[f"a{i}" for i in range(n_agents)],
                    batch_size=batch_size, max_steps=max_steps, game=game, observation_space=own,
                    observation_spaces=[box] * n_agents, observation_layout=None,
                    observation_layouts=[None] * n_agents,
                    action_spaces=[gym.spaces.Discrete(n_actions)] * n_agents,
                    action_names=[[f"act{k}" for k in range(n_actions)]] * n_agents, rmax=rmax, pays=True,
                    disclosed=frozenset({"actions", "rewards", "observations", "payments"}), seed=seed,
                    options=options or {})


def step_view(obs: np.ndarray, t: int = 0, n_agents: int = 2) -> StepView:
    batch = obs.shape[0]
    zeros = np.zeros(batch, np.float32)
    return StepView(t=t, obs=obs, reward=zeros, extrinsic=zeros, incentives=zeros,
                    active=np.ones(batch, bool), others_rewards=np.zeros((batch, n_agents), np.float32))


def random_trajectory(rng: np.random.Generator, info: SeatInfo, steps: int = 4, batch: int = 6,
                      ended_early: bool = True) -> Trajectory:
    """A random, fully disclosed batched episode from `info.seat`'s side; copy 0 ends after 2 steps."""
    n = info.n_agents
    own_dim = info.observation_space.shape[0]
    other_dim = info.observation_spaces[0].shape[0]
    n_act = info.action_spaces[0].n
    valid = np.ones((steps, batch), bool)
    if ended_early:
        valid[2:, 0] = False
    joint_actions = rng.integers(0, n_act, (steps, batch, n))
    joint_rewards = rng.normal(size=(steps, batch, n)).astype(np.float32) * valid[..., None]
    payments = rng.uniform(0, info.rmax, (steps, batch, n, n)).astype(np.float32) * valid[..., None, None]
    payments[:, :, np.arange(n), np.arange(n)] = 0.0
    joint_obs = [rng.uniform(size=(steps + 1, batch, other_dim)).astype(np.float32) for _ in range(n)]
    seat = info.seat
    received = payments[:, :, :, seat].sum(-1)
    return Trajectory(obs=rng.uniform(size=(steps + 1, batch, own_dim)).astype(np.float32),
                      actions=joint_actions[..., seat], rewards=joint_rewards[..., seat] + received,
                      extrinsic=joint_rewards[..., seat], incentives=received, valid=valid,
                      paid=payments[:, :, seat], joint_actions=joint_actions, joint_rewards=joint_rewards,
                      joint_obs=joint_obs, payments=payments)
