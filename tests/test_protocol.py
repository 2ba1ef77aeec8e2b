"""The codec, spaces and message models: round trips, tolerance, and every way decoding can fail."""

from __future__ import annotations

import platform
import sys

import gymnasium as gym
import msgpack
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from protocols import Codec, ErrorCode, ProtocolError, describe_space, space_from_description
from protocols.codec import ALLOWED_DTYPES
from protocols.memory import keep_freed_memory
from protocols.messages import MESSAGE_TYPES, Act, EpisodeEnd, Hello, Observe


def observe(batch: int = 3) -> Observe:
    return Observe(episode=1, t=2, obs=np.arange(batch * 5, dtype=np.float32).reshape(batch, 5),
                   reward=np.ones(batch, np.float32), extrinsic=np.ones(batch, np.float32),
                   incentives=np.zeros(batch, np.float32), active=np.array([True, False, True][:batch]),
                   visible=np.ones((batch, 2), bool), actions=np.array([[0, 1]] * batch),
                   observations=[np.zeros((batch, 5), np.float32), np.ones((batch, 5), np.uint8)])


def test_observe_round_trip_keeps_arrays_exactly() -> None:
    codec = Codec()
    message = codec.decode(codec.encode(observe()))
    content = message.content
    assert message.type == "observe" and message.header.version.startswith("1.")
    np.testing.assert_array_equal(content.obs, observe().obs)
    assert content.obs.dtype == np.float32 and content.active.dtype == bool
    assert content.observations[1].dtype == np.uint8
    assert content.payments is None and content.state is None


def test_nested_message_and_reply_parent() -> None:
    codec = Codec()
    request = codec.decode(codec.encode(Hello(name="a")))
    end = EpisodeEnd(episode=0, final=observe(), summary={"returns": {"a": 1.5}}, last=True)
    reply = codec.decode(codec.encode(end, parent=request.header))
    assert reply.header.parent_id == request.header.msg_id
    assert reply.content.final.obs.shape == (3, 5) and reply.content.summary["returns"]["a"] == 1.5


@given(hnp.arrays(st.sampled_from(sorted(ALLOWED_DTYPES)), hnp.array_shapes(min_dims=0, max_dims=4, max_side=5)))
def test_any_allowed_array_survives_the_wire(array: np.ndarray) -> None:
    codec = Codec()
    back = codec.decode(codec.encode(Act(episode=0, t=0, actions=array))).content.actions
    assert back.dtype == array.dtype and back.shape == array.shape
    np.testing.assert_array_equal(back, array)


def test_unknown_fields_are_ignored() -> None:
    codec = Codec()
    frames = codec.encode(Hello(name="a"))
    body = msgpack.unpackb(frames[2])
    body["from_the_future"] = [1, 2, 3]
    frames[2] = msgpack.packb(body)
    assert codec.decode(frames).content.name == "a"


@pytest.mark.parametrize(("mangle", "code"), [
    (lambda f: f[:2], ErrorCode.MALFORMED),
    (lambda f: [f[0], b"\xc1garbage", f[2]], ErrorCode.MALFORMED),
    (lambda f: [f[0], f[1], b"\x93\x01\x02\x03"], ErrorCode.MALFORMED),
    (lambda f: [f[0], f[1], f[2], f[3][:-1]], ErrorCode.MALFORMED),
])
def test_broken_frames_are_malformed(mangle, code) -> None:
    codec = Codec()
    with pytest.raises(ProtocolError) as caught:
        codec.decode(mangle(codec.encode(Act(episode=0, t=0, actions=np.zeros(2, np.int64)))))
    assert caught.value.code == code


def test_wrong_content_names_the_field() -> None:
    codec = Codec()
    frames = codec.encode(Hello(name="a"))
    frames[2] = msgpack.packb({"name": 7})
    with pytest.raises(ProtocolError) as caught:
        codec.decode(frames)
    assert caught.value.code == ErrorCode.INVALID_CONTENT and caught.value.field == "name"


#: a map {"name": "deep", "x": [[[...nil...]]]} with the list nested 1,000 deep, as an attacker writes it by hand
DEEP = b"\x82\xa4name\xa4deep\xa1x" + b"\x91" * 1000 + b"\xc0"


@pytest.mark.parametrize(("content", "buffers", "text"), [
    (DEEP, [], "nested deeper than 32 levels"),
    (msgpack.packb({"episode": 0, "t": 0, "actions": {"__ndarray__": 0, "dtype": "int64", "shape": [2**62, 2**62, 0]}}),
     [b""], "out of range: at most 8 dimensions"),
    (msgpack.packb({"episode": 0, "t": 0, "actions": {"__ndarray__": 0, "dtype": "int64", "shape": [1] * 40}}),
     [b"\0" * 8], "out of range"),
])
def test_hostile_nesting_and_shapes_are_malformed_not_crashes(content: bytes, buffers: list[bytes], text: str) -> None:
    """What used to raise RecursionError / ValueError inside the decoder now gets the named error."""
    codec = Codec()
    frames = codec.encode(Act(episode=0, t=0, actions=np.zeros(2, np.int64)))
    with pytest.raises(ProtocolError, match=text) as caught:
        codec.decode([frames[0], frames[1], content, *buffers])
    assert caught.value.code == ErrorCode.MALFORMED


def test_disallowed_dtype_reference_is_refused() -> None:
    codec = Codec()
    frames = codec.encode(Act(episode=0, t=0, actions=np.zeros(2, np.int64)))
    body = msgpack.unpackb(frames[2])
    body["actions"]["dtype"] = "object"
    frames[2] = msgpack.packb(body)
    with pytest.raises(ProtocolError, match="dtype 'object' is not allowed"):
        codec.decode(frames)


def test_signatures_and_replays() -> None:
    sender, receiver = Codec(key=b"secret"), Codec(key=b"secret")
    frames = sender.encode(Hello(name="a"))
    receiver.decode(frames)
    with pytest.raises(ProtocolError, match="replayed"):
        receiver.decode(frames)
    tampered = sender.encode(Hello(name="a"))
    tampered[2] = msgpack.packb({"name": "mallory"})
    with pytest.raises(ProtocolError, match="does not match"):
        receiver.decode(tampered)
    with pytest.raises(ProtocolError, match="does not match"):
        receiver.decode(Codec().encode(Hello(name="unsigned")))


def test_every_message_type_is_registered_by_its_type_name() -> None:
    assert set(MESSAGE_TYPES) == {"hello", "welcome", "lobby", "observe", "act", "pay_request", "pay",
                                  "episode_end", "ready", "heartbeat", "error", "bye"}


@pytest.mark.parametrize("space", [
    gym.spaces.Discrete(5), gym.spaces.Discrete(3, start=1),
    gym.spaces.Box(0.0, 1.0, (5,), np.float32), gym.spaces.Box(0, 255, (15, 15, 3), np.uint8),
    gym.spaces.Box(np.array([0.0, -1.0]), np.array([1.0, 2.0]), dtype=np.float32),
    gym.spaces.MultiDiscrete([3, 4]),
    gym.spaces.Dict({"image": gym.spaces.Box(0, 1, (2, 2), np.float32), "flag": gym.spaces.Discrete(2)}),
])
def test_spaces_round_trip(space: gym.Space) -> None:
    codec = Codec()
    wire = msgpack.unpackb(msgpack.packb(describe_space(space)))
    assert space_from_description(wire) == space
    assert codec is not None


def test_unknown_space_type_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown space type 'Tuple'"):
        space_from_description({"type": "Tuple"})


def test_freed_memory_is_kept_where_glibc_runs() -> None:
    """The arena and agents raise glibc's mmap threshold (protocols/memory.py); elsewhere it is a no-op."""
    glibc = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"
    assert keep_freed_memory() is glibc
