"""The agent runtime: owns the sockets, the handshake, heartbeats and the trajectory buffer.

An algorithm never touches ZeroMQ: the runtime decodes each `observe` into a `StepView`, asks the
algorithm for actions (and payments), and at each episode end hands it the aligned `Trajectory`.
Heartbeats go out from a thread on a socket of their own, so a long learning step between episodes
does not make the agent look dead to the arena.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import zmq
from zmq.utils.monitor import recv_monitor_message

from agents.algorithm import Algorithm, RunFacts, SeatInfo, StepView, Trajectory
from agents.preflight import option_problems, run_problems
from protocols.codec import Codec, Message
from protocols.curve import ClientKeys
from protocols.errors import ProtocolError
from protocols.messages import Bye, EpisodeEnd, Heartbeat, Hello, Observe, Pay, PayRequest, Ready, Welcome
from protocols.spaces import layout_of, space_from_description
from protocols.telemetry import MqttTarget, Telemetry
from protocols.transport import recv_frames, send_frames

log = logging.getLogger("agent")
#: where an agent with an out directory keeps the token that rejoins its seat (`--seat-token-file`)
SEAT_TOKEN_FILE = "seat.token"
#: what the main socket's monitor reports in a CURVE run: how the handshake ended
HANDSHAKE_EVENTS = (zmq.EVENT_HANDSHAKE_FAILED_AUTH | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
                    | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL | zmq.EVENT_HANDSHAKE_SUCCEEDED)


def checkpoint_path(out_dir: Path, trained: int | None) -> Path:
    """Where an agent writing to `out_dir` checkpoints after `trained` training episodes (None: at the end
    of the run); `arena launch --resume` finds them here."""
    return out_dir / "checkpoints" / ("final.pt" if trained is None else f"episode_{trained}.pt")


def latest_checkpoint(out_dir: Path) -> Path | None:
    """The checkpoint after the most training episodes in `out_dir` (None: none yet): what an agent restarted
    mid-run (`arena launch` with reconnect_grace_s > 0) restores."""
    numbered = {int(number): path for path in (out_dir / "checkpoints").glob("episode_*.pt")
                if (number := path.stem.removeprefix("episode_")).isdigit()}
    return numbered[max(numbered)] if numbered else None


class AgentError(RuntimeError):
    """The run cannot go on for this agent; the message says why and what to do."""


class Heartbeats(threading.Thread):
    """Sends a heartbeat every interval and notices when the arena stops answering."""

    def __init__(self, context: zmq.Context, address: str, session: str, key: bytes | None, identity: bytes,
                 curve: ClientKeys | None = None) -> None:
        super().__init__(daemon=True, name="heartbeats")
        self.identity = identity  # declared in hello, so the arena ties this socket to the seat (SPEC §14)
        self.socket = context.socket(zmq.DEALER)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.setsockopt(zmq.IDENTITY, identity)
        if curve is not None:
            curve.apply(self.socket)
        self.socket.connect(address)
        self.codec = Codec(session=session, key=key)
        self.interval = 0.5
        self.timeout: float | None = None
        self.seat: int | None = None
        self.last_answer = time.monotonic()
        self._halt = threading.Event()

    def run(self) -> None:
        try:
            while not self._halt.is_set():
                self.socket.send_multipart(self.codec.encode(Heartbeat(seat=self.seat)))
                deadline = time.monotonic() + self.interval
                while (left := deadline - time.monotonic()) > 0 and not self._halt.is_set():
                    if self.socket.poll(int(left * 1000) + 1):
                        self.socket.recv_multipart()
                        self.last_answer = time.monotonic()
        except zmq.ZMQError:
            pass
        finally:
            self.socket.close(0)

    def arena_silent_for(self) -> float:
        return time.monotonic() - self.last_answer

    def stop(self) -> None:
        self._halt.set()


class TrajectoryBuffer:
    """Collects one batched episode step by step and aligns it on t (see agents.algorithm)."""

    def __init__(self) -> None:
        self.steps: list[dict[str, Any]] = []
        #: the step the episode's first view was of: 0, unless the agent (re)joined mid-episode
        self.first_t = 0

    @property
    def whole(self) -> bool:
        """Whether the buffer holds the episode from its first step (something to learn from)."""
        return bool(self.steps) and self.first_t == 0

    def clear(self) -> None:
        self.steps = []

    def observe(self, view: StepView) -> None:
        if self.steps:  # the previous step's outcome arrives with this view
            previous = self.steps[-1]
            if view.played is not None:  # what the arena applied: the default action after a missed deadline
                previous["actions"] = view.played
            previous.update(rewards=view.reward, extrinsic=view.extrinsic, incentives=view.incentives,
                            terminated=view.terminated,
                            joint_actions=view.others_actions, joint_rewards=view.others_rewards,
                            payments=view.payments, joint_messages=view.messages)
        else:
            self.first_t = view.t
        self.steps.append({"obs": view.obs, "valid": view.active, "joint_obs": view.others_observations,
                           "state": view.state, "visibility": view.visibility, "action_masks": view.action_mask})

    def acted(self, actions: np.ndarray) -> None:
        self.steps[-1]["actions"] = actions

    def spoke(self, symbols: np.ndarray) -> None:
        self.steps[-1]["messages"] = symbols

    def paid(self, amounts: np.ndarray) -> None:
        self.steps[-1]["paid"] = amounts

    def finish(self, final: StepView) -> Trajectory:
        """Close the episode with the view after its last step and return it as arrays."""
        self.observe(final)
        closing, steps = self.steps[-1], self.steps[:-1]
        self.steps = []

        def stack(key: str, with_final: bool = False) -> np.ndarray | None:
            rows = [s.get(key) for s in steps] + ([closing.get(key)] if with_final else [])
            return None if any(r is None for r in rows) else np.stack(rows)

        joint_obs = None
        if closing["joint_obs"] is not None:
            per_step = [s["joint_obs"] for s in [*steps, closing]]
            joint_obs = [np.stack([step[j] for step in per_step]) for j in range(len(per_step[0]))]
        return Trajectory(
            obs=stack("obs", True), actions=stack("actions"), rewards=stack("rewards"),
            extrinsic=stack("extrinsic"), incentives=stack("incentives"), valid=stack("valid"),
            terminated=stack("terminated"),
            paid=stack("paid"), joint_actions=stack("joint_actions"), joint_rewards=stack("joint_rewards"),
            joint_obs=joint_obs, payments=stack("payments"), state=stack("state", True),
            visibility=stack("visibility", True), action_masks=stack("action_masks"),
            messages=stack("messages"), joint_messages=stack("joint_messages"))


def view_from(observe: Observe) -> StepView:
    return StepView(t=observe.t, obs=observe.obs, reward=observe.reward, extrinsic=observe.extrinsic,
                    incentives=observe.incentives, active=observe.active, terminated=observe.terminated,
                    played=observe.played,
                    action_mask=observe.action_mask,
                    others_actions=observe.actions, others_rewards=observe.rewards,
                    others_observations=observe.observations, payments=observe.payments,
                    messages=observe.messages, state=observe.state, visibility=observe.visible,
                    evaluate=observe.evaluate, deadline_s=observe.deadline_s)


class AgentRuntime:
    """Connects one algorithm to an arena and runs it until the arena says bye."""

    def __init__(self, algorithm: Algorithm, address: str, *, name: str, implementation: str,
                 seat: int | None = None, key: bytes | None = None, device: str = "cpu",
                 seed: int | None = None, options: dict[str, Any] | None = None, out_dir: Path | None = None,
                 checkpoint_every: int = 0, resume: Path | None = None, connect_timeout_s: float = 30.0,
                 mqtt: str | None = None, seat_token: str | None = None, curve: ClientKeys | None = None) -> None:
        self.algorithm = algorithm
        self.address = address
        self.name = name
        self.implementation = implementation
        self.seat = seat
        self.device = device
        self.seed = seed
        self.options = options or {}
        #: whether the algorithm sends cheap talk with its actions (declared in hello as "messages")
        self.talks = type(algorithm).talks_with(self.options)
        self.out_dir = out_dir
        self.checkpoint_every = checkpoint_every
        self.resume = resume
        self.connect_timeout_s = connect_timeout_s
        #: the token of a seat to rejoin (runs with reconnect_grace_s > 0), never logged
        self.seat_token = seat_token
        self.context = zmq.Context()
        self.socket = self.context.socket(zmq.DEALER)
        self.socket.setsockopt(zmq.LINGER, 1000)
        routing_id = f"{name}-{uuid.uuid4().hex[:8]}"
        self.socket.setsockopt(zmq.IDENTITY, routing_id.encode())
        #: CURVE runs: the handshake's outcome, so a refused key is reported instead of waited out
        self.monitor: zmq.Socket | None = None
        if curve is not None:
            curve.apply(self.socket)
            self.monitor = self.socket.get_monitor_socket(HANDSHAKE_EVENTS)
        self.poller = zmq.Poller()  # one for the run: `socket.poll` builds and registers a new one per call
        self.poller.register(self.socket, zmq.POLLIN)
        self.codec = Codec(key=key)
        self.heartbeats = Heartbeats(self.context, address, self.codec.session, key,
                                     f"{routing_id}-hb-{uuid.uuid4().hex[:8]}".encode(), curve)
        self.buffer = TrajectoryBuffer()
        self.info: SeatInfo | None = None
        self._view: StepView | None = None
        self._metrics = None
        self._arena_ended = False
        self._stop_reason: str | None = None
        #: where to publish presence and learner metrics (SPEC §19), once `welcome` names the run
        self.mqtt = MqttTarget.parse(mqtt) if mqtt else None
        self.telemetry: Telemetry | None = None
        self._presence = self._metrics_topic = ""
        self.trained = 0

    # ------------------------------------------------------------------ transport
    def _send(self, content: Any, parent: Message | None = None) -> None:
        send_frames(self.socket, self.codec.encode(content, parent.header if parent else None))

    def _receive(self, timeout_s: float | None) -> Message:
        """Next message from the arena; fails if the arena goes quiet past its heartbeat timeout."""
        waited = 0.0
        while True:
            if self.poller.poll(250):
                try:
                    return self.codec.decode(recv_frames(self.socket))
                except ProtocolError as err:  # tolerant reader: skip what this version cannot read
                    log.warning("ignored a message from the arena: %s", err)
                    continue
            if self._stop_reason is not None:
                raise AgentError(self._stop_reason)
            if self.monitor is not None and self.info is None:
                self._check_handshake()
            waited += 0.25
            if timeout_s is not None and waited >= timeout_s:
                raise AgentError(f"no answer from the arena at {self.address} within {timeout_s:.0f} s: is it "
                                 "running? (`arena serve RUN.toml` prints the address to join)")
            limit = self.info and self.heartbeats.timeout
            if limit and self.heartbeats.arena_silent_for() > limit:
                self._arena_ended = True
                raise AgentError(f"the arena at {self.address} stopped answering heartbeats for "
                                 f"{self.heartbeats.arena_silent_for():.1f} s")

    def _check_handshake(self) -> None:
        """Raise if the arena refused this agent's CURVE handshake (its key, or the arena's key it used)."""
        while self.monitor.poll(0):
            event = recv_monitor_message(self.monitor)
            if event["event"] == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
                raise AgentError(f"the arena at {self.address} refused this agent's CURVE client key (ZAP status "
                                 f"{event['value']}): it was issued for no seat of this run. Join with the key file "
                                 "issued for your seat (--client-key NAME.key_secret), or send your public key "
                                 "(NAME.key) to the arena's operator for that seat's client_key")
            if event["event"] in (zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL, zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL):
                raise AgentError(f"the CURVE handshake with {self.address} failed: the arena's public key this "
                                 "agent used is not the run's (take curve_server_key from the run's "
                                 "connection.json), or the arena does not use CURVE")

    def _start_telemetry(self, run_id: str, seat_name: str) -> None:
        """Presence (retained, with a last will so a dead process shows as gone) and metrics topics."""
        self._presence = self.mqtt.run_topic(run_id, "agents", seat_name, "presence")
        self._metrics_topic = self.mqtt.run_topic(run_id, "agents", seat_name, "metrics")
        gone = {"present": False, "reason": "lost: the broker stopped hearing from the agent process"}
        self.telemetry = Telemetry(self.mqtt, client_id=f"agent-{run_id}-{self.info.seat}",
                                   will=(self._presence, gone))
        self.telemetry.publish(self._presence, {"present": True, "name": self.name, "seat": self.info.seat,
                                                "kind": self.implementation, "device": self.device}, retain=True)

    def _stop_telemetry(self, reason: str) -> None:
        if self.telemetry is not None:
            self.telemetry.publish(self._presence, {"present": False, "reason": reason}, retain=True)
            self.telemetry.close()

    # ------------------------------------------------------------------ lifecycle
    def request_stop(self, reason: str) -> None:
        """Leave the run from another thread: the loop says bye with `reason` within 250 ms."""
        self._stop_reason = reason

    def run(self) -> int:
        """Play until the arena ends the run. Returns 0 when the run completed."""
        self.socket.connect(self.address)
        self.heartbeats.start()
        try:
            self._handshake()
            code = self._loop()
            self._stop_telemetry("left: the run ended")
            return code
        except BaseException as exc:
            if self.info is not None and not self._arena_ended:  # seated: let the arena know now, not by timeout
                with contextlib.suppress(Exception):  # never hide the failure itself
                    self._send(Bye(reason=f"{self.name} stopped: {exc or type(exc).__name__}", ok=False))
            self._stop_telemetry(f"left: {exc or type(exc).__name__}")
            raise
        finally:
            self.heartbeats.stop()
            self.algorithm.close()
            if self.monitor is not None:
                self.socket.disable_monitor()
                self.monitor.close(0)
            self.socket.close()
            self.heartbeats.join(timeout=2)
            self.context.term()
            if self._metrics is not None:
                self._metrics.close()

    def _handshake(self) -> None:
        algo = self.algorithm
        capabilities = [name for name, on in (("incentives", type(algo).pays_with(self.options)),
                                              ("messages", self.talks)) if on]
        self._send(Hello(name=self.name, implementation=self.implementation, seat=self.seat,
                         capabilities=capabilities,
                         needs=sorted(algo.needs), heartbeat_identity=self.heartbeats.identity.decode(),
                         seat_token=self.seat_token))
        while True:
            message = self._receive(self.connect_timeout_s)
            if message.type == "error":
                raise AgentError(f"the arena refused {self.name}: {message.content.message}"
                                 + (f" — {message.content.hint}" if message.content.hint else ""))
            if message.type == "welcome":
                break
        welcome: Welcome = message.content
        self.heartbeats.interval = welcome.deadlines.heartbeat_interval_s
        self.heartbeats.timeout = welcome.deadlines.heartbeat_timeout_s
        self.heartbeats.seat = welcome.seat
        self.info = SeatInfo(
            seat=welcome.seat, n_agents=welcome.n_agents, names=welcome.names, batch_size=welcome.batch_size,
            max_steps=welcome.episode_length, game=welcome.game,
            observation_space=space_from_description(welcome.observation_space),
            observation_spaces=[space_from_description(d) for d in welcome.observation_spaces],
            action_spaces=[space_from_description(d) for d in welcome.action_spaces],
            action_names=welcome.action_names, rmax=welcome.rmax, pays=welcome.pays,
            disclosed=frozenset(welcome.disclose), seed=self.seed if self.seed is not None else welcome.seed,
            device=self.device, options={**welcome.options, **self.options},
            run_dir=str(self.out_dir) if self.out_dir else None,
            observation_layout=layout_of(welcome.observation_space),
            observation_layouts=[layout_of(d) for d in welcome.observation_spaces],
            noop_action=welcome.noop_action, deadline_policy=welcome.deadlines.policy,
            message_vocab=welcome.message_vocab)
        log.info("%s %s at %d of %d in run %s", self.name, "rejoined its seat" if self.seat_token else "seated",
                 welcome.seat, welcome.n_agents, welcome.run_id)
        if self.mqtt is not None:
            self._start_telemetry(welcome.run_id, welcome.names[welcome.seat])
        cls = type(algo)
        run = RunFacts(game=welcome.game, n_agents=welcome.n_agents, disclose=self.info.disclosed, rmax=welcome.rmax,
                       action_names=welcome.action_names, message_vocab=welcome.message_vocab)
        problems = option_problems(cls, self.implementation, self.info.options, welcome.game)
        problems += run_problems(cls, self.implementation, run, None if problems else self.info.options, welcome.seat)
        if problems:
            raise AgentError("; ".join(problem.message for problem in problems))
        if cls.talks_with(self.info.options) != self.talks:
            raise AgentError(f"the run's options for {self.name} {'do not ' if self.talks else ''}make it talk, but "
                             "its hello said otherwise: pass the seat's options to `arena agent` with --options")
        try:
            algo.setup(self.info)
        except (ValueError, TypeError) as err:  # options or a game the algorithm cannot work with
            raise AgentError(f"{self.implementation} cannot set up for this run: {err}") from None
        if self.resume is not None:
            try:
                algo.load(str(self.resume))
            except ValueError as err:  # a refused checkpoint (learners' CheckpointError) says why and what to do
                raise AgentError(str(err)) from None
            log.info("resumed from %s", self.resume)
        if self.out_dir is not None:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            if welcome.seat_token is not None:
                self._keep_token(welcome.seat_token)
            self._metrics = open(self.out_dir / "metrics.jsonl", "a", encoding="utf-8")  # noqa: SIM115

    def _keep_token(self, token: str) -> None:
        """OUT/seat.token (mode 0600): what a restarted process rejoins the seat with (`--seat-token-file`)."""
        fd = os.open(self.out_dir / SEAT_TOKEN_FILE, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(token)

    def _loop(self) -> int:
        while True:
            message = self._receive(None)
            kind = message.type
            if kind == "observe":
                self._on_observe(message)
            elif kind == "pay_request":
                self._on_pay_request(message)
            elif kind == "episode_end":
                self._on_episode_end(message)
            elif kind == "error":
                error = message.content
                if error.fatal:
                    log.error("arena: %s", error.message)
                else:
                    log.warning("arena: %s%s", error.message, f" ({error.hint})" if error.hint else "")
            elif kind == "bye":
                self._arena_ended = True
                if message.content.ok:
                    log.info("arena said bye: %s", message.content.reason)
                    return 0
                raise AgentError(f"the run ended early: {message.content.reason}")

    def _on_observe(self, message: Message) -> None:
        observe: Observe = message.content
        view = view_from(observe)
        self._view = view
        self.buffer.observe(view)
        started = time.perf_counter()
        actions = np.asarray(self.algorithm.act(view), dtype=np.int64)
        reply = {"type": "act", "episode": observe.episode, "t": observe.t, "actions": actions}
        if self.talks:
            reply["message"] = np.asarray(self.algorithm.speak(view), dtype=np.int64)
        elapsed = time.perf_counter() - started
        if observe.deadline_s is not None and elapsed > observe.deadline_s:
            log.warning("act() took %.2f s, past the step deadline of %.2f s", elapsed, observe.deadline_s)
        self.buffer.acted(actions)
        if self.talks:
            self.buffer.spoke(reply["message"])
        # The runtime's own reply, built from known-good fields: encoded without a pydantic model.
        send_frames(self.socket, self.codec.encode_fields(reply, message.header))

    def _on_pay_request(self, message: Message) -> None:
        request: PayRequest = message.content
        if self._view is None:  # rejoined in the pay phase of a step this process did not see: pay nothing
            amounts = np.zeros(request.joint_action.shape, dtype=np.float32)
        else:
            amounts = np.asarray(self.algorithm.pay(self._view, request.joint_action), dtype=np.float32)
            self.buffer.paid(amounts)
        self._send(Pay(episode=request.episode, t=request.t, amounts=amounts), message)

    def _on_episode_end(self, message: Message) -> None:
        end: EpisodeEnd = message.content
        # an agent that rejoined mid-episode has part of it only, and does not learn from that part
        trajectory = self.buffer.finish(view_from(end.final)) if self.buffer.whole else None
        self.buffer.clear()
        if trajectory is None:
            metrics: dict[str, Any] = {"partial": True}
        elif end.evaluate:
            metrics = {"evaluate": True}
        elif end.warmup:
            metrics = self.algorithm.warmup_episode(trajectory, end.summary)
        else:
            metrics = self.algorithm.end_episode(trajectory, end.summary)
        # the arena's count, not one of our own: a resumed run's checkpoints go on with its numbering
        self.trained = int(end.summary.get("trained", self.trained)) + (not end.evaluate)
        record = {"episode": end.episode, "return": end.summary["returns"].get(self.info.names[self.info.seat]),
                  **metrics}
        if self.telemetry is not None:
            self.telemetry.publish(self._metrics_topic, record)
        if self._metrics is not None:
            self._metrics.write(json.dumps(record) + "\n")
            self._metrics.flush()
            every = self.checkpoint_every
            if end.last or (every and not end.evaluate and self.trained % every == 0):
                path = checkpoint_path(self.out_dir, None if end.last else self.trained)
                path.parent.mkdir(exist_ok=True)
                self.algorithm.save(str(path))
        self._send(Ready(episode=end.episode), message)
