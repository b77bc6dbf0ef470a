"use strict";
// close -> reply ok, then [jr, jr, T, "phx_close", {}]: the push resolves "ok", the channel closes
// (onClose) and phoenix.js does NOT rejoin it (no phx_join for 2.5 s, more than the 1 s rejoin backoff);
// the socket and its other channels carry on.
const { run, sleep, awaitPush } = require("../lib/harness");
const { openSocket, joinsSent, topic } = require("./common");

run(async (ctx) => {
  const { recorder } = ctx;
  const a = openSocket(ctx, "A");
  const room = topic("close");
  const ch = a.socket.channel(room, {});
  const events = [];
  ch.onError(() => events.push("onError"));
  ch.onClose(() => events.push("onClose"));
  const join = await awaitPush(ch.join());
  const echo = a.socket.channel(`echo:close-${process.pid}`, {});
  await awaitPush(echo.join());

  const reply = await awaitPush(ch.push("close", {}));
  await recorder.until(() => events.includes("onClose"), "onClose after phx_close");
  const stateAfterClose = ch.state;
  await sleep(2500);
  const result = {
    join,
    reply,
    events,
    state_after_close: stateAfterClose,
    state: ch.state,
    joins_sent: joinsSent(recorder, "A", room).length,
    socket_state: a.socket.connectionState(),
    echo_after: await awaitPush(echo.push("ping", { still: "here" })),
  };
  a.socket.disconnect();
  return result;
});
