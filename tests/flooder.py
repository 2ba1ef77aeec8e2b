"""A hostile peer for the flood tests: `python -m tests.flooder ADDRESS N` sends N messages from one
unseated DEALER socket, as fast as it can: N/2 of 16 bytes of garbage, then N/2 well-formed `act`s."""

from __future__ import annotations

import sys

import numpy as np
import zmq

from protocols.codec import Codec
from protocols.messages import Act


def main() -> None:
    address, count = sys.argv[1], int(sys.argv[2])
    context = zmq.Context()
    socket = context.socket(zmq.DEALER)
    socket.setsockopt(zmq.SNDHWM, 0)
    socket.setsockopt(zmq.LINGER, 5000)
    socket.connect(address)
    for _ in range(count // 2):
        socket.send(b"\x00\xff" * 8)
    act = Codec().encode(Act(episode=0, t=0, actions=np.zeros(1, np.int64)))
    for _ in range(count - count // 2):
        socket.send_multipart(act)
    socket.close()
    context.term()


if __name__ == "__main__":
    main()
