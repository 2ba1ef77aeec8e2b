"""Pydantic models of every message on the wire (SPEC.md is the normative text).

Readers are tolerant: unknown fields are ignored so that a newer minor version can add fields.
Arrays are numpy arrays here and typed raw buffers on the wire (see `protocols.codec`).
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

PROTOCOL_VERSION = "1.4"
#: Capabilities an agent may declare in `hello`.
CAPABILITIES = ("incentives", "messages")
#: Information channels a run may disclose about other agents.
#: 1.2: `visibility` (who is inside whose view) is a channel of its own, sent only when disclosed.
DISCLOSURES = ("actions", "rewards", "observations", "payments", "messages", "state", "visibility")
DeadlinePolicy = Literal["wait", "default", "abort"]


class Header(BaseModel):
    """Envelope header: who sent what, when, in reply to which message."""

    model_config = ConfigDict(extra="ignore")
    msg_id: str
    session: str
    type: str
    version: str
    time: str
    parent_id: str | None = None


class Content(BaseModel):
    """Base of every message body: tolerant of unknown fields, arrays allowed."""

    model_config = ConfigDict(extra="ignore", arbitrary_types_allowed=True)
    type: str  # set by each subclass as a Literal default


class Hello(Content):
    """agent → arena: the first message of a connection."""

    type: Literal["hello"] = "hello"
    name: str = Field(min_length=1, max_length=64)
    implementation: str = Field("unknown", max_length=128)
    capabilities: list[str] = []
    needs: list[str] = []
    seat: int | None = None
    default_action: int | None = None
    #: 1.3: the routing id of the agent's heartbeat socket, which the arena then ties to the seat (SPEC §14)
    heartbeat_identity: str | None = Field(None, min_length=1, max_length=255)


class Deadlines(BaseModel):
    """Timing rules of the run, all in seconds."""

    model_config = ConfigDict(extra="ignore")
    policy: DeadlinePolicy
    step_timeout_s: float
    heartbeat_interval_s: float
    heartbeat_timeout_s: float


class Welcome(Content):
    """arena → agent: the seat and everything about the run an agent needs to set itself up."""

    type: Literal["welcome"] = "welcome"
    run_id: str
    seat: int
    n_agents: int
    names: list[str]
    game: str
    observation_space: dict[str, Any]
    observation_spaces: list[dict[str, Any]]
    action_spaces: list[dict[str, Any]]
    action_names: list[list[str]]
    episode_length: int
    batch_size: int
    #: every batched episode the arena will play, evaluation episodes included
    episodes: int
    rmax: float
    pays: bool
    payment_cost: float = 0.0
    message_vocab: int = 0
    disclose: list[str]
    deadlines: Deadlines
    seed: int
    options: dict[str, Any] = {}
    #: 1.2: the game's no-op action (STAY), which `observe.actions` and `observe.played` carry at t = 0.
    noop_action: int | None = None


class Lobby(Content):
    """arena → agent: waiting for the remaining seats."""

    type: Literal["lobby"] = "lobby"
    filled: int
    total: int
    waiting_for: list[str]


class Observe(Content):
    """arena → agent: the state of step `t` of `episode` for all B copies; reply with `act`."""

    type: Literal["observe"] = "observe"
    episode: int
    t: int
    obs: np.ndarray
    reward: np.ndarray
    extrinsic: np.ndarray
    incentives: np.ndarray
    active: np.ndarray
    #: 1.2: the action the arena applied for this seat at t − 1 (the default one after a missed deadline).
    played: np.ndarray | None = None
    #: 1.2: only when the run discloses `visibility`.
    visible: np.ndarray | None = None
    terminated: np.ndarray | None = None
    action_mask: np.ndarray | None = None
    actions: np.ndarray | None = None
    rewards: np.ndarray | None = None
    observations: list[np.ndarray] | None = None
    payments: np.ndarray | None = None
    messages: np.ndarray | None = None
    state: np.ndarray | None = None
    deadline_s: float | None = None
    #: 1.1: an evaluation episode: act without exploration (ε = 0) and do not learn from it.
    evaluate: bool = False


class Act(Content):
    """agent → arena: one action per copy (and an optional cheap-talk symbol per copy)."""

    type: Literal["act"] = "act"
    episode: int
    t: int
    actions: np.ndarray
    message: np.ndarray | None = None


class PayRequest(Content):
    """arena → paying agent: this step's joint action; reply with `pay`."""

    type: Literal["pay_request"] = "pay_request"
    episode: int
    t: int
    joint_action: np.ndarray
    deadline_s: float | None = None


class Pay(Content):
    """paying agent → arena: amounts `[B, N]` to give each agent, self entry 0."""

    type: Literal["pay"] = "pay"
    episode: int
    t: int
    amounts: np.ndarray


class EpisodeEnd(Content):
    """arena → agent: the last step's outcome and the episode summary; reply with `ready`."""

    type: Literal["episode_end"] = "episode_end"
    episode: int
    final: Observe
    summary: dict[str, Any]
    last: bool
    #: 1.1: this was an evaluation episode (no learning from it).
    evaluate: bool = False
    #: 1.3: a warm-up episode (run setting `warmup_episodes`): every seat plays, no policy learns from it.
    warmup: bool = False


class Ready(Content):
    """agent → arena: done learning from `episode`; ready for the next."""

    type: Literal["ready"] = "ready"
    episode: int


class Heartbeat(Content):
    """either way: I am alive. Agents send it on their heartbeat socket every interval."""

    type: Literal["heartbeat"] = "heartbeat"
    seat: int | None = None


class Error(Content):
    """either way: what was wrong (`field` names the culprit) and what to do about it."""

    type: Literal["error"] = "error"
    code: str
    message: str
    field: str | None = None
    hint: str = ""
    fatal: bool = False


class Bye(Content):
    """either way: the sender is leaving; `reason` says why, `ok` whether the run completed."""

    type: Literal["bye"] = "bye"
    reason: str = ""
    ok: bool = True


MESSAGE_TYPES: dict[str, type[Content]] = {
    cls.model_fields["type"].default: cls
    for cls in (Hello, Welcome, Lobby, Observe, Act, PayRequest, Pay, EpisodeEnd, Ready, Heartbeat, Error, Bye)
}
