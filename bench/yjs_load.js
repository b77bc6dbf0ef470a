"use strict";
// Load generator for bench/yjs_bench.py (room:* documents). Needs tests/js/node_modules (ws, yjs, lib0):
//   NODE_PATH=tests/js/node_modules node bench/yjs_load.js relay <phx|yws> <ws-url> <members> <updates> <bytes>
//   NODE_PATH=tests/js/node_modules node bench/yjs_load.js join  <ws-url> <room> <runs>
//   NODE_PATH=tests/js/node_modules node bench/yjs_load.js fill  <ws-url> <room> <bytes>
// Raw `ws` clients (no phoenix.js, no Y.Doc on the receivers), so the generator costs little next to the server.
// `phx` frames are Phoenix V2 binary pushes of y-protocols messages; `yws` frames are the plain messages that
// the y-websocket server takes. Prints one `RESULT <json>` line.
const WebSocket = require("ws");
const Y = require("yjs");
const encoding = require("lib0/encoding");

const [mode, ...args] = process.argv.slice(2);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function syncUpdate(update) {
  const enc = encoding.createEncoder();
  encoding.writeVarUint(enc, 0);
  encoding.writeVarUint(enc, 2);
  encoding.writeVarUint8Array(enc, update);
  return Buffer.from(encoding.toUint8Array(enc));
}

function phxPush(joinRef, ref, topic, event, payload) {
  const fields = [joinRef, ref, topic, event].map((s) => Buffer.from(String(s)));
  return Buffer.concat([Buffer.from([0, ...fields.map((f) => f.length)]), ...fields, payload]);
}

function open(url) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false });
    ws.binaryType = "nodebuffer";
    ws.once("open", () => resolve(ws));
    ws.once("error", reject);
  });
}

async function phxJoin(ws, topic, params) {
  return new Promise((resolve, reject) => {
    const onMsg = (data, isBinary) => {
      if (isBinary) return;
      const m = JSON.parse(data.toString());
      if (m[1] === "1" && m[3] === "phx_reply") {
        ws.off("message", onMsg);
        return m[4].status === "ok" ? resolve(m[4].response) : reject(new Error(JSON.stringify(m[4])));
      }
    };
    ws.on("message", onMsg);
    ws.send(JSON.stringify(["1", "1", topic, "phx_join", params]));
  });
}

function updates(count, bytes) {
  const doc = new Y.Doc();
  const text = doc.getText("text");
  const out = [];
  doc.on("update", (u) => out.push(u));
  for (let i = 0; i < count; i++) text.insert(text.length, "x".repeat(bytes));
  return out;
}

async function relay(target, url, members, count, bytes) {
  const room = `bench-${Date.now()}`;
  const wsUrl = target === "phx" ? `${url}/websocket?vsn=2.0.0` : `${url}/${room}`;
  const topic = `room:${room}`;
  const sockets = [];
  for (let i = 0; i < members; i += 20) {
    const batch = await Promise.all(Array.from({ length: Math.min(20, members - i) }, () => open(wsUrl)));
    if (target === "phx") await Promise.all(batch.map((ws) => phxJoin(ws, topic, { protocol: "yjs" })));
    sockets.push(...batch);
  }
  const msgs = updates(count, bytes).map(syncUpdate);
  const frames = target === "phx" ? msgs.map((m, i) => phxPush("1", String(i + 2), topic, "yjs", m)) : msgs;
  await sleep(300); // y-websocket sends SyncStep1 + awareness on connect: let that settle before counting
  const [sender, ...receivers] = sockets;
  const counts = receivers.map(() => 0);
  // count relayed sync updates ([0,2,...]); phx frames carry a kind-2 broadcast header first
  receivers.forEach((ws, i) => ws.on("message", (data, isBinary) => {
    if (!isBinary) return;
    const body = target === "phx" ? data.subarray(3 + data[1] + data[2]) : data;
    if (body[0] === 0 && body[1] === 2) counts[i]++;
  }));
  const window = 50; // updates in flight, measured at the slowest receiver
  const started = process.hrtime.bigint();
  let sent = 0;
  while (sent < frames.length) {
    const slowest = Math.min(...counts);
    while (sent < frames.length && sent - slowest < window) sender.send(frames[sent++]);
    await new Promise((r) => setImmediate(r));
    if (sent - Math.min(...counts) >= window) await sleep(1);
  }
  const deadline = Date.now() + 60000;
  while (Math.min(...counts) < count && Date.now() < deadline) await sleep(2);
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  sockets.forEach((ws) => ws.terminate());
  const delivered = counts.reduce((a, b) => a + b, 0);
  return { target, members, updates: count, bytes, seconds, complete: Math.min(...counts) >= count,
           updates_per_s: count / seconds, deliveries_per_s: delivered / seconds };
}

async function fill(url, room, bytes) {
  const ws = await open(`${url}/websocket?vsn=2.0.0`);
  const topic = `room:${room}`;
  await phxJoin(ws, topic, { protocol: "yjs" });
  const chunk = 256 * 1024;
  const ups = updates(Math.ceil(bytes / chunk), chunk);
  let ref = 2;
  for (const u of ups) {
    const want = String(ref);
    const replied = new Promise((resolve) => {
      const onMsg = (data, isBinary) => {
        if (isBinary) return;
        const m = JSON.parse(data.toString());
        if (m[1] === want && m[3] === "phx_reply") {
          ws.off("message", onMsg);
          resolve(m[4]);
        }
      };
      ws.on("message", onMsg);
    });
    ws.send(phxPush("1", String(ref++), topic, "update", Buffer.from(u)));
    const reply = await replied;
    if (reply.status !== "ok") throw new Error(`fill: ${JSON.stringify(reply)}`);
  }
  ws.terminate();
  return { filled: ups.reduce((a, u) => a + u.length, 0) };
}

async function join(url, room, runs) {
  const topic = `room:${room}`;
  const result = { json_ms: [], yjs_ms: [], state_bytes: 0 };
  for (let r = 0; r < runs; r++) {
    const ws = await open(`${url}/websocket?vsn=2.0.0`);
    let t0 = process.hrtime.bigint();
    let arrived = 0n;
    const first = (data, isBinary) => { if (!isBinary && !arrived) arrived = process.hrtime.bigint(); };
    ws.on("message", first); // the reply is the first frame: its arrival, before the client parses 4 MB of JSON
    const resp = await phxJoin(ws, topic, {}); // JSON: the whole document in the reply
    result.json_ms.push(Number(process.hrtime.bigint() - t0) / 1e6);
    result.json_arrival_ms = (result.json_arrival_ms || []).concat(Number(arrived - t0) / 1e6);
    result.state_bytes = resp.state.length;
    ws.terminate();
    const wy = await open(`${url}/websocket?vsn=2.0.0`);
    t0 = process.hrtime.bigint();
    await phxJoin(wy, topic, { protocol: "yjs" });
    const step2 = new Promise((resolve) => wy.on("message", (data, isBinary) => {
      if (isBinary && data[0] === 0) {
        const body = data.subarray(4 + data[1] + data[2] + data[3]);
        if (body[0] === 0 && body[1] === 1) resolve(body.length);
      }
    }));
    wy.send(phxPush("1", "2", topic, "yjs_sync", Buffer.from([0, 0, 1, 0])));
    result.step2_bytes = await step2;
    result.yjs_ms.push(Number(process.hrtime.bigint() - t0) / 1e6);
    wy.terminate();
    await sleep(50);
  }
  return result;
}

(async () => {
  let result;
  if (mode === "relay") result = await relay(args[0], args[1], Number(args[2]), Number(args[3]), Number(args[4]));
  else if (mode === "fill") result = await fill(args[0], args[1], Number(args[2]));
  else if (mode === "join") result = await join(args[0], args[1], Number(args[2]));
  else throw new Error(`unknown mode ${mode}`);
  process.stdout.write(`RESULT ${JSON.stringify(result)}\n`, () => process.exit(0));
})().catch((err) => {
  process.stdout.write(`RESULT ${JSON.stringify({ error: String(err.stack || err) })}\n`, () => process.exit(1));
});
