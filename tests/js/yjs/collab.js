"use strict";
// Collaborative-document clients for `room:*`, built only from the locked npm packages: phoenix (1.7.23 or
// 1.8.16 as `phoenix18`), yjs, y-protocols (sync + awareness) and lib0 encoding, over `ws`.
//
//   JsonClient   the seeds' protocol: join -> {state: [...]}, push `update` {data} (array, base64 or a
//                binary push), receive `update` {data}. Works on vsn 1.0.0 and 2.0.0.
//   YjsClient    y-protocols exactly as y_ex's PhoenixChannelProvider: join, push `yjs_sync` SyncStep1
//                (binary), answer every `yjs` message through y-protocols, push local updates and
//                awareness as `yjs` binary pushes (ArrayBuffer payloads = V2 binary frames).
//
// Both keep the shared text in doc.getText("text").

const WebSocket = require("ws");
const Y = require("yjs");
const syncProtocol = require("y-protocols/sync");
const awarenessProtocol = require("y-protocols/awareness");
const encoding = require("lib0/encoding");
const decoding = require("lib0/decoding");

const PHOENIX = { "1.7": "phoenix", "1.8": "phoenix18" };

// vsn 1.0.0: JSON objects both ways (Phoenix's V1 serializer).
const v1 = {
  encode: (msg, cb) =>
    cb(JSON.stringify({ join_ref: msg.join_ref, ref: msg.ref, topic: msg.topic, event: msg.event, payload: msg.payload })),
  decode: (raw, cb) => {
    const m = JSON.parse(raw);
    cb({ join_ref: m.join_ref || null, ref: m.ref, topic: m.topic, event: m.event, payload: m.payload });
  },
};

function makeSocket(url, { phoenix = "1.8", vsn = "2.0.0", params = {} } = {}) {
  const { Socket } = require(PHOENIX[phoenix] || phoenix);
  const opts = { transport: WebSocket, params, heartbeatIntervalMs: 30000, reconnectAfterMs: () => 200 };
  if (vsn === "1.0.0") Object.assign(opts, { vsn, encode: v1.encode, decode: v1.decode });
  const socket = new Socket(url, opts);
  socket.connect();
  return socket;
}

function awaitPush(push, what) {
  return new Promise((resolve, reject) => {
    push
      .receive("ok", (resp) => resolve(resp))
      .receive("error", (resp) => reject(new Error(`${what}: error ${JSON.stringify(resp)}`)))
      .receive("timeout", () => reject(new Error(`${what}: timeout`)));
  });
}

const toArrayBuffer = (u8) => new Uint8Array(u8).buffer; // exact-size copy: phoenix.js checks constructor

class JsonClient {
  constructor(url, topic, name, { phoenix = "1.8", vsn = "2.0.0", encoding: enc = "array" } = {}) {
    this.name = name;
    this.topic = topic;
    this.doc = new Y.Doc();
    this.text = this.doc.getText("text");
    this.encoding = enc; // "array" | "base64" | "binary"
    this.socket = makeSocket(url, { phoenix, vsn });
    this.channel = this.socket.channel(topic, { user_id: name });
    this.acked = 0;
    this.pending = [];
    this.channel.on("update", (payload) => Y.applyUpdate(this.doc, new Uint8Array(payload.data), "remote"));
    this.doc.on("update", (update, origin) => {
      if (origin === "remote") return;
      let payload;
      if (this.encoding === "binary") payload = toArrayBuffer(update);
      else if (this.encoding === "base64") payload = { data: Buffer.from(update).toString("base64") };
      else payload = { data: Array.from(update) };
      const p = awaitPush(this.channel.push("update", payload), `${name} update`).then(() => this.acked++);
      this.pending.push(p);
    });
  }

  async join() {
    const resp = await awaitPush(this.channel.join(), `${this.name} join`);
    Y.applyUpdate(this.doc, new Uint8Array(resp.state), "remote");
    return resp;
  }

  async settle() {
    await Promise.all(this.pending);
  }

  close() {
    this.socket.disconnect();
  }
}

class YjsClient {
  constructor(url, topic, name, { phoenix = "1.8", params = null, awareness = null } = {}) {
    this.name = name;
    this.topic = topic;
    this.doc = new Y.Doc();
    this.text = this.doc.getText("text");
    this.awareness = new awarenessProtocol.Awareness(this.doc);
    this.awareness.setLocalState(awareness);
    this.synced = false;
    this.received = [];
    this.socket = makeSocket(url, { phoenix });
    this.channel = this.socket.channel(topic, params || { user_id: name });
    this.channel.on("yjs", (payload) => this._onMessage(new Uint8Array(payload)));
    this.doc.on("update", (update, origin) => {
      if (origin === this) return;
      const enc = encoding.createEncoder();
      encoding.writeVarUint(enc, 0); // messageSync
      syncProtocol.writeUpdate(enc, update);
      this._send("yjs", encoding.toUint8Array(enc));
    });
    this.awareness.on("update", ({ added, updated, removed }, origin) => {
      if (origin !== "local") return;
      const changed = added.concat(updated, removed);
      this._sendAwareness(changed);
    });
  }

  _send(event, u8) {
    if (this.channel.state === "joined") this.channel.push(event, toArrayBuffer(u8));
  }

  _sendAwareness(clients) {
    const enc = encoding.createEncoder();
    encoding.writeVarUint(enc, 1);
    encoding.writeVarUint8Array(enc, awarenessProtocol.encodeAwarenessUpdate(this.awareness, clients));
    this._send("yjs", encoding.toUint8Array(enc));
  }

  _onMessage(u8) {
    this.received.push(u8[0] === 0 ? `sync${u8[1]}` : `type${u8[0]}`);
    const dec = decoding.createDecoder(u8);
    const enc = encoding.createEncoder();
    const type = decoding.readVarUint(dec);
    if (type === 0) {
      encoding.writeVarUint(enc, 0);
      const sub = syncProtocol.readSyncMessage(dec, enc, this.doc, this);
      if (sub === syncProtocol.messageYjsSyncStep2) this.synced = true;
      if (encoding.length(enc) > 1) this._send("yjs", encoding.toUint8Array(enc));
    } else if (type === 1) {
      awarenessProtocol.applyAwarenessUpdate(this.awareness, decoding.readVarUint8Array(dec), this);
    }
  }

  async join() {
    const resp = await awaitPush(this.channel.join(), `${this.name} join`);
    const enc = encoding.createEncoder();
    encoding.writeVarUint(enc, 0); // messageSync
    syncProtocol.writeSyncStep1(enc, this.doc);
    this._send("yjs_sync", encoding.toUint8Array(enc));
    if (this.awareness.getLocalState() !== null) this._sendAwareness([this.doc.clientID]);
    return resp;
  }

  async settle() {}

  names() {
    return [...this.awareness.getStates().entries()]
      .filter(([id]) => id !== this.doc.clientID)
      .map(([, s]) => s && s.user && s.user.name)
      .filter(Boolean)
      .sort();
  }

  close() {
    this.awareness.destroy();
    this.socket.disconnect();
  }
}

function until(predicate, what, timeoutMs = 15000) {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const tick = () => {
      let v;
      try {
        v = predicate();
      } catch (err) {
        return reject(err);
      }
      if (v) return resolve(v);
      if (Date.now() - started > timeoutMs) return reject(new Error(`timed out after ${timeoutMs} ms: ${what}`));
      setTimeout(tick, 20);
    };
    tick();
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Runs main(), prints `RESULT <json>` and exits 0, or `RESULT {"error": ...}` and exits 1; global timeout.
function run(main, timeoutMs = 40000) {
  const timer = setTimeout(() => {
    process.stdout.write(`RESULT ${JSON.stringify({ error: `global timeout ${timeoutMs} ms` })}\n`);
    process.exit(1);
  }, timeoutMs);
  main()
    .then((result) => {
      clearTimeout(timer);
      process.stdout.write(`RESULT ${JSON.stringify(result)}\n`, () => process.exit(0));
    })
    .catch((err) => {
      clearTimeout(timer);
      process.stdout.write(`RESULT ${JSON.stringify({ error: String((err && err.stack) || err) })}\n`, () =>
        process.exit(1),
      );
    });
}

module.exports = { JsonClient, YjsClient, until, sleep, run, makeSocket, awaitPush };
