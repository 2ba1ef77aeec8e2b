"""PettingZoo `ParallelEnv` over any registered arena game, one copy (B = 1).

Lets the games be used outside the arena (PettingZoo tooling, other training libraries) and lets
PettingZoo's own API tests check them. Agents are named `agent_0 … agent_{N-1}`; action masks, where
the game has them, are in `infos[agent]["action_mask"]`, and each step's game events are in
`infos[agent]["events"]`.
"""

from __future__ import annotations

from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from pettingzoo import ParallelEnv

from arena.games import GameParams, make_game

RENDER_MODES = ["ansi", "rgb_array", "human"]


class ArenaParallelEnv(ParallelEnv[str, np.ndarray, int]):
    """One copy of arena game `game_name`; `params` are validated by the game's pydantic model.

    `reset(seed=s)` seeds the game with `s` itself, so the copy matches arena copy seeded `s`; a
    later `reset()` without a seed draws the next episode's seed from a generator seeded by `s`.
    `render_mode="human"` prints the ANSI rendering.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": RENDER_MODES, "is_parallelizable": True}

    def __init__(
        self, game_name: str, params: dict[str, Any] | GameParams | None = None, render_mode: str | None = None
    ) -> None:
        if render_mode is not None and render_mode not in RENDER_MODES:
            raise ValueError(f"unknown render_mode {render_mode!r}; use one of {RENDER_MODES} or None")
        self.game = make_game(game_name, params, 1)
        self.metadata = {**type(self).metadata, "name": game_name}
        self.render_mode = render_mode
        self.possible_agents = [f"agent_{i}" for i in range(self.game.n_agents)]
        self.agents: list[str] = []
        self._observation_spaces = dict(zip(self.possible_agents, self.game.observation_spaces))
        self._action_spaces = dict(zip(self.possible_agents, self.game.action_spaces))
        self._seeds: np.random.Generator | None = None

    def observation_space(self, agent: str) -> gym.Space:
        return self._observation_spaces[agent]

    def action_space(self, agent: str) -> gym.Space:
        return self._action_spaces[agent]

    def _infos(self, events: dict[str, np.ndarray] | None = None) -> dict[str, dict[str, Any]]:
        masks = self.game.action_masks()
        infos: dict[str, dict[str, Any]] = {}
        for i, agent in enumerate(self.possible_agents):
            info: dict[str, Any] = {}
            if masks is not None:
                info["action_mask"] = masks[i][0].astype(np.int8)
            if events is not None:
                info["events"] = {name: float(value[0, i]) for name, value in events.items()}
            infos[agent] = info
        return infos

    def reset(
        self, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, dict[str, Any]]]:
        if seed is not None:
            self._seeds = np.random.default_rng(seed)
            episode_seed = seed
        else:
            if self._seeds is None:
                self._seeds = np.random.default_rng()
            episode_seed = int(self._seeds.integers(2**63))
        obs = self.game.reset(np.array([episode_seed], dtype=np.uint64))
        self.agents = self.possible_agents[:]
        return {agent: obs[i][0] for i, agent in enumerate(self.agents)}, self._infos()

    def step(
        self, actions: dict[str, int]
    ) -> tuple[dict[str, np.ndarray], dict[str, float], dict[str, bool], dict[str, bool], dict[str, dict[str, Any]]]:
        """Step with the live agents' actions; a live agent without an action plays the game's default."""
        if not self.agents:
            raise RuntimeError("every agent is done; call reset() before step()")
        joint = np.full((1, self.game.n_agents), self.game.default_action, dtype=np.int64)
        for i, agent in enumerate(self.possible_agents):
            if agent in actions and agent in self.agents:
                joint[0, i] = int(actions[agent])
        result = self.game.step(joint)
        terminated, truncated = bool(result.terminated[0]), bool(result.truncated[0])
        index = {agent: i for i, agent in enumerate(self.possible_agents)}
        infos = self._infos(result.events)
        live = self.agents
        obs = {agent: result.obs[index[agent]][0] for agent in live}
        rewards = {agent: float(result.rewards[0, index[agent]]) for agent in live}
        terminations = dict.fromkeys(live, terminated)
        truncations = dict.fromkeys(live, truncated)
        infos = {agent: infos[agent] for agent in live}
        if terminated or truncated:
            self.agents = []
        if self.render_mode == "human":
            self.render()
        return obs, rewards, terminations, truncations, infos

    def render(self) -> str | np.ndarray | None:
        if self.render_mode is None:
            gym.logger.warn("render() called without a render_mode; pass render_mode to ArenaParallelEnv")
            return None
        if self.render_mode == "human":
            print(self.game.render("ansi", 0))
            return None
        return self.game.render(self.render_mode, 0)

    def state(self) -> np.ndarray:
        return self.game.state()[0]

    def close(self) -> None:
        """Nothing to release: the game holds only numpy arrays."""
