"""Live telemetry over MQTT (SPEC §19): the arena and agents publish, watchers subscribe.

Telemetry must never slow or break a run, and the run directory stays the source of truth. So a
`Telemetry` publishes from a thread of its own with its own event loop (aiomqtt), fed through a bounded
queue: `publish` never blocks, and when the queue is full (a slow or absent broker) the message is
dropped and counted. The latest retained message of each topic is kept aside and published again after
every (re)connection, so a watcher that arrives late, or a broker that restarts, still sees the current
status. Reconnection backs off from 0.5 s to 8 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import queue
import threading
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

import aiomqtt

#: Version of the topic layout and payloads (SPEC §19); the second level of every topic.
TOPIC_VERSION = "v1"
DEFAULT_PREFIX = "social-arena"
#: Seconds of silence after which the broker declares a client gone and publishes its last will.
KEEPALIVE_S = 5

log = logging.getLogger("telemetry")


@dataclass(frozen=True)
class MqttTarget:
    """Where telemetry goes: `mqtt://HOST[:PORT][/PREFIX]`."""

    host: str
    port: int
    prefix: str

    @classmethod
    def parse(cls, url: str) -> MqttTarget:
        parsed = urlparse(url)
        if parsed.scheme != "mqtt" or not parsed.hostname:
            raise ValueError(f"telemetry address {url!r} is not of the form mqtt://HOST[:PORT][/PREFIX], "
                             "e.g. mqtt://127.0.0.1:1883/lab")
        try:
            port = parsed.port or 1883
        except ValueError:
            raise ValueError(f"telemetry address {url!r} has a port that is not a number in 1–65535") from None
        prefix = parsed.path.strip("/") or DEFAULT_PREFIX
        if any(ch in prefix for ch in "+#"):
            raise ValueError(f"telemetry prefix {prefix!r} may not contain MQTT wildcards + or #")
        return cls(parsed.hostname, port, prefix)

    def run_topic(self, run_id: str, *parts: str) -> str:
        """`PREFIX/v1/runs/RUN_ID/...` (SPEC §19)."""
        return "/".join((self.prefix, TOPIC_VERSION, "runs", run_id, *parts))


class Telemetry:
    """A non-blocking MQTT publisher for one process (see the module docstring)."""

    def __init__(self, target: MqttTarget, client_id: str, will: tuple[str, dict[str, Any]] | None = None,
                 queue_size: int = 1000) -> None:
        self.target = target
        self.client_id = client_id
        self.will = will
        self.published = 0
        self.dropped = 0
        self._queue: queue.Queue[tuple[str, bytes, bool]] = queue.Queue(maxsize=queue_size)
        self._retained: dict[str, bytes] = {}
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), name="telemetry", daemon=True)
        self._thread.start()

    def publish(self, topic: str, payload: dict[str, Any], retain: bool = False) -> None:
        """Queue one JSON message; never blocks. Retained ones are also kept for re-publishing."""
        data = json.dumps(payload, separators=(",", ":"), default=float).encode()
        if retain:
            with self._lock:
                self._retained[topic] = data
        try:
            self._queue.put_nowait((topic, data, retain))
        except queue.Full:
            self.dropped += 1

    def close(self, timeout_s: float = 2.0) -> None:
        """Send what is queued (for at most `timeout_s`), then disconnect; what is left is dropped."""
        self._closing.set()
        self._thread.join(timeout_s)
        self.dropped += self._queue.qsize()

    @property
    def counts(self) -> dict[str, int]:
        return {"published": self.published, "dropped": self.dropped}

    async def _main(self) -> None:
        backoff = 0.5
        will = None
        if self.will is not None:
            topic, payload = self.will
            will = aiomqtt.Will(topic, json.dumps(payload).encode(), qos=1, retain=True)
        while True:
            try:
                async with aiomqtt.Client(self.target.host, self.target.port, identifier=self.client_id, will=will,
                                          keepalive=KEEPALIVE_S, timeout=5) as client:
                    backoff = 0.5
                    with self._lock:
                        retained = list(self._retained.items())
                    for topic, data in retained:
                        await client.publish(topic, data, qos=1, retain=True)
                    await self._drain(client)
                    return
            except aiomqtt.MqttError as err:
                if self._closing.is_set():
                    return
                log.debug("telemetry broker %s:%d: %s; retrying in %.1f s", self.target.host, self.target.port,
                          err, backoff)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.to_thread(self._closing.wait, backoff), backoff + 1)
            if self._closing.is_set():
                return
            backoff = min(8.0, backoff * 2)

    async def _drain(self, client: aiomqtt.Client) -> None:
        """Publish from the queue until closing and the queue is empty."""
        while True:
            try:
                topic, data, retain = self._queue.get_nowait()
            except queue.Empty:
                if self._closing.is_set():
                    return
                await asyncio.sleep(0.02)
                continue
            try:
                await client.publish(topic, data, qos=1 if retain else 0, retain=retain)
            except aiomqtt.MqttError:
                self.dropped += 1
                raise
            self.published += 1
