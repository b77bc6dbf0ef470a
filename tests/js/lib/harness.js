"use strict";
// Shared harness for driving the official Phoenix JS client (npm `phoenix`) against a live server.
//
// Usage from a scenario script:   node scenarios/<name>.js <client> <socket-url>
//   <client>      "1.7" (npm phoenix@1.7.x) or "1.8" (npm phoenix@1.8.x, installed as the alias `phoenix18`);
//                 the package names "phoenix" / "phoenix18" are accepted too.
//   <socket-url>  the endpoint a phoenix.js app is given, e.g. ws://127.0.0.1:4000/socket
//                 (the client appends /websocket?vsn=2.0.0 itself).
//
// Every raw WebSocket frame in and out is recorded by wrapping `ws` as the client's transport. The
// scenario ends by printing ONE line `RESULT <json>` on stdout (other lines may precede it, e.g.
// coordination lines such as READY_FOR_RESTART) and exiting 0; on any failure or the global timeout
// it still prints a RESULT line (with `error` set) and exits 1.

const fs = require("fs");
const path = require("path");
const readline = require("readline");
const WebSocket = require("ws");

const CLIENTS = {
  "1.7": "phoenix",
  phoenix: "phoenix",
  "1.8": "phoenix18",
  phoenix18: "phoenix18",
};

// PHX_TRANSPORT=longpoll runs every scenario over phoenix.js's LongPoll instead of WebSocket (the client's
// own LongPoll class, recorded the same way). Node has no XMLHttpRequest (phoenix@1.7 needs it) and no `self`
// (phoenix@1.7's `global` lookup needs it): lib/xhr.js provides the former, globalThis the latter.
const LONGPOLL = process.env.PHX_TRANSPORT === "longpoll";
if (LONGPOLL) {
  globalThis.self = globalThis;
  globalThis.XMLHttpRequest = require("./xhr").XMLHttpRequest;
}

function loadPhoenix(name) {
  const pkg = CLIENTS[name];
  if (!pkg) {
    throw new Error(`unknown client ${JSON.stringify(name)}; expected one of ${Object.keys(CLIENTS).join(", ")}`);
  }
  const lib = require(pkg);
  // The package's "exports" map hides package.json, so read it from node_modules directly.
  const pkgJson = JSON.parse(fs.readFileSync(path.join(__dirname, "..", "node_modules", pkg, "package.json"), "utf8"));
  return { lib, pkg, version: pkgJson.version };
}

const T0 = Date.now();
const now = () => Date.now() - T0;

// One shared, ordered log of everything seen on the wire (all sockets of a scenario).
class Recorder {
  constructor() {
    this.entries = [];
    this.js = [];
    this.waiters = [];
  }

  add(entry) {
    entry.t = now();
    this.entries.push(entry);
    this._poke();
    return entry;
  }

  // What the client library surfaced to application code (callbacks), as "JS ..." lines in the golden file.
  note(line) {
    this.js.push({ t: now(), line });
    this._poke();
  }

  _poke() {
    const pending = this.waiters;
    this.waiters = [];
    for (const w of pending) {
      if (!w.check()) this.waiters.push(w);
    }
  }

  frames(socketLabel, dir) {
    return this.entries.filter(
      (e) => (e.kind === "send" || e.kind === "recv") && (!socketLabel || e.socket === socketLabel) && (!dir || e.kind === dir),
    );
  }

  // Resolves when predicate() is truthy (re-checked on every recorded entry and every 20 ms).
  until(predicate, what, timeoutMs = 5000) {
    return new Promise((resolve, reject) => {
      let done = false;
      let timer = null;
      let poll = null;
      const finish = (fn, arg) => {
        if (done) return true;
        done = true;
        clearTimeout(timer);
        clearInterval(poll);
        fn(arg);
        return true;
      };
      const check = () => {
        let v;
        try {
          v = predicate();
        } catch (err) {
          return finish(reject, err);
        }
        return v ? finish(resolve, v) : false;
      };
      if (check()) return;
      this.waiters.push({ check });
      poll = setInterval(check, 20);
      timer = setTimeout(
        () => finish(reject, new Error(`timed out after ${timeoutMs} ms waiting for: ${what}`)),
        timeoutMs,
      );
    });
  }
}

// A `ws` subclass that records the handshake, every frame both ways and the close, tagged with `label`.
function recordingTransport(recorder, label) {
  return class RecordingWebSocket extends WebSocket {
    constructor(url, protocols) {
      super(url, protocols);
      this._label = label;
      recorder.add({ kind: "connect", socket: label, url: String(url) });
      this.on("upgrade", (res) => recorder.add({ kind: "upgrade", socket: label, status: res.statusCode }));
      this.on("unexpected-response", (_req, res) => {
        recorder.add({ kind: "http", socket: label, status: res.statusCode });
        this.terminate();
      });
      this.on("open", () => recorder.add({ kind: "open", socket: label }));
      this.on("message", (data, isBinary) => {
        if (isBinary) {
          recorder.add({ kind: "recv", socket: label, binary: true, hex: Buffer.from(data).toString("hex") });
        } else {
          recorder.add({ kind: "recv", socket: label, data: data.toString("utf8") });
        }
      });
      this.on("error", (err) => recorder.add({ kind: "error", socket: label, message: String(err && err.message) }));
      this.on("close", (code, reason) =>
        recorder.add({ kind: "close", socket: label, code, reason: reason.toString("utf8") }),
      );
    }

    send(data, ...rest) {
      if (typeof data === "string") {
        recorder.add({ kind: "send", socket: label, data });
      } else {
        recorder.add({ kind: "send", socket: label, binary: true, hex: Buffer.from(data).toString("hex") });
      }
      return super.send(data, ...rest);
    }

    // A raw frame straight through this socket, bypassing the client library (recorded like any send).
    sendRaw(data) {
      return this.send(data);
    }
  };
}

// A LongPoll subclass that records like recordingTransport: every frame sent and received, open and close.
function recordingLongPoll(recorder, label, LongPoll) {
  return class RecordingLongPoll extends LongPoll {
    constructor(endPoint, protocols) {
      recorder.add({ kind: "connect", socket: label, url: String(endPoint), transport: "longpoll" });
      super(endPoint, protocols);
    }
    set onopen(fn) {
      this._onopen = fn;
    }
    get onopen() {
      return (ev) => {
        recorder.add({ kind: "open", socket: label });
        return this._onopen && this._onopen(ev);
      };
    }
    set onmessage(fn) {
      this._onmessage = fn;
    }
    get onmessage() {
      return (ev) => {
        recorder.add({ kind: "recv", socket: label, data: String(ev.data) });
        return this._onmessage && this._onmessage(ev);
      };
    }
    set onclose(fn) {
      this._onclose = fn;
    }
    get onclose() {
      return (ev) => {
        recorder.add({ kind: "close", socket: label, code: ev && ev.code !== undefined ? ev.code : null, reason: String((ev && ev.reason) || "") });
        return this._onclose && this._onclose(ev);
      };
    }
    send(body) {
      recorder.add({ kind: "send", socket: label, data: String(body) });
      return super.send(body);
    }
    sendRaw(data) {
      return this.send(data);
    }
  };
}

// Parse a recorded text frame (V2 array) into {join_ref, ref, topic, event, payload}; null if not one.
function parseFrame(entry) {
  if (!entry || entry.binary || typeof entry.data !== "string") return null;
  try {
    const v = JSON.parse(entry.data);
    if (!Array.isArray(v) || v.length !== 5) return null;
    const [join_ref, ref, topic, event, payload] = v;
    return { join_ref, ref, topic, event, payload };
  } catch (_err) {
    return null;
  }
}

function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

// channel.join() / channel.push() as a promise of [status, response]; "timeout" after `ms`.
function awaitPush(push) {
  return new Promise((resolve) => {
    push
      .receive("ok", (resp) => resolve(["ok", resp]))
      .receive("error", (resp) => resolve(["error", resp]))
      .receive("timeout", () => resolve(["timeout", null]));
  });
}

function args() {
  const [client, url] = process.argv.slice(2);
  if (!client || !url) {
    process.stderr.write("usage: node <scenario.js> <1.7|1.8> <ws://host:port/socket>\n");
    process.exit(2);
  }
  return { client, url };
}

// stdin lines as an async queue (for coordination with pytest).
function stdinLines() {
  const queue = [];
  const waiting = [];
  const rl = readline.createInterface({ input: process.stdin });
  rl.on("line", (line) => {
    const w = waiting.shift();
    if (w) w(line);
    else queue.push(line);
  });
  return {
    next(timeoutMs, what) {
      if (queue.length) return Promise.resolve(queue.shift());
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms waiting for stdin: ${what}`)), timeoutMs);
        waiting.push((line) => {
          clearTimeout(timer);
          resolve(line);
        });
      });
    },
    close() {
      rl.close();
    },
  };
}

// Runs `main(ctx)` under a global timeout and prints the RESULT line. `main` returns extra result fields.
function run(main, { timeoutMs = 20000 } = {}) {
  const { client, url } = args();
  const recorder = new Recorder();
  let phoenix;
  const result = { client, url, error: null };
  let finished = false;
  const finish = (code) => {
    if (finished) return;
    finished = true;
    result.elapsed_ms = now();
    result.entries = recorder.entries;
    result.js = recorder.js;
    process.stdout.write("RESULT " + JSON.stringify(result) + "\n", () => process.exit(code));
  };
  const globalTimer = setTimeout(() => {
    result.error = `global timeout: scenario did not finish within ${timeoutMs} ms`;
    finish(1);
  }, timeoutMs);
  process.on("uncaughtException", (err) => {
    result.error = `uncaught exception: ${err && err.stack ? err.stack : err}`;
    finish(1);
  });
  process.on("unhandledRejection", (err) => {
    result.error = `unhandled rejection: ${err && err.stack ? err.stack : err}`;
    finish(1);
  });
  try {
    phoenix = loadPhoenix(client);
  } catch (err) {
    result.error = String(err.message);
    clearTimeout(globalTimer);
    finish(2);
    return;
  }
  result.package = phoenix.pkg;
  result.version = phoenix.version;
  const ctx = {
    url,
    client,
    phoenix: phoenix.lib,
    version: phoenix.version,
    recorder,
    transport: (label) =>
      LONGPOLL ? recordingLongPoll(recorder, label, phoenix.lib.LongPoll) : recordingTransport(recorder, label),
    longpoll: LONGPOLL,
    note: (line) => recorder.note(line),
    result,
    // A recorded Socket labelled `label`, connected to `at`; the scenario fails fast if it does not open.
    openSocket(label, opts = {}, at = url) {
      const socket = new phoenix.lib.Socket(at, { transport: ctx.transport(label), ...opts });
      socket.connect();
      ctx.requireOpen(label);
      return socket;
    },
    // Resolves once watcher `w`'s Presence list (w.ids(), sorted) equals `ids`; rejects after `ms`.
    presenceShows(w, ids, ms) {
      const same = () => JSON.stringify(w.ids()) === JSON.stringify(ids);
      return recorder.until(same, `${w.label}'s Presence list == ${JSON.stringify(ids)} (now ${JSON.stringify(w.ids())})`, ms);
    },
    // Fail the whole scenario fast if socket `label` has not opened within `ms` (a client that cannot
    // connect must fail, not hang until the global timeout).
    requireOpen(label, ms = 5000) {
      const timer = setTimeout(() => {
        if (recorder.entries.some((e) => e.kind === "open" && e.socket === label)) return;
        const seen = recorder.entries
          .filter((e) => e.socket === label && e.kind !== "send")
          .map((e) => JSON.stringify(e))
          .slice(-6);
        result.error = `client could not connect: socket ${label} did not open within ${ms} ms; last events: ${seen.join(" ")}`;
        clearTimeout(globalTimer);
        finish(1);
      }, ms);
      timer.unref();
    },
  };
  Promise.resolve()
    .then(() => main(ctx))
    .then((extra) => {
      Object.assign(result, extra || {});
      clearTimeout(globalTimer);
      finish(0);
    })
    .catch((err) => {
      result.error = err && err.stack ? err.stack : String(err);
      clearTimeout(globalTimer);
      finish(1);
    });
}

module.exports = { run, loadPhoenix, Recorder, recordingTransport, recordingLongPoll, LONGPOLL, parseFrame, sleep, awaitPush, stdinLines, now };
