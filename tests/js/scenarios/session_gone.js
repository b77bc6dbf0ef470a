"use strict";
// Long-poll only (PHX_TRANSPORT=longpoll): the server ends the session (fault:* disconnect). phoenix 1.8 gets
// 410 while holding a token, closes with 3410 "session_gone", reconnects and rejoins with a new join_ref;
// phoenix 1.7 takes the new token and fires onopen again (its channels are not errored, as with Phoenix).
const { run, awaitPush } = require("../lib/harness");

run(async ({ url, phoenix, transport, recorder, requireOpen }) => {
  const { Socket } = phoenix;
  const socket = new Socket(url, { transport: transport("S") });
  const closes = [];
  let opens = 0;
  socket.onOpen(() => opens++);
  socket.onClose((e) => closes.push({ code: e && e.code, reason: e && e.reason ? String(e.reason) : "" }));
  socket.connect();
  requireOpen("S");
  const ch = socket.channel("fault:sg", {});
  const join1 = await awaitPush(ch.join());
  const joinRef1 = ch.joinRef();
  ch.push("disconnect", { code: 4000 });
  await recorder.until(() => opens >= 2, "a second open after the session ended", 10000);
  if (closes.length) {
    await recorder.until(() => ch.state === "joined" && ch.joinRef() !== joinRef1, "rejoin after session_gone", 10000);
  }
  const result = { join1, join_ref_1: joinRef1, join_ref_2: ch.joinRef(), opens, closes: closes.slice(), state: ch.state };
  socket.disconnect();
  return result;
}, { timeoutMs: 25000 });
