"""The social-arena wire protocol: messages, codec, spaces and errors. Imports nothing else of ours.

An agent needs only this package (and a language-neutral client needs only SPEC.md).
"""

from protocols.codec import Codec, Message
from protocols.errors import ErrorCode, ProtocolError
from protocols.messages import CAPABILITIES, DISCLOSURES, MESSAGE_TYPES, PROTOCOL_VERSION
from protocols.spaces import describe_space, space_from_description

__all__ = ["CAPABILITIES", "DISCLOSURES", "MESSAGE_TYPES", "PROTOCOL_VERSION", "Codec", "ErrorCode", "Message",
           "ProtocolError", "describe_space", "space_from_description"]
