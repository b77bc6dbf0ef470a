"use strict";
// Scenario 6 — leave: the leave reply, then phx_close with the join_ref; the channel's onClose fires; a raw
// push to the left topic afterwards (sent through the client's own WebSocket) gets the unmatched-topic error.
const { run, sleep, awaitPush, parseFrame } = require("../lib/harness");

run(async ({ url, phoenix, transport, recorder, requireOpen }) => {
  const { Socket } = phoenix;
  const socket = new Socket(url, { transport: transport("L") });
  socket.connect();
  requireOpen("L");
  const recv = () => recorder.frames("L", "recv").map(parseFrame).filter(Boolean);

  const echo = socket.channel("echo:l", { x: 1 });
  let closed = 0;
  echo.onClose(() => closed++);
  const join = await awaitPush(echo.join());
  const joinRef = echo.joinRef();
  const push = await awaitPush(echo.push("ping", { before: "leave" }));

  const leavePush = echo.leave();
  const leaveRef = leavePush.ref;
  const leave = await new Promise((resolve) => leavePush.receive("ok", (p) => resolve(["ok", p])));
  await recorder.until(
    () => recv().some((f) => f.topic === "echo:l" && f.event === "phx_close"),
    "phx_close for echo:l",
  );
  await sleep(100);

  // A raw push to the topic just left, carrying the old join_ref.
  const rawRef = socket.makeRef();
  socket.conn.send(JSON.stringify([joinRef, rawRef, "echo:l", "ping", { after: "leave" }]));
  await recorder.until(() => recv().some((f) => f.ref === rawRef), `a reply to the raw push ref ${rawRef}`);
  // And a second leave of the no-longer-joined topic: ok reply echoing join_ref and ref, no phx_close.
  const rawLeaveRef = socket.makeRef();
  socket.conn.send(JSON.stringify([rawLeaveRef, rawLeaveRef, "echo:l", "phx_leave", {}]));
  await recorder.until(() => recv().some((f) => f.ref === rawLeaveRef), `a reply to the raw leave ref ${rawLeaveRef}`);
  await sleep(150);
  const result = {
    join,
    join_ref: joinRef,
    push,
    leave,
    leave_ref: leaveRef,
    raw_ref: rawRef,
    raw_leave_ref: rawLeaveRef,
    closed,
    state: echo.state,
    channels_left: socket.channels.length,
    connected: socket.isConnected(),
  };
  socket.disconnect();
  return result;
});
