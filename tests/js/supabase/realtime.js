"use strict";
// @supabase/realtime-js (2.119.1, the locked current 2.x) against the real server's /realtime/v1 mount.
//
// Usage: node supabase/realtime.js <vsn 1.0.0|2.0.0> <http://127.0.0.1:PORT/realtime/v1>   (env JWT_SECRET)
// Runs every check in order and prints one line `RESULT <json>`; exits 1 with `error` set on any failure.
//   subscribe -> SUBSCRIBED (reply {"postgres_changes":[]});
//   broadcast between two clients with self false (sender does not get it) and true (it does), ack true
//   (send() resolves "ok" from the server's reply);
//   presence track / re-track / untrack seen through sync/join/leave on the other client;
//   setAuth with a valid JWT (channel stays joined) and an expired one (system error, then CLOSED);
//   a postgres_changes binding is refused with a system error.
// Every raw frame is recorded; the result lists the binary kinds seen both ways.
const crypto = require("crypto");
const WebSocket = require("ws");
const { RealtimeClient } = require("@supabase/realtime-js");

const [vsn, url] = process.argv.slice(2);
const SECRET = process.env.JWT_SECRET || "";
const result = { vsn, error: null, frames: { sent_binary_kinds: [], recv_binary_kinds: [], recv_text_events: [] } };
const T0 = Date.now();

function jwt(claims) {
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString("base64url");
  const input = `${b64({ alg: "HS256", typ: "JWT" })}.${b64(claims)}`;
  return `${input}.${crypto.createHmac("sha256", SECRET).update(input).digest("base64url")}`;
}
const now = () => Math.floor(Date.now() / 1000);

class RecordingWS extends WebSocket {
  constructor(address, protocols) {
    super(address, protocols);
    result.url = String(address);
    this.on("message", (data, isBinary) => {
      if (isBinary) result.frames.recv_binary_kinds.push(Buffer.from(data)[0]);
      else {
        try {
          const v = JSON.parse(data.toString("utf8"));
          result.frames.recv_text_events.push(Array.isArray(v) ? v[3] : v.event);
        } catch (_e) {
          result.frames.recv_text_events.push("<invalid>");
        }
      }
    });
  }
  send(data, ...rest) {
    if (typeof data !== "string") result.frames.sent_binary_kinds.push(Buffer.from(data)[0]);
    return super.send(data, ...rest);
  }
}

function client(token) {
  const c = new RealtimeClient(url, { params: { apikey: "anon-key" }, transport: RecordingWS, vsn, timeout: 5000 });
  if (token) c.setAuth(token);
  return c;
}

function until(pred, what, ms = 5000) {
  return new Promise((resolve, reject) => {
    const start = Date.now();
    const tick = () => {
      let v;
      try {
        v = pred();
      } catch (e) {
        return reject(e);
      }
      if (v) return resolve(v);
      if (Date.now() - start > ms) return reject(new Error(`timed out after ${ms} ms waiting for: ${what}`));
      setTimeout(tick, 10);
    };
    tick();
  });
}

function subscribe(channel) {
  return new Promise((resolve) => {
    channel.subscribe((status, err) => {
      if (status !== "CLOSED") resolve({ status, err: err ? String(err.message || err) : null });
    });
  });
}

async function main() {
  const valid = jwt({ sub: "u1", role: "authenticated", exp: now() + 3600 });
  const A = client(valid);
  const B = client(valid);
  const room = `room-${process.pid}-${vsn}`;

  // broadcast, self false (default), ack false
  const gotA = [];
  const gotB = [];
  const chA = A.channel(room);
  const chB = B.channel(room);
  chA.on("broadcast", { event: "cursor" }, (m) => gotA.push(m));
  chB.on("broadcast", { event: "cursor" }, (m) => gotB.push(m));
  result.subscribe_a = await subscribe(chA);
  result.subscribe_b = await subscribe(chB);
  result.send_self_false = await chA.send({ type: "broadcast", event: "cursor", payload: { x: 1, s: "héllo" } });
  await until(() => gotB.length === 1, "B receives A's broadcast");
  result.b_got = gotB.slice();

  // self true, ack true on another topic
  const gotSelf = [];
  const gotB2 = [];
  const chS = A.channel(`${room}-self`, { config: { broadcast: { self: true, ack: true } } });
  const chS2 = B.channel(`${room}-self`);
  chS.on("broadcast", { event: "*" }, (m) => gotSelf.push(m));
  chS2.on("broadcast", { event: "*" }, (m) => gotB2.push(m));
  result.subscribe_self = await subscribe(chS);
  await subscribe(chS2);
  result.send_ack = await chS.send({ type: "broadcast", event: "Ping", payload: { n: 2 } });
  await until(() => gotSelf.length === 1 && gotB2.length === 1, "self and the other receive");
  result.self_got = gotSelf.slice();
  result.b2_got = gotB2.slice();
  result.a_got = gotA.slice(); // self false: A never received its own

  // presence
  const pA = A.channel(`${room}-presence`, { config: { presence: { key: "alice" } } });
  const pB = B.channel(`${room}-presence`, { config: { presence: { key: "bob" } } });
  const events = [];
  const keys = (ch) => Object.keys(ch.presenceState()).sort();
  pB.on("presence", { event: "sync" }, () => events.push(["sync", keys(pB)]));
  pB.on("presence", { event: "join" }, ({ key, newPresences }) =>
    events.push(["join", key, newPresences.map((p) => p.user)]),
  );
  pB.on("presence", { event: "leave" }, ({ key, leftPresences }) =>
    events.push(["leave", key, leftPresences.map((p) => p.user)]),
  );
  pA.on("presence", { event: "sync" }, () => {});
  result.subscribe_presence = [await subscribe(pA), await subscribe(pB)];
  result.track = await pA.track({ user: "alice", v: 1 });
  await until(() => JSON.stringify(keys(pB)) === '["alice"]', "B sees alice");
  result.retrack = await pA.track({ user: "alice", v: 2 });
  await until(() => pB.presenceState().alice && pB.presenceState().alice[0].v === 2, "B sees alice's update");
  result.track_b = await pB.track({ user: "bob" });
  await until(() => JSON.stringify(keys(pA)) === '["alice","bob"]', "A sees alice and bob");
  result.untrack = await pA.untrack();
  await until(() => JSON.stringify(keys(pB)) === '["bob"]', "B sees alice leave");
  result.presence_events = events.slice();
  result.presence_ref_ok = Object.values(pB.presenceState()).every((ms) => ms.every((m) => typeof m.presence_ref === "string"));

  // postgres_changes refused with a system error
  const systems = [];
  const pg = A.channel(`${room}-pg`);
  pg.on("system", {}, (m) => systems.push(m));
  pg.on("postgres_changes", { event: "*", schema: "public", table: "t" }, () => {});
  result.subscribe_pg = await subscribe(pg);
  await until(() => systems.length >= 1, "postgres_changes system error");
  result.pg_system = systems[0];
  await A.removeChannel(pg);

  // setAuth: a valid token keeps the channel; an expired one gets a system error, then the channel closes
  const authSystems = [];
  const closed = [];
  chB.on("system", {}, (m) => authSystems.push(m));
  chB.subscribe((status) => {
    if (status === "CLOSED") closed.push(status);
  });
  await B.setAuth(jwt({ sub: "u1", role: "authenticated", exp: now() + 7200 }));
  result.send_after_valid = await chA.send({ type: "broadcast", event: "cursor", payload: { x: 3 } });
  await until(() => gotB.length === 2, "B still receives after a valid setAuth");
  result.state_after_valid = chB.state;
  await B.setAuth(jwt({ sub: "u1", role: "authenticated", exp: now() - 60 }));
  await until(() => authSystems.length >= 1 && chB.state === "closed", "system error and close after an expired token");
  result.expired_system = authSystems[0];
  result.state_after_expired = chB.state;

  await A.removeAllChannels();
  await B.removeAllChannels();
  A.disconnect();
  B.disconnect();
}

const timer = setTimeout(() => finish("global timeout (30 s)"), 30000);
function finish(err) {
  clearTimeout(timer);
  result.error = err;
  result.elapsed_ms = Date.now() - T0;
  process.stdout.write("RESULT " + JSON.stringify(result) + "\n", () => process.exit(err ? 1 : 0));
}
main().then(() => finish(null), (e) => finish(e && e.stack ? e.stack : String(e)));
