"""`echo:*` — everything comes straight back. For checking a client's plumbing.

Events:  join -> ok(join params).  Any event E with payload P -> push E/P to the sender, then reply ok P.

    -> ["1","1","echo:a","phx_join",{"x":1}]   <- ["1","1","echo:a","phx_reply",{"response":{"x":1},"status":"ok"}]
    -> ["1","2","echo:a","ping",{"y":2}]       <- ["1",null,"echo:a","ping",{"y":2}]
                                               <- ["1","2","echo:a","phx_reply",{"response":{"y":2},"status":"ok"}]
"""

from __future__ import annotations

from typing import Any

from .base import Channel, Reply, ok

__all__ = ["EchoChannel"]


class EchoChannel(Channel):
    def join(self, payload: Any) -> Reply:
        return ok(payload)

    def handle_in(self, event: str, payload: Any) -> Reply:
        self.push(event, payload)
        return ok(payload)
