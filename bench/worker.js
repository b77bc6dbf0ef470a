'use strict';
// One load-generator process for bench/run.py: up to ~5,000 WebSocket clients.
//
// The parent sends one JSON command per line on stdin; this process answers with one JSON report per line on
// stdout. Every loop here is bounded by a count and a deadline, and only loopback URLs are accepted.
//
// Timestamps are microseconds of CLOCK_MONOTONIC (process.hrtime), which every process on the machine shares,
// so a shout stamped by one worker is timed when it lands in another worker.
//
// Modes: "phx" speaks Phoenix V2 (join bench:<room>, shout, heartbeat every 30 s as phoenix.js does);
// "raw" talks to the bare relay (bench/relay.py): a text message is broadcast as is, /echo echoes.
//
// Clients: "ws" is the `ws` package (what Phoenix's own figures were measured with); "raw" is a lean
// WebSocket client on net.Socket with a shared read buffer (no stream machinery, no per-frame allocation),
// so that the generator's CPU per frame stays well under the server's and the server is what is measured.

const net = require('net');
const readline = require('readline');
const WebSocket = require('ws');

const cfg = JSON.parse(process.argv[2]);
const MODE = cfg.mode; // "phx" | "raw"
const CLIENT = cfg.client || 'raw'; // "raw" | "ws"
const TOPIC = cfg.topic || 'bench:lobby';
const PAYLOAD_BYTES = cfg.payloadBytes || 64;
const HEARTBEAT_MS = cfg.heartbeatMs || 30000;
// Source address: only set when the parent asks (past ~28k connections one address runs out of ephemeral
// ports). Setting it makes Node bind() before connect(), and bind(port 0) costs the kernel a scan of the
// port range per connection: that was 0.4 ms of generator CPU per connection at 5k members.
const LOCAL_OPTS = cfg.local ? { localAddress: cfg.local } : {};

for (const url of [cfg.url, cfg.echoUrl]) {
  const host = new URL(url).hostname;
  if (!/^127\.\d+\.\d+\.\d+$/.test(host) && host !== 'localhost') {
    throw new Error(`refusing non-loopback target ${url}`);
  }
}

// ---- clients: open(url, handlers) -> {send(text), isOpen(), terminate(), reset()} ------------------------
// handlers: open(), message(buf) (buf is only valid during the call), error(reason), close(code).

function wsOpen(url, h) {
  const ws = new WebSocket(url, { ...LOCAL_OPTS, perMessageDeflate: false, handshakeTimeout: 30000 });
  ws.on('open', () => h.open());
  ws.on('message', (data) => h.message(data));
  ws.on('error', (e) => h.error(e.code || e.message));
  ws.on('close', (code) => h.close(code));
  return {
    send: (text) => ws.send(text),
    isOpen: () => ws.readyState === WebSocket.OPEN,
    terminate: () => ws.terminate(),
    reset: () => { if (ws._socket) ws._socket.resetAndDestroy(); },
  };
}

const SHARED_READ = Buffer.allocUnsafe(256 * 1024); // every raw socket reads into this, parsed at once
const KEY = 'dGhlIHNhbXBsZSBub25jZQ=='; // the handshake needs a key; the server does not check uniqueness

function rawOpen(url, h) {
  const u = new URL(url);
  let state = 0; // 0 handshake, 1 open, 2 closed
  let pending = null; // bytes of an incomplete frame (copied out of the shared buffer)
  const timer = setTimeout(() => { if (state === 0) { state = 2; h.error('handshake timeout'); sock.destroy(); } },
    30000);
  const finish = (code) => {
    if (state === 2) return;
    state = 2;
    clearTimeout(timer);
    h.close(code);
  };
  const onread = (nread, buf) => {
    let data = buf.subarray(0, nread);
    if (pending !== null) { data = Buffer.concat([pending, data]); pending = null; }
    let off = 0;
    if (state === 0) {
      const end = data.indexOf('\r\n\r\n');
      if (end < 0) { pending = Buffer.from(data); return; }
      if (data.toString('latin1', 0, 12) !== 'HTTP/1.1 101') {
        state = 2;
        clearTimeout(timer);
        h.error('handshake refused: ' + data.toString('latin1', 0, Math.min(end, 40)));
        sock.destroy();
        return;
      }
      state = 1;
      clearTimeout(timer);
      off = end + 4;
      h.open();
    }
    const size = data.length;
    while (state === 1 && off + 2 <= size) {
      const b0 = data[off];
      let len = data[off + 1] & 0x7f;
      let hdr = 2;
      if (len === 126) {
        if (off + 4 > size) break;
        len = data.readUInt16BE(off + 2);
        hdr = 4;
      } else if (len === 127) {
        if (off + 10 > size) break;
        len = Number(data.readBigUInt64BE(off + 2));
        hdr = 10;
      }
      if (off + hdr + len > size) break;
      const op = b0 & 0x0f;
      const start = off + hdr;
      off = start + len;
      if (op === 1 || op === 2) h.message(data.subarray(start, off));
      else if (op === 8) {
        const code = len >= 2 ? data.readUInt16BE(start) : 1005;
        sock.destroy();
        finish(code);
        return;
      } else if (op === 9) sendFrame(0xa, data.subarray(start, off));
    }
    if (state === 1 && off < size) pending = Buffer.from(data.subarray(off));
  };
  const sock = net.connect({ host: u.hostname, port: Number(u.port), ...LOCAL_OPTS, noDelay: true,
    onread: { buffer: SHARED_READ, callback: onread } });
  sock.on('connect', () => {
    sock.write(`GET ${u.pathname}${u.search} HTTP/1.1\r\nHost: ${u.host}\r\nUpgrade: websocket\r\n` +
      `Connection: Upgrade\r\nSec-WebSocket-Key: ${KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n`);
  });
  sock.on('error', (e) => { if (state === 0) { state = 2; clearTimeout(timer); h.error(e.code || e.message); } });
  sock.on('close', () => finish(1006));
  // Client frames must be masked; an all-zero mask is a valid key and leaves the payload as is.
  function sendFrame(opcode, payload) {
    const len = payload.length;
    const hdr = len < 126 ? 6 : 8;
    const frame = Buffer.allocUnsafe(hdr + len);
    frame[0] = 0x80 | opcode;
    if (len < 126) frame[1] = 0x80 | len;
    else { frame[1] = 0x80 | 126; frame.writeUInt16BE(len, 2); }
    frame.writeUInt32BE(0, hdr - 4);
    if (typeof payload === 'string') frame.write(payload, hdr, 'latin1'); // bench text is ASCII
    else payload.copy(frame, hdr);
    sock.write(frame);
  }
  return {
    send: (text) => { if (state === 1) sendFrame(0x1, text); },
    isOpen: () => state === 1,
    terminate: () => { sock.destroy(); },
    reset: () => { sock.resetAndDestroy(); },
  };
}

const openClient = CLIENT === 'ws' ? wsOpen : rawOpen;

const now = () => Number(process.hrtime.bigint() / 1000n);
const emit = (obj) => process.stdout.write(JSON.stringify(obj) + '\n');
const cpu = () => { const c = process.cpuUsage(); return c.user + c.system; };

const JOIN = JSON.stringify(['1', '1', TOPIC, 'phx_join', {}]);
const HEARTBEAT = JSON.stringify([null, 'hb', 'phoenix', 'heartbeat', {}]);
const R_KEY = Buffer.from('"r":');
const T_KEY = Buffer.from('"t":');
const S_KEY = Buffer.from('"s":');

// A JSON object of exactly PAYLOAD_BYTES bytes (a "p" string pads it), keys in sorted order as the server
// re-encodes them, so a 64-byte shout payload stays 64 bytes on every delivery.
function payload(fields) {
  const keys = Object.keys(fields).concat('p').sort();
  const render = (pad) => '{' + keys.map((k) => (k === 'p' ? `"p":"${pad}"` : `"${k}":${fields[k]}`)).join(',') + '}';
  const bare = render('').length;
  return render('x'.repeat(Math.max(0, PAYLOAD_BYTES - bare)));
}

function intAfter(buf, key) {
  let i = buf.indexOf(key);
  if (i < 0) return -1;
  i += key.length;
  let v = 0;
  for (; i < buf.length; i++) {
    const c = buf[i];
    if (c < 48 || c > 57) break;
    v = v * 10 + (c - 48);
  }
  return v;
}

const members = []; // joined clients of the room
const echoSockets = new Set();
let closed = 0;
let phase = 'idle'; // idle | rate
const rounds = new Map(); // round -> {count, lats, first, last, expect, reported}
let rateFrames = 0;
let rateBytes = 0;
let ref = 10;

function onRoomFrame(m, data) {
  if (phase === 'rate') {
    rateFrames++;
    rateBytes += data.length;
    if (m.sender !== undefined && m.sender.active) {
      const s = intAfter(data, S_KEY);
      if (s === m.sender.index) m.sender.next();
    }
    return;
  }
  const r = intAfter(data, R_KEY);
  if (r < 0) return; // replies (join, heartbeat, shout ok)
  const t = intAfter(data, T_KEY);
  const at = now();
  let rec = rounds.get(r);
  if (rec === undefined) {
    rec = { count: 0, lats: [], first: at, last: at, expect: members.length - closed, reported: false };
    rounds.set(r, rec);
  }
  rec.count++;
  rec.lats.push(at - t);
  if (at > rec.last) rec.last = at;
  if (!rec.reported && rec.count >= rec.expect) reportRound(r, rec, false);
}

function reportRound(r, rec, partial) {
  rec.reported = true;
  emit({ ev: 'round', r, count: rec.count, expect: rec.expect, first: rec.first, last: rec.last,
    lats: rec.lats, partial, cpu: cpu() });
}

function openMember(index) {
  return new Promise((resolve) => {
    const t0 = now();
    let settled = false;
    const m = { conn: null, index, joined: false, sender: undefined };
    const done = (ok, err) => {
      if (settled) return;
      settled = true;
      resolve({ ok, err, lat: now() - t0 });
    };
    m.conn = openClient(cfg.url, {
      open() {
        if (MODE === 'phx') m.conn.send(JOIN);
        else { m.joined = true; members.push(m); done(true); }
      },
      message(data) {
        if (m.joined) { onRoomFrame(m, data); return; }
        // The first frame of a phx member is its join reply.
        if (data.includes('"status":"ok"')) { m.joined = true; members.push(m); done(true); }
        else { done(false, 'join refused: ' + data.toString().slice(0, 120)); m.conn.terminate(); }
      },
      error(reason) { done(false, reason); },
      close(code) {
        if (m.joined) { closed++; m.joined = false; m.closeCode = code; }
        done(false, `closed ${code}`);
      },
    });
  });
}

async function connect(cmd) {
  const n = cmd.n;
  const lanes = Math.max(1, Math.min(cmd.concurrency || 50, n));
  const deadline = Date.now() + (cmd.timeoutMs || 120000);
  const lats = [];
  const errors = {};
  let next = 0;
  let ok = 0;
  const t0 = now();
  const cpu0 = cpu();
  // Heartbeats start with the ramp: a slow ramp must not let the first members hit the 60 s idle timeout.
  if (MODE === 'phx') startHeartbeats();
  async function lane() {
    while (next < n && Date.now() < deadline) {
      const i = next++;
      const res = await openMember(i);
      if (res.ok) { ok++; lats.push(res.lat); } else errors[res.err] = (errors[res.err] || 0) + 1;
    }
  }
  await Promise.all(Array.from({ length: lanes }, lane));
  emit({ ev: 'connected', ok, failed: n - ok, errors, t0, t1: now(), lats, cpu: cpu() - cpu0 });
}

let heartbeatTimer;
const HEARTBEAT_TICK_MS = 50;
function startHeartbeats() {
  // phoenix.js sends a heartbeat every 30 s per socket, each on its own timer, so they arrive spread out.
  // One sweeping timer does the same: every 50 ms it sends to the next 1/600 of the members.
  if (heartbeatTimer !== undefined) return;
  const slices = Math.max(1, Math.round(HEARTBEAT_MS / HEARTBEAT_TICK_MS));
  let slice = 0;
  heartbeatTimer = setInterval(() => {
    for (let i = slice; i < members.length; i += slices) {
      const conn = members[i].conn;
      if (conn.isOpen()) conn.send(HEARTBEAT);
    }
    if (slice === 0) for (const conn of echoSockets) if (conn.isOpen()) conn.send(HEARTBEAT);
    slice = (slice + 1) % slices;
  }, HEARTBEAT_TICK_MS);
}

function sender() {
  // The first member still open (a closed member cannot shout; the round then reports it as missing).
  for (const m of members) if (m.conn.isOpen()) return m;
  return members[0];
}

function shout(cmd) {
  const m = sender();
  const t = now();
  const body = payload({ r: cmd.r, t });
  if (MODE === 'phx') m.conn.send(`["1","${ref++}","${TOPIC}","shout",${body}]`);
  else m.conn.send(body);
  emit({ ev: 'shouted', r: cmd.r, t });
}

function flush(cmd) {
  const rec = rounds.get(cmd.r);
  if (rec === undefined) {
    emit({ ev: 'round', r: cmd.r, count: 0, expect: members.length - closed, first: 0, last: 0, lats: [],
      partial: true, cpu: cpu() });
  } else if (!rec.reported) {
    reportRound(cmd.r, rec, true);
  }
  rounds.delete(cmd.r);
}

function echo(cmd) {
  // Closed loop on one extra socket: push -> phx_reply (phx, echo:* channel) or text -> echoed text (raw).
  const n = cmd.n;
  const warmup = cmd.warmup || 0;
  const deadline = Date.now() + (cmd.timeoutMs || 60000);
  const url = MODE === 'phx' ? cfg.url : cfg.echoUrl;
  const topic = `echo:probe-${process.pid}`;
  const joinRef = `"1","1","${topic}"`;
  const rtts = [];
  let sentAt = 0;
  let seq = 0;
  let finished = false;
  let conn = null;
  const finish = (err) => {
    if (finished) return;
    finished = true;
    emit({ ev: 'echo', rtts, err });
    echoSockets.delete(conn);
    conn.terminate();
  };
  const sendOne = () => {
    if (seq >= n + warmup || Date.now() > deadline) { finish(seq >= n + warmup ? undefined : 'deadline'); return; }
    seq++;
    sentAt = now();
    const body = payload({ k: seq });
    if (MODE === 'phx') conn.send(`["1","${seq + 1}","${topic}","ping",${body}]`);
    else conn.send(body);
  };
  conn = openClient(url, {
    open() {
      if (MODE === 'phx') conn.send(JSON.stringify(['1', '1', topic, 'phx_join', {}]));
      else sendOne();
    },
    message(data) {
      if (MODE === 'phx') {
        if (!data.includes('"phx_reply"')) return; // the echo channel's push comes before its reply
        if (data.includes(joinRef)) { sendOne(); return; } // join reply
      }
      const rtt = now() - sentAt;
      if (seq > warmup) rtts.push(rtt);
      sendOne();
    },
    error(reason) { finish(reason); },
    close() { finish('closed'); },
  });
  echoSockets.add(conn);
}

function rate(cmd) {
  // Message-rate run: `senders` members of this worker shout closed-loop (next shout when their own copy of the
  // broadcast arrives); every member of every worker counts frames for `ms` milliseconds.
  const senders = cmd.senders || 0;
  const ms = cmd.ms;
  rateFrames = 0;
  rateBytes = 0;
  phase = 'rate';
  const t0 = now();
  const cpu0 = cpu();
  let shouts = 0;
  const active = [];
  for (let i = 0; i < Math.min(senders, members.length); i++) {
    const m = members[i];
    let k = 0;
    const s = {
      index: i,
      active: true,
      next() {
        if (!s.active) return;
        const body = payload({ k: k++, s: i, t: now() });
        shouts++;
        if (MODE === 'phx') m.conn.send(`["1","${ref++}","${TOPIC}","shout",${body}]`);
        else m.conn.send(body);
      },
    };
    m.sender = s;
    active.push(s);
  }
  for (const s of active) s.next();
  setTimeout(() => {
    for (const s of active) s.active = false;
    const frames = rateFrames;
    const bytes = rateBytes;
    const t1 = now();
    // Let in-flight frames drain before the next phase parses rounds again.
    setTimeout(() => {
      phase = 'idle';
      for (let i = 0; i < active.length; i++) members[i].sender = undefined;
    }, 1000);
    emit({ ev: 'rate', frames, bytes, shouts, t0, t1, cpu: cpu() - cpu0 });
  }, ms);
}

const rl = readline.createInterface({ input: process.stdin });
rl.on('line', (line) => {
  const cmd = JSON.parse(line);
  switch (cmd.cmd) {
    case 'connect': connect(cmd); break;
    case 'shout': shout(cmd); break;
    case 'flush': flush(cmd); break;
    case 'echo': echo(cmd); break;
    case 'rate': rate(cmd); break;
    case 'status': emit({ ev: 'status', members: members.length, closed, cpu: cpu(),
      rss: process.memoryUsage().rss }); break;
    case 'exit': {
      // Reset instead of close: no TIME_WAIT left on either side to slow the next run's connects.
      for (const m of members) m.conn.reset();
      process.exit(0);
      break;
    }
    default: emit({ ev: 'error', err: `unknown command ${cmd.cmd}` });
  }
});
rl.on('close', () => process.exit(0));
// Hard stop: a worker never outlives its run, whatever the parent does.
setTimeout(() => process.exit(3), cfg.maxLifetimeMs || 30 * 60 * 1000).unref();
emit({ ev: 'ready', pid: process.pid });
