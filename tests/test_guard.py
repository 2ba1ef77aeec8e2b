"""The arena's admission of unseated connections (arena/guard.py, SPEC §15 "Floods")."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import zmq

from arena.guard import LOG_FIRST, PEER_RATE, StrangerGate
from arena.server import Arena
from arena.settings import ArenaSettings, SeatSpec


def test_a_flooding_peer_is_cut_off_and_a_newcomer_still_gets_through() -> None:
    gate = StrangerGate()
    admitted = sum(gate.admit(b"flooder") for _ in range(10_000))
    assert admitted == int(PEER_RATE)  # its burst, then nothing (the loop takes far less than a second)
    assert gate.dropped == 10_000 - admitted
    assert gate.admit(b"newcomer")  # an honest hello from a fresh connection


def test_many_peers_together_are_bounded_too() -> None:
    gate = StrangerGate(peer_rate=20.0, total_rate=100.0)
    admitted = sum(gate.admit(f"peer-{i}".encode()) for i in range(1000))
    assert admitted == 100


def test_refusals_are_logged_a_few_times_per_peer_then_counted(caplog: pytest.LogCaptureFixture) -> None:
    gate = StrangerGate()
    with caplog.at_level(logging.WARNING, logger="arena"):
        shown = [gate.may_log(b"noisy") for _ in range(1000)]
        for _ in range(1000):
            gate.admit(b"noisy")
        gate.summary()
    assert sum(shown) == LOG_FIRST
    assert "further refusals of peer b'noisy' are counted, not logged" in caplog.text
    assert f"dropped {1000 - int(PEER_RATE)} messages from unseated peers" in caplog.text


def test_refused_curve_handshakes_are_logged_a_few_times_then_counted(tmp_path: Path,
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    arena = Arena(ArenaSettings(game="ipd", batch_size=2, curve=True), [SeatSpec(name="a"), SeatSpec(name="b")],
                  tmp_path)
    with caplog.at_level(logging.INFO, logger="arena"):
        # a stranger makes a fresh key for every try: they cost nothing
        assert not any(arena.callback("*", zmq.curve_keypair()[0]) for _ in range(200))
        assert arena.callback("*", arena.client_keys[1].encode())  # a seat's own key still gets in
        arena.gate.summary()
    assert len(caplog.records) <= LOG_FIRST + 2, caplog.text
    assert caplog.text.count("refused a CURVE connection") == LOG_FIRST
    assert "further refused CURVE handshakes are counted, not logged" in caplog.text
    assert "refused 200 CURVE handshakes in" in caplog.text and "(200 in this run)" in caplog.text
