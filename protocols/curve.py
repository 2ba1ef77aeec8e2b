"""CURVE (ZeroMQ's encryption and authentication, SPEC §21): key pairs and socket options for both ends.

Keys are ZeroMQ's own: Z85 text of 40 characters, stored in ZeroMQ's certificate files (`NAME.key` holds
the public key, `NAME.key_secret` both) as `zmq.auth` writes and reads them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import zmq
import zmq.auth
from zmq.utils import z85


def check_public_key(text: str) -> str:
    """`text` if it is a Z85 CURVE public key (40 characters); raises ValueError saying what is wrong."""
    try:
        if len(text) == 40 and len(z85.decode(text)) == 32:
            return text
    except (ValueError, KeyError, IndexError):
        pass
    raise ValueError(f"{text!r} is not a CURVE public key: expected the 40-character Z85 text of a `.key` file "
                     "that `arena keys DIR NAME` writes")


def make_key_pair(directory: Path, name: str) -> tuple[str, Path]:
    """A fresh key pair as `directory/NAME.key` (public) and `NAME.key_secret` (mode 0600); returns the
    public key's Z85 text and the secret file."""
    directory.mkdir(parents=True, exist_ok=True)
    public, secret = zmq.auth.create_certificates(str(directory), name)
    os.chmod(secret, 0o600)
    return zmq.auth.load_certificate(public)[0].decode(), Path(secret)


def read_secret_file(path: Path) -> tuple[bytes, bytes]:
    """(public, secret) from a `.key_secret` file; raises ValueError naming the file if it is not one."""
    try:
        public, secret = zmq.auth.load_certificate(str(path))
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path} is not a CURVE secret key file ({exc}); make one with `arena keys DIR NAME` "
                         "and give its NAME.key_secret") from None
    if not secret:
        raise ValueError(f"{path} holds only a public key; give the matching NAME.key_secret file")
    return public, secret


@dataclass(frozen=True)
class ClientKeys:
    """What an agent's sockets need to join a CURVE run: the arena's public key and its own pair."""

    server_public: bytes
    public: bytes
    secret: bytes

    def apply(self, socket: zmq.Socket) -> None:
        """Make `socket` a CURVE client (before it connects)."""
        socket.curve_serverkey = self.server_public
        socket.curve_publickey = self.public
        socket.curve_secretkey = self.secret
