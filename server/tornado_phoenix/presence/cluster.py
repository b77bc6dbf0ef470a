"""Presence across nodes over `RedisPubSub`: a small Phoenix.Tracker (deltas, heartbeats, state transfer).

Each node owns the presences of its own channels and replicates them to the others through envelopes on
the pub/sub channel; every node keeps a replica of every other node's presences and turns each change into
a `presence_diff` for its *own* subscribers (like Phoenix.Presence: diffs are never relayed between nodes).

    {"k":"pd","n":"a:1:ff","q":7,"j":[["test:lobby","alice",{"online_at":"1795458074","phx_ref":"GOq_..."}]],"l":[]}
    {"k":"hb","n":"a:1:ff","q":7}                 every `period` s (down_after / 20, at most 1.5 s, Phoenix's)
    {"k":"rq","n":"b:2:0c","to":"a:1:ff"}          state request (a gap in q, an unknown node; "to":null = all)
    {"k":"st","n":"a:1:ff","q":7,"s":{"test:lobby":[["alice",{...}]]}}   full state of node a at q
    {"k":"bye","n":"a:1:ff"}                       clean stop: node a's members leave everywhere at once

Every delta carries the sender's sequence number `q`; a receiver that sees a gap (a message lost while
Redis was away) or an unknown node asks for the full state and replaces its replica, diffing old against
new. A node silent for `down_after` seconds (kill -9, power loss, partition) is dropped and its members
leave. After Redis comes back, each node republishes its full state and asks everyone for theirs.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Hashable
from typing import Any

from ..pubsub.redis import RedisPubSub
from .local import new_phx_ref
from .tracker import PresenceTracker

__all__ = ["ClusterPresence"]

log = logging.getLogger("tornado_phoenix.presence")

Entries = dict[str, dict[str, tuple[str, dict[str, Any]]]]  # topic -> phx_ref -> (key, meta)


class _Peer:
    __slots__ = ("seq", "seen", "entries")

    def __init__(self) -> None:
        self.seq = -1
        self.seen = time.monotonic()
        self.entries: Entries = {}


class ClusterPresence:
    def __init__(self, pubsub: RedisPubSub, *, down_after: float = 30.0) -> None:
        self.pubsub = pubsub
        self.node = pubsub.node_id
        self.down_after = down_after
        self.period = max(0.05, min(1.5, down_after / 20))
        self.tracker = PresenceTracker()  # this node's own presences
        self.seq = 0
        self.peers: dict[str, _Peer] = {}
        self._task: asyncio.Task[None] | None = None
        pubsub.on("pd", self._on_delta)
        pubsub.on("hb", self._on_heartbeat)
        pubsub.on("rq", self._on_request)
        pubsub.on("st", self._on_state)
        pubsub.on("bye", self._on_bye)
        pubsub.on_connect(self._on_connect)

    # ---- Presence interface -------------------------------------------------------------------------------

    def track(self, owner: Hashable, topic: str, key: str, meta: dict[str, Any]) -> dict[str, Any]:
        stored = {**meta, "phx_ref": new_phx_ref()}
        diff = self.tracker.track(owner, topic, key, stored)
        self.pubsub.local_broadcast(topic, "presence_diff", diff)
        self.seq += 1
        self.pubsub.send("pd", {"q": self.seq, "j": [[topic, key, stored]], "l": []})
        return stored

    def untrack(self, owner: Hashable, *, broadcast: bool = True) -> None:
        """`broadcast=False` (this node shutting down): no diffs to our own leaving members, but the other
        nodes still learn the leaves (and `bye` follows)."""
        leaves = []
        for topic, diff in self.tracker.untrack(owner):
            if broadcast:
                self.pubsub.local_broadcast(topic, "presence_diff", diff)
            for key, value in diff["leaves"].items():
                leaves.extend([topic, key, meta["phx_ref"]] for meta in value["metas"])
        if leaves:
            self.seq += 1
            self.pubsub.send("pd", {"q": self.seq, "j": [], "l": leaves})

    def list(self, topic: str) -> dict[str, dict[str, list[dict[str, Any]]]]:
        state = self.tracker.list(topic)
        for peer in self.peers.values():
            for key, meta in peer.entries.get(topic, {}).values():
                state.setdefault(key, {"metas": []})["metas"].append(meta)
        return state

    # ---- lifecycle ----------------------------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._ticker())

    async def stop(self) -> None:
        """Clean stop: tell the others our members are gone (they leave at once, not after down_after)."""
        if self._task is not None:
            self._task.cancel()
        self.pubsub.send("bye", {})

    def health(self) -> dict[str, Any]:
        return {"nodes": 1 + len(self.peers), "down_after_s": self.down_after}

    # ---- replication --------------------------------------------------------------------------------------

    def _own_state(self) -> dict[str, list[list[Any]]]:
        return {
            topic: [[key, meta] for key, value in self.tracker.list(topic).items() for meta in value["metas"]]
            for topic in self.tracker.topics()
        }

    def _publish_state(self) -> None:
        self.pubsub.send("st", {"q": self.seq, "s": self._own_state()})

    def _on_connect(self) -> None:
        # After a (re)connection: what others missed of ours, and what we missed of theirs.
        self._publish_state()
        self.pubsub.send("rq", {"to": None})

    async def _ticker(self) -> None:
        while True:
            await asyncio.sleep(self.period)
            self.pubsub.send("hb", {"q": self.seq})
            now = time.monotonic()
            for node, peer in list(self.peers.items()):
                if now - peer.seen > self.down_after:
                    count = self._drop(node)
                    log.warning("presence: node %s silent for %.0f s (down after %.0f s): %d member(s) leave",
                                node, now - peer.seen, self.down_after, count)

    def _peer(self, node: str) -> tuple[_Peer, bool]:
        peer = self.peers.get(node)
        if peer is None:
            peer = self.peers[node] = _Peer()
            return peer, True
        peer.seen = time.monotonic()
        return peer, False

    def _on_heartbeat(self, envelope: dict[str, Any]) -> None:
        node = envelope["n"]
        peer, new = self._peer(node)
        if new or peer.seq != envelope["q"]:
            if new:
                log.info("presence: node %s up", node)
            self.pubsub.send("rq", {"to": node})

    def _on_request(self, envelope: dict[str, Any]) -> None:
        if envelope.get("to") in (None, self.node):
            self._publish_state()

    def _on_delta(self, envelope: dict[str, Any]) -> None:
        node = envelope["n"]
        peer, new = self._peer(node)
        if new or envelope["q"] != peer.seq + 1:
            self.pubsub.send("rq", {"to": node})  # a gap: apply what we have, the full state follows
        peer.seq = envelope["q"]
        diffs: dict[str, dict[str, dict[str, Any]]] = {}
        for topic, key, meta in envelope["j"]:
            peer.entries.setdefault(topic, {})[meta["phx_ref"]] = (key, meta)
            _add(diffs, topic, "joins", key, meta)
        for topic, _key, ref in envelope["l"]:
            entries = peer.entries.get(topic, {})
            entry = entries.pop(ref, None)
            if not entries:
                peer.entries.pop(topic, None)
            if entry is not None:
                _add(diffs, topic, "leaves", entry[0], entry[1])
        self._emit(diffs)

    def _on_state(self, envelope: dict[str, Any]) -> None:
        node = envelope["n"]
        peer, new = self._peer(node)
        if new:
            log.info("presence: node %s up", node)
        new_entries: Entries = {}
        for topic, pairs in envelope["s"].items():
            new_entries[topic] = {meta["phx_ref"]: (key, meta) for key, meta in pairs}
        diffs: dict[str, dict[str, dict[str, Any]]] = {}
        for topic in set(peer.entries) | set(new_entries):
            old, cur = peer.entries.get(topic, {}), new_entries.get(topic, {})
            for ref, (key, meta) in old.items():
                if ref not in cur:
                    _add(diffs, topic, "leaves", key, meta)
            for ref, (key, meta) in cur.items():
                if ref not in old:
                    _add(diffs, topic, "joins", key, meta)
        peer.entries = new_entries
        peer.seq = envelope["q"]
        self._emit(diffs)

    def _on_bye(self, envelope: dict[str, Any]) -> None:
        node = envelope["n"]
        if node in self.peers:
            count = self._drop(node)
            log.info("presence: node %s stopped: %d member(s) leave", node, count)

    def _drop(self, node: str) -> int:
        peer = self.peers.pop(node)
        diffs: dict[str, dict[str, dict[str, Any]]] = {}
        count = 0
        for topic, entries in peer.entries.items():
            for key, meta in entries.values():
                _add(diffs, topic, "leaves", key, meta)
                count += 1
        self._emit(diffs)
        return count

    def _emit(self, diffs: dict[str, dict[str, dict[str, Any]]]) -> None:
        for topic, diff in diffs.items():
            self.pubsub.local_broadcast(topic, "presence_diff", diff)


def _add(diffs: dict[str, dict[str, dict[str, Any]]], topic: str, side: str, key: str, meta: dict[str, Any]) -> None:
    diff = diffs.setdefault(topic, {"joins": {}, "leaves": {}})
    diff[side].setdefault(key, {"metas": []})["metas"].append(meta)
