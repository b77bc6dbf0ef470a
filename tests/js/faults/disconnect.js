"use strict";
// disconnect {code, reason} -> the server closes the WebSocket with that code. phoenix.js reconnects (and
// rejoins its channels with new join_refs) after any code but 1000; after 1000 it stays disconnected.
// Usage: node faults/disconnect.js <client> <url> <code>
const { run, sleep, awaitPush } = require("../lib/harness");
const { openSocket, joinOks, opensOf, topic } = require("./common");

const code = Number(process.argv[4] || 4000);

run(async (ctx) => {
  const { recorder } = ctx;
  const a = openSocket(ctx, "A");
  const room = topic(`disconnect-${code}`);
  const ch = a.socket.channel(room, {});
  const join = await awaitPush(ch.join());
  const echoTopic = `echo:disconnect-${code}-${process.pid}`;
  const echo = a.socket.channel(echoTopic, {});
  await awaitPush(echo.join());
  const joinRefs1 = [ch.joinRef(), echo.joinRef()];

  const reply = await awaitPush(ch.push("disconnect", { code, reason: `js ${code}` }));
  await recorder.until(() => a.closes.length >= 1, "the server's close");
  const closedAt = Date.now();
  let reconnected = false;
  if (code === 1000) {
    await sleep(2500); // no reconnect: longer than the whole early backoff (10 .. 2000 ms)
  } else {
    await recorder.until(
      () => opensOf(recorder, "A").length >= 2 && joinOks(recorder, "A", room).length >= 2 &&
        joinOks(recorder, "A", echoTopic).length >= 2 && ch.state === "joined" && echo.state === "joined",
      "automatic reconnect and rejoin of both channels",
      5000,
    );
    reconnected = true;
  }
  const closeEntry = recorder.entries.find((e) => e.kind === "close" && e.socket === "A");
  const result = {
    code,
    join,
    reply,
    close_code: closeEntry && closeEntry.code,
    close_reason: closeEntry && closeEntry.reason,
    reconnected,
    reconnect_ms: reconnected ? Date.now() - closedAt : null,
    opens: opensOf(recorder, "A").length,
    socket_state: a.socket.connectionState(),
    channel_states: [ch.state, echo.state],
    join_refs_1: joinRefs1,
    join_refs_2: [ch.joinRef(), echo.joinRef()],
    echo_after: reconnected ? await awaitPush(echo.push("ping", { after: code })) : null,
  };
  a.socket.disconnect();
  return result;
});
