"""The small interface an algorithm implements. The runtime owns the socket; algorithms see arrays.

Time alignment (the runtime does it, so algorithms never have to): at step t the agent sees
`StepView.obs` = o_t and acts a_t; the reward for that step, r_t, and what others did at t arrive with
the next view (`StepView.reward`, `StepView.others_actions`). At episode end the runtime hands the
algorithm a `Trajectory` whose arrays are aligned on t: obs[t], actions[t], rewards[t], …
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from pydantic import BaseModel

from protocols.messages import DISCLOSURES

__all__ = ["DISCLOSURES", "Algorithm", "RunFacts", "SeatInfo", "StepView", "Trajectory"]


@dataclass(frozen=True)
class RunFacts:
    """What is known about a run before it starts (from its config, or from `welcome`): enough for
    preflight to tell whether an algorithm can play it."""

    game: str
    n_agents: int
    disclose: frozenset[str]
    rmax: float
    action_names: list[list[str]]
    #: cheap-talk symbols per step (`[arena] message_vocab`); 0: the run has no talk channel
    message_vocab: int = 0


@dataclass(frozen=True)
class SeatInfo:
    """What the arena told this agent in `welcome`, plus its own launch options.

    `observation_space` is this agent's own observation as delivered (for Escape Room it includes
    the arena-appended incentives-given block when the agent pays); `observation_spaces` are the
    game's per-agent spaces, which is what disclosed observations of others look like.
    """

    seat: int
    n_agents: int
    names: list[str]
    batch_size: int
    max_steps: int
    game: str
    observation_space: gym.Space
    observation_spaces: list[gym.Space]
    action_spaces: list[gym.Space]
    action_names: list[list[str]]
    rmax: float
    pays: bool
    disclosed: frozenset[str]
    seed: int = 0
    device: str = "cpu"
    options: dict[str, Any] = field(default_factory=dict)
    run_dir: str | None = None
    #: Axis order of an image (rank-3) observation: "HWC" or "CHW"; None for flat observations.
    observation_layout: str | None = None
    #: The same for each agent's raw game observation (`observation_spaces`).
    observation_layouts: list[str | None] = field(default_factory=list)
    #: The game's no-op action code (STAY), which `others_actions` carries at t = 0; None if it has none.
    noop_action: int | None = None
    #: What the arena does when this seat misses a step deadline: "wait", "default" or "abort".
    deadline_policy: str = "abort"
    #: Cheap-talk symbols per step (`welcome.message_vocab`): what `speak` may send is 0..message_vocab − 1.
    message_vocab: int = 0

    @property
    def action_space(self) -> gym.Space:
        return self.action_spaces[self.seat]

    @property
    def others(self) -> list[int]:
        return [j for j in range(self.n_agents) if j != self.seat]


@dataclass
class StepView:
    """One `observe` message, decoded. Fields for undisclosed channels are None.

    `reward` is the previous step's total reward (extrinsic + incentives received), split into
    `extrinsic` and `incentives`. `others_*` arrays are joint, `[B, N, ...]`, own entry included.
    """

    t: int
    obs: np.ndarray
    reward: np.ndarray
    extrinsic: np.ndarray
    incentives: np.ndarray
    active: np.ndarray
    terminated: np.ndarray | None = None
    #: the action the arena applied for this agent at t − 1 (its default action after a missed deadline)
    played: np.ndarray | None = None
    action_mask: np.ndarray | None = None
    others_actions: np.ndarray | None = None
    others_rewards: np.ndarray | None = None
    others_observations: list[np.ndarray] | None = None
    payments: np.ndarray | None = None
    messages: np.ndarray | None = None
    state: np.ndarray | None = None
    visibility: np.ndarray | None = None
    #: an evaluation episode: act without exploration; it never reaches `end_episode`
    evaluate: bool = False
    #: seconds the arena gives for this step's answer (None: no limit)
    deadline_s: float | None = None


@dataclass
class Trajectory:
    """One batched episode from this agent's side, arrays `[T, B, ...]` aligned on the step t.

    `valid[t, b]` is False once copy b has finished (its later entries are padding);
    `terminated[t, b]` is True when step t ended copy b's episode in a terminal state (as opposed to
    the step limit, which truncates and should bootstrap). `obs` has
    T + 1 entries: the last is the observation after the final step. `joint_*` hold every agent's
    data (own included) where the run discloses it, else None.
    """

    obs: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    extrinsic: np.ndarray
    incentives: np.ndarray
    valid: np.ndarray
    terminated: np.ndarray | None = None
    paid: np.ndarray | None = None
    joint_actions: np.ndarray | None = None
    joint_rewards: np.ndarray | None = None
    joint_obs: list[np.ndarray] | None = None
    payments: np.ndarray | None = None
    state: np.ndarray | None = None
    visibility: np.ndarray | None = None
    action_masks: np.ndarray | None = None
    #: the symbols this agent sent at t (`speak`), for an agent that talks
    messages: np.ndarray | None = None
    #: `[T, B, N]`: every agent's symbol sent at t as the arena delivered it (-1: none), disclose `messages`
    joint_messages: np.ndarray | None = None

    @property
    def length(self) -> int:
        return self.actions.shape[0]


class Algorithm(ABC):
    """Subclass this to write an agent; register it in the `arena.agents` entry-point group.

    `needs` names the disclosures the algorithm cannot work without (any of `DISCLOSURES`, `visibility`
    included); the arena refuses the seat when the run does not disclose them. `pays` = True asks for the
    incentive pay phase. `talks` = True (or `talks_with(options)`) declares the `messages` capability: the
    runtime then calls `speak` after each `act` and sends its symbols with the actions.
    """

    needs: ClassVar[frozenset[str]] = frozenset()
    pays: ClassVar[bool] = False
    talks: ClassVar[bool] = False
    #: The games this algorithm can play (arena game names); None: any game.
    games: ClassVar[frozenset[str] | None] = None
    #: The pydantic model of this algorithm's options (unknown keys should be errors); None: not declared,
    #: so options are not checked before the run.
    options_model: ClassVar[type[BaseModel] | None] = None
    #: Whether `SeatInfo.device` means anything to it (torch learners); others must run with "cpu".
    uses_device: ClassVar[bool] = False

    @classmethod
    def check_run(cls, options: dict[str, Any], run: RunFacts, seat: int) -> list[str]:
        """What makes this run unplayable for the algorithm at `seat` with these options, beyond `games`,
        `needs` and `pays` (e.g. an action the algorithm relies on that the game lacks); [] if nothing."""
        return []

    @classmethod
    def validate_options(cls, options: dict[str, Any], game: str | None = None) -> None:
        """Raise pydantic's ValidationError when `options` are not valid for this algorithm (in `game`,
        when known): what preflight calls before any process starts."""
        if cls.options_model is not None:
            cls.options_model.model_validate(options)

    @classmethod
    def needs_for(cls, n_agents: int) -> frozenset[str]:
        """The disclosures needed in a run of `n_agents` (checked after `welcome`, which tells N);
        by default `needs`. An algorithm whose needs grow with N (LIO's third-party payments) overrides it."""
        return cls.needs

    @classmethod
    def pays_with(cls, options: dict[str, Any]) -> bool:
        """Whether a seat of this kind with these options asks for the pay phase; by default `pays`."""
        return cls.pays

    @classmethod
    def talks_with(cls, options: dict[str, Any]) -> bool:
        """Whether a seat of this kind with these options sends cheap talk; by default `talks`."""
        return cls.talks

    def host(self, play: Callable[[], int], stop: Callable[[str], None]) -> int:
        """Run `play` (the runtime's loop, which returns the exit code) and return its result.
        An interactive agent runs it beside its user interface and calls `stop(reason)` to leave."""
        return play()

    def setup(self, info: SeatInfo) -> None:
        """Called once after `welcome`, before the first episode."""
        self.info = info

    @abstractmethod
    def act(self, view: StepView) -> np.ndarray:
        """Return actions `[B]` (int64) for the observation in `view` (without exploration when
        `view.evaluate`)."""

    def speak(self, view: StepView) -> np.ndarray:
        """Cheap-talk symbols `[B]` (int64 in 0..`SeatInfo.message_vocab` − 1) sent with this step's actions.
        Called right after `act` on the same view, so it may sample from what `act` computed; only for an
        agent that talks."""
        raise NotImplementedError(f"{type(self).__name__} talks but does not implement speak()")

    def pay(self, view: StepView, joint_action: np.ndarray) -> np.ndarray:
        """Incentives `[B, N]` to give for this step's joint action `[B, N]`; self entry must be 0."""
        return np.zeros(joint_action.shape, dtype=np.float32)

    def end_episode(self, trajectory: Trajectory, summary: dict[str, Any]) -> dict[str, float]:
        """Learn from the finished batch of training episodes; return metrics to log (may be empty).

        Evaluation and warm-up episodes are not passed here, so no policy learns from them."""
        return {}

    def warmup_episode(self, trajectory: Trajectory, summary: dict[str, Any]) -> dict[str, float]:
        """A warm-up episode (run setting `warmup_episodes`) finished: the policy must not learn from
        it; an algorithm that models the others may fit those models here. Returns metrics to log."""
        return {"warmup": 1.0}

    def save(self, path: str) -> None:  # noqa: B027 - optional hook
        """Write a checkpoint (learners override; scripted agents have nothing to save)."""

    def load(self, path: str) -> None:  # noqa: B027 - optional hook
        """Restore a checkpoint written by `save`; called after `setup` when the agent resumes."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources at the end of the run."""
