"""The arena's spectator stream (SPEC §20): a ZeroMQ XPUB socket next to the ROUTER, so a spectator
needs no broker. Every message is one frame, `TOPIC SPACE JSON`; a new subscription is answered with
a `welcome` carrying the run's current status (as Jupyter's IOPub does), and rendered frames are
built only while someone subscribes to `frame`.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

import zmq

#: Topics a spectator may subscribe to (ZeroMQ prefix matching).
TOPICS = ("welcome", "status", "episode", "frame")


def events_address(router_address: str) -> str:
    """Where to bind the stream: the ROUTER's host on a free port (tcp), or beside its ipc path."""
    if router_address.startswith("tcp://"):
        return router_address.rsplit(":", 1)[0] + ":*"
    return router_address + ".events"


class Spectators:
    """Publishes status, episode records and (on request) frames to whoever subscribes."""

    def __init__(self, context: zmq.Context, router_address: str, run_id: str,
                 curve: tuple[bytes, bytes] | None = None) -> None:
        self.socket = context.socket(zmq.XPUB)
        if curve is not None:  # a CURVE run's stream is as private as its seats: the same keys get in
            self.socket.curve_server = True
            self.socket.curve_publickey, self.socket.curve_secretkey = curve
        self.socket.setsockopt(zmq.XPUB_VERBOSE, 1)  # every subscription, so every newcomer gets a welcome
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.setsockopt(zmq.SNDHWM, 1000)  # a slow spectator loses messages; the run never waits
        self.socket.bind(events_address(router_address))
        self.address = self.socket.getsockopt_string(zmq.LAST_ENDPOINT)
        self.run_id = run_id
        self.status: dict[str, Any] = {}
        self.frame_watchers = 0

    def publish(self, topic: str, payload: dict[str, Any]) -> None:
        if topic == "status":
            self.status = payload
        with contextlib.suppress(zmq.Again):
            self.socket.send(topic.encode() + b" " + json.dumps(payload, default=float).encode(), zmq.NOBLOCK)

    def on_subscriptions(self) -> None:
        """Read pending (un)subscriptions: welcome each subscriber, count those who want frames."""
        while self.socket.getsockopt(zmq.EVENTS) & zmq.POLLIN:
            message = self.socket.recv(zmq.NOBLOCK)
            if not message:
                continue
            subscribed, topic = message[0] == 1, message[1:]
            if topic.startswith(b"frame") or b"frame".startswith(topic):  # "" (everything) wants frames too
                self.frame_watchers += 1 if subscribed else -1
            if subscribed:
                self.publish("welcome", {"run_id": self.run_id, "status": self.status, "topics": list(TOPICS)})

    @property
    def wants_frames(self) -> bool:
        return self.frame_watchers > 0

    def close(self) -> None:
        self.socket.close(0)
