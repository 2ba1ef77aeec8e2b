"""What the arena does with traffic from connections that hold no seat (SPEC §15, "Floods").

Seated agents' messages are handled as they come. Everything else (hellos, garbage, heartbeats of
sockets not tied to a seat) first passes two token buckets: one per peer, so that one flooding socket
is cut off after a few messages while a newcomer's `hello` still gets through, and one shared by all
unseated peers, which bounds the work many sockets together can cause. A refused message costs the
arena a dictionary lookup instead of a decode, an error reply and a log line; it is dropped and
counted. Refusals are logged a few times per peer, then only as counts, so a flood cannot fill the
disk either. CURVE handshakes refused for a key no seat takes (SPEC §21.4) are logged and counted here
too, under one budget for all of them: a fresh key costs nothing, so a budget per key would bound nothing.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict

log = logging.getLogger("arena")

#: Messages per second (and burst) one unseated peer may have handled: far above a hello and
#: heartbeats, far below a flood.
PEER_RATE = 20.0
#: The same for all unseated peers together.
STRANGER_RATE = 2000.0
#: Log lines per unseated peer before its refusals are only counted.
LOG_FIRST = 3
#: Peers whose bucket and log budget are remembered (least recently heard ones are forgotten first).
PEERS_REMEMBERED = 4096
#: Seconds between the summary lines of what was dropped.
SUMMARY_EVERY_S = 5.0
#: The log budget that every refused CURVE handshake shares.
HANDSHAKES = b"refused CURVE handshakes"


class TokenBucket:
    """`rate` tokens per second, at most `rate` banked."""

    __slots__ = ("rate", "refilled", "tokens")

    def __init__(self, rate: float, now: float) -> None:
        self.rate, self.tokens, self.refilled = rate, rate, now

    def take(self, now: float) -> bool:
        self.tokens = min(self.rate, self.tokens + (now - self.refilled) * self.rate)
        self.refilled = now
        if self.tokens < 1.0:
            return False
        self.tokens -= 1.0
        return True


class StrangerGate:
    """Admission and rate-limited logging for unseated connections."""

    def __init__(self, peer_rate: float = PEER_RATE, total_rate: float = STRANGER_RATE) -> None:
        self.peer_rate = peer_rate
        self.total = TokenBucket(total_rate, time.monotonic())
        self.peers: OrderedDict[bytes, TokenBucket] = OrderedDict()
        #: peers out of tokens, and when their next token is due: refused with one lookup until then
        self.cut_until: dict[bytes, float] = {}
        self.dropped = 0
        self.dropped_since_summary = 0
        self.summarised = time.monotonic()
        self.logged: OrderedDict[bytes, int] = OrderedDict()
        self.handshakes_refused = 0
        self.handshakes_since_summary = 0
        #: refused handshakes are counted in the ZAP authenticator's thread, summaries in the arena's
        self._lock = threading.Lock()

    def admit(self, identity: bytes) -> bool:
        """Whether one more message from this unseated peer may be handled now."""
        now = time.monotonic()
        if self.cut_until and now < self.cut_until.get(identity, 0.0):
            self.dropped += 1
            self.dropped_since_summary += 1
            return False
        bucket = self.peers.pop(identity, None) or TokenBucket(self.peer_rate, now)
        self.peers[identity] = bucket
        if len(self.peers) > PEERS_REMEMBERED:
            self.peers.popitem(last=False)
        if bucket.take(now) and self.total.take(now):
            return True
        if bucket.tokens < 1.0:
            self.cut_until[identity] = now + (1.0 - bucket.tokens) / bucket.rate
            if len(self.cut_until) > PEERS_REMEMBERED:
                self.cut_until = {peer: t for peer, t in self.cut_until.items() if t > now}
        self.dropped += 1
        self.dropped_since_summary += 1
        if now - self.summarised >= SUMMARY_EVERY_S:
            self.summary(now)
        return False

    def summary(self, now: float | None = None) -> None:
        """Log how many messages from unseated peers were dropped, and how many CURVE handshakes were
        refused, since the last summary."""
        with self._lock:
            now = time.monotonic() if now is None else now
            if self.dropped_since_summary:
                log.warning("dropped %d messages from unseated peers in %.1f s (over %g/s per peer or %g/s in all; "
                            "%d in this run)", self.dropped_since_summary, now - self.summarised, self.peer_rate,
                            self.total.rate, self.dropped)
            if self.handshakes_since_summary:
                log.warning("refused %d CURVE handshakes in %.1f s: their client keys were issued for no seat (%d in "
                            "this run)", self.handshakes_since_summary, now - self.summarised, self.handshakes_refused)
            self.dropped_since_summary = self.handshakes_since_summary = 0
            self.summarised = now

    def refuse_handshake(self) -> bool:
        """Count a CURVE handshake refused for its key (from the ZAP authenticator's thread); True while
        it may still be logged. Past the shared budget they show in the summaries."""
        with self._lock:
            self.handshakes_refused += 1
            self.handshakes_since_summary += 1
            shown = self.may_log(HANDSHAKES, "refused CURVE handshakes")
        now = time.monotonic()
        if not shown and now - self.summarised >= SUMMARY_EVERY_S:
            self.summary(now)
        return shown

    def may_log(self, identity: bytes, what: str | None = None) -> bool:
        """True for the first LOG_FIRST refusals of a peer, or of `what` shares one budget (and says so at
        the last of them)."""
        count = self.logged.pop(identity, 0) + 1
        self.logged[identity] = count
        if len(self.logged) > PEERS_REMEMBERED:
            self.logged.popitem(last=False)
        if count == LOG_FIRST:
            log.warning("further %s are counted, not logged", what or f"refusals of peer {identity!r}")
        return count <= LOG_FIRST
