"""`bench:*` — a plain broadcast room with no presence (the benchmarks use it).

Events:  join -> ok {}.  `shout` P -> broadcast shout/P to every member (sender included), reply ok {}.
A non-map shout payload crashes the sender's channel (phx_error), as Phoenix's broadcast! raises.
Any other event -> error {"reason":"unknown event"}.

    -> ["1","2","bench:1","shout",{"n":1}]  <- [null,null,"bench:1","shout",{"n":1}]      (every member)
                                            <- ["1","2","bench:1","phx_reply",{"response":{},"status":"ok"}]
"""

from __future__ import annotations

from typing import Any

from .base import Channel, Reply, error, ok

__all__ = ["BenchChannel"]

_UNKNOWN = {"reason": "unknown event"}


class BenchChannel(Channel):
    def handle_in(self, event: str, payload: Any) -> Reply:
        if event == "shout":
            self.broadcast("shout", payload)
            return ok({})
        return error(_UNKNOWN)
