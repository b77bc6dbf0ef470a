"use strict";
// Checklist item 79 (the half a real server can trigger without fault injection): the server closes a
// socket with 1011 after a malformed frame (here: text that is not JSON, sent through the client's own
// WebSocket), and phoenix.js — which reconnects after any close code other than 1000 — reconnects by
// itself within its first backoff steps (10, 50 ms) and rejoins echo:c with a new join_ref.
const { run, awaitPush, parseFrame } = require("../lib/harness");

run(async ({ url, phoenix, transport, recorder, requireOpen }) => {
  const { Socket } = phoenix;
  const socket = new Socket(url, { transport: transport("K") });
  let opens = 0;
  const closes = [];
  socket.onOpen(() => opens++);
  socket.onClose((e) => closes.push({ code: e && e.code, t: Date.now() }));
  socket.connect();
  requireOpen("K");

  const echo = socket.channel("echo:c", {});
  const join1 = await awaitPush(echo.join());
  const joinRef1 = echo.joinRef();
  const joinOks = () =>
    recorder
      .frames("K", "recv")
      .map(parseFrame)
      .filter((f) => f && f.topic === "echo:c" && f.event === "phx_reply" && f.ref === f.join_ref && f.payload.status === "ok");

  socket.conn.send("this is not json");
  await recorder.until(() => closes.length >= 1, "the server's close after a malformed frame");
  await recorder.until(() => joinOks().length >= 2 && echo.state === "joined", "automatic reconnect and rejoin of echo:c", 5000);
  const reopenedAt = recorder.entries.filter((e) => e.kind === "open" && e.socket === "K")[1].t;
  const closedAt = recorder.entries.find((e) => e.kind === "close" && e.socket === "K").t;
  const after = await awaitPush(echo.push("ping", { after: "1011" }));
  const result = {
    join1,
    join_ref_1: joinRef1,
    join_ref_2: echo.joinRef(),
    closes: closes.map((c) => c.code),
    reconnect_ms: reopenedAt - closedAt,
    opens,
    after,
  };
  socket.disconnect();
  return result;
});
