"""Close codes and the errors a peer can cause, each carrying the close code Phoenix/Bandit would send.

Mirrors the table in research/phoenix-protocol.md §6: Phoenix never answers bad input with an error reply;
the socket process crashes and Bandit closes the connection with one of these codes.
"""

from __future__ import annotations

from enum import IntEnum

__all__ = ["CloseCode", "ProtocolError", "DecodeError", "EncodeError"]


class CloseCode(IntEnum):
    NORMAL = 1000
    GOING_AWAY = 1001
    PROTOCOL_ERROR = 1002
    INVALID_PAYLOAD = 1007
    POLICY_VIOLATION = 1008
    MESSAGE_TOO_BIG = 1009
    INTERNAL_ERROR = 1011
    SERVICE_RESTART = 1012


class ProtocolError(Exception):
    """Base for errors caused by what the peer sent; the socket closes with `close_code`."""

    close_code: CloseCode = CloseCode.INTERNAL_ERROR


class DecodeError(ProtocolError):
    """A frame that does not decode to a Phoenix message (bad JSON, wrong shape, bad binary layout)."""

    close_code = CloseCode.INTERNAL_ERROR


class EncodeError(ValueError):
    """A message the serializer cannot put on the wire (e.g. a binary field over 255 bytes).

    Phoenix raises in the same places, which crashes the channel that tried to send it.
    """
