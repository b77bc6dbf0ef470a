"use strict";
// Scenario 3 — Presence sync across sockets with the client's own `Presence` class.
//   A (alice) and B (bob) join test:<room>; both lists show [alice, bob]
//   B leaves the channel                      -> A shows [alice]
//   B joins again (a new channel object)      -> both show [alice, bob]
//   B's socket disconnects (socket.disconnect) -> A shows [alice]
//   C (bob again, new socket) joins           -> A shows [alice, bob]
//   C's TCP connection is dropped abruptly (ws.terminate(), no close frame; reconnect disabled) -> A shows [alice]
// Over long-poll (PHX_TRANSPORT=longpoll) a disconnect tells the server nothing: the leave comes when the
// session expires (1.5 x TP_LONGPOLL_WINDOW without a poll), so the waits for it are longer.
const { run, awaitPush } = require("../lib/harness");

run(async ({ phoenix, recorder, openSocket, presenceShows, longpoll }) => {
  const { Presence } = phoenix;
  const room = `test:room-${process.pid}`;
  const steps = [];
  const step = (name, extra) => steps.push({ name, t: Date.now(), ...extra });

  // Each watcher keeps every list its Presence reported through onSync.
  const watch = (label, channel) => {
    const presence = new Presence(channel);
    const w = { label, presence, syncs: [] };
    presence.onSync(() => {
      w.syncs.push(presence.list((id, { metas }) => ({ id, metas: metas.length })));
    });
    w.ids = () => presence.list((id) => id).sort();
    w.full = () => presence.list((id, { metas }) => ({ id, metas: metas.length }));
    return w;
  };
  const shows = (w, ids) => presenceShows(w, ids, longpoll ? 12000 : 5000);

  const sa = openSocket("A");
  const sb = openSocket("B");

  const chA = sa.channel(room, { user_id: "alice" });
  const wA = watch("A", chA);
  const joinA = await awaitPush(chA.join());
  step("A joined", { reply: joinA });
  await shows(wA, ["alice"]);

  const chB = sb.channel(room, { user_id: "bob" });
  const wB = watch("B", chB);
  const joinB = await awaitPush(chB.join());
  step("B joined", { reply: joinB });
  await shows(wA, ["alice", "bob"]);
  await shows(wB, ["alice", "bob"]);
  step("both see alice+bob", { A: wA.full(), B: wB.full() });

  const leaveB = await new Promise((resolve) => chB.leave().receive("ok", (p) => resolve(["ok", p])));
  step("B left", { reply: leaveB });
  await shows(wA, ["alice"]);
  step("A sees alice after B left", { A: wA.full() });

  const chB2 = sb.channel(room, { user_id: "bob" });
  const wB2 = watch("B2", chB2);
  const joinB2 = await awaitPush(chB2.join());
  step("B joined again", { reply: joinB2 });
  await shows(wA, ["alice", "bob"]);
  await shows(wB2, ["alice", "bob"]);
  step("both see alice+bob again", { A: wA.full(), B2: wB2.full() });

  sb.disconnect();
  await recorder.until(() => recorder.entries.some((e) => e.socket === "B" && e.kind === "close"), "B's close");
  await shows(wA, ["alice"]);
  step("A sees alice after B disconnected", { A: wA.full() });

  // C: bob on a fresh socket, then its TCP connection dies without a close frame. Reconnect is pushed far
  // out so the server-side disconnect is what A observes (not a quick rejoin).
  const sc = openSocket("C", { reconnectAfterMs: () => 60000 });
  const chC = sc.channel(room, { user_id: "bob" });
  const wC = watch("C", chC);
  const joinC = await awaitPush(chC.join());
  step("C joined", { reply: joinC });
  await shows(wA, ["alice", "bob"]);
  await shows(wC, ["alice", "bob"]);
  step("both see alice+bob (C)", { A: wA.full(), C: wC.full() });
  if (longpoll) sc.conn.close(1006, "dropped", false);
  else sc.conn.terminate();
  await shows(wA, ["alice"]);
  step("A sees alice after C's connection dropped", { A: wA.full() });

  const result = {
    room,
    steps,
    syncs: { A: wA.syncs, B: wB.syncs, B2: wB2.syncs, C: wC.syncs },
    final: { A: wA.full() },
  };
  sa.disconnect();
  return result;
});
