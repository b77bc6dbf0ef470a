"use strict";
// Scenario 4 — a shout with a non-map payload crashes only the sender's channel.
//   A (alice) and B (bob) join test:<room>. A pushes shout "a string payload".
//   A's channel gets phx_error (channel.onError), then rejoins by itself (rejoin timer: 1 s) with a new
//   join_ref; B stays joined, gets no phx_error, and still receives later shouts (from A after its
//   rejoin, and its own). B's Presence shows alice leave with the crash and come back with the rejoin.
const { run, sleep, awaitPush, parseFrame } = require("../lib/harness");

run(async ({ url, phoenix, transport, recorder, requireOpen }) => {
  const { Socket, Presence } = phoenix;
  const room = `test:crash-${process.pid}`;
  const mk = (label) => {
    const s = new Socket(url, { transport: transport(label) });
    s.connect();
    requireOpen(label);
    return s;
  };
  const sa = mk("A");
  const sb = mk("B");
  const events = [];
  const ev = (who, what, extra) => events.push({ who, what, t: Date.now(), ...extra });

  const chA = sa.channel(room, { user_id: "alice" });
  const shoutsA = [];
  chA.on("shout", (p) => shoutsA.push(p));
  chA.onError((reason) => ev("A", "onError", { reason: reason === undefined ? null : reason }));
  chA.onClose(() => ev("A", "onClose"));
  const joinA = await awaitPush(chA.join());
  const joinRefA1 = chA.joinRef();

  const chB = sb.channel(room, { user_id: "bob" });
  const shoutsB = [];
  chB.on("shout", (p) => shoutsB.push(p));
  chB.onError(() => ev("B", "onError"));
  chB.onClose(() => ev("B", "onClose"));
  const presB = new Presence(chB);
  const syncsB = [];
  presB.onSync(() => syncsB.push(presB.list((id) => id).sort()));
  const joinB = await awaitPush(chB.join());
  await recorder.until(() => JSON.stringify(presB.list((id) => id).sort()) === '["alice","bob"]', "B's Presence == [alice, bob]");

  // Rejoin detection: A's join ok replies, counted from the raw frames.
  const joinOks = () =>
    recorder
      .frames("A", "recv")
      .map(parseFrame)
      .filter((f) => f && f.topic === room && f.event === "phx_reply" && f.ref === f.join_ref && f.payload && f.payload.status === "ok");

  const crashPush = chA.push("shout", "a string payload");
  let crashReply = null;
  crashPush.receive("ok", (r) => (crashReply = ["ok", r])).receive("error", (r) => (crashReply = ["error", r]));
  const crashRef = crashPush.ref;
  ev("A", "pushed non-map shout", { ref: crashRef });
  await recorder.until(() => events.some((e) => e.who === "A" && e.what === "onError"), "A's channel onError");
  const stateAfterError = chA.state;

  // The client's rejoin timer (1 s) rejoins A by itself.
  await recorder.until(() => joinOks().length >= 2 && chA.state === "joined", "A's automatic rejoin", 5000);
  const joinRefA2 = chA.joinRef();
  ev("A", "rejoined", { join_ref: joinRefA2 });
  await recorder.until(() => JSON.stringify(presB.list((id) => id).sort()) === '["alice","bob"]', "B's Presence == [alice, bob] after A's rejoin");

  const shoutA = await awaitPush(chA.push("shout", { from: "alice", after: "rejoin" }));
  const shoutB = await awaitPush(chB.push("shout", { from: "bob" }));
  await recorder.until(() => shoutsB.length >= 2 && shoutsA.length >= 2, "both shouts delivered to both members");
  await sleep(100);

  const result = {
    room,
    join_a: joinA,
    join_b: joinB,
    join_ref_a1: joinRefA1,
    join_ref_a2: joinRefA2,
    crash_ref: crashRef,
    crash_reply: crashReply,
    state_after_error: stateAfterError,
    state_a: chA.state,
    state_b: chB.state,
    shout_a: shoutA,
    shout_b: shoutB,
    shouts_a: shoutsA,
    shouts_b: shoutsB,
    syncs_b: syncsB,
    events: events.slice(),
  };
  sa.disconnect();
  sb.disconnect();
  return result;
});
