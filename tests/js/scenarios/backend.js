"use strict";
// Driving tornado-phoenix from a backend, seen by phoenix.js (README: Driving it from your backend).
// Env: API_URL (the server's base http URL), API_SECRET. The server runs with TP_CONNECT_URL, TP_JOIN_URL,
// TP_EVENT_URL pointing at tests/support/backend.py, TP_JOIN_TOPICS=chat:*, TP_CALLBACK_TIMEOUT=1.
//   A (alice) and B (bob) connect (the backend allows token=good and assigns user_id), join chat:<room>:
//     the join reply is the backend's response; Presence lists alice and bob (keys from the connect assigns)
//   A pushes "both": the backend's broadcast reaches A and B, then A gets the backend's reply
//   POST /api/broadcast (single, then a batch of 2) reaches A and B in order
//   A joins chat:refuse-<room>: error {"reason":"not a member"}
//   A pushes "slow": error {"reason":"backend unavailable"} after TP_CALLBACK_TIMEOUT
//   C connects with token=bad: HTTP 403, no open
//   POST /api/disconnect {"user_id":"alice"}: A's socket is closed with 1000; B stays
const { run, awaitPush } = require("../lib/harness");

async function api(path, body) {
  const res = await fetch(process.env.API_URL + path, {
    method: "POST",
    headers: { "Content-Type": "application/json", Authorization: `Bearer ${process.env.API_SECRET}` },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: await res.json() };
}

run(async ({ url, phoenix, transport, recorder, requireOpen }) => {
  const { Socket, Presence } = phoenix;
  const room = `chat:room-${process.pid}`;
  const out = { steps: {} };
  const got = { A: [], B: [] };

  const mk = (label, user, token = "good", opts = {}) => {
    const s = new Socket(url, { transport: transport(label), params: { token, user }, ...opts });
    s.connect();
    return s;
  };
  const sa = mk("A", "alice", "good", { reconnectAfterMs: () => 60000 });
  const sb = mk("B", "bob");
  requireOpen("A");
  requireOpen("B");

  const chA = sa.channel(room, {});
  const chB = sb.channel(room, {});
  for (const [label, ch] of [["A", chA], ["B", chB]]) {
    for (const ev of ["new_msg", "saved", "m"]) ch.on(ev, (p) => got[label].push([ev, p]));
  }
  const pA = new Presence(chA);
  out.steps.joinA = await awaitPush(chA.join());
  out.steps.joinB = await awaitPush(chB.join());
  await recorder.until(() => pA.list((id) => id).sort().join() === "alice,bob", "A's Presence lists alice and bob");
  out.steps.presenceA = pA.list((id) => id).sort();

  out.steps.both = await awaitPush(chA.push("both", { body: "hello" }));
  await recorder.until(() => got.B.length >= 1, "B got the backend's broadcast");

  out.steps.apiSingle = await api("/api/broadcast", { topic: room, event: "saved", payload: { id: 1 } });
  out.steps.apiBatch = await api("/api/broadcast", {
    messages: [
      { topic: room, event: "m", payload: { i: 1 } },
      { topic: room, event: "m", payload: { i: 2 } },
    ],
  });
  await recorder.until(() => got.A.length >= 4 && got.B.length >= 4, "A and B got the API broadcasts");

  out.steps.refused = await awaitPush(sa.channel(`chat:refuse-${process.pid}`, {}).join());
  const t0 = Date.now();
  out.steps.slow = await awaitPush(chA.push("slow", {}, 5000));
  out.steps.slowMs = Date.now() - t0;

  const sc = mk("C", "mallory", "bad", { reconnectAfterMs: () => 60000 });
  await recorder.until(() => recorder.entries.some((e) => e.socket === "C" && e.kind === "http"), "C's refused upgrade");
  sc.disconnect();

  out.steps.disconnect = await api("/api/disconnect", { user_id: "alice" });
  await recorder.until(() => recorder.entries.some((e) => e.socket === "A" && e.kind === "close"), "A's close");
  out.steps.bAfter = await awaitPush(chB.push("echo", { still: "here" }));

  out.got = got;
  sa.disconnect();
  sb.disconnect();
  return out;
}, { timeoutMs: 25000 });
