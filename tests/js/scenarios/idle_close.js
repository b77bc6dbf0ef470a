"use strict";
// Close-code mapping, second server-triggerable case: the server's idle timeout (run with a short
// TP_IDLE_TIMEOUT by pytest) closes a silent socket with 1002 (Bandit's code); phoenix.js, whose 30 s
// heartbeat has not fired yet, treats 1002 as unclean, reconnects by itself and rejoins echo:i.
const { run, awaitPush, parseFrame } = require("../lib/harness");

run(async ({ url, phoenix, transport, recorder, requireOpen }) => {
  const { Socket } = phoenix;
  const socket = new Socket(url, { transport: transport("I") });
  let opens = 0;
  const closes = [];
  socket.onOpen(() => opens++);
  socket.onClose((e) => closes.push(e && e.code));
  socket.connect();
  requireOpen("I");

  const echo = socket.channel("echo:i", {});
  const join1 = await awaitPush(echo.join());
  const joinRef1 = echo.joinRef();
  const joinOks = () =>
    recorder
      .frames("I", "recv")
      .map(parseFrame)
      .filter((f) => f && f.topic === "echo:i" && f.event === "phx_reply" && f.ref === f.join_ref && f.payload.status === "ok");

  // Stay silent: the server must close the socket after its idle timeout.
  await recorder.until(() => closes.length >= 1, "the server's idle-timeout close", 8000);
  await recorder.until(() => joinOks().length >= 2 && echo.state === "joined", "automatic reconnect and rejoin of echo:i", 5000);
  const opensAt = recorder.entries.filter((e) => e.kind === "open" && e.socket === "I").map((e) => e.t);
  const closedAt = recorder.entries.find((e) => e.kind === "close" && e.socket === "I").t;
  const after = await awaitPush(echo.push("ping", { after: "idle" }));
  const result = {
    join1,
    join_ref_1: joinRef1,
    join_ref_2: echo.joinRef(),
    first_close: closes[0],
    idle_ms: closedAt - opensAt[0],
    reconnect_ms: opensAt[1] - closedAt,
    opens,
    after,
  };
  socket.disconnect();
  return result;
});
