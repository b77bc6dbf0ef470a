"use strict";
// Scenario 5 — reconnect + rejoin after the server process restarts (same port).
//   join echo:r, push; print READY_FOR_RESTART; pytest restarts the server and writes RESTARTED to stdin;
//   the client must have reconnected by itself (backoff 10, 50, 100, ... ms) and rejoined echo:r with a
//   new join_ref; then a push round-trips.
const { run, awaitPush, parseFrame, stdinLines } = require("../lib/harness");

run(
  async ({ url, phoenix, transport, recorder, requireOpen }) => {
    const { Socket } = phoenix;
    const stdin = stdinLines();
    const socket = new Socket(url, { transport: transport("R") });
    let opens = 0;
    const closes = [];
    socket.onOpen(() => opens++);
    socket.onClose((e) => closes.push({ code: e && e.code, reason: e && e.reason ? String(e.reason) : "" }));
    socket.connect();
    requireOpen("R");

    const echo = socket.channel("echo:r", { phase: "any" });
    const echoed = [];
    echo.on("ping", (p) => echoed.push(p));
    const channelErrors = [];
    echo.onError((reason) => channelErrors.push(reason === undefined ? null : reason));
    const join1 = await awaitPush(echo.join());
    const joinRef1 = echo.joinRef();
    const before = await awaitPush(echo.push("ping", { n: "before" }));

    const joinOks = () =>
      recorder
        .frames("R", "recv")
        .map(parseFrame)
        .filter((f) => f && f.topic === "echo:r" && f.event === "phx_reply" && f.ref === f.join_ref && f.payload.status === "ok");

    process.stdout.write("READY_FOR_RESTART\n");
    const line = await stdin.next(15000, "RESTARTED");
    if (line.trim() !== "RESTARTED") throw new Error(`unexpected stdin line ${JSON.stringify(line)}`);
    stdin.close();

    await recorder.until(() => joinOks().length >= 2 && echo.state === "joined", "automatic reconnect and rejoin of echo:r", 10000);
    const joinRef2 = echo.joinRef();
    const after = await awaitPush(echo.push("ping", { n: "after" }));
    const result = {
      join1,
      join_ref_1: joinRef1,
      join_ref_2: joinRef2,
      before,
      after,
      echoed,
      opens,
      closes: closes.slice(),
      channel_errors: channelErrors.slice(),
      state: echo.state,
      connected: socket.isConnected(),
    };
    socket.disconnect();
    return result;
  },
  { timeoutMs: 30000 },
);
