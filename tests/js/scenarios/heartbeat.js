"use strict";
// Scenario 2 — connect, join echo:hb and test:lobby, push/reply/echo, shout, and the client's own heartbeat
// (heartbeatIntervalMs = 200 ms, so the client also gives up on a heartbeat after 200 ms without its reply:
// a slow or missing heartbeat reply shows up as a close + reconnect, which pytest asserts never happens).
const { run, sleep, awaitPush, parseFrame } = require("../lib/harness");

const HEARTBEAT_MS = 200;
const WANT_HEARTBEATS = 4;

run(async ({ url, phoenix, transport, recorder, note, requireOpen }) => {
  const { Socket } = phoenix;
  const socket = new Socket(url, { transport: transport("hb"), heartbeatIntervalMs: HEARTBEAT_MS });
  let opens = 0;
  let closes = 0;
  socket.onOpen(() => opens++);
  socket.onClose(() => closes++);
  socket.connect();
  requireOpen("hb");
  const show = (v) => JSON.stringify(v);

  const echo = socket.channel("echo:hb", { who: "hb" });
  const echoed = [];
  echo.on("ping", (p) => echoed.push(p));
  const echoJoin = await awaitPush(echo.join());
  note(`echo join -> ${show(echoJoin)}`);
  const echoPush = await awaitPush(echo.push("ping", { n: 1, s: "héllo", f: 1.5 }));
  note(`echo push ping -> ${show(echoPush)}`);

  const test = socket.channel("test:lobby", { user_id: "hb-user" });
  const shouts = [];
  test.on("shout", (p) => shouts.push(p));
  const testJoin = await awaitPush(test.join());
  note(`test join -> ${show(testJoin)}`);
  const shout = await awaitPush(test.push("shout", { msg: "hi" }));
  note(`test push shout -> ${show(shout)}`);

  const heartbeats = () =>
    recorder.frames("hb", "send").map(parseFrame).filter((f) => f && f.topic === "phoenix" && f.event === "heartbeat");
  const replied = () => {
    const replies = new Set(
      recorder
        .frames("hb", "recv")
        .map(parseFrame)
        .filter((f) => f && f.topic === "phoenix" && f.event === "phx_reply")
        .map((f) => f.ref),
    );
    return heartbeats().filter((h) => replies.has(h.ref)).length;
  };
  await recorder.until(() => replied() >= WANT_HEARTBEATS, `${WANT_HEARTBEATS} answered heartbeats`, 5000);
  // One more interval: the client must still be connected (a missed reply would close the socket).
  await sleep(HEARTBEAT_MS + 50);
  const state = {
    connection_state: socket.connectionState(),
    is_connected: socket.isConnected(),
    opens,
    closes,
    echo_state: echo.state,
    test_state: test.state,
  };
  // A push still round-trips after the heartbeats.
  const late = await awaitPush(echo.push("ping", { late: true }));
  socket.disconnect();
  return { echo_join: echoJoin, echo_push: echoPush, echoed, test_join: testJoin, shout, shouts, late, state };
});
