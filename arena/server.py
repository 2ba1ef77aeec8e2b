"""The arena server: a ZeroMQ ROUTER on an asyncio loop that seats agents and steps B copies of a game.

The socket is a plain (blocking-API) pyzmq socket read without blocking: whenever its file descriptor
signals, `_drain` takes every waiting message and handles it synchronously (it never blocks and never
crashes on bad input). The run coroutine walks the phases of each step — observe → act → pay → step —
sending one message per seat and awaiting one `Phase`, which the handlers complete when the last
reply is in. A watchdog ends the run when a seat stops sending heartbeats. This costs a fraction of
zmq.asyncio's future per send and per receive (bench/results/throughput_transport.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import signal
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import zmq
from zmq.auth.thread import ThreadAuthenticator

from arena.games import make_game
from arena.guard import StrangerGate
from arena.ledger import Ledger
from arena.rundir import RunWriter
from arena.settings import ArenaSettings, SeatSpec
from arena.spectators import Spectators
from protocols.codec import Codec, Message
from protocols.curve import make_key_pair
from protocols.errors import ErrorCode, ProtocolError
from protocols.messages import (
    DISCLOSURES,
    Act,
    Bye,
    Content,
    Deadlines,
    EpisodeEnd,
    Error,
    Header,
    Heartbeat,
    Hello,
    Lobby,
    Pay,
    PayRequest,
    Ready,
    Welcome,
)
from protocols.spaces import describe_space
from protocols.telemetry import MqttTarget, Telemetry
from protocols.transport import NOBLOCK, readable, recv_frames, send_frames

log = logging.getLogger("arena")
REPLIES = {"act": Act, "pay": Pay, "ready": Ready}
#: Messages handled per wake-up before the loop gets a turn (a flood cannot starve the run).
DRAIN_BATCH = 256


#: Messages ZeroMQ queues per peer before it stops reading from that peer.
RECEIVE_QUEUE = 100


def max_frame_bytes(batch_size: int, n_agents: int) -> int:
    """The largest frame the arena accepts (SPEC §5): 1 MiB, or room for a float64 `[B, N, N]` payment
    array and 64 KiB more when that is larger."""
    return max(1 << 20, 8 * batch_size * n_agents * n_agents + (64 << 10))


class BindError(Exception):
    """The arena cannot listen where its settings say; the message says what to change."""


class RunAborted(Exception):
    """The run cannot go on; `code` and the message say why."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class Phase:
    """The replies the run is waiting for: one `kind` from each seat in `waiting`, for (episode, t).
    `complete` resolves when the last one is in (or at the deadline)."""

    kind: str
    episode: int
    t: int
    waiting: set[int]
    complete: asyncio.Future
    replies: dict[int, Any] = field(default_factory=dict)

    def answer(self, seat: int, reply: Any) -> None:
        self.waiting.discard(seat)
        self.replies[seat] = reply
        if not self.waiting and not self.complete.done():
            self.complete.set_result(None)


@dataclass
class Seat:
    index: int
    spec: SeatSpec
    identity: bytes | None = None
    session: str | None = None
    #: the socket the seat's heartbeats come from: the first one after `hello` that carries its session
    heartbeat_identity: bytes | None = None
    name: str = ""
    implementation: str = ""
    pays: bool = False
    talks: bool = False
    default_action: int = 0
    last_seen: float = 0.0
    finished: bool = False
    deadline_misses: int = 0
    #: the secret that rejoins this seat (runs with reconnect_grace_s > 0; never logged)
    token: str | None = None
    #: when its agent was lost after the start, while the seat is held for it to rejoin; and why
    away_since: float | None = None
    away_because: str = ""
    rejoins: int = 0

    @property
    def seated(self) -> bool:
        return self.identity is not None

    @property
    def away(self) -> bool:
        return self.away_since is not None

    def describe(self) -> str:
        return f"agent '{self.name or self.spec.name}' (seat {self.index}, {self.implementation or self.spec.kind})"


@dataclass
class StepMemory:
    """What happened at the previous step, for the next observation's disclosures."""

    actions: np.ndarray
    played: np.ndarray
    extrinsic: np.ndarray
    incentives: np.ndarray
    total: np.ndarray
    payments: np.ndarray
    messages: np.ndarray


class Arena:
    """Seats N agents and plays `settings.episodes` batched training episodes of one game (plus any
    evaluation episodes the settings schedule between them)."""

    def __init__(self, settings: ArenaSettings, seats: list[SeatSpec], run_dir: Path, mqtt: str | None = None,
                 first_episode: int = 0, resumed: bool = False) -> None:
        self.settings = settings
        if not 0 <= first_episode < settings.total_episodes:
            raise ValueError(f"cannot start at episode {first_episode}: the run plays episodes "
                             f"0..{settings.total_episodes - 1}")
        self.game = make_game(settings.game, settings.params, settings.batch_size)
        if len(seats) != self.game.n_agents:
            raise ValueError(f"game '{settings.game}' has {self.game.n_agents} agents but the run config "
                             f"defines {len(seats)} [[agents]] seats; define exactly {self.game.n_agents}")
        self.seats = [Seat(i, spec, default_action=self.game.default_action) for i, spec in enumerate(seats)]
        self.names = [s.name for s in seats]
        self.run_dir = run_dir
        self.run_id = f"{run_dir.name}-{uuid.uuid4().hex[:8]}"
        telemetry = None
        if mqtt is not None:
            target = MqttTarget.parse(mqtt)
            telemetry = (Telemetry(target, client_id=f"arena-{self.run_id}"), target)
        # first: it locks the run directory (arena.rundir) before anything in it is written, keys included
        self.writer = RunWriter(run_dir, self.run_id, telemetry)
        self.key = secrets.token_hex(32).encode() if settings.sign else None
        self.codec = Codec(session=self.run_id, key=self.key)
        #: CURVE (SPEC §21): the arena's key pair for this run, and the one client key each seat takes
        self.curve = zmq.curve_keypair() if settings.curve else None
        self.client_keys = [self._client_key(spec) for spec in seats] if settings.curve else []
        n_actions = max(int(s.n) for s in self.game.action_spaces if isinstance(s, gym.spaces.Discrete))
        self.ledger = Ledger(self.game.n_agents, settings.batch_size, n_actions, settings.rmax)
        self.started = False
        self.address = ""
        self._lobby_full = asyncio.Event()
        self._abort: RunAborted | None = None
        #: seats by the routing id of their main socket, and of their heartbeat socket (SPEC §14)
        self._seat_of: dict[bytes, Seat] = {}
        self._pulse_of: dict[bytes, Seat] = {}
        self.gate = StrangerGate()
        self._main: asyncio.Task | None = None
        self._phase: Phase | None = None
        #: per seat, the content fields the open phase asked of it: encoded again (a fresh msg_id, SPEC §4) and sent
        #: to an agent that rejoins before answering
        self._pending: dict[int, dict[str, Any]] = {}
        self._drain_scheduled = False
        self._draining = False
        #: where a resumed run goes on (`arena launch --resume`): the seeds and numbering of that episode
        self.first_episode = first_episode
        self.episodes_done = first_episode
        self.resumed = resumed
        self.trained = settings.schedule()[:first_episode].count(False)

    def _client_key(self, spec: SeatSpec) -> str:
        """The seat's own public key, or a pair issued now: the secret goes to `RUN_DIR/keys/NAME.key_secret`
        (mode 0600) for the launcher to hand to the agent it starts."""
        if spec.client_key is not None:
            return spec.client_key
        return make_key_pair(self.run_dir / "keys", spec.name)[0]

    def callback(self, domain: str, key: bytes) -> bool:
        """The ZAP check (pyzmq's authenticator thread calls its credentials provider): only keys issued
        for a seat get through the handshake. Refusals are logged a few times, then counted (arena.guard)."""
        if key.decode() in self.client_keys:
            return True
        if self.gate.refuse_handshake():
            log.warning("refused a CURVE connection: its client key %s was issued for no seat of this run",
                        key.decode())
        return False

    def _make_curve_server(self, context: zmq.Context) -> ThreadAuthenticator:
        authenticator = ThreadAuthenticator(context, log=logging.getLogger("arena.zap"))
        authenticator.start()
        authenticator.configure_curve_callback("*", credentials_provider=self)
        self.sock.curve_server = True
        self.sock.curve_publickey, self.sock.curve_secretkey = self.curve
        return authenticator

    # ------------------------------------------------------------------ lifecycle
    async def serve(self, on_bound: Any = None) -> int:
        """Bind, seat the agents, play every episode, say goodbye. Returns a process exit code."""
        context = zmq.Context()
        self.sock = context.socket(zmq.ROUTER)
        authenticator = self._make_curve_server(context) if self.curve else None
        self.sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
        self.sock.setsockopt(zmq.LINGER, 1000)
        # One peer cannot balloon the arena: a frame above the largest an agent needs disconnects it, and
        # at most RECEIVE_QUEUE messages per peer wait in ZeroMQ (SPEC §5).
        self.sock.setsockopt(zmq.MAXMSGSIZE, max_frame_bytes(self.settings.batch_size, len(self.seats)))
        self.sock.setsockopt(zmq.RCVHWM, RECEIVE_QUEUE)
        try:
            self.sock.bind(self.settings.address)
        except zmq.ZMQError as err:
            self.sock.close(0)
            if authenticator is not None:
                authenticator.stop()
            context.term()
            taken = " is already in use (another arena or program listens there)" if err.errno == zmq.EADDRINUSE \
                else f" cannot be bound: {err.strerror}"
            raise BindError(f"the arena's address {self.settings.address}{taken}; choose another: [arena] "
                            'address = "tcp://127.0.0.1:*" picks a free port, or `arena serve --address '
                            'tcp://HOST:PORT`') from None
        self.address = self.sock.getsockopt_string(zmq.LAST_ENDPOINT)
        self.spectators = Spectators(context, self.address, self.run_id, self.curve)
        self.writer.spectators = self.spectators
        self._write_connection_file()
        log.info("arena %s listening on %s for %d seats", self.run_id, self.address, len(self.seats))
        self.writer.lobby(self.settings, self.names, self.address)
        if on_bound is not None:
            on_bound(self)
        loop = asyncio.get_running_loop()
        self._main = asyncio.current_task()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, self.abort, ErrorCode.RUN_ABORTED, f"interrupted by {sig.name}")
        descriptor = self.sock.FD
        loop.add_reader(descriptor, self._drain)
        loop.add_reader(self.spectators.socket.FD, self.spectators.on_subscriptions)
        watchdog = asyncio.create_task(self._watchdog())
        try:
            await self._play()
            evaluations = self.episodes_done - self.trained
            reason = f"run complete: {self.episodes_done} episodes" + (
                f" ({evaluations} for evaluation)" if evaluations else "") + (
                f", resumed at episode {self.first_episode}" if self.resumed else "")
            status, code = "complete", 0
        except (asyncio.CancelledError, RunAborted) as exc:
            failure = self._abort or (exc if isinstance(exc, RunAborted) else
                                      RunAborted(ErrorCode.RUN_ABORTED, "cancelled"))
            status, reason, code = "aborted", str(failure), 3
            log.error("run aborted: %s", reason)
            self._broadcast(Error(code=failure.code.value, message=reason, fatal=True))
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                    loop.remove_signal_handler(sig)
        self._broadcast(Bye(reason=reason, ok=code == 0))
        watchdog.cancel()
        await asyncio.gather(watchdog, return_exceptions=True)
        loop.remove_reader(descriptor)
        loop.remove_reader(self.spectators.socket.FD)
        self.gate.summary()
        self.writer.finish(status, reason, self.episodes_done, self._seat_report(), self.first_episode,
                           self.resumed)
        self.spectators.close()
        self.sock.close()
        if authenticator is not None:
            authenticator.stop()
        context.term()
        return code

    def abort(self, code: ErrorCode, message: str) -> None:
        """End the run from anywhere (watchdog, signal handler, a fatal agent error)."""
        if self._abort is None:
            self._abort = RunAborted(code, message)
            if self._main is not None:
                self._main.cancel()

    def _write_connection_file(self) -> None:
        info = {"address": self.address, "events": self.spectators.address, "run_id": self.run_id, "protocol": "1",
                "signature_scheme": "hmac-sha256" if self.key else None,
                "key": self.key.decode() if self.key else None,
                "seats": [s.spec.name for s in self.seats],
                "curve_server_key": self.curve[0].decode() if self.curve else None,
                "curve_client_keys": self.client_keys or None}
        path = self.run_dir / "connection.json"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(info, handle, indent=2)

    def _seat_report(self) -> list[dict[str, Any]]:
        return [{"seat": s.index, "name": s.name or s.spec.name, "implementation": s.implementation,
                 "pays": s.pays, "deadline_misses": s.deadline_misses, "rejoins": s.rejoins} for s in self.seats]

    # ------------------------------------------------------------------ transport
    def _send(self, identity: bytes, content: Content, parent: Message | Header | None = None) -> None:
        if isinstance(parent, Message):
            parent = parent.header
        self._send_frames(identity, self.codec.encode(content, parent))

    def _send_frames(self, identity: bytes | None, frames: list[bytes]) -> None:
        """Send without blocking: a full queue means the agent reads nothing (it floods or hangs), and the
        run must not wait on it; what was dropped is logged. A seat away (identity None) is sent nothing."""
        if identity is None:
            return
        try:
            send_frames(self.sock, [identity, *frames], NOBLOCK)
        except zmq.Again:
            log.warning("dropped a message to %r: its send queue is full (the agent is not reading)", identity)
        except zmq.ZMQError as exc:
            log.warning("could not send to %r: %s", identity, exc)
        if not self._draining and not self._drain_scheduled:
            # a send may consume the socket's edge-triggered read signal: look for replies once after it
            self._drain_scheduled = True
            asyncio.get_running_loop().call_soon(self._drain)

    def _ask(self, seat: Seat, fields: dict[str, Any]) -> None:
        """Send what the open phase asks of `seat` (a message given as its content's fields, none a reply), and
        keep the fields to encode again if its agent rejoins: a re-sent message is a new one, with its own
        msg_id and signature, or a client that kept its codec would reject it as a replay (SPEC §4, §7.7)."""
        self._pending[seat.index] = fields
        self._send_frames(seat.identity, self.codec.encode_fields(fields))

    def _broadcast(self, content: Content) -> None:
        for seat in self.seats:
            if seat.seated:
                self._send(seat.identity, content)

    def _reply_error(self, identity: bytes, err: ProtocolError, parent: Message | Header | None = None) -> None:
        if identity in self._seat_of or self.gate.may_log(identity):
            log.warning("error to %r: %s", identity, err)
        self._send(identity, Error(code=err.code.value, message=err.message, field=err.field,
                                   hint=err.hint, fatal=err.fatal), parent)

    def _drain(self) -> None:
        """Handle every message waiting on the socket (up to DRAIN_BATCH, then yield to the loop)."""
        self._drain_scheduled = False
        if self.sock.closed:
            return
        self._draining = True
        try:
            for _ in range(DRAIN_BATCH):
                if not readable(self.sock):
                    return
                if self.curve:
                    frames, key = self._recv_with_key()
                else:
                    frames, key = recv_frames(self.sock, NOBLOCK), None
                try:
                    self._handle(frames[0], frames[1:], key)
                except Exception:
                    log.exception("unexpected failure handling a message from %r; message dropped", frames[0])
                phase = self._phase
                if phase is not None and phase.complete.done():
                    break  # the step can go on: let it run before reading on (a flood must not delay it)
            self._drain_scheduled = True
            asyncio.get_running_loop().call_soon(self._drain)
        finally:
            self._draining = False

    def _recv_with_key(self) -> tuple[list[bytes], str | None]:
        """Receive one message with the client key its connection authenticated with (the ZAP User-Id,
        pyzmq's default: the key's Z85 text), for the seat checks of `hello`. The key is read from the
        message itself, not remembered per routing id: a later connection may reuse an explicit one."""
        parts = self.sock.recv_multipart(NOBLOCK, copy=False)
        return [part.bytes for part in parts], parts[1].get("User-Id") if len(parts) > 1 else None

    def _handle(self, identity: bytes, frames: list[bytes], key: str | None) -> None:
        """One message from `identity`; `key` is its connection's CURVE client key (None without CURVE)."""
        seat = self._seat_of.get(identity)
        if seat is None and identity not in self._pulse_of and not self.gate.admit(identity):
            return  # over the unseated connections' rate: dropped before any decoding (arena.guard)
        try:
            message = self.codec.decode(frames)
        except ProtocolError as err:
            if seat is None and err.code == ErrorCode.MALFORMED:
                if self.gate.may_log(identity):
                    log.warning("dropped undecodable message from unknown peer %r: %s", identity, err)
                return
            try:
                parent = self.codec.decode_header(frames)
            except ProtocolError:
                parent = None
            self._reply_error(identity, err, parent)
            return
        kind = message.type
        if kind == "heartbeat":
            owner = self._heartbeat_owner(identity, message.header.session)
            if owner is not None:
                owner.last_seen = time.monotonic()
            # a stranger learns nothing about seats, not even whether the session holds one
            self._send(identity, Heartbeat(seat=owner.index if owner else None), message)
            return
        if kind == "hello":
            self._hello(identity, message, key)
            return
        if seat is None:
            self._reply_error(identity, ProtocolError(
                ErrorCode.NOT_SEATED, f"'{kind}' from a connection without a seat", hint="send hello first"),
                message)
            return
        seat.last_seen = time.monotonic()
        if kind in REPLIES:
            self._reply(seat, message)
        elif kind == "bye":
            self._seat_left(seat, f"said bye: {message.content.reason or 'no reason given'}")
        elif kind == "error":
            log.warning("%s reported: %s", seat.describe(), message.content.message)
            if message.content.fatal:
                self._seat_left(seat, f"reported a fatal error: {message.content.message}")
        else:
            self._reply_error(seat.identity, ProtocolError(
                ErrorCode.UNKNOWN_TYPE, f"the arena does not accept '{kind}' from agents",
                field="type", hint="agents send hello, act, pay, ready, heartbeat, error, bye"), message)

    def _heartbeat_owner(self, identity: bytes, session: str) -> Seat | None:
        """The seat whose liveness this heartbeat proves: it must carry the seat's session and come from
        the seat's own socket or its heartbeat socket, the first other socket to send one after `hello`
        (so heartbeats spoofed from elsewhere with a seated session keep nothing alive)."""
        known = self._pulse_of.get(identity) or self._seat_of.get(identity)
        if known is not None:
            return known if known.session == session else None
        seat = next((s for s in self.seats if s.session == session and s.seated), None)
        if seat is None:
            return None
        if seat.heartbeat_identity is None:
            self._tie_heartbeats(seat, identity)
            return seat
        if self.gate.may_log(identity):
            log.warning("ignored a heartbeat for %s from a socket that is not the seat's", seat.describe())
        return None

    def _tie_heartbeats(self, seat: Seat, identity: bytes) -> None:
        seat.heartbeat_identity = identity
        self._pulse_of[identity] = seat

    def _forget_sockets(self, seat: Seat) -> None:
        """Untie a seat's sockets (it left the lobby, or is taken again)."""
        self._seat_of.pop(seat.identity, None)
        self._pulse_of.pop(seat.heartbeat_identity, None)
        seat.heartbeat_identity = None

    def _seat_lost(self, seat: Seat, why: str) -> None:
        """A seat went silent: on a run that takes seats back, it is held for its agent to rejoin
        (`reconnect_grace_s`) while its deadline policy covers the gap; otherwise it has left."""
        grace = self.settings.reconnect_grace_s
        if not (self.started and grace > 0 and not seat.finished):
            self._seat_left(seat, why)
            return
        log.warning("%s %s; its seat is held %g s for it to rejoin", seat.describe(), why, grace)
        self._forget_sockets(seat)
        seat.identity = seat.session = None
        seat.away_since, seat.away_because = time.monotonic(), why
        if self._phase is not None:
            self._excuse_away(self._phase)

    def _excuse_away(self, phase: Phase) -> None:
        """Seats away under the `default` policy are not waited for: the default is played at once (and the
        miss counted); the episode barrier does not wait for them. `wait` and `abort` seats keep the phase
        open for their agent's return (until the step deadline, for `abort`)."""
        for index in sorted(phase.waiting):
            seat = self.seats[index]
            if seat.away and (seat.spec.deadline or self.settings.deadline) == "default":
                seat.deadline_misses += phase.kind != "ready"
                phase.answer(index, None)

    def _seat_left(self, seat: Seat, why: str) -> None:
        if seat.finished:
            log.info("%s left after its last episode: %s", seat.describe(), why)
        elif self.started:
            self.abort(ErrorCode.AGENT_LOST, f"{seat.describe()} {why}")
        else:
            log.info("%s left the lobby: %s", seat.describe(), why)
            self._forget_sockets(seat)
            seat.identity = seat.session = seat.token = None
            seat.name = seat.implementation = ""

    # ------------------------------------------------------------------ handshake
    def _hello(self, identity: bytes, message: Message, key: str | None) -> None:
        hello: Hello = message.content
        try:
            seat = self._assign_seat(identity, hello, key) if hello.seat_token is None else \
                self._held_seat(identity, hello, key)
            self._check_needs(hello)
        except ProtocolError as err:
            self._reply_error(identity, err, message)
            return
        self._forget_sockets(seat)  # a rejoining agent's old sockets count for nothing from now on
        seat.identity, seat.session, seat.name = identity, message.header.session, hello.name
        self._seat_of[identity] = seat
        if hello.heartbeat_identity is not None:
            self._tie_heartbeats(seat, hello.heartbeat_identity.encode())
        seat.implementation = hello.implementation
        seat.pays = "incentives" in hello.capabilities
        seat.talks = "messages" in hello.capabilities
        if hello.default_action is not None:
            seat.default_action = hello.default_action
        seat.last_seen = time.monotonic()
        if self.settings.reconnect_grace_s > 0 and seat.token is None:
            seat.token = secrets.token_hex(16)
        self._send(identity, self._welcome(seat), message)
        if hello.seat_token is not None:
            self._rejoined(seat)
            return
        log.info("%s seated", seat.describe())
        waiting = [s.spec.name for s in self.seats if not s.seated]
        self._broadcast(Lobby(filled=len(self.seats) - len(waiting), total=len(self.seats), waiting_for=waiting))
        if waiting:
            self.writer.lobby(self.settings, waiting, self.address)
        if not waiting:  # started now, not when _play wakes: a seat leaving in between aborts the run
            self.started = True
            self._lobby_full.set()

    def _rejoined(self, seat: Seat) -> None:
        """The seat's agent is back: it is sent again what the open phase still waits for from it."""
        away = f" after {time.monotonic() - seat.away_since:.1f} s away" if seat.away else ""
        seat.away_since, seat.rejoins = None, seat.rejoins + 1
        log.warning("%s rejoined its seat%s", seat.describe(), away)
        phase = self._phase
        if phase is not None and seat.index in phase.waiting and seat.index in self._pending:
            self._send_frames(seat.identity, self.codec.encode_fields(self._pending[seat.index]))

    def _held_seat(self, identity: bytes, hello: Hello, key: str | None) -> Seat:
        """The seat a `hello` with a `seat_token` rejoins (SPEC §9.1); the token is compared in constant
        time and never written anywhere. On a CURVE run the seat's key is needed too (SPEC §21.5): a
        leaked token alone, or with another seat's key, takes no seat."""
        if self.settings.reconnect_grace_s <= 0:
            raise ProtocolError(ErrorCode.BAD_SEAT_TOKEN, "this run takes no seat back (reconnect_grace_s = 0)",
                                field="seat_token", fatal=True, hint="join without a seat token, or set "
                                "[arena] reconnect_grace_s > 0 in the run config")
        if hello.seat is None or not 0 <= hello.seat < len(self.seats):
            raise ProtocolError(ErrorCode.NO_SEAT, "a seat token rejoins the seat it was given for: send that "
                                f"seat's index (0..{len(self.seats) - 1}) as `seat`", field="seat", fatal=True)
        seat = self.seats[hello.seat]
        self._check_key(seat, key)  # first: another seat's key learns nothing, not even whether the token is right
        if seat.token is None or not secrets.compare_digest(seat.token.encode(), hello.seat_token.encode()):
            raise ProtocolError(ErrorCode.BAD_SEAT_TOKEN, f"wrong seat token for seat {seat.index} "
                                f"('{seat.spec.name}')", field="seat_token", fatal=True,
                                hint="only the agent that was given the seat may rejoin it, with the `seat_token` "
                                "of its welcome (the Python agent keeps it in OUT/seat.token)")
        if seat.finished:
            raise ProtocolError(ErrorCode.NO_SEAT, f"seat {seat.index} has played its last episode", field="seat",
                                fatal=True)
        if seat.identity == identity:
            raise ProtocolError(ErrorCode.SEAT_TAKEN, "this connection already holds that seat", fatal=True)
        if ("incentives" in hello.capabilities, "messages" in hello.capabilities) != (seat.pays, seat.talks):
            raise ProtocolError(ErrorCode.CAPABILITY_REFUSED, f"seat {seat.index} was joined with capabilities "
                                f"{[c for c, on in (('incentives', seat.pays), ('messages', seat.talks)) if on]}; "
                                "rejoin with the same", field="capabilities", fatal=True)
        return seat

    def _assign_seat(self, identity: bytes, hello: Hello, key: str | None) -> Seat:
        if self.started:
            wanted = self.seats[hello.seat] if hello.seat is not None and 0 <= hello.seat < len(self.seats) else \
                next((s for s in self.seats if s.spec.name == hello.name), None)
            if wanted is not None and self.settings.reconnect_grace_s > 0 and not wanted.finished:
                raise ProtocolError(ErrorCode.BAD_SEAT_TOKEN, f"seat {wanted.index} ('{wanted.spec.name}') is held "
                                    "for the agent it was given to; rejoining it takes its seat token",
                                    field="seat_token", fatal=True, hint="send the `seat_token` of the seat's "
                                    "welcome (arena agent --seat-token-file OUT/seat.token)")
            raise ProtocolError(ErrorCode.NO_SEAT, "the run has already started", fatal=True,
                                hint="start a new run to join")
        if any(s.identity == identity for s in self.seats):
            raise ProtocolError(ErrorCode.SEAT_TAKEN, "this connection already holds a seat", fatal=True)
        if hello.seat is not None:
            if not 0 <= hello.seat < len(self.seats):
                raise ProtocolError(ErrorCode.NO_SEAT, f"seat {hello.seat} does not exist; this run has seats "
                                    f"0..{len(self.seats) - 1}", field="seat", fatal=True)
            seat = self.seats[hello.seat]
        else:
            named = [s for s in self.seats if s.spec.name == hello.name]
            if not named and self.curve:  # the key says which seat it was issued for
                named = [s for s in self.seats if self.client_keys[s.index] == key]
            free = [s for s in self.seats if not s.seated]
            seat = named[0] if named else (free[0] if free else self.seats[0])
        self._check_key(seat, key)
        if seat.seated:
            raise ProtocolError(ErrorCode.SEAT_TAKEN, f"seat {seat.index} ('{seat.spec.name}') is already "
                                f"held by '{seat.name}'", field="seat", fatal=True,
                                hint=f"free seats: {[s.index for s in self.seats if not s.seated]}")
        actions = self.game.action_spaces[seat.index]
        if hello.default_action is not None and not 0 <= hello.default_action < actions.n:
            raise ProtocolError(ErrorCode.INVALID_CONTENT, f"default_action {hello.default_action} is outside "
                                f"Discrete({actions.n}) of seat {seat.index}", field="default_action", fatal=True,
                                hint=f"use 0..{actions.n - 1}: {', '.join(self.game.action_names[seat.index])}")
        if "incentives" in hello.capabilities and self.settings.rmax <= 0:
            raise ProtocolError(ErrorCode.CAPABILITY_REFUSED, f"agent '{hello.name}' wants to pay incentives "
                                "but this run has rmax = 0", field="capabilities", fatal=True,
                                hint="set `rmax = 2.0` (or another positive cap) in the [arena] table")
        if "messages" in hello.capabilities and self.settings.message_vocab == 0:
            raise ProtocolError(ErrorCode.CAPABILITY_REFUSED, f"agent '{hello.name}' wants to talk but this "
                                "run has no talk channel", field="capabilities", fatal=True,
                                hint="set `message_vocab = 8` (or another size) in the [arena] table")
        return seat

    def _check_key(self, seat: Seat, key: str | None) -> None:
        """On a CURVE run, a seat is taken (or taken back) only with the client key issued for it."""
        if not self.curve or key == self.client_keys[seat.index]:
            return
        holder = next((s for s in self.seats if self.client_keys[s.index] == key), None)
        whose = f"seat {holder.index}'s ('{holder.spec.name}')" if holder else "not issued for any seat"
        raise ProtocolError(ErrorCode.WRONG_KEY, f"seat {seat.index} ('{seat.spec.name}') takes only the CURVE "
                            f"client key issued for it; this connection's key is {whose}", field="seat",
                            fatal=True, hint="join with that seat's key file (--client-key NAME.key_secret), "
                            "or ask for the seat your key was issued for")

    def _check_needs(self, hello: Hello) -> None:
        missing = [need for need in hello.needs if need not in self.settings.disclose]
        if missing:
            asked = set(self.settings.disclose) | set(hello.needs)
            wanted = [c for c in DISCLOSURES if c in asked] + sorted(asked - set(DISCLOSURES))
            shown = ", ".join(self.settings.disclose) or "nothing"
            raise ProtocolError(
                ErrorCode.DISCLOSURE_REFUSED,
                f"agent '{hello.name}' ({hello.implementation}) needs others' {', '.join(missing)}; "
                f"this run discloses {shown}", field="needs", fatal=True,
                hint=f"set `disclose = {json.dumps(wanted)}` in the [arena] table of the run config")

    def _own_observation_space(self, seat: Seat) -> gym.Space:
        space = self.game.observation_spaces[seat.index]
        if not (self.game.obs_includes_incentives_given and seat.pays):
            return space
        extra = self.game.n_agents - 1
        low = np.concatenate([space.low, np.zeros(extra, np.float32)])
        high = np.concatenate([space.high, np.full(extra, np.inf, np.float32)])
        return gym.spaces.Box(low, high, dtype=np.float32)

    def _describe_observation(self, space: gym.Space) -> dict[str, Any]:
        """An observation space's description, with the game's axis order when it is an image."""
        image = isinstance(space, gym.spaces.Box) and len(space.shape) == 3
        return describe_space(space, self.game.observation_layout if image else None)

    def _welcome(self, seat: Seat) -> Welcome:
        s = self.settings
        return Welcome(
            run_id=self.run_id, seat=seat.index, n_agents=len(self.seats), names=self.names, game=s.game,
            observation_space=self._describe_observation(self._own_observation_space(seat)),
            observation_spaces=[self._describe_observation(sp) for sp in self.game.observation_spaces],
            action_spaces=[describe_space(sp) for sp in self.game.action_spaces],
            action_names=self.game.action_names, episode_length=self.game.max_steps,
            batch_size=s.batch_size, episodes=s.total_episodes, rmax=s.rmax, pays=seat.pays,
            payment_cost=s.payment_cost, message_vocab=s.message_vocab,
            disclose=s.disclose, seed=s.seed * 1000 + seat.index + 1, options=seat.spec.options,
            noop_action=self.game.noop_action, seat_token=seat.token,
            deadlines=Deadlines(policy=seat.spec.deadline or s.deadline, step_timeout_s=s.step_timeout_s,
                                heartbeat_interval_s=s.heartbeat_interval_s,
                                heartbeat_timeout_s=s.heartbeat_timeout_s))

    # ------------------------------------------------------------------ replies and deadlines
    def _reply(self, seat: Seat, message: Message) -> None:
        content, phase = message.content, self._phase
        if phase is None or phase.kind != message.type or seat.index not in phase.waiting:
            self._reply_error(seat.identity, ProtocolError(
                ErrorCode.OUT_OF_PHASE, f"no '{message.type}' expected from {seat.describe()} now "
                "(late after a deadline, or sent twice)", hint="answer each observe/pay_request/"
                "episode_end exactly once"), message)
            return
        step = getattr(content, "t", phase.t)
        if content.episode != phase.episode or step != phase.t:
            self._reply_error(seat.identity, ProtocolError(
                ErrorCode.OUT_OF_PHASE, f"'{message.type}' is for episode {content.episode} step {step}, the "
                f"arena is at episode {phase.episode} step {phase.t}", field="t"), message)
            return
        try:
            if message.type == "act":
                self._check_act(seat, content)
            elif message.type == "pay":
                content.amounts = self.ledger.validate(seat.index, content.amounts)
        except ProtocolError as err:
            self._reply_error(seat.identity, err, message)
            if message.type == "pay":  # a refused payment counts as paying nothing; the run goes on
                self.ledger.refused[seat.index] += 1
                phase.answer(seat.index, None)
            return
        if message.type == "ready" and content.episode == self.settings.total_episodes - 1:
            seat.finished = True
        phase.answer(seat.index, content)

    def _check_act(self, seat: Seat, act: Act) -> None:
        space = self.game.action_spaces[seat.index]
        actions, batch = act.actions, self.settings.batch_size
        if not isinstance(actions, np.ndarray) or actions.shape != (batch,):
            shape = list(actions.shape) if isinstance(actions, np.ndarray) else type(actions).__name__
            raise ProtocolError(ErrorCode.INVALID_ACTION, f"actions has shape {shape}, expected [{batch}] "
                                "(one action per copy)", field="actions")
        if actions.dtype.kind not in "iu":
            raise ProtocolError(ErrorCode.INVALID_ACTION, f"actions has dtype {actions.dtype}, expected an "
                                "integer type", field="actions", hint="send int64")
        if actions.size and (actions.min() < 0 or actions.max() >= space.n):  # two reductions, no mask
            b = int(np.flatnonzero((actions < 0) | (actions >= space.n))[0])
            raise ProtocolError(ErrorCode.INVALID_ACTION, f"actions[{b}] = {actions[b]} is outside "
                                f"Discrete({space.n})", field=f"actions[{b}]",
                                hint=f"actions are 0..{space.n - 1}: {', '.join(self.game.action_names[seat.index])}")
        if act.message is not None:
            vocab = self.settings.message_vocab
            ok = (seat.talks and isinstance(act.message, np.ndarray) and act.message.shape == (batch,)
                  and act.message.dtype.kind in "iu" and ((act.message >= 0) & (act.message < vocab)).all())
            if not ok:
                raise ProtocolError(ErrorCode.INVALID_ACTION, f"message must be an integer array [{batch}] of "
                                    f"symbols in 0..{vocab - 1}, from an agent with the 'messages' capability",
                                    field="message")

    def _expect(self, seats: list[Seat], kind: str, episode: int, t: int) -> Phase:
        """Open the phase in which each of `seats` owes one `kind` reply (before sending what asks for it)."""
        self._phase = Phase(kind, episode, t, {seat.index for seat in seats},
                            asyncio.get_running_loop().create_future())
        return self._phase

    async def _collect(self, phase: Phase, timeout: float | None) -> dict[int, Any]:
        """Await one reply per seat, applying each seat's deadline policy to the late ones; returns the
        replies by seat index (None for a default after a missed deadline or a refused payment)."""
        loop = asyncio.get_running_loop()
        self._excuse_away(phase)
        try:
            if phase.waiting:
                timer = None if timeout is None else loop.call_later(
                    timeout, lambda: phase.complete.done() or phase.complete.set_result(None))
                try:
                    await phase.complete
                finally:
                    if timer is not None:
                        timer.cancel()
            for index in sorted(phase.waiting):
                seat = self.seats[index]
                policy = seat.spec.deadline or self.settings.deadline
                if policy == "wait":
                    continue
                if policy == "abort":
                    raise RunAborted(ErrorCode.DEADLINE_MISSED, f"{seat.describe()} did not answer '{phase.kind}' "
                                     f"within {timeout} s (deadline policy 'abort'); raise [arena] step_timeout_s "
                                     "or set deadline = 'default' or 'wait'")
                seat.deadline_misses += 1
                phase.answer(index, None)
                self._send(seat.identity, Error(
                    code=ErrorCode.DEADLINE_MISSED.value, field=phase.kind,
                    message=f"no {phase.kind} within {timeout} s; the default was used (miss {seat.deadline_misses})"))
            if phase.waiting:  # seats whose policy is to wait
                phase.complete = loop.create_future()
                await phase.complete
            return phase.replies
        finally:
            self._phase = None

    async def _watchdog(self) -> None:
        period = min(0.25, self.settings.heartbeat_interval_s / 2)
        while True:
            await asyncio.sleep(period)
            now = time.monotonic()
            grace = self.settings.reconnect_grace_s
            for seat in self.seats:
                silence = now - seat.last_seen
                if seat.seated and silence > self.settings.heartbeat_timeout_s:
                    self._seat_lost(seat, f"sent nothing for {silence:.1f} s (heartbeat timeout "
                                          f"{self.settings.heartbeat_timeout_s} s): the process is gone or hung")
                elif seat.away and now - seat.away_since > grace:
                    self.abort(ErrorCode.AGENT_LOST, f"{seat.describe()} {seat.away_because}, and did not rejoin "
                                                     f"within reconnect_grace_s = {grace:g} s")

    # ------------------------------------------------------------------ the run
    async def _play(self) -> None:
        if not self._lobby_full.is_set():
            log.info("lobby: waiting for %s", ", ".join(s.spec.name for s in self.seats if not s.seated))
        await self._lobby_full.wait()
        self.started = True
        self.writer.start(self.settings, self.seats_config(), self.run_id, self.address, self.first_episode,
                          self.resumed)
        for episode, evaluate in enumerate(self.settings.schedule()):
            if episode >= self.first_episode:
                await self._play_episode(episode, evaluate)

    def seats_config(self) -> list[dict[str, Any]]:
        return [{"seat": s.index, **s.spec.model_dump(), "joined_as": s.name, "implementation": s.implementation,
                 "pays": s.pays} for s in self.seats]

    async def _play_episode(self, episode: int, evaluate: bool) -> None:
        game, batch, n = self.game, self.settings.batch_size, self.game.n_agents
        started = time.perf_counter()
        seeds = np.random.SeedSequence([self.settings.seed, episode]).generate_state(batch, np.uint64)
        obs = game.reset(seeds)
        self.ledger.start_episode()
        payers = [s for s in self.seats if s.pays]
        before_start = np.full((batch, n), -1 if game.noop_action is None else game.noop_action, np.int64)
        memory = StepMemory(actions=before_start, played=before_start, extrinsic=np.zeros((batch, n), np.float32),
                            incentives=np.zeros((batch, n), np.float32), total=np.zeros((batch, n), np.float32),
                            payments=np.zeros((batch, n, n), np.float32), messages=np.full((batch, n), -1, np.int64))
        no_credit, no_payments = np.zeros((batch, n), np.float32), np.zeros((batch, n, n), np.float32)
        active = np.ones(batch, bool)
        terminated = np.zeros(batch, bool)
        extrinsic_sum = np.zeros((batch, n))
        received_sum = np.zeros((batch, n))
        given_sum = np.zeros((batch, n))
        length = np.zeros(batch, np.int64)
        event_sums: dict[str, np.ndarray] = {}
        timeout = self.settings.step_timeout_s
        misses_before = [s.deadline_misses for s in self.seats]
        for t in range(game.max_steps):
            phase = self._expect(self.seats, "act", episode, t)
            for seat, observe in zip(self.seats, self._observations(episode, t, obs, memory, active, terminated,
                                                                    timeout, evaluate)):
                self._ask(seat, observe)
            acts = await self._collect(phase, timeout)
            actions = np.stack([acts[i].actions.astype(np.int64) if acts[i] is not None else
                                np.full(batch, self.seats[i].default_action, np.int64) for i in range(n)], 1)
            messages = np.stack([acts[i].message.astype(np.int64) if acts[i] is not None and acts[i].message
                                 is not None else np.full(batch, -1, np.int64) for i in range(n)], 1)
            public = game.public_actions(actions)
            if payers:
                payments = np.zeros((batch, n, n))
                phase = self._expect(payers, "pay", episode, t)
                request = PayRequest(episode=episode, t=t, joint_action=public, deadline_s=timeout)
                for seat in payers:
                    self._ask(seat, request.__dict__)
                for index, pay in (await self._collect(phase, timeout)).items():
                    if pay is not None:
                        payments[:, index, :] = pay.amounts
            result = game.step(actions)
            if self.spectators.wants_frames:
                self.spectators.publish("frame", {"episode": episode, "t": t + 1, "text": game.render("ansi", 0)})
            mask = active[:, None]
            extrinsic = (result.rewards * mask).astype(np.float32, copy=False)
            extrinsic_sum += extrinsic
            length += active
            if payers:
                booked = self.ledger.book(payments, actions, active)
                credited, given = booked.sum(axis=1), booked.sum(axis=2)
                total = (extrinsic + credited - self.settings.payment_cost * given).astype(np.float32)
                received_sum += credited
                given_sum += given
                credited, booked = credited.astype(np.float32), booked.astype(np.float32)
            else:  # nobody pays: the ledger has nothing to book and the reward is the game's
                credited, booked, total = no_credit, no_payments, extrinsic
            for key, value in result.events.items():
                event_sums[key] = event_sums.get(key, 0.0) + value.astype(np.float64) * mask
            memory = StepMemory(public, actions, extrinsic, credited, total, booked, messages)
            obs = result.obs
            terminated |= result.terminated & active
            active = active & ~(result.terminated | result.truncated)
            if not active.any():
                break
        summary = self._summary(episode, extrinsic_sum, received_sum, given_sum, length, event_sums,
                                time.perf_counter() - started)
        warmup = not evaluate and self.trained < self.settings.warmup_episodes
        summary.update(evaluate=evaluate, warmup=warmup, trained=self.trained)
        summary["deadline_misses"] = {s.spec.name: s.deadline_misses - before
                                      for s, before in zip(self.seats, misses_before)}
        ledger_record = {**self.ledger.episode_record(episode, self.names), "evaluate": evaluate,
                         "trained": self.trained}
        last = episode == self.settings.total_episodes - 1
        phase = self._expect(self.seats, "ready", episode, 0)
        finals = self._observations(episode, int(length.max()), obs, memory, active, terminated, None, evaluate)
        for seat, final in zip(self.seats, finals):
            self._ask(seat, EpisodeEnd(episode=episode, final=final, last=last, evaluate=evaluate, warmup=warmup,
                                       summary=self._summary_for(seat, summary)).__dict__)
        self.writer.episode(summary, ledger_record, self.settings.total_episodes)
        # written, so finished: counted now, even if a seat dies in the barrier below (one truth with the file)
        self.episodes_done = episode + 1
        self.trained += not evaluate
        await self._collect(phase, None)

    def _observations(self, episode: int, t: int, obs: list[np.ndarray], memory: StepMemory, active: np.ndarray,
                      terminated: np.ndarray, deadline: float | None, evaluate: bool) -> list[dict[str, Any]]:
        """One `observe` per seat, as the fields of `Observe` without the model (the hot path of a run:
        these are the arena's own messages, built from checked state; `Codec.encode_fields` sends them).
        What all seats share is computed once; fields that are not disclosed are left out."""
        game, disclose = self.game, self.settings.disclose
        visibility = game.visibility() if "visibility" in disclose else None
        masks = game.action_masks()
        state = game.state() if "state" in disclose else None
        given = self.ledger.given_per_copy() if game.obs_includes_incentives_given else None
        messages = []
        for seat in self.seats:
            i = seat.index
            own = obs[i]
            if given is not None and seat.pays:
                others = [j for j in range(game.n_agents) if j != i]
                own = np.concatenate([own.reshape(len(own), -1).astype(np.float32),
                                      given[:, i, others].astype(np.float32)], axis=1)
            fields = {
                "type": "observe", "episode": episode, "t": t, "obs": own, "reward": memory.total[:, i],
                "extrinsic": memory.extrinsic[:, i], "incentives": memory.incentives[:, i], "active": active,
                "played": memory.played[:, i], "visible": visibility[:, i, :] if visibility is not None else None,
                "terminated": terminated, "action_mask": masks[i] if masks is not None else None,
                "actions": memory.actions if "actions" in disclose else None,
                "rewards": memory.extrinsic if "rewards" in disclose else None,
                "observations": obs if "observations" in disclose else None,
                "payments": memory.payments if "payments" in disclose else None,
                "messages": memory.messages if "messages" in disclose else None,
                "state": state, "deadline_s": deadline, "evaluate": evaluate}
            messages.append({key: value for key, value in fields.items() if value is not None})
        return messages

    def _summary_for(self, seat: Seat, summary: dict[str, Any]) -> dict[str, Any]:
        """What `seat` may know of the episode: its own numbers, and others' only through the channels the
        run discloses (returns with `rewards`, incentives with `payments`, game events with `state`).
        The run directory keeps the full record."""
        disclose, own = self.settings.disclose, self.names[seat.index]

        def visible(values: dict[str, Any], channel: str) -> dict[str, Any]:
            return dict(values) if channel in disclose else {own: values[own]}

        shown = {key: value for key, value in summary.items()
                 if key not in ("collective_return", "collective_per_step") or "rewards" in disclose}
        shown.update(returns=visible(summary["returns"], "rewards"),
                     incentives_received=visible(summary["incentives_received"], "payments"),
                     incentives_given=visible(summary["incentives_given"], "payments"),
                     events={key: visible(values, "state") for key, values in summary["events"].items()},
                     deadline_misses={own: summary["deadline_misses"][own]})
        return shown

    def _summary(self, episode: int, extrinsic: np.ndarray, received: np.ndarray, given: np.ndarray,
                 length: np.ndarray, events: dict[str, np.ndarray], wall: float) -> dict[str, Any]:
        """Per-episode numbers, each a mean over the B copies, taken in float64 (a float32 mean turns 0.1
        into 0.100000001)."""
        def per_agent(values: np.ndarray) -> dict[str, float]:
            return dict(zip(self.names, values.astype(np.float64).mean(axis=0).round(9).tolist()))

        collective = extrinsic.sum(axis=1)
        return {
            "episode": episode,
            "steps": float(length.mean()),
            "returns": per_agent(extrinsic),
            "incentives_received": per_agent(received),
            "incentives_given": per_agent(given),
            "collective_return": float(collective.mean().round(9)),
            "collective_per_step": float((collective / np.maximum(length, 1)).mean().round(9)),
            "events": {key: per_agent(value) for key, value in events.items()},
            "wall_time_s": round(wall, 6),
            "batch_size": self.settings.batch_size,
        }
