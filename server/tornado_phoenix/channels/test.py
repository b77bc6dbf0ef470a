"""`test:*` — a broadcast room with Phoenix.Presence, for testing presence handling in clients.

Join params: `user_id` (the presence key; a random id when absent; with TP_AUTH=jwt the token's `sub`). Meta: `{online_at: "<unix s>", phx_ref}`.
On join: reply ok {}, then a `presence_diff` broadcast (joins) to all members, then `presence_state` to the
joiner. On leave or disconnect: a `presence_diff` broadcast with the `leaves`.
Events: `shout` P -> broadcast to all members, reply ok {}; others -> error {"reason":"unknown event"}.

    -> ["9","9","test:lobby","phx_join",{"user_id":"alice"}]
    <- ["9","9","test:lobby","phx_reply",{"response":{},"status":"ok"}]
    <- [null,null,"test:lobby","presence_diff",{"joins":{"alice":{"metas":[{"online_at":"1795458074","phx_ref":"GOq_mxl-SXtuugJy"}]}},"leaves":{}}]
    <- ["9",null,"test:lobby","presence_state",{"alice":{"metas":[{"online_at":"1795458074","phx_ref":"GOq_mxl-SXtuugJy"}]}}]
"""

from __future__ import annotations

import secrets
import time
from typing import Any

from .base import Reply
from .bench import BenchChannel

__all__ = ["TestChannel"]


class TestChannel(BenchChannel):
    __test__ = False  # not a pytest test class, despite the name

    def join(self, payload: Any) -> Reply:
        # With TP_AUTH=jwt the token's sub (assigned as user_id) is the presence key, not the join param.
        user_id = self.socket.assigns.get("user_id")
        if user_id is None:
            user_id = payload.get("user_id") if isinstance(payload, dict) else None
        self.assigns["user_id"] = str(user_id) if user_id is not None else secrets.token_hex(8)
        return super().join(payload)

    def after_join(self) -> None:
        self.presence.track(self, self.topic, self.assigns["user_id"], {"online_at": str(int(time.time()))})
        self.push("presence_state", self.presence.list(self.topic))
