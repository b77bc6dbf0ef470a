"""The baseline for `make bench`: a bare WebSocket relay on the same stack (Tornado 6.5, same Python), no
Phoenix protocol. `/relay`: every text message goes to every connected /relay socket with stock
`write_message`; `/echo`: every message comes straight back. What a few lines of plain Tornado give.

    python bench/relay.py --port 4100 [--loop uvloop]
"""

from __future__ import annotations

import argparse
import asyncio

import tornado.web
import tornado.websocket


class Relay(tornado.websocket.WebSocketHandler):
    members: set[Relay] = set()

    def open(self) -> None:
        self.set_nodelay(True)
        Relay.members.add(self)

    def on_message(self, message: str | bytes) -> None:
        for member in list(Relay.members):
            try:
                member.write_message(message)
            except tornado.websocket.WebSocketClosedError:
                Relay.members.discard(member)

    def on_close(self) -> None:
        Relay.members.discard(self)


class Echo(tornado.websocket.WebSocketHandler):
    def open(self) -> None:
        self.set_nodelay(True)

    def on_message(self, message: str | bytes) -> None:
        self.write_message(message)


class Health(tornado.web.RequestHandler):
    def get(self) -> None:
        self.write({"status": "ok", "connections": len(Relay.members)})


async def main(port: int) -> None:
    app = tornado.web.Application([("/relay", Relay), ("/echo", Echo), ("/health", Health)])
    app.listen(port, "127.0.0.1")
    await asyncio.Event().wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--loop", choices=["asyncio", "uvloop"], default="asyncio")
    args = parser.parse_args()
    if args.loop == "uvloop":
        import uvloop

        uvloop.run(main(args.port))
    else:
        asyncio.run(main(args.port))
