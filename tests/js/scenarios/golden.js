"use strict";
// Scenario 1 — the golden script: the exact run recorded in tests/golden/phoenix-1.7.24/js-client.txt
// (connect with {token:"abc"}, join echo:1, push ping, join test:lobby as alice, shout, bogus, leave both,
// disconnect). pytest compares the recorded frames with the golden transcript for this client version.
//
// The ref counter must match the recording: exactly two socket callbacks (onOpen, onClose) are
// registered before the first channel is created, so the echo join gets join_ref "5" as in the golden run.
const { run, sleep, awaitPush, parseFrame } = require("../lib/harness");

run(async ({ url, phoenix, transport, recorder, note, requireOpen }) => {
  const { Socket } = phoenix;
  const socket = new Socket(url, { params: { token: "abc" }, transport: transport("main") });
  socket.onOpen(() => note("socket.onOpen"));
  socket.onClose(() => {});
  socket.connect();
  requireOpen("main");

  const show = (v) => JSON.stringify(v);
  const recvOn = (topic, event) =>
    recorder.frames("main", "recv").some((e) => {
      const f = parseFrame(e);
      return f && f.topic === topic && f.event === event;
    });

  const echo = socket.channel("echo:1", { hello: "world", n: 1 });
  echo.on("ping", (p) => note(`echo:1 on "ping" -> ${show(p)}`));
  let r = await awaitPush(echo.join());
  note(`echo join -> ${show(r)}`);
  if (r[0] !== "ok") throw new Error(`echo:1 join failed: ${show(r)}`);

  r = await awaitPush(echo.push("ping", { body: "hi", list: [1, 2, 3] }));
  note(`echo push ping -> ${show(r)}`);
  await sleep(100);

  const test = socket.channel("test:lobby", { user_id: "alice" });
  for (const ev of ["presence_diff", "presence_state", "shout"]) {
    test.on(ev, (p) => note(`test:lobby on "${ev}" -> ${show(p)}`));
  }
  r = await awaitPush(test.join());
  note(`test join -> ${show(r)}`);
  if (r[0] !== "ok") throw new Error(`test:lobby join failed: ${show(r)}`);
  await recorder.until(
    () => recvOn("test:lobby", "presence_state") && recvOn("test:lobby", "presence_diff"),
    "presence_state and presence_diff on test:lobby",
  );
  await sleep(200);

  r = await awaitPush(test.push("shout", { msg: "hello all" }));
  note(`test push shout -> ${show(r)}`);
  r = await awaitPush(test.push("bogus", { x: 1 }));
  note(`test push bogus -> ${show(r)}`);
  await sleep(100);

  echo.leave().receive("ok", (p) => note(`echo leave -> ${show(["ok", p])}`));
  test.leave().receive("ok", (p) => note(`test leave -> ${show(["ok", p])}`));
  await recorder.until(
    () => recvOn("echo:1", "phx_close") && recvOn("test:lobby", "phx_close"),
    "phx_close for echo:1 and test:lobby",
  );
  await sleep(200);

  socket.disconnect();
  await recorder.until(() => recorder.entries.some((e) => e.kind === "close"), "the WebSocket close");
  await sleep(50);
  return {};
});
