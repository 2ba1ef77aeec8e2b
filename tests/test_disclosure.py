"""Disclosure (protocol 1.2): a seat sees of the others exactly what the run's `disclose` list allows.

* Every game × every one of the 2^7 subsets of `DISCLOSURES`: a spec-level client (raw zmq DEALER +
  msgpack, framing from `tests/test_spec_client.py`, nothing of `agents`) takes every seat of an
  in-process arena and plays one tiny batched episode. Each `observe` and `episode_end.final` must hold
  exactly the always-present fields plus those of the disclosed channels (key sets), with the right
  shapes and dtypes, and the values of an independent replay of the game (so `visible` is the
  receiving seat's row, `observations[j]` agent j's observation, …). Each seat's `summary` holds its
  own entries always and the others' only through the channel that discloses them, while the run
  directory's `episodes.jsonl` keeps every name.
* `hello.needs` naming an undisclosed channel (`visibility` included) is refused with
  `disclosure_refused` (fatal, field `needs`, a hint naming `disclose = [...]`); the same hello is
  welcome where the run discloses it.
* The Python agent runtime refuses to play where its algorithm's `needs_for(N)` is not disclosed (LIO
  with N > 2 needs `payments`): it says bye, raises `AgentError` naming the channel and the setting,
  and the seat is free again for a proper client. If its hello filled the last seat, the run aborts
  with `agent_lost` instead (SPEC §10.1 caveat).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import re
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zmq
import zmq.asyncio

from agents.algorithm import Algorithm, StepView
from agents.runtime import AgentError, AgentRuntime
from arena.games import GAMES, make_game
from arena.server import Arena
from arena.settings import ArenaSettings, SeatSpec
from protocols.errors import ErrorCode
from protocols.messages import DISCLOSURES
from tests.test_spec_client import SpecClient, read_jsonl

RECEIVE_TIMEOUT_S = 10.0
RUN_TIMEOUT_S = 30.0
SEED = 7
PAY = 0.5  # what seat 0 pays seat 1 at every step
VOCAB = 4  # cheap-talk symbols; the last seat talks

#: Tiny episodes (T = 2, so t = 1 reports a real step), B = N + 1 so that the batch axis cannot be taken
#: for an agent axis, and N = 3 in Escape Room and Manitokan so that a seat has more than one "other"
#: (Harvest and the coin game have 2 seats here only to keep the 1024 runs of this file cheap).
GAME_PARAMS: dict[str, dict[str, Any]] = {
    "ipd": {"max_steps": 2},
    "escape_room": {"n_agents": 3, "max_steps": 2},
    "escape_room_asym": {"max_steps": 2},
    "coin_game": {"max_steps": 2},
    "cleanup": {"map": "small7", "max_steps": 2},
    "harvest": {"n_agents": 2, "view_size": 2, "max_steps": 2},
    "manitokan": {"n_agents": 3, "episode_limit": 2},
    "box_trapped": {"max_steps": 2},
}

#: In every `observe` (and `final`), whatever the run discloses (`action_mask` where the game has masks).
ALWAYS = frozenset({"type", "episode", "t", "obs", "reward", "extrinsic", "incentives", "active", "played",
                    "terminated", "evaluate"})
#: Channel → the field it adds.
FIELD_OF = {"actions": "actions", "rewards": "rewards", "observations": "observations", "payments": "payments",
            "messages": "messages", "state": "state", "visibility": "visible"}
#: Summary keys every seat gets; `collective_*` come with `rewards`.
SUMMARY_ALWAYS = frozenset({"episode", "steps", "returns", "incentives_received", "incentives_given", "events",
                            "deadline_misses", "wall_time_s", "batch_size", "evaluate", "warmup", "trained"})
COLLECTIVE = frozenset({"collective_return", "collective_per_step"})
SUBSETS = [frozenset(c) for r in range(len(DISCLOSURES) + 1) for c in itertools.combinations(DISCLOSURES, r)]


def subset_id(subset: frozenset[str]) -> str:
    return "+".join(c for c in DISCLOSURES if c in subset) or "nothing"


# ---------------------------------------------------------------------------------------------- client
class Wire(SpecClient):
    """The spec client's framing and envelope (SPEC §4–§6) without its blocking sockets: the clients in
    this file are zmq.asyncio DEALERs sharing the arena's event loop."""

    def __init__(self) -> None:  # deliberately no super().__init__(): no context, no sockets
        self.key = None
        self.session = uuid.uuid4().hex
        self.seen_signatures: set[bytes] = set()


@dataclass
class Plan:
    """What one seat's client does: join `seat`, play `action` everywhere, maybe pay and talk."""

    seat: int
    action: int
    pays_to: int | None = None
    talks: bool = False
    needs: list[str] = field(default_factory=list)


async def play_seat(context: zmq.asyncio.Context, address: str, plan: Plan) -> list[tuple[str, dict[str, Any]]]:
    """Join, answer every observe/pay_request/episode_end until the arena's bye; return all it received."""
    wire = Wire()
    sock = context.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(address)
    received: list[tuple[str, dict[str, Any]]] = []

    async def send(kind: str, content: dict[str, Any], parent: dict[str, Any] | None = None) -> None:
        await sock.send_multipart(wire.encode(kind, content, parent)[1])

    try:
        capabilities = (["incentives"] if plan.pays_to is not None else []) + (["messages"] if plan.talks else [])
        await send("hello", {"name": f"client{plan.seat}", "implementation": "disclosure-test/0",
                             "seat": plan.seat, "capabilities": capabilities, "needs": plan.needs})
        batch = n = 0
        while True:
            header, content = wire.decode(await receive(sock))
            kind = header["type"]
            received.append((kind, content))
            if kind == "welcome":
                batch, n = content["batch_size"], content["n_agents"]
            elif kind == "observe":
                reply = {"episode": content["episode"], "t": content["t"],
                         "actions": np.full(batch, plan.action, np.int64)}
                if plan.talks:
                    reply["message"] = np.full(batch, symbol(content["t"]), np.int64)
                await send("act", reply, header)
            elif kind == "pay_request":
                amounts = np.zeros((batch, n), np.float32)
                amounts[:, plan.pays_to] = PAY
                await send("pay", {"episode": content["episode"], "t": content["t"], "amounts": amounts}, header)
            elif kind == "episode_end":
                await send("ready", {"episode": content["episode"]}, header)
            elif kind == "error" and content["fatal"] and not batch:  # a refused hello: no bye follows
                raise AssertionError(f"seat {plan.seat}: hello refused: {content}")
            elif kind == "bye":
                return received
    finally:
        sock.close(0)


async def receive(sock: zmq.asyncio.Socket) -> list[bytes]:
    """The next message's frames. Not asyncio.wait_for: on 3.11 it swallows a cancel that races a reply."""
    future = sock.recv_multipart()
    try:
        done, _ = await asyncio.wait({future}, timeout=RECEIVE_TIMEOUT_S)
    finally:
        future.cancel()  # no-op when it finished
    if not done:
        raise TimeoutError(f"no message from the arena within {RECEIVE_TIMEOUT_S} s")
    return future.result()


def symbol(t: int) -> int:
    return (t + 1) % VOCAB


async def start(settings: ArenaSettings, run_dir: Path, n: int) -> tuple[Arena, asyncio.Task]:
    """An in-process arena serving on its own task; returns once it is bound."""
    arena = Arena(settings, [SeatSpec(name=f"p{i}") for i in range(n)], run_dir)
    bound = asyncio.Event()
    serve = asyncio.create_task(arena.serve(on_bound=lambda _: bound.set()))
    waiter = asyncio.create_task(bound.wait())
    await asyncio.wait({serve, waiter}, timeout=RECEIVE_TIMEOUT_S, return_when=asyncio.FIRST_COMPLETED)
    waiter.cancel()
    if serve.done():
        serve.result()  # raises what went wrong
        raise AssertionError("the arena ended before binding")
    assert bound.is_set(), "the arena did not bind"
    return arena, serve


async def stop(arena: Arena, serve: asyncio.Task) -> int:
    """End the arena if it still runs; its exit code (or what it crashed with, re-raised)."""
    if not serve.done():
        arena.abort(ErrorCode.RUN_ABORTED, "test over")
    try:
        return await asyncio.wait_for(asyncio.shield(serve), RECEIVE_TIMEOUT_S)
    except BaseException:
        # serve() did not finish cleanly: stop its receiver and watchdog tasks and close its socket here
        for task in asyncio.all_tasks():
            frame = getattr(task.get_coro(), "cr_frame", None)
            if task is not serve and frame is not None and frame.f_locals.get("self") is arena:
                task.cancel()
        serve.cancel()
        with contextlib.suppress(AttributeError):
            arena.sock.close(linger=0)
        raise


async def until(condition: Any, timeout: float = RECEIVE_TIMEOUT_S) -> None:
    give_up = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < give_up, "timed out waiting"
        await asyncio.sleep(0.005)


async def run_clients(context: zmq.asyncio.Context, address: str, plans: list[Plan]) -> list[list]:
    tasks = [asyncio.create_task(play_seat(context, address, plan)) for plan in plans]
    try:
        return await asyncio.wait_for(asyncio.gather(*tasks), RUN_TIMEOUT_S)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def settings_for(game: str, disclose: frozenset[str] | list[str], **extra: Any) -> ArenaSettings:
    values: dict[str, Any] = dict(game=game, params=GAME_PARAMS[game], episodes=1, seed=SEED,
                                  disclose=sorted(disclose), heartbeat_timeout_s=120.0, step_timeout_s=60.0)
    values.update(extra)
    return ArenaSettings(**values)


# ---------------------------------------------------------------------------------------------- reference
@dataclass
class View:
    """What seat-independent fields of the observe at step t must hold (from an independent replay)."""

    t: int
    obs: list[np.ndarray]
    state: np.ndarray
    visibility: np.ndarray
    masks: list[np.ndarray] | None
    active: np.ndarray
    terminated: np.ndarray
    actions: np.ndarray  # public joint action of step t − 1
    played: np.ndarray  # applied joint action of step t − 1
    rewards: np.ndarray  # extrinsic [B, N] of step t − 1
    was_active: np.ndarray  # copies active at step t − 1 (payments are booked there only)


def replay(settings: ArenaSettings, joint: np.ndarray) -> tuple[list[View], View]:
    """The observe views for t = 0 … and the final view, replaying the game the arena plays."""
    game = make_game(settings.game, settings.params, settings.batch_size)
    batch, n = settings.batch_size, game.n_agents
    seeds = np.random.SeedSequence([settings.seed, 0]).generate_state(batch, np.uint64)
    obs = game.reset(seeds)
    start = np.full((batch, n), -1 if game.noop_action is None else game.noop_action, np.int64)
    public, played = start, start
    rewards = np.zeros((batch, n), np.float32)
    active, terminated, was_active = np.ones(batch, bool), np.zeros(batch, bool), np.zeros(batch, bool)
    views: list[View] = []

    def view(t: int) -> View:
        return View(t, [o.copy() for o in obs], game.state().copy(), game.visibility().copy(),
                    None if (m := game.action_masks()) is None else [x.copy() for x in m],
                    active.copy(), terminated.copy(), public, played, rewards, was_active)

    for t in range(game.max_steps):
        views.append(view(t))
        public, played = np.array(game.public_actions(joint), np.int64), joint
        result = game.step(joint)
        rewards = (result.rewards * active[:, None]).astype(np.float32)
        was_active = active.copy()
        obs = result.obs
        terminated = terminated | (result.terminated & active)
        active = active & ~(result.terminated | result.truncated)
        if not active.any():
            break
    return views, view(len(views))


# ---------------------------------------------------------------------------------------------- checks
def assert_equal(x: np.ndarray, y: np.ndarray, what: str) -> None:
    if not np.array_equal(x, y):  # np.testing only to explain a failure: it is slow on the hot path
        np.testing.assert_array_equal(x, y, err_msg=what)


def check_view(got: dict[str, Any], want: View, *, seat: int, disclose: frozenset[str], welcome: dict[str, Any],
               plans: list[Plan], final: bool) -> None:
    batch, n = welcome["batch_size"], welcome["n_agents"]
    where = f"seat {seat} {'final' if final else 'observe'} t={want.t}"
    expected = set(ALWAYS) | {FIELD_OF[c] for c in disclose}
    if not final:
        expected.add("deadline_s")
    if want.masks is not None:
        expected.add("action_mask")
    assert set(got) == expected, (f"{where}: unexpected {sorted(set(got) - expected)}, "
                                  f"missing {sorted(expected - set(got))}")
    assert got["t"] == want.t and got["episode"] == 0 and got["evaluate"] is False, where

    def array(name: str, dtype: str, shape: tuple[int, ...], value: np.ndarray | None = None) -> None:
        x = got[name]
        assert isinstance(x, np.ndarray), f"{where}: {name} is {type(x).__name__}"
        assert x.dtype == np.dtype(dtype) and x.shape == shape, f"{where}: {name} is {x.dtype}{list(x.shape)}"
        if value is not None:
            assert_equal(x, value, f"{where}: {name}")

    own = welcome["observation_space"]
    array("obs", own["dtype"], (batch, *own["shape"]))
    if welcome["observation_space"] == welcome["observation_spaces"][seat]:  # no appended incentives block
        assert_equal(got["obs"], want.obs[seat], f"{where}: obs")
    for name in ("reward", "extrinsic", "incentives"):
        array(name, "float32", (batch,))
    assert_equal(got["extrinsic"], want.rewards[:, seat], f"{where}: extrinsic")
    array("active", "bool", (batch,), want.active)
    array("terminated", "bool", (batch,), want.terminated)
    array("played", "int64", (batch,), want.played[:, seat])
    if want.masks is not None:
        array("action_mask", "bool", (batch, welcome["action_spaces"][seat]["n"]), want.masks[seat])
    if not final:
        assert got["deadline_s"] == 60.0, where
    if "actions" in disclose:
        array("actions", "int64", (batch, n), want.actions)
    if "rewards" in disclose:
        array("rewards", "float32", (batch, n), want.rewards)
    if "observations" in disclose:
        others = got["observations"]
        assert isinstance(others, list) and len(others) == n, f"{where}: observations is not a list of {n}"
        for j, (x, space) in enumerate(zip(others, welcome["observation_spaces"])):
            assert x.dtype == np.dtype(space["dtype"]) and x.shape == (batch, *space["shape"]), \
                f"{where}: observations[{j}] is {x.dtype}{list(x.shape)}"
            assert_equal(x, want.obs[j], f"{where}: observations[{j}]")
    if "payments" in disclose:
        paid = np.zeros((batch, n, n), np.float32)
        for p in plans:
            if p.pays_to is not None and want.t > 0:
                paid[:, p.seat, p.pays_to] = PAY * want.was_active
        array("payments", "float32", (batch, n, n), paid)
    if "messages" in disclose:
        said = np.full((batch, n), -1, np.int64)
        for p in plans:
            if p.talks and want.t > 0:
                said[:, p.seat] = symbol(want.t - 1)
        array("messages", "int64", (batch, n), said)
    if "state" in disclose:
        assert isinstance(got["state"], np.ndarray) and got["state"].shape[0] == batch, f"{where}: state"
        assert_equal(got["state"], want.state, f"{where}: state")
    if "visibility" in disclose:
        array("visible", "bool", (batch, n), want.visibility[:, seat, :])  # the receiving seat's row
        assert got["visible"][:, seat].all(), f"{where}: a seat always sees itself"


def check_summary(summary: dict[str, Any], full: dict[str, Any], *, own: str, names: list[str],
                  disclose: frozenset[str]) -> None:
    where = f"summary of {own} (disclose {subset_id(disclose)})"
    keys = set(SUMMARY_ALWAYS) | (set(COLLECTIVE) if "rewards" in disclose else set())
    assert set(summary) == keys, f"{where}: keys {sorted(summary)}, expected {sorted(keys)}"
    everyone, alone = set(names), {own}
    expected = {"returns": everyone if "rewards" in disclose else alone,
                "incentives_received": everyone if "payments" in disclose else alone,
                "incentives_given": everyone if "payments" in disclose else alone,
                "deadline_misses": alone}
    for key, who in expected.items():
        assert set(summary[key]) == who, f"{where}: {key} has {sorted(summary[key])}, expected {sorted(who)}"
    assert set(summary["events"]) == set(full["events"]), f"{where}: event names"
    for event, values in summary["events"].items():
        who = everyone if "state" in disclose else alone
        assert set(values) == who, f"{where}: events[{event}] has {sorted(values)}, expected {sorted(who)}"
    for key, value in summary.items():  # what is shown is the record, never something else
        if key == "events":
            for event, values in value.items():
                assert values == {k: full["events"][event][k] for k in values}, f"{where}: events[{event}]"
        elif key == "wall_time_s":
            continue
        elif isinstance(value, dict):
            assert value == {k: full[key][k] for k in value}, f"{where}: {key}"
        else:
            assert value == full[key], f"{where}: {key}"


def check_record(full: dict[str, Any], names: list[str]) -> None:
    """episodes.jsonl keeps everything for every agent, whatever the run discloses."""
    assert set(full) == SUMMARY_ALWAYS | COLLECTIVE, sorted(full)
    for key in ("returns", "incentives_received", "incentives_given", "deadline_misses"):
        assert set(full[key]) == set(names), f"episodes.jsonl {key}: {sorted(full[key])}"
    for event, values in full["events"].items():
        assert set(values) == set(names), f"episodes.jsonl events[{event}]: {sorted(values)}"


# ---------------------------------------------------------------------------------------------- 1. all subsets
def test_game_table_covers_every_game() -> None:
    assert set(GAME_PARAMS) == set(GAMES), "give every registered game tiny parameters in GAME_PARAMS"


@pytest.mark.parametrize("subset", SUBSETS, ids=subset_id)
@pytest.mark.parametrize("game", sorted(GAMES))
async def test_observe_and_summary_show_exactly_the_disclosed_channels(game: str, subset: frozenset[str],
                                                                       tmp_path: Path) -> None:
    probe = make_game(game, GAME_PARAMS[game], 1)
    n = probe.n_agents
    base = 0 if probe.noop_action is None else probe.noop_action
    plans = [Plan(seat=i, action=0 if i % 2 == 0 else base, pays_to=1 if i == 0 else None, talks=i == n - 1)
             for i in range(n)]
    settings = settings_for(game, subset, batch_size=n + 1, rmax=1.0, message_vocab=VOCAB)
    joint = np.tile(np.array([p.action for p in plans], np.int64), (settings.batch_size, 1))
    views, closing = replay(settings, joint)

    run_dir = tmp_path / "run"
    context = zmq.asyncio.Context()
    try:
        arena, serve = await start(settings, run_dir, n)
        try:
            records = await run_clients(context, arena.address, plans)
        finally:
            code = await stop(arena, serve)
    finally:
        context.destroy(linger=0)
    assert code == 0, json.loads((run_dir / "result.json").read_text())

    names = [f"p{i}" for i in range(n)]
    (full,) = read_jsonl(run_dir / "episodes.jsonl")
    check_record(full, names)
    for plan, received in zip(plans, records):
        kinds = [kind for kind, _ in received]
        assert kinds.count("welcome") == 1 and kinds[-1] == "bye", kinds
        assert [kind for kind in kinds if kind not in ("welcome", "lobby", "pay_request")] == \
            ["observe"] * len(views) + ["episode_end", "bye"], kinds
        assert not [c for k, c in received if k == "error"], received
        welcome = next(c for k, c in received if k == "welcome")
        assert welcome["disclose"] == [c for c in DISCLOSURES if c in subset]
        observes = [c for k, c in received if k == "observe"]
        for got, want in zip(observes, views):
            check_view(got, want, seat=plan.seat, disclose=subset, welcome=welcome, plans=plans, final=False)
        end = next(c for k, c in received if k == "episode_end")
        check_view(end["final"], closing, seat=plan.seat, disclose=subset, welcome=welcome, plans=plans, final=True)
        check_summary(end["summary"], full, own=names[plan.seat], names=names, disclose=subset)


# ---------------------------------------------------------------------------------------------- 2. hello.needs
async def hello_reply(sock: zmq.asyncio.Socket, wire: Wire, **hello: Any) -> tuple[dict, dict, dict]:
    """Send a hello; the sent header and the arena's reply (header, content), lobby broadcasts skipped."""
    header, frames = wire.encode("hello", {"name": "needy", "implementation": "disclosure-test/0", **hello})
    await sock.send_multipart(frames)
    while True:
        reply_header, content = wire.decode(await receive(sock))
        if reply_header["type"] != "lobby":
            return header, reply_header, content


@pytest.mark.parametrize("channel", DISCLOSURES)
async def test_needs_of_an_undisclosed_channel_are_refused(channel: str, tmp_path: Path) -> None:
    context = zmq.asyncio.Context()
    try:
        others = [c for c in DISCLOSURES if c != channel]
        arena, serve = await start(settings_for("ipd", others), tmp_path / "without", 2)
        try:
            sock = context.socket(zmq.DEALER)
            sock.connect(arena.address)
            wire = Wire()
            sent, header, error = await hello_reply(sock, wire, needs=[channel], seat=0)
            assert header["type"] == "error" and header["parent_id"] == sent["msg_id"], (header, error)
            assert error["code"] == "disclosure_refused" and error["field"] == "needs" and error["fatal"] is True
            assert channel in error["message"]
            assert "disclose = " in error["hint"], error["hint"]
            wanted = json.loads(re.search(r"disclose = (\[[^\]]*\])", error["hint"]).group(1))
            assert sorted(wanted) == sorted(DISCLOSURES), error["hint"]  # what it had, plus the missing one
            assert not arena.seats[0].seated
            # a refused connection stays unseated and may say hello again
            _, header, welcome = await hello_reply(sock, wire, needs=others, seat=0)
            assert header["type"] == "welcome" and welcome["seat"] == 0, welcome
        finally:
            await stop(arena, serve)

        arena, serve = await start(settings_for("ipd", [channel]), tmp_path / "with", 2)
        try:
            sock = context.socket(zmq.DEALER)
            sock.connect(arena.address)
            _, header, welcome = await hello_reply(sock, Wire(), needs=[channel], seat=0)
            assert header["type"] == "welcome", welcome
            assert welcome["disclose"] == [channel] and welcome["seat"] == 0
        finally:
            await stop(arena, serve)
    finally:
        context.destroy(linger=0)


async def test_every_missing_need_is_named(tmp_path: Path) -> None:
    context = zmq.asyncio.Context()
    try:
        arena, serve = await start(settings_for("ipd", []), tmp_path / "run", 2)
        try:
            sock = context.socket(zmq.DEALER)
            sock.connect(arena.address)
            _, _, error = await hello_reply(sock, Wire(), needs=list(DISCLOSURES))
            assert error["code"] == "disclosure_refused" and error["field"] == "needs" and error["fatal"] is True
            assert all(c in error["message"] for c in DISCLOSURES), error["message"]
            assert f"disclose = {json.dumps(list(DISCLOSURES))}" in error["hint"], error["hint"]  # canonical order
        finally:
            await stop(arena, serve)
    finally:
        context.destroy(linger=0)


# ---------------------------------------------------------------------------------------------- 3. needs_for
class ThirdPartyObserver(Algorithm):
    """Needs others' actions, and with more than two agents also the payments between third parties."""

    needs = frozenset({"actions"})

    @classmethod
    def needs_for(cls, n_agents: int) -> frozenset[str]:
        return cls.needs | {"payments"} if n_agents > 2 else cls.needs

    def act(self, view: StepView) -> np.ndarray:
        return np.zeros(len(view.obs), np.int64)


def run_runtime(algorithm: Algorithm, address: str, seat: int, name: str) -> int:
    runtime = AgentRuntime(algorithm, address, name=name, implementation=type(algorithm).__name__, seat=seat,
                           connect_timeout_s=RECEIVE_TIMEOUT_S)
    return runtime.run()


async def refused_then_replaced(algorithm: Algorithm, disclose: list[str], tmp_path: Path, **extra: Any) -> str:
    """A 3-seat Escape Room: the runtime with `algorithm` takes seat 0 first and must refuse to play; then
    spec clients take all three seats (seat 0 included) and play the run to the end. Returns the error."""
    settings = settings_for("escape_room", disclose, batch_size=2, **extra)
    run_dir = tmp_path / "run"
    context = zmq.asyncio.Context()
    try:
        arena, serve = await start(settings, run_dir, 3)
        try:
            with pytest.raises(AgentError) as refused:
                await asyncio.wait_for(asyncio.to_thread(run_runtime, algorithm, arena.address, 0, "runtime0"),
                                       RUN_TIMEOUT_S)
            assert not serve.done() and not arena.started
            assert not arena.seats[0].seated, "the refusing agent's bye frees its seat in the lobby"
            records = await run_clients(context, arena.address, [Plan(seat=i, action=0) for i in range(3)])
        finally:
            code = await stop(arena, serve)
    finally:
        context.destroy(linger=0)
    assert code == 0
    assert all(r[-1][0] == "bye" and r[-1][1]["ok"] is True for r in records)
    seats = json.loads((run_dir / "run.json").read_text())["seats"]
    assert seats[0]["joined_as"] == "client0" and seats[0]["implementation"] == "disclosure-test/0"
    return str(refused.value)


async def test_runtime_refuses_when_needs_for_n_is_not_disclosed(tmp_path: Path) -> None:
    message = await refused_then_replaced(ThirdPartyObserver(), ["actions"], tmp_path,
                                          params={"n_agents": 3, "max_steps": 2})
    assert "payments" in message and "disclose" in message and "3 agents" in message, message


@pytest.mark.parametrize(("n_agents", "disclose"), [(2, ["actions"]), (3, ["actions", "payments"])])
async def test_runtime_plays_when_needs_for_n_is_disclosed(n_agents: int, disclose: list[str],
                                                           tmp_path: Path) -> None:
    settings = settings_for("escape_room", disclose, batch_size=2, params={"n_agents": n_agents, "max_steps": 2})
    context = zmq.asyncio.Context()
    try:
        arena, serve = await start(settings, tmp_path / "run", n_agents)
        try:
            runtime = asyncio.create_task(asyncio.to_thread(run_runtime, ThirdPartyObserver(), arena.address, 0,
                                                            "runtime0"))
            records = await run_clients(context, arena.address, [Plan(seat=i, action=0) for i in range(1, n_agents)])
            assert await asyncio.wait_for(runtime, RUN_TIMEOUT_S) == 0
        finally:
            code = await stop(arena, serve)
    finally:
        context.destroy(linger=0)
    assert code == 0 and all(r[-1][1]["ok"] is True for r in records)


async def test_lio_refuses_three_agents_without_payments(tmp_path: Path) -> None:
    """LIO (agents.algorithms.lio) needs `payments` once N > 2: third parties' payments are in r_j."""
    from agents.algorithms.lio import LIO

    assert LIO.needs_for(2) == LIO.needs and "payments" not in LIO.needs
    assert LIO.needs_for(3) == LIO.needs | {"payments"}
    message = await refused_then_replaced(LIO(), sorted(LIO.needs), tmp_path, rmax=1.0,
                                          params={"n_agents": 3, "max_steps": 2})
    assert "payments" in message and "disclose" in message, message




async def test_refusal_after_the_last_seat_aborts_the_run(tmp_path: Path) -> None:
    """SPEC §10.1 caveat: when the agent whose `needs_for(N)` is not met filled the last seat, the run has
    started by the time its bye arrives, so the run aborts (`agent_lost`) naming what was missing."""
    settings = settings_for("escape_room", ["actions"], batch_size=2, params={"n_agents": 3, "max_steps": 2})
    context = zmq.asyncio.Context()
    try:
        arena, serve = await start(settings, tmp_path / "run", 3)
        clients = [asyncio.create_task(play_seat(context, arena.address, Plan(seat=i, action=0))) for i in (0, 1)]
        try:
            await until(lambda: arena.seats[0].seated and arena.seats[1].seated)
            with pytest.raises(AgentError, match="payments"):
                await asyncio.wait_for(asyncio.to_thread(run_runtime, ThirdPartyObserver(), arena.address, 2,
                                                         "runtime2"), RUN_TIMEOUT_S)
            await asyncio.wait({serve}, timeout=RUN_TIMEOUT_S)
        finally:
            code = await stop(arena, serve)
            records = await asyncio.wait_for(asyncio.gather(*clients), RECEIVE_TIMEOUT_S)
    finally:
        for task in clients:
            task.cancel()
        await asyncio.gather(*clients, return_exceptions=True)
        context.destroy(linger=0)
    assert code == 3
    for received in records:
        errors = [c for k, c in received if k == "error"]
        assert [e["code"] for e in errors] == ["agent_lost"] and errors[0]["fatal"] is True, errors
        assert "runtime2" in errors[0]["message"] and "payments" in errors[0]["message"], errors[0]
        assert received[-1][0] == "bye" and received[-1][1]["ok"] is False


async def test_bye_right_after_the_hello_that_filled_the_lobby_aborts_the_run(tmp_path: Path) -> None:
    """The last seat's hello and bye are both queued at the arena before its receive loop runs again, so the
    bye is handled before `_play` resumes: the run had started at that hello and aborts with `agent_lost`
    (it used to free the seat and crash serve() sending to an empty seat)."""
    context = zmq.asyncio.Context()
    quitter = zmq.Context()
    try:
        arena, serve = await start(settings_for("ipd", []), tmp_path / "run", 2)
        first = asyncio.create_task(play_seat(context, arena.address, Plan(seat=0, action=0)))
        try:
            await until(lambda: arena.seats[0].seated)
            sock = quitter.socket(zmq.DEALER)
            sock.setsockopt(zmq.LINGER, 0)
            sock.connect(arena.address)
            wire = Wire()
            sock.send_multipart(wire.encode("heartbeat", {})[1])
            await until(lambda: sock.poll(0))  # connected: the arena has answered
            sock.recv_multipart()
            sock.send_multipart(wire.encode("hello", {"name": "quitter", "seat": 1})[1])
            sock.send_multipart(wire.encode("bye", {"reason": "changed my mind", "ok": False})[1])
            time.sleep(0.1)  # deliberately blocking: both reach the arena's queue before its loop runs
            await asyncio.wait({serve}, timeout=RUN_TIMEOUT_S)
        finally:
            code = await stop(arena, serve)
            received = await asyncio.wait_for(first, RECEIVE_TIMEOUT_S)
    finally:
        first.cancel()
        await asyncio.gather(first, return_exceptions=True)
        context.destroy(linger=0)
        quitter.destroy(linger=0)
    assert code == 3
    assert [c["code"] for k, c in received if k == "error"] == ["agent_lost"]
    assert received[-1][0] == "bye" and received[-1][1]["ok"] is False
    result = json.loads((tmp_path / "run" / "result.json").read_text())
    assert result["status"] == "aborted" and "quitter" in result["reason"], result
