"""Envelope encoding: multipart frames of msgpack maps plus raw array buffers, optionally signed.

Frames (after the ROUTER identity frame, when there is one):
    0 signature  hex HMAC-SHA256 over frames 1..n, or empty when signing is off
    1 header     msgpack map (protocols.messages.Header)
    2 content    msgpack map; each array is a map {"__ndarray__": i, "dtype": "float32", "shape": [...]}
    3.. buffers  raw little-endian bytes of array i, C order
No pickle: decoding only ever builds maps, lists, scalars and numpy arrays of allowed dtypes.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import math
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import msgpack
import numpy as np
from pydantic import BaseModel, ValidationError

from protocols.errors import ErrorCode, ProtocolError
from protocols.messages import MESSAGE_TYPES, PROTOCOL_VERSION, Content, Header

#: Array element types on the wire, by name; buffers are always little-endian.
ALLOWED_DTYPES = frozenset(("bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
                            "float16", "float32", "float64"))
_ARRAY_KEY = "__ndarray__"
#: Deepest nesting of maps and lists a content frame may have (SPEC.md §6); deeper is `malformed`.
MAX_NESTING = 32
#: Largest array rank and size along one axis a message may declare (SPEC.md §6.2).
MAX_ARRAY_DIMS, MAX_ARRAY_SIZE = 8, 2**31 - 1


@dataclass
class Message:
    """A decoded message: its header and its validated content model."""

    header: Header
    content: Content

    @property
    def type(self) -> str:
        return self.header.type


#: numpy dtype → (wire name, little-endian dtype); looked up per array on the hot path.
_WIRE_TYPES: dict[np.dtype, tuple[str, np.dtype]] = {
    np.dtype(name): (name, np.dtype(name).newbyteorder("<")) for name in ALLOWED_DTYPES}
#: wire name → (little-endian dtype, native dtype, item size), for decoding.
_NATIVE_TYPES: dict[str, tuple[np.dtype, np.dtype, int]] = {
    name: (np.dtype(name).newbyteorder("<"), np.dtype(name), np.dtype(name).itemsize) for name in ALLOWED_DTYPES}


_SCALARS = frozenset((str, int, float, bool, type(None), bytes))


def _to_wire(value: Any, buffers: list[bytes]) -> Any:
    """Replace arrays by buffer references; drop None fields of models (readers default them)."""
    kind = type(value)
    if kind in _SCALARS:
        return value
    if isinstance(value, np.ndarray):
        wire = _WIRE_TYPES.get(value.dtype) or _WIRE_TYPES.get(value.dtype.newbyteorder("="))
        if wire is None:
            raise TypeError(f"dtype {value.dtype.name} cannot go on the wire; allowed: {sorted(ALLOWED_DTYPES)}")
        name, little = wire
        buffers.append((value if value.dtype == little else value.astype(little)).tobytes())
        return {_ARRAY_KEY: len(buffers) - 1, "dtype": name, "shape": list(value.shape)}
    if isinstance(value, BaseModel):
        return _fields_to_wire(value.__dict__, buffers)
    if isinstance(value, dict):
        return {str(k): _to_wire(v, buffers) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_wire(v, buffers) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def _fields_to_wire(fields: dict[str, Any], buffers: list[bytes]) -> dict[str, Any]:
    """A message's (or nested model's) fields on the wire: None fields are left out."""
    return {key: _to_wire(value, buffers) for key, value in fields.items() if value is not None}


def _from_wire(value: Any, buffers: list[bytes], depth: int = 0) -> Any:
    if isinstance(value, (dict, list)) and depth >= MAX_NESTING:
        raise ProtocolError(ErrorCode.MALFORMED, f"content is nested deeper than {MAX_NESTING} levels",
                            hint="no message of the protocol nests more than a few levels (SPEC.md §6)")
    if isinstance(value, dict):
        if _ARRAY_KEY in value:
            return _array_from_ref(value, buffers)
        return {k: _from_wire(v, buffers, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [_from_wire(v, buffers, depth + 1) for v in value]
    return value


def _array_from_ref(ref: dict, buffers: list[bytes]) -> np.ndarray:
    index, dtype, shape = ref.get(_ARRAY_KEY), ref.get("dtype"), ref.get("shape")
    if not isinstance(index, int) or not 0 <= index < len(buffers):
        raise ProtocolError(ErrorCode.MALFORMED, f"array reference {index!r} has no buffer frame",
                            hint="send one raw buffer frame per array, in the order referenced")
    types = _NATIVE_TYPES.get(dtype) if type(dtype) is str else None
    if types is None:
        raise ProtocolError(ErrorCode.MALFORMED, f"array dtype {dtype!r} is not allowed",
                            hint=f"use one of {sorted(ALLOWED_DTYPES)}")
    if not isinstance(shape, list) or not all(isinstance(s, int) and s >= 0 for s in shape):
        raise ProtocolError(ErrorCode.MALFORMED, f"array shape {shape!r} is not a list of sizes")
    if len(shape) > MAX_ARRAY_DIMS or any(s > MAX_ARRAY_SIZE for s in shape):
        raise ProtocolError(ErrorCode.MALFORMED, f"array shape {str(shape)[:80]} is out of range: at most "
                            f"{MAX_ARRAY_DIMS} dimensions of at most {MAX_ARRAY_SIZE} each")
    buffer = buffers[index]
    little, native, itemsize = types
    expected = math.prod(shape) * itemsize
    if len(buffer) != expected:
        raise ProtocolError(ErrorCode.MALFORMED,
                            f"array buffer {index} has {len(buffer)} bytes; dtype {dtype} shape {shape} "
                            f"needs {expected}")
    return np.ndarray(shape, little, buffer).astype(native)  # a writable copy; ndarray() skips frombuffer's checks


_second_prefix: tuple[int, str] = (-1, "")


def now_utc() -> str:
    """ISO 8601 UTC time with microseconds, e.g. 2026-12-04T17:51:27.123456Z. The part up to the
    second is formatted once per second: `datetime.isoformat` per message cost more than the rest of
    the header."""
    global _second_prefix
    now = time.time()
    second = int(now)
    if second != _second_prefix[0]:
        _second_prefix = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
    return f"{_second_prefix[1]}.{int((now - second) * 1e6):06d}Z"


class Codec:
    """Encodes and decodes envelopes for one session; signs and verifies when given a key."""

    def __init__(self, session: str | None = None, key: bytes | None = None, replay_window: int = 100_000):
        self.session = session or uuid.uuid4().hex
        self.key = key or None
        self._ids = itertools.count()
        self._id_prefix = uuid.uuid4().hex[:12]
        self._seen: OrderedDict[bytes, None] = OrderedDict()
        self._replay_window = replay_window
        self._pack = msgpack.Packer(use_bin_type=True).pack

    def sign(self, frames: list[bytes]) -> bytes:
        if self.key is None:
            return b""
        mac = hmac.new(self.key, digestmod=hashlib.sha256)
        for frame in frames:
            mac.update(frame)
        return mac.hexdigest().encode()

    def encode(self, content: Content, parent: Header | None = None) -> list[bytes]:
        """Frames for `content` (signature first); `parent` makes it a reply."""
        return self.encode_fields(content.__dict__, parent)

    def encode_fields(self, fields: dict[str, Any], parent: Header | None = None) -> list[bytes]:
        """Frames for a message given as its content's fields, "type" first (what a model's `__dict__`
        holds). Not validated: for a sender's own messages on a hot path (the arena's observes), built
        with the model's field names; `encode` is the checked way."""
        header = {"msg_id": f"{self._id_prefix}-{next(self._ids)}", "session": self.session, "type": fields["type"],
                  "version": PROTOCOL_VERSION, "time": now_utc(),
                  "parent_id": parent.msg_id if parent is not None else None}
        buffers: list[bytes] = []
        body = self._pack(_fields_to_wire(fields, buffers))
        frames = [self._pack(header), body, *buffers]
        return [self.sign(frames), *frames]

    def decode_header(self, frames: list[bytes]) -> Header:
        """The header alone (for error replies to messages whose content is bad)."""
        if len(frames) < 3:
            raise ProtocolError(ErrorCode.MALFORMED, f"expected at least 3 frames (signature, header, "
                                f"content), got {len(frames)}", hint="see SPEC.md, 'Framing'")
        try:
            raw = msgpack.unpackb(frames[1], raw=False, strict_map_key=True)
            return Header.model_validate(raw)
        except (ValueError, ValidationError, msgpack.ExtraData, msgpack.FormatError,
                msgpack.StackError, TypeError) as exc:
            raise ProtocolError(ErrorCode.MALFORMED, f"header frame is not a valid msgpack header map: "
                                f"{_short(exc)}", hint="see SPEC.md, 'Envelope'") from exc

    def verify(self, frames: list[bytes]) -> None:
        """Check the signature and reject replays (no-op when signing is off)."""
        if self.key is None:
            return
        signature = frames[0]
        if not hmac.compare_digest(signature, self.sign(frames[1:])):
            raise ProtocolError(ErrorCode.BAD_SIGNATURE, "signature does not match the message",
                                hint="sign frames 1..n with HMAC-SHA256 and the key of the connection file")
        if signature in self._seen:
            raise ProtocolError(ErrorCode.BAD_SIGNATURE, "replayed message: this signature was already seen",
                                hint="every message needs a fresh msg_id and time, hence a fresh signature")
        self._seen[signature] = None
        if len(self._seen) > self._replay_window:
            self._seen.popitem(last=False)

    def decode(self, frames: list[bytes]) -> Message:
        """Verify, parse and validate one message; raises ProtocolError saying what was wrong."""
        frames = [bytes(f) for f in frames]
        header = self.decode_header(frames)
        self.verify(frames)
        major = header.version.split(".")[0]
        if major != PROTOCOL_VERSION.split(".")[0]:
            raise ProtocolError(ErrorCode.VERSION_MISMATCH,
                                f"protocol version {header.version} is not compatible with {PROTOCOL_VERSION}",
                                field="version", fatal=True,
                                hint=f"speak protocol {PROTOCOL_VERSION.split('.')[0]}.x (see SPEC.md)")
        cls = MESSAGE_TYPES.get(header.type)
        if cls is None:
            raise ProtocolError(ErrorCode.UNKNOWN_TYPE, f"unknown message type {header.type!r}", field="type",
                                hint=f"known types: {', '.join(MESSAGE_TYPES)}")
        try:
            raw = msgpack.unpackb(frames[2], raw=False, strict_map_key=True)
        except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError, TypeError) as exc:
            raise ProtocolError(ErrorCode.MALFORMED, f"content frame is not msgpack: {_short(exc)}") from exc
        if not isinstance(raw, dict):
            raise ProtocolError(ErrorCode.MALFORMED, "content frame must be a msgpack map")
        raw = _from_wire(raw, frames[3:])
        raw["type"] = header.type
        try:
            content = cls.model_validate(raw)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise ProtocolError(ErrorCode.INVALID_CONTENT, f"{header.type}.{where}: {first['msg']}",
                                field=where, hint=f"see SPEC.md, message '{header.type}'") from exc
        return Message(header, content)


def _short(exc: Exception) -> str:
    text = str(exc)
    return text if len(text) < 200 else text[:200] + "…"
