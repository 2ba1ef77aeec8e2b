"""The incentive ledger: validates payments, credits recipients, and keeps exact accounts.

Amounts are booked in integer micro-credits, so the totals given and received balance exactly (no
floating-point drift), and what a recipient is credited is exactly what the ledger records.
"""

from __future__ import annotations

import numpy as np

from protocols.errors import ErrorCode, ProtocolError

UNITS_PER_CREDIT = 1_000_000


class Ledger:
    """Per-episode accounts of who paid whom, for which of the recipient's actions."""

    def __init__(self, n_agents: int, batch_size: int, n_actions: int, rmax: float) -> None:
        self.n_agents = n_agents
        self.batch_size = batch_size
        self.n_actions = n_actions
        self.rmax = rmax
        self.run_given_units = np.zeros(n_agents, dtype=np.int64)
        self.run_received_units = np.zeros(n_agents, dtype=np.int64)
        self.start_episode()

    def start_episode(self) -> None:
        n, b = self.n_agents, self.batch_size
        #: cumulative micro-credits per copy: [B, giver, recipient]
        self.cumulative_units = np.zeros((b, n, n), dtype=np.int64)
        #: micro-credits by giver, recipient and the recipient's action at that step
        self.by_action_units = np.zeros((n, n, self.n_actions), dtype=np.int64)
        self.refused = np.zeros(n, dtype=np.int64)

    def validate(self, giver: int, amounts: object) -> np.ndarray:
        """Check one giver's `[B, N]` payment; return it as float64 or raise naming what is wrong."""
        expected = (self.batch_size, self.n_agents)
        if not isinstance(amounts, np.ndarray):
            raise ProtocolError(ErrorCode.INVALID_PAYMENT, "amounts must be an array", field="amounts",
                                hint=f"send a float32 array of shape {list(expected)}")
        if amounts.shape != expected:
            raise ProtocolError(ErrorCode.INVALID_PAYMENT, f"amounts has shape {list(amounts.shape)}, "
                                f"expected {list(expected)} ([batch, agents])", field="amounts")
        if amounts.dtype.kind != "f":
            raise ProtocolError(ErrorCode.INVALID_PAYMENT, f"amounts has dtype {amounts.dtype}; "
                                "payments are floats", field="amounts", hint="send float32")
        checks = (
            (~np.isfinite(amounts), "is not finite", "send finite numbers"),
            (amounts < 0, "is negative", "payments are gifts: 0 <= amount"),
            (amounts > self.rmax, f"exceeds rmax {self.rmax}", f"cap each amount at rmax = {self.rmax}"),
        )
        for bad, what, hint in checks:
            if bad.any():
                b, j = (int(x) for x in np.argwhere(bad)[0])
                raise ProtocolError(ErrorCode.INVALID_PAYMENT, f"amounts[{b}, {j}] = {amounts[b, j]!s} {what} "
                                    f"({int(bad.sum())} entries refused)", field=f"amounts[{b}, {j}]", hint=hint)
        if (amounts[:, giver] != 0).any():
            b = int(np.flatnonzero(amounts[:, giver])[0])
            raise ProtocolError(ErrorCode.INVALID_PAYMENT, f"amounts[{b}, {giver}] = {amounts[b, giver]!s} pays "
                                "yourself", field=f"amounts[{b}, {giver}]", hint="the self entry must be 0")
        return amounts.astype(np.float64)

    def book(self, payments: np.ndarray, joint_action: np.ndarray, active: np.ndarray) -> np.ndarray:
        """Record one step's payments `[B, giver, recipient]`; returns them as booked (rounded to
        micro-credits, zero in copies that had already finished), so that what givers are charged and
        recipients credited is exactly what the ledger holds.
        """
        units = np.rint(payments * UNITS_PER_CREDIT).astype(np.int64) * active[:, None, None]
        if not units.any():
            return np.zeros(units.shape)
        self.cumulative_units += units
        n, a = self.n_agents, self.n_actions
        pair = np.arange(n * n).reshape(1, n, n)
        cell = pair * a + np.clip(joint_action, 0, a - 1)[:, None, :]
        counts = np.bincount(cell.ravel(), weights=units.ravel(), minlength=n * n * a)
        self.by_action_units += np.rint(counts).astype(np.int64).reshape(n, n, a)
        given, received = units.sum(axis=(0, 2)), units.sum(axis=(0, 1))
        self.run_given_units += given
        self.run_received_units += received
        return units / UNITS_PER_CREDIT

    def given_per_copy(self) -> np.ndarray:
        """Cumulative credits given this episode, `[B, giver, recipient]` (Escape Room observes it)."""
        return self.cumulative_units / UNITS_PER_CREDIT

    def episode_record(self, episode: int, names: list[str]) -> dict:
        """The ledger line of the finished episode (totals summed over the B copies)."""
        given = self.cumulative_units.sum(axis=(0, 2))
        received = self.cumulative_units.sum(axis=(0, 1))
        return {
            "episode": episode,
            "units_per_credit": UNITS_PER_CREDIT,
            "given_units": dict(zip(names, given.tolist())),
            "received_units": dict(zip(names, received.tolist())),
            "paid_units": self.cumulative_units.sum(axis=0).tolist(),
            "paid_by_recipient_action_units": self.by_action_units.tolist(),
            "refused": dict(zip(names, self.refused.tolist())),
            "balanced": int(given.sum()) == int(received.sum()),
        }
