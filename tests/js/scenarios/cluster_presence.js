"use strict";
// Scale-out (issue 11): two server nodes sharing Redis; phoenix.js `Presence` across them.
//   node <script> <client> <url of node 1> <url of node 2>
//   A (alice) on node 1, B (bob) on node 2 join test:<room>  -> both lists show [alice, bob]
//   B pushes "shout" {from: "bob", f: 1000.5}                 -> A receives it from the other node
//   C (carol) joins on node 2                                 -> A shows [alice, bob, carol]
//   print READY_FOR_KILL; pytest kill -9s node 2              -> A shows [alice] (down period)
const { run, awaitPush, stdinLines } = require("../lib/harness");

run(async ({ url, phoenix, recorder, openSocket, presenceShows }) => {
  const url2 = process.argv[4];
  const { Presence } = phoenix;
  const room = `test:cluster-${process.pid}`;
  const steps = [];
  const step = (name, extra) => steps.push({ name, t: Date.now(), ...extra });
  const watch = (label, channel) => {
    const presence = new Presence(channel);
    return { label, ids: () => presence.list((id) => id).sort() };
  };
  const shows = (w, ids, ms = 10000) => presenceShows(w, ids, ms);
  const mkSocket = (label, at) => openSocket(label, { reconnectAfterMs: () => 60000 }, at);

  const sa = mkSocket("A", url);
  const sb = mkSocket("B", url2);
  const chA = sa.channel(room, { user_id: "alice" });
  const wA = watch("A", chA);
  const shouts = [];
  chA.on("shout", (payload) => shouts.push(payload));
  step("A joined", { reply: await awaitPush(chA.join()) });
  const chB = sb.channel(room, { user_id: "bob" });
  const wB = watch("B", chB);
  step("B joined", { reply: await awaitPush(chB.join()) });
  await shows(wA, ["alice", "bob"]);
  await shows(wB, ["alice", "bob"]);
  step("both nodes see alice+bob", { A: wA.ids(), B: wB.ids() });

  await awaitPush(chB.push("shout", { from: "bob", f: 1000.5 }));
  await recorder.until(() => shouts.length === 1, "A received bob's shout from the other node", 10000);
  step("A got shout", { shout: shouts[0] });

  const sc = mkSocket("C", url2);
  const chC = sc.channel(room, { user_id: "carol" });
  step("C joined", { reply: await awaitPush(chC.join()) });
  await shows(wA, ["alice", "bob", "carol"]);
  step("A sees carol", { A: wA.ids() });

  const stdin = stdinLines();
  process.stdout.write("READY_FOR_KILL\n");
  const line = await stdin.next(15000, "KILLED");
  if (line.trim() !== "KILLED") throw new Error(`unexpected stdin line ${JSON.stringify(line)}`);
  stdin.close();
  const killedAt = Date.now();
  await shows(wA, ["alice"], 20000);
  step("A sees only alice after node 2 died", { A: wA.ids(), after_ms: Date.now() - killedAt });
  const result = { room, steps, shouts };
  sa.disconnect();
  return result;
}, { timeoutMs: 40000 });
