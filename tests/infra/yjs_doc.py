"""A Yjs document written to and read back from a deployed server's `room:*` channel, for the e2e test's
"the data survives a redeploy and a reboot" check. Phoenix JSON protocol (vsn 2.0.0) over Tornado's WebSocket
client; the Yjs side is pycrdt (a real Yjs update, compared as a real document):

    -> ["1","1","room:e2e","phx_join",{"user_id":"e2e"}]   <- phx_reply ok {"state":[...]} (Y.encodeStateAsUpdate)
    -> ["1","2","room:e2e","update",{"data":[...]}]        <- phx_reply ok {}

    python tests/infra/yjs_doc.py write ws://127.0.0.2:4001/socket room:e2e "some text"
    python tests/infra/yjs_doc.py read  ws://127.0.0.2:4001/socket room:e2e      # prints the text
"""

from __future__ import annotations

import asyncio
import json
import sys

from pycrdt import Doc, Text
from tornado.websocket import websocket_connect

FIELD = "text"


async def _call(url: str, topic: str, pushes: list[tuple[str, dict]], timeout: float = 30.0) -> list[dict]:
    """Join `topic`, send `pushes` in order; return every reply's response (join first). Error replies raise."""
    conn = await asyncio.wait_for(websocket_connect(url.rstrip("/") + "/websocket?vsn=2.0.0"), timeout)
    try:
        messages = [("phx_join", {"user_id": "e2e"}), *pushes]
        responses = []
        for ref, (event, payload) in enumerate(messages, start=1):
            conn.write_message(json.dumps(["1", str(ref), topic, event, payload]))
            while True:
                raw = await asyncio.wait_for(conn.read_message(), timeout)
                if raw is None:
                    raise ConnectionError(f"{url} closed the socket during {event}")
                _join_ref, msg_ref, _topic, msg_event, msg_payload = json.loads(raw)
                if msg_event == "phx_reply" and msg_ref == str(ref):
                    break
            if msg_payload.get("status") != "ok":
                raise RuntimeError(f"{event} on {topic} was refused: {msg_payload}")
            responses.append(msg_payload.get("response") or {})
        return responses
    finally:
        conn.close()


def _text_of(state: list[int]) -> str:
    doc = Doc()
    doc[FIELD] = text = Text()
    doc.apply_update(bytes(state))
    return str(text)


async def write(url: str, topic: str, content: str) -> None:
    """Append `content` to the room's text as one real Yjs update (on top of what the room holds)."""
    (joined,) = await _call(url, topic, [])
    doc = Doc()
    doc[FIELD] = text = Text()
    doc.apply_update(bytes(joined.get("state") or []))
    before = doc.get_state()
    text += content
    update = doc.get_update(before)
    await _call(url, topic, [("update", {"data": list(update)})])


async def read(url: str, topic: str) -> str:
    (joined,) = await _call(url, topic, [])
    return _text_of(joined.get("state") or [])


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[0] not in ("write", "read") or (argv[0] == "write" and len(argv) != 4):
        print(__doc__, file=sys.stderr)
        return 2
    if argv[0] == "write":
        asyncio.run(write(argv[1], argv[2], argv[3]))
        print(f"wrote {len(argv[3])} characters to {argv[2]}")
    else:
        print(asyncio.run(read(argv[1], argv[2])))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
