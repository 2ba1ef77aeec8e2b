"""SPEC.md's statements about numbers, error replies and per-seat views, checked on the wire.

The live tests talk to a real arena process (`python -m arena RUN_DIR`) over raw sockets with the
spec-only client of `tests/test_spec_client.py` (zmq, msgpack, numpy; nothing of `arena` or `agents`).
They check: the arena writes float fields as msgpack floats even when the run config gave integers
(SPEC §6.1); decode errors carry the offending `msg_id` as `parent_id` (§15); an arena-only type sent
by an agent is validated before the arena looks at its sender (§15, check order); the fatal
`default_action` refusal (§10.1); `observe.played`, `welcome.noop_action` and the `visibility`
channel (§10.4, §11); the per-seat `episode_end.summary`, rounded float64 means (§10.8); the ledger's
index order, totals over copies, and the names in `result.json` (Appendix B); image layouts (§16); and
a `bye` in the lobby freeing the seat (§10.1). The model tests check that every float field the
protocol models declare accepts an integer (§6.1).
"""

from __future__ import annotations

import json
import typing
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import msgpack
import numpy as np
import pytest
from pydantic import TypeAdapter

from protocols.codec import Codec
from protocols.messages import MESSAGE_TYPES, Deadlines
from tests.test_spec_client import SpecClient, read_jsonl, start_arena, stop

COOPERATE, DEFECT = 0, 1
AGENT_TYPES = ("hello", "act", "pay", "ready", "heartbeat", "error", "bye")


# ---------------------------------------------------------------------------------------------- models
def _float_fields(model: type) -> dict[str, Any]:
    """Fields whose annotation is `float` or `float | None`."""
    found = {}
    for name, info in model.model_fields.items():
        args = typing.get_args(info.annotation) or (info.annotation,)
        if float in args:
            found[name] = info.annotation
    return found


def test_every_float_field_of_the_models_accepts_an_integer() -> None:
    fields = {(kind, name): annotation for kind, model in MESSAGE_TYPES.items()
              for name, annotation in _float_fields(model).items()}
    fields.update({("deadlines", name): annotation for name, annotation in _float_fields(Deadlines).items()})
    assert set(fields) >= {("welcome", "rmax"), ("welcome", "payment_cost"), ("observe", "deadline_s"),
                           ("pay_request", "deadline_s"), ("deadlines", "step_timeout_s"),
                           ("deadlines", "heartbeat_interval_s"), ("deadlines", "heartbeat_timeout_s")}
    for (kind, name), annotation in fields.items():
        value = TypeAdapter(annotation).validate_python(30)
        assert type(value) is float and value == 30.0, (kind, name, value)
    deadlines = Deadlines(policy="abort", step_timeout_s=30, heartbeat_interval_s=1, heartbeat_timeout_s=5)
    assert [type(v) for v in (deadlines.step_timeout_s, deadlines.heartbeat_interval_s,
                              deadlines.heartbeat_timeout_s)] == [float, float, float]
    # SPEC §6.1: in 1.2 no agent-to-arena message has a scalar float field
    assert all(not _float_fields(MESSAGE_TYPES[kind]) for kind in AGENT_TYPES)


def test_the_codec_reads_integers_where_floats_are_expected() -> None:
    """The decoding path every message takes (the arena's and the Python client's)."""
    raw = SpecClient.__new__(SpecClient)  # only its encoder (encode needs `key` and `session`), no sockets
    raw.key, raw.session = None, "spec-numbers"
    space = {"type": "Box", "low": 0, "high": 1, "shape": [5], "dtype": "float32"}
    welcome = {"run_id": "r", "seat": 0, "n_agents": 2, "names": ["a", "b"], "game": "ipd",
               "observation_space": space, "observation_spaces": [space, space],
               "action_spaces": [{"type": "Discrete", "n": 2}] * 2, "action_names": [["c", "d"]] * 2,
               "episode_length": 5, "batch_size": 2, "episodes": 1, "rmax": 2, "pays": False, "payment_cost": 0,
               "disclose": [], "seed": 1,
               "deadlines": {"policy": "abort", "step_timeout_s": 30, "heartbeat_interval_s": 1,
                             "heartbeat_timeout_s": 5}}
    content = Codec().decode(raw.encode("welcome", welcome)[1]).content
    values = (content.rmax, content.payment_cost, content.deadlines.step_timeout_s,
              content.deadlines.heartbeat_interval_s, content.deadlines.heartbeat_timeout_s)
    assert values == (2.0, 0.0, 30.0, 1.0, 5.0) and all(type(v) is float for v in values)
    request = {"episode": 0, "t": 0, "joint_action": np.zeros((2, 2), np.int64), "deadline_s": 30}
    deadline = Codec().decode(raw.encode("pay_request", request)[1]).content.deadline_s
    assert type(deadline) is float and deadline == 30.0


# ---------------------------------------------------------------------------------------------- helpers
def is_float(value: Any) -> bool:
    return type(value) is float


def ask(address: str, msg_type: str, content: dict[str, Any], frames_edit: Any = None,
        version: str = "1.2", timeout_s: float = 5.0) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """From a fresh, unseated connection: send one message; return (sent header, reply header, reply)."""
    client = SpecClient(address, None, heartbeats=False)
    try:
        header, frames = client.encode(msg_type, content, version=version)
        client.send_frames(frames_edit(frames) if frames_edit else frames)
        reply_header, reply = client.receive(timeout_s)
        return header, reply_header, reply
    finally:
        client.close()


def valid_observe(batch: int) -> dict[str, Any]:
    """A complete `observe` content: every required field, arrays as array references."""
    return {"episode": 0, "t": 0, "obs": np.zeros((batch, 5), np.float32), "reward": np.zeros(batch, np.float32),
            "extrinsic": np.zeros(batch, np.float32), "incentives": np.zeros(batch, np.float32),
            "active": np.ones(batch, bool)}


def not_msgpack(frames: list[bytes]) -> list[bytes]:
    return [*frames[:2], b"\xc1", *frames[3:]]  # 0xc1 is never used by msgpack


def expect_error(client: SpecClient, sent: dict[str, Any] | None, code: str, field: str | None = None,
                 fatal: bool = False) -> dict[str, Any]:
    header, error = client.expect("error")
    assert error["code"] == code, error
    assert error["fatal"] is fatal, error
    assert header["parent_id"] == (sent["msg_id"] if sent is not None else None), (header, error)
    if field is not None:
        assert error.get("field") == field, error
    return error


def serve(client: SpecClient, act: Any, pay: Any = None) -> dict[str, Any]:
    """Answer every phase until bye; `act(observe)` returns the actions, or None to stay silent."""
    record: dict[str, Any] = {"observes": [], "errors": [], "ends": [], "pay_requests": 0}
    while True:
        header, content = client.receive()
        kind = header["type"]
        if kind == "observe":
            record["observes"].append(content)
            actions = act(content)
            if actions is not None:
                client.send("act", {"episode": content["episode"], "t": content["t"], "actions": actions}, header)
        elif kind == "pay_request":
            record["pay_requests"] += 1
            record.setdefault("first_pay_request", content)
            client.send("pay", {"episode": content["episode"], "t": content["t"], "amounts": pay(content)}, header)
        elif kind == "episode_end":
            record["ends"].append(content)
            client.send("ready", {"episode": content["episode"]}, header)
        elif kind == "error":
            record["errors"].append((header, content))
        elif kind == "bye":
            record["bye"] = content
            return record


def join(address: str, name: str, seat: int | None, needs: list[str], capabilities: list[str] = ()
         ) -> tuple[SpecClient, dict[str, Any]]:
    client = SpecClient(address, None)
    return client, client.join(name, seat, needs, list(capabilities), "spec-numbers/0.1")


def join_and_play(address: str, name: str, seat: int | None, needs: list[str], act: Any,
                  capabilities: list[str] = (), pay: Any = None) -> dict[str, Any]:
    client, welcome = join(address, name, seat, needs, capabilities)
    try:
        record = serve(client, act, pay)
        record["welcome"] = welcome
        return record
    finally:
        client.close()


# ---------------------------------------------------------------------------------------------- live: IPD
BATCH, STEPS, PAID = 4, 3, 0.1


def test_ipd_numbers_errors_and_per_seat_summary(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    # every float setting given as an integer: the wire still carries floats (SPEC §6.1)
    process, connection = start_arena(run_dir, params={"max_steps": STEPS}, batch_size=BATCH, episodes=1,
                                      disclose=["actions"], rmax=1, payment_cost=0, step_timeout_s=1,
                                      heartbeat_interval_s=1, heartbeat_timeout_s=5, deadline="default")
    address = connection["address"]
    try:
        # --- unseated connections: every decode error names its message as parent (§15)
        sent, header, reply = ask(address, "frobnicate", {})
        assert (reply["code"], reply.get("field"), header["parent_id"]) == ("unknown_type", "type", sent["msg_id"])
        sent, header, reply = ask(address, "hello", {"name": "x"}, version="2.0")
        assert (reply["code"], reply["fatal"], header["parent_id"]) == ("version_mismatch", True, sent["msg_id"])
        sent, header, reply = ask(address, "hello", {"name": ""})
        assert (reply["code"], reply["field"], reply["fatal"]) == ("invalid_content", "name", False)
        assert header["parent_id"] == sent["msg_id"]
        # the one fatal invalid_content: a default_action outside the seat's action space (§10.1 row 5)
        sent, header, reply = ask(address, "hello", {"name": "x", "seat": 0, "default_action": 7})
        assert (reply["code"], reply["field"], reply["fatal"]) == ("invalid_content", "default_action", True)
        assert header["parent_id"] == sent["msg_id"]
        # an arena-only type is validated first: incomplete -> invalid_content, complete -> not_seated
        sent, header, reply = ask(address, "observe", {})
        assert (reply["code"], reply["field"], header["parent_id"]) == ("invalid_content", "episode", sent["msg_id"])
        sent, header, reply = ask(address, "observe", valid_observe(BATCH))
        assert (reply["code"], header["parent_id"]) == ("not_seated", sent["msg_id"])
        with pytest.raises(TimeoutError):  # malformed from a connection without a seat: no reply at all
            ask(address, "ready", {"episode": 0}, frames_edit=not_msgpack, timeout_s=0.3)

        # --- seat 0, taken by index under another name than the configured "a"
        alice, welcome = join(address, "alice", 0, ["actions"])
        try:
            for value in (welcome["rmax"], welcome["payment_cost"], *welcome["deadlines"].values()):
                assert value == "default" or is_float(value), welcome["deadlines"]
            assert welcome["rmax"] == 1.0 and welcome["deadlines"]["step_timeout_s"] == 1.0
            assert is_float(welcome["observation_space"]["low"]) and is_float(welcome["observation_space"]["high"])
            assert "noop_action" not in welcome  # IPD has none: the optional field is omitted
            assert welcome["disclose"] == ["actions"]
            alice.expect("lobby")
            # seated: same validation first; a complete arena-only content is then unknown_type
            sent = alice.send("observe", {})
            expect_error(alice, sent, "invalid_content", "episode")
            sent = alice.send("observe", valid_observe(BATCH))
            expect_error(alice, sent, "unknown_type", "type")
            sent, frames = alice.encode("ready", {"episode": 0})
            alice.send_frames(not_msgpack(frames))
            expect_error(alice, sent, "malformed")  # content unreadable, header read: parent set
            alice.send_frames(frames[:2])
            expect_error(alice, None, "malformed")  # fewer than 3 frames: no header, nil parent

            def alice_acts(observe: dict[str, Any]) -> np.ndarray | None:
                if (observe["episode"], observe["t"]) == (0, 1):
                    return None  # miss this deadline: the arena plays the default (cooperate)
                return np.full(BATCH, DEFECT, np.int64)

            def b_pays(request: dict[str, Any]) -> np.ndarray:
                amounts = np.zeros((BATCH, 2), np.float32)
                amounts[:, 0] = PAID
                return amounts

            with ThreadPoolExecutor(1) as pool:
                b = pool.submit(join_and_play, address, "b", None, ["actions"],
                                lambda o: np.full(BATCH, COOPERATE, np.int64), ["incentives"], b_pays)
                a = serve(alice, alice_acts)
                b = b.result(timeout=20)
        finally:
            alice.close()
        process.wait(timeout=10)
        assert process.returncode == 0
    finally:
        stop(process)

    # --- floats on the wire
    for record in (a, b):
        assert all(is_float(o["deadline_s"]) and o["deadline_s"] == 1.0 for o in record["observes"])
    assert is_float(b["first_pay_request"]["deadline_s"])

    # --- the deadline miss: an error without parent, then `played` shows the default (§13, §10.4)
    [(header, missed)] = a["errors"]
    assert (missed["code"], missed["field"], missed["fatal"], header["parent_id"]) == (
        "deadline_missed", "act", False, None)
    observes = a["observes"]
    assert [o["t"] for o in observes] == list(range(STEPS))
    assert (observes[0]["played"] == -1).all() and (observes[0]["actions"] == -1).all()  # IPD: no no-op
    assert (observes[1]["played"] == DEFECT).all()
    assert (observes[2]["played"] == COOPERATE).all() and (observes[2]["actions"][:, 0] == COOPERATE).all()
    assert (a["ends"][0]["final"]["played"] == DEFECT).all()
    assert observes[0]["played"].dtype == np.int64 and observes[0]["played"].shape == (BATCH,)
    assert all("visible" not in o for o in observes)  # `visibility` is not disclosed
    assert all((o["played"] == COOPERATE).all() for o in b["observes"][1:])

    # --- per-seat summaries (§10.8): only `actions` is disclosed, so each seat sees its own entries
    seen_by = {"a": a["ends"][0]["summary"], "b": b["ends"][0]["summary"]}
    for own, summary in seen_by.items():
        assert "collective_return" not in summary and "collective_per_step" not in summary
        for key in ("returns", "incentives_received", "incentives_given", "deadline_misses"):
            assert list(summary[key]) == [own], (own, key, summary)
        assert list(summary["events"]) == ["cooperated"] and list(summary["events"]["cooperated"]) == [own]
    # a: D, (default) C, D against b's C, C, C; b pays 0.1 in every copy at every step
    assert seen_by["a"]["returns"] == {"a": -1.0} and seen_by["b"]["returns"] == {"b": -7.0}
    assert seen_by["a"]["events"]["cooperated"] == {"a": 1.0} and seen_by["b"]["events"]["cooperated"] == {"b": 3.0}
    assert seen_by["a"]["deadline_misses"] == {"a": 1} and seen_by["b"]["deadline_misses"] == {"b": 0}
    # float64 means rounded to 9 decimals: 0.1 + 0.1 + 0.1 is 0.30000000000000004 before rounding
    assert seen_by["a"]["incentives_received"] == {"a": 0.3} and seen_by["b"]["incentives_given"] == {"b": 0.3}
    for summary in seen_by.values():
        for key in ("returns", "incentives_received", "incentives_given"):
            assert all(is_float(v) for v in summary[key].values())
        assert is_float(summary["steps"]) and summary["steps"] == float(STEPS)

    # --- the run directory keeps the full record (Appendix B)
    [full] = read_jsonl(run_dir / "episodes.jsonl")
    assert full["returns"] == {"a": -1.0, "b": -7.0}
    assert full["collective_return"] == -8.0 and full["collective_per_step"] == pytest.approx(-8.0 / STEPS)
    assert full["events"]["cooperated"] == {"a": 1.0, "b": 3.0}
    assert full["deadline_misses"] == {"a": 1, "b": 0}
    assert full["incentives_received"] == {"a": 0.3, "b": 0.0} and full["incentives_given"] == {"a": 0.0, "b": 0.3}
    [ledger] = read_jsonl(run_dir / "ledger.jsonl")
    per_step = BATCH * round(PAID * ledger["units_per_credit"])  # totals over the B copies, in units
    assert ledger["given_units"] == {"a": 0, "b": STEPS * per_step}
    assert ledger["received_units"] == {"a": STEPS * per_step, "b": 0}
    assert ledger["paid_units"] == [[0, 0], [STEPS * per_step, 0]]  # [giver][recipient]
    # [giver][recipient][recipient's applied action]: a was paid while defecting (t = 0, 2) and cooperating (t = 1)
    assert ledger["paid_by_recipient_action_units"] == [[[0, 0], [0, 0]], [[per_step, 2 * per_step], [0, 0]]]
    assert full["incentives_given"]["b"] == round(ledger["given_units"]["b"] / ledger["units_per_credit"] / BATCH, 9)
    result = json.loads((run_dir / "result.json").read_text(encoding="utf-8"))
    assert [(s["seat"], s["name"], s["deadline_misses"]) for s in result["seats"]] == [(0, "alice", 1), (1, "b", 0)]
    run = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    assert [(s["name"], s["joined_as"]) for s in run["seats"]] == [("a", "alice"), ("b", "b")]


# ---------------------------------------------------------------------------------------------- live: images
def test_coin_game_noop_layout_and_visibility(tmp_path: Path) -> None:
    process, connection = start_arena(tmp_path / "run", game="coin_game", params={"max_steps": 2}, batch_size=2,
                                      episodes=1, disclose=["visibility", "actions"])
    try:
        needs = ["actions", "visibility"]
        right = lambda o: np.zeros(2, np.int64)  # noqa: E731 - RIGHT in every copy
        with ThreadPoolExecutor(2) as pool:
            futures = [pool.submit(join_and_play, connection["address"], name, seat, needs, right)
                       for name, seat in (("a", 0), ("b", 1))]
            records = [f.result(timeout=20) for f in futures]
        process.wait(timeout=10)
        assert process.returncode == 0
    finally:
        stop(process)
    for own, record in zip("ab", records):
        welcome = record["welcome"]
        assert welcome["noop_action"] == 4 and welcome["action_names"][0][4] == "stay"
        assert welcome["disclose"] == ["actions", "visibility"]  # canonical order
        assert welcome["observation_space"] == {"type": "Box", "low": 0.0, "high": 1.0, "shape": [4, 3, 3],
                                                "dtype": "float32", "layout": "CHW"}
        assert all(space["layout"] == "CHW" for space in welcome["observation_spaces"])
        assert all("layout" not in space for space in welcome["action_spaces"])
        first, second = record["observes"]
        assert (first["actions"] == 4).all() and (first["played"] == 4).all()  # the no-op before the first step
        assert (second["actions"] == 0).all() and (second["played"] == 0).all()
        assert first["visible"].dtype == np.bool_ and first["visible"].shape == (2, 2) and first["visible"].all()
        summary = record["ends"][0]["summary"]
        assert list(summary["returns"]) == [own] and "collective_return" not in summary
        assert set(summary["events"]) == {"own_coin", "other_coin"}
        assert all(list(values) == [own] for values in summary["events"].values())


def test_box_trapped_layout_float64_and_bye_in_the_lobby_frees_the_seat(tmp_path: Path) -> None:
    process, connection = start_arena(tmp_path / "run", game="box_trapped", batch_size=1, episodes=1, rmax=2,
                                      step_timeout_s=30)
    address = connection["address"]
    try:
        first = SpecClient(address, None)
        try:
            first.send("hello", {"name": "first", "seat": 0})
            assert first.socket.poll(5000), "no welcome within 5 s"
            frames = first.socket.recv_multipart()
            header, welcome = first.decode(frames)
            assert header["type"] == "welcome"
            # float fields are msgpack float64 (0xcb) though arena.json gave the integers 2 and 30
            assert (welcome["rmax"], welcome["deadlines"]["step_timeout_s"]) == (2.0, 30.0)
            assert is_float(welcome["rmax"]) and is_float(welcome["deadlines"]["step_timeout_s"])
            for value in (2.0, 30.0):
                assert msgpack.packb(value)[0] == 0xCB and msgpack.packb(value) in frames[2]
            assert welcome["noop_action"] == 4
            for space in (welcome["observation_space"], *welcome["observation_spaces"]):
                assert space["shape"] == [5, 9, 5] and space["layout"] == "HWC"
            first.expect("lobby")
            first.send("bye", {"reason": "needs payments with 3 agents", "ok": False})
            # the heartbeat answer comes after the bye was handled; it names no seat any more
            first.send("heartbeat", {})
            header, answer = first.expect("heartbeat")
            assert header["parent_id"] is not None and "seat" not in answer
        finally:
            first.close()
        second, welcome = join(address, "second", 0, [])  # the freed seat can be taken again
        second.close()
        assert welcome["seat"] == 0
    finally:
        stop(process)
