"""The incentive ledger: refusals name the entry, accounts balance exactly."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from arena.ledger import UNITS_PER_CREDIT, Ledger
from protocols import ProtocolError


def valid(batch: int = 2, n: int = 3, giver: int = 0) -> np.ndarray:
    amounts = np.full((batch, n), 0.5, np.float32)
    amounts[:, giver] = 0
    return amounts


@pytest.mark.parametrize(("change", "text"), [
    (lambda a: a.__setitem__((1, 2), 2.5), "amounts[1, 2] = 2.5 exceeds rmax 2.0"),
    (lambda a: a.__setitem__((0, 1), -0.1), "is negative"),
    (lambda a: a.__setitem__((1, 1), np.nan), "amounts[1, 1] = nan is not finite"),
    (lambda a: a.__setitem__((0, 2), np.inf), "is not finite"),
    (lambda a: a.__setitem__((1, 0), 0.3), "amounts[1, 0] = 0.3 pays yourself"),
])
def test_invalid_payment_names_the_entry(change, text: str) -> None:
    ledger = Ledger(3, 2, 2, rmax=2.0)
    amounts = valid()
    change(amounts)
    with pytest.raises(ProtocolError, match=text.replace("[", r"\[").replace("]", r"\]")):
        ledger.validate(0, amounts)


def test_wrong_shape_and_dtype() -> None:
    ledger = Ledger(3, 2, 2, rmax=2.0)
    with pytest.raises(ProtocolError, match=r"shape \[3, 2\], expected \[2, 3\]"):
        ledger.validate(0, np.zeros((3, 2), np.float32))
    with pytest.raises(ProtocolError, match="dtype int64"):
        ledger.validate(0, np.zeros((2, 3), np.int64))


def test_booking_credits_recipients_and_records_their_actions() -> None:
    ledger = Ledger(2, 2, 2, rmax=2.0)
    payments = np.zeros((2, 2, 2))
    payments[:, 0, 1] = [1.0, 0.25]
    joint_action = np.array([[1, 0], [1, 1]])
    booked = ledger.book(payments, joint_action, np.array([True, True]))
    np.testing.assert_allclose(booked.sum(axis=1), [[0, 1.0], [0, 0.25]])
    assert ledger.by_action_units[0, 1].tolist() == [UNITS_PER_CREDIT, UNITS_PER_CREDIT // 4]
    record = ledger.episode_record(0, ["a", "b"])
    assert record["balanced"] and record["given_units"]["a"] == record["received_units"]["b"] == 1_250_000


def test_finished_copies_pay_nothing() -> None:
    ledger = Ledger(2, 2, 2, rmax=2.0)
    payments = np.zeros((2, 2, 2))
    payments[:, 0, 1] = 1.0
    booked = ledger.book(payments, np.zeros((2, 2), np.int64), np.array([True, False]))
    np.testing.assert_allclose(booked[:, 0, 1], [1.0, 0.0])


@settings(max_examples=50, deadline=None)
@given(st.integers(2, 5), st.integers(1, 6), st.data())
def test_accounts_balance_exactly(n: int, batch: int, data) -> None:
    ledger = Ledger(n, batch, 3, rmax=2.0)
    credited_total = 0.0
    for _ in range(data.draw(st.integers(1, 5))):
        payments = data.draw(hnp.arrays(np.float32, (batch, n, n), elements=st.floats(0, 2, width=32)))
        payments[:, np.arange(n), np.arange(n)] = 0
        actions = data.draw(hnp.arrays(np.int64, (batch, n), elements=st.integers(0, 2)))
        booked = ledger.book(payments.astype(np.float64), actions, np.ones(batch, bool))
        np.testing.assert_allclose(booked, payments, atol=0.5 / UNITS_PER_CREDIT)
        credited_total += booked.sum()
    record = ledger.episode_record(0, [str(i) for i in range(n)])
    assert record["balanced"]
    assert sum(record["given_units"].values()) == sum(record["received_units"].values())
    assert int(ledger.by_action_units.sum()) == sum(record["given_units"].values())
    assert credited_total == pytest.approx(sum(record["received_units"].values()) / UNITS_PER_CREDIT)
