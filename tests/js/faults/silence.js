"use strict";
// silence {ms} -> the server stops answering this socket (heartbeats included) without closing it.
// phoenix.js's heartbeat watchdog (heartbeatIntervalMs: 250 here; 30 000 by default) notices the missing
// heartbeat reply, closes the socket itself with 1000 "heartbeat timeout", reconnects and rejoins.
const { run, awaitPush, parseFrame } = require("../lib/harness");
const { openSocket, joinOks, opensOf, topic } = require("./common");

run(async (ctx) => {
  const { recorder } = ctx;
  const a = openSocket(ctx, "A", { heartbeatIntervalMs: 250 });
  const room = topic("silence");
  const ch = a.socket.channel(room, {});
  const join = await awaitPush(ch.join());
  const echoTopic = `echo:silence-${process.pid}`;
  const echo = a.socket.channel(echoTopic, {});
  await awaitPush(echo.join());
  const joinRef1 = echo.joinRef();

  const reply = await awaitPush(ch.push("silence", { ms: 3000 }));
  const silencedAt = Date.now();
  await recorder.until(() => a.notes.some((n) => /heartbeat timeout/.test(n.msg)), "the client's heartbeat timeout", 5000);
  const watchdogMs = a.notes.find((n) => /heartbeat timeout/.test(n.msg)).t - silencedAt;
  await recorder.until(
    () => opensOf(recorder, "A").length >= 2 && joinOks(recorder, "A", echoTopic).length >= 2 && echo.state === "joined",
    "reconnect and rejoin after the heartbeat timeout",
    5000,
  );
  const reconnectedMs = Date.now() - silencedAt;
  // The heartbeats sent on the first connection after the silence began were never answered.
  const firstOpen = opensOf(recorder, "A")[0].t;
  const secondOpen = opensOf(recorder, "A")[1].t;
  const sentHb = recorder.entries.filter((e) => e.kind === "send" && e.socket === "A" && e.t > firstOpen && e.t < secondOpen)
    .map(parseFrame).filter((f) => f && f.topic === "phoenix" && f.event === "heartbeat").map((f) => f.ref);
  const answered = new Set(recorder.frames("A", "recv").map(parseFrame).filter((f) => f && f.topic === "phoenix").map((f) => f.ref));
  const unanswered = sentHb.filter((ref) => !answered.has(ref));
  const closeEntry = recorder.entries.find((e) => e.kind === "close" && e.socket === "A");
  const result = {
    join,
    reply,
    watchdog_ms: watchdogMs,
    reconnected_ms: reconnectedMs,
    close_code: closeEntry && closeEntry.code,
    unanswered_heartbeats: unanswered.length,
    join_ref_1: joinRef1,
    join_ref_2: echo.joinRef(),
    echo_after: await awaitPush(echo.push("ping", { after: "silence" })),
    notes: a.notes.map((n) => n.msg).filter((m) => /heartbeat|close|connected/.test(m)).slice(0, 10),
  };
  a.socket.disconnect();
  return result;
});
