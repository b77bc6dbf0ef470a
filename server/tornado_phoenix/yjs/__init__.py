"""Collaborative Yjs documents for `room:*`: rooms (pycrdt Doc + Awareness), the store, the y-protocols codec.

    -> ["3","3","room:notes","phx_join",{"user_id":"alice"}]
    <- ["3","3","room:notes","phx_reply",{"response":{"state":[0,0]},"status":"ok"}]
    -> ["3","4","room:notes","update",{"data":[1,1,176,...]}]
    <- ["3","4","room:notes","phx_reply",{"response":{},"status":"ok"}]      (others get `update` {"data": ...})
"""

from .room import JSON, YJS, Member, Room, RoomError, RoomManager
from .store import MemoryStore, SQLiteStore, Store, open_store, parse_store_url

__all__ = [
    "JSON", "YJS", "Member", "Room", "RoomError", "RoomManager",
    "MemoryStore", "SQLiteStore", "Store", "open_store", "parse_store_url",
]
