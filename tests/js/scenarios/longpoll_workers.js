"use strict";
// Issue 12: phoenix.js LongPoll against `--workers 2` on Redis (one port, SO_REUSEPORT). Every request of the
// client is a fresh TCP connection (lib/xhr.js, keep-alive off), so the kernel spreads them over the workers
// and many reach the worker that does not hold the session: it forwards them over pub/sub to the owner.
//   node longpoll_workers.js <client> <url>   (PHX_TRANSPORT=longpoll)
//   A (alice) and B (bob) join test:<room>      -> both Presence lists show [alice, bob]
//   20 rounds: A pushes shout {i}               -> A gets the reply ok; A and B get the broadcast {i}
//   B leaves                                    -> A shows [alice]
const { run, awaitPush } = require("../lib/harness");

const ROUNDS = 20;

run(async ({ phoenix, recorder, openSocket, presenceShows }) => {
  const { Presence } = phoenix;
  const room = `test:lpw-${process.pid}`;
  const steps = [];
  const step = (name, extra) => steps.push({ name, t: Date.now(), ...extra });
  const watch = (label, channel) => {
    const presence = new Presence(channel);
    return { label, ids: () => presence.list((id) => id).sort() };
  };
  const shows = (w, ids) => presenceShows(w, ids, 10000);
  const mkSocket = (label) => openSocket(label, { reconnectAfterMs: () => 60000 });

  const sa = mkSocket("A");
  const sb = mkSocket("B");
  const chA = sa.channel(room, { user_id: "alice" });
  const chB = sb.channel(room, { user_id: "bob" });
  const wA = watch("A", chA);
  const wB = watch("B", chB);
  const gotA = [];
  const gotB = [];
  chA.on("shout", (p) => gotA.push(p.i));
  chB.on("shout", (p) => gotB.push(p.i));
  step("A joined", { reply: await awaitPush(chA.join()) });
  step("B joined", { reply: await awaitPush(chB.join()) });
  await shows(wA, ["alice", "bob"]);
  await shows(wB, ["alice", "bob"]);
  step("both see alice+bob");

  const replies = [];
  for (let i = 0; i < ROUNDS; i++) {
    replies.push(await awaitPush(chA.push("shout", { i })));
    await recorder.until(() => gotA.length > i && gotB.length > i, `round ${i}: A and B received shout ${i}`, 10000);
  }
  step("rounds done");

  await awaitPush(chB.leave());
  await shows(wA, ["alice"]);
  step("A sees only alice");
  sa.disconnect();
  sb.disconnect();
  return { steps, replies, gotA, gotB };
}, { timeoutMs: 40000 });
