"use strict";
// crash -> [jr, jr, T, "phx_error", {}]: the channel errors (onError), the crashing push gets no reply (its
// own timeout fires), and phoenix.js rejoins by itself (rejoin backoff: 1 s) with a new join_ref.
const { run, awaitPush } = require("../lib/harness");
const { openSocket, joinOks, topic } = require("./common");

run(async (ctx) => {
  const { recorder } = ctx;
  const a = openSocket(ctx, "A");
  const room = topic("crash");
  const ch = a.socket.channel(room, {});
  const events = [];
  ch.onError(() => events.push({ what: "onError", t: Date.now() }));
  ch.onClose(() => events.push({ what: "onClose", t: Date.now() }));
  const join = await awaitPush(ch.join());
  const joinRef1 = ch.joinRef();

  const crashedAt = Date.now();
  const crashPush = awaitPush(ch.push("crash", {}, 2500));
  await recorder.until(() => events.some((e) => e.what === "onError"), "onError after the crash");
  const stateAfterError = ch.state;
  await recorder.until(() => joinOks(recorder, "A", room).length >= 2 && ch.state === "joined", "the automatic rejoin", 5000);
  const rejoinMs = Date.now() - crashedAt;
  const joinRef2 = ch.joinRef();
  const crashReply = await crashPush;
  const after = await awaitPush(ch.push("delay", { ms: 0 }));
  const result = {
    join,
    join_ref_1: joinRef1,
    join_ref_2: joinRef2,
    state_after_error: stateAfterError,
    rejoin_ms: rejoinMs,
    crash_reply: crashReply,
    after,
    events: events.map((e) => e.what),
    state: ch.state,
    socket_opens: a.opens.length,
  };
  a.socket.disconnect();
  return result;
});
