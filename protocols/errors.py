"""Error codes carried in `error` messages. Stable strings: clients may switch on them."""

from __future__ import annotations

from enum import Enum


class ErrorCode(str, Enum):
    """Every error the arena can answer with (SPEC.md, "Error codes")."""

    MALFORMED = "malformed"  # the frames could not be decoded as an envelope
    BAD_SIGNATURE = "bad_signature"  # HMAC missing, wrong, or replayed
    VERSION_MISMATCH = "version_mismatch"  # protocol major version differs
    UNKNOWN_TYPE = "unknown_type"  # the message type is not one this side handles
    INVALID_CONTENT = "invalid_content"  # fields missing or of the wrong type
    NOT_SEATED = "not_seated"  # a message other than hello from a connection without a seat
    SEAT_TAKEN = "seat_taken"  # the requested seat or name is already held
    BAD_SEAT_TOKEN = "bad_seat_token"  # 1.4: rejoining a held seat without its token, or with a wrong one
    NO_SEAT = "no_seat"  # the requested seat does not exist, or the run has already started
    WRONG_KEY = "wrong_key"  # 1.4, CURVE runs: the connection's client key is not the one issued for the seat
    DISCLOSURE_REFUSED = "disclosure_refused"  # the agent needs information the run does not disclose
    CAPABILITY_REFUSED = "capability_refused"  # the agent asks for a capability the run does not allow
    OUT_OF_PHASE = "out_of_phase"  # the message does not fit the current phase or step
    INVALID_ACTION = "invalid_action"  # action array of wrong shape/dtype or out of range
    INVALID_PAYMENT = "invalid_payment"  # payment not finite, negative, above Rmax, to self, or wrong shape
    DEADLINE_MISSED = "deadline_missed"  # reply came after the step deadline
    AGENT_LOST = "agent_lost"  # a seat stopped sending heartbeats; the run ends
    RUN_ABORTED = "run_aborted"  # the run ended early (see message)


class ProtocolError(Exception):
    """An error to report to the peer: code, what was wrong, and how to fix it."""

    def __init__(self, code: ErrorCode, message: str, *, field: str | None = None, hint: str = "",
                 fatal: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field
        self.hint = hint
        self.fatal = fatal

    def __str__(self) -> str:
        text = f"[{self.code.value}] {self.message}"
        return f"{text} (hint: {self.hint})" if self.hint else text
