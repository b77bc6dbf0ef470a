"use strict";
// phoenix@1.8 `longPollFallbackMs`: the socket starts on WebSocket and falls back to LongPoll when the upgrade
// is refused (the server runs with TP_WEBSOCKET=off), or stays on WebSocket when it works. Either way it
// joins echo:fb and a push round-trips; the result says which transport carried it.
const { run, awaitPush } = require("../lib/harness");

run(async ({ url, phoenix, transport, note }) => {
  const { Socket, LongPoll } = phoenix;
  const socket = new Socket(url, {
    transport: transport("F"),
    longPollFallbackMs: 2500,
    sessionStorage: { store: {}, getItem(k) { return this.store[k] || null; }, setItem(k, v) { this.store[k] = v; } },
    logger: (kind, msg) => note(`${kind}: ${msg}`),
  });
  socket.connect();
  const channel = socket.channel("echo:fb", { via: "fallback" });
  const join = await awaitPush(channel.join());
  const push = await awaitPush(channel.push("ping", { n: 1 }));
  const result = {
    join,
    push,
    transport: socket.transport === LongPoll ? "longpoll" : "websocket",
    conn_is_longpoll: socket.conn instanceof LongPoll,
  };
  socket.disconnect();
  return result;
}, { timeoutMs: 25000 });
