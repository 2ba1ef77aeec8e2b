"""What the arena needs to know about a run. `launch` builds these from the run's TOML."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from protocols.curve import check_public_key
from protocols.messages import DISCLOSURES

DeadlinePolicy = Literal["wait", "default", "abort"]


class SeatSpec(BaseModel):
    """One agent slot of the run."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    kind: str = Field("random", description="agent implementation launch starts for this seat")
    options: dict[str, Any] = Field(default_factory=dict, description="algorithm options sent in welcome")
    external: bool = Field(False, description="launch does not start this seat; join it with `arena agent`")
    deadline: DeadlinePolicy | None = Field(None, description="overrides [arena] deadline for this seat")
    device: str = Field("cpu", description="torch device for the agent process: cpu or cuda[:k]")
    resume: str | None = Field(None, description="checkpoint the agent restores before its first episode")
    client_key: str | None = Field(None, description="with [arena] curve: the CURVE public key (Z85) this seat "
                                   "takes, made by its owner with `arena keys`; unset: the arena issues a pair")

    @field_validator("client_key")
    @classmethod
    def _public_key(cls, key: str | None) -> str | None:
        return key if key is None else check_public_key(key)


class ArenaSettings(BaseModel):
    """The `[arena]` table of a run config (plus the run's episode count and seed)."""

    model_config = ConfigDict(extra="forbid")
    game: str = "ipd"
    params: dict[str, Any] = Field(default_factory=dict, description="the game's parameters")
    batch_size: int = Field(64, ge=1, le=65536, description="B: copies of the game stepped at once")
    episodes: int = Field(100, ge=1, description="training episodes (batched) to play")
    eval_every: int = Field(0, ge=0, description="after every this many training episodes, play evaluation "
                            "episodes (no exploration, no learning); 0 = none")
    eval_episodes: int = Field(1, ge=1, description="batched evaluation episodes each time (B copies each)")
    warmup_episodes: int = Field(0, ge=0, description="the first this many training episodes are warm-up: every "
                                 "seat plays and may fit models of the others, no policy learns (Reciprocators)")
    seed: int = Field(0, ge=0)
    rmax: float = Field(0.0, ge=0.0, description="largest incentive one agent may pay another per step; 0 = off")
    payment_cost: float = Field(0.0, ge=0.0, description="fraction of each payment deducted from the giver")
    disclose: list[str] = Field(default_factory=list, description=f"any of {list(DISCLOSURES)}")
    message_vocab: int = Field(0, ge=0, description="cheap-talk symbols per step; 0 = no talk channel")
    deadline: DeadlinePolicy = "abort"
    step_timeout_s: float = Field(30.0, gt=0, le=86400, description="time an agent has to answer observe/pay_request "
                                  "(at most a day; with deadline = 'wait' it only starts the wait)")
    heartbeat_interval_s: float = Field(0.5, ge=0.01, le=60, description="seconds between heartbeats (0.01–60: "
                                        "shorter is a busy loop, longer leaves dead agents unnoticed)")
    heartbeat_timeout_s: float = Field(5.0, gt=0, le=3600, description="silence after which an agent counts as lost "
                                       "(at most an hour, so a dead agent is always noticed)")
    reconnect_grace_s: float = Field(0.0, ge=0, le=86400, description="how long a seat lost after the start is "
                                     "held for its agent to rejoin with its seat token; 0 = lost means the run ends")
    address: str = Field("tcp://127.0.0.1:*", description="where the arena binds; * picks a free port")
    sign: bool = Field(False, description="require HMAC-SHA256 signatures (key in the connection file)")
    curve: bool = Field(False, description="encrypt and authenticate every connection with CURVE (SPEC §21): "
                        "each seat takes only its own client key")

    def schedule(self) -> list[bool]:
        """Whether each episode the arena plays is an evaluation episode, in order of play."""
        plan: list[bool] = []
        for trained in range(1, self.episodes + 1):
            plan.append(False)
            if self.eval_every and trained % self.eval_every == 0:
                plan.extend([True] * self.eval_episodes)
        return plan

    @property
    def total_episodes(self) -> int:
        """Training plus evaluation episodes: how many the run plays in all."""
        return self.episodes + (self.episodes // self.eval_every * self.eval_episodes if self.eval_every else 0)

    @model_validator(mode="after")
    def _warmup_within_episodes(self) -> ArenaSettings:
        if self.warmup_episodes >= self.episodes:
            raise ValueError(f"warmup_episodes ({self.warmup_episodes}) must be below episodes ({self.episodes}), "
                             "or no episode would train")
        return self

    @field_validator("disclose")
    @classmethod
    def _known_disclosures(cls, value: list[str]) -> list[str]:
        unknown = sorted(set(value) - set(DISCLOSURES))
        if unknown:
            raise ValueError(f"unknown disclosure(s) {unknown}; allowed: {list(DISCLOSURES)}")
        return sorted(set(value), key=DISCLOSURES.index)

    @field_validator("address")
    @classmethod
    def _bindable(cls, address: str) -> str:
        if address.startswith("tcp://"):
            host, _, port = address.removeprefix("tcp://").rpartition(":")
            if not host or not (port == "*" or (port.isdigit() and 1 <= int(port) <= 65535)):
                raise ValueError(f"address {address!r} must be tcp://HOST:PORT with PORT in 1–65535 or * (a free "
                                 "port), e.g. tcp://127.0.0.1:* or tcp://0.0.0.0:5555")
        elif not address.startswith(("ipc://", "inproc://")):
            raise ValueError(f"address {address!r} must start with tcp://, ipc:// or inproc://")
        return address

    @model_validator(mode="after")
    def _heartbeat_fits(self) -> ArenaSettings:
        if self.heartbeat_timeout_s <= 2 * self.heartbeat_interval_s:
            raise ValueError(f"heartbeat_timeout_s ({self.heartbeat_timeout_s}) must exceed twice "
                             f"heartbeat_interval_s ({self.heartbeat_interval_s})")
        return self
