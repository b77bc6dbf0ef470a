// tornado-phoenix browser console: a phoenix.js (bundled, window.Phoenix) client with a live frame log.
// Works from any host the page is served from: the socket URL defaults to ws(s)://<this page's host>/socket.
// Query parameters prefill the form: ?url=ws://host:port/socket&heartbeat=5000&timeout=10000
"use strict";

(() => {
  const { Socket, Presence, LongPoll } = window.Phoenix;
  const $ = (id) => document.getElementById(id);
  const MAX_LOG = 1000; // entries kept in the page; older ones are dropped (a storm must not eat the tab)
  const T0 = performance.now();

  const state = {
    socket: null,
    channels: new Map(), // topic -> {channel, params, presence, closed}
    lastClose: null, // {code, reason}
    byUser: false, // the last close was the Disconnect button
  };

  // ---- form defaults ---------------------------------------------------------------------------------
  const query = new URLSearchParams(location.search);
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  $("url").value = query.get("url") || `${scheme}://${location.host}/socket`;
  if (query.get("heartbeat")) $("heartbeat").value = query.get("heartbeat");
  const pushTimeoutMs = Number(query.get("timeout")) || 10000;

  // ---- the log (batched every 50 ms, bounded even while the tab is in the background) ---------------------
  const logEl = $("log");
  let pending = [];
  let skippedPending = 0;
  let flushScheduled = false;

  function stamp() {
    return ((performance.now() - T0) / 1000).toFixed(3).padStart(8, " ");
  }

  function log(kind, text, extra = {}) {
    pending.push({ kind, text, t: stamp(), ...extra });
    if (pending.length > 2 * MAX_LOG) {
      skippedPending += pending.length - MAX_LOG;
      pending = pending.slice(-MAX_LOG);
    }
    if (!flushScheduled) {
      flushScheduled = true;
      setTimeout(flush, 50);
    }
  }

  function flush() {
    flushScheduled = false;
    let batch = pending;
    let skipped = skippedPending;
    pending = [];
    skippedPending = 0;
    if (batch.length > MAX_LOG) {
      skipped += batch.length - MAX_LOG;
      batch = batch.slice(-MAX_LOG);
    }
    const follow = logEl.scrollTop + logEl.clientHeight >= logEl.scrollHeight - 30;
    const frag = document.createDocumentFragment();
    if (skipped) frag.appendChild(entry({ kind: "info", text: `… ${skipped} entries not shown`, t: stamp() }));
    for (const e of batch) frag.appendChild(entry(e));
    logEl.appendChild(frag);
    while (logEl.childElementCount > MAX_LOG) logEl.removeChild(logEl.firstElementChild);
    if (follow) logEl.scrollTop = logEl.scrollHeight;
  }

  const ARROWS = { in: "◀", out: "▶", info: "·", error: "✖", reply: "↩", chan: "#", close: "■" };

  function entry(e) {
    const li = document.createElement("li");
    li.className = e.kind + (e.heartbeat ? " hb" : "");
    li.dataset.kind = e.kind;
    li.textContent = `${e.t} ${ARROWS[e.kind] || " "} ${e.text}`;
    return li;
  }

  function describeFrame(data) {
    if (typeof data === "string") return { text: data, heartbeat: /^\[null,"[^"]*","phoenix","(heartbeat|phx_reply)",/.test(data) };
    const bytes = new Uint8Array(data);
    const hex = Array.from(bytes.slice(0, 48), (b) => b.toString(16).padStart(2, "0")).join("");
    return { text: `binary ${bytes.length} bytes ${hex}${bytes.length > 48 ? "…" : ""}`, heartbeat: false };
  }

  // The transport phoenix.js is given: the browser's WebSocket, logging every frame both ways and the close.
  class LoggingWebSocket extends window.WebSocket {
    constructor(url, protocols) {
      super(url, protocols);
      log("info", `connecting ${url}`);
      this.addEventListener("open", () => log("info", "open"));
      this.addEventListener("message", (ev) => {
        const d = describeFrame(ev.data);
        log("in", d.text, { heartbeat: d.heartbeat });
      });
      this.addEventListener("error", () => log("error", "WebSocket error (refused, unreachable or dropped)"));
      this.addEventListener("close", (ev) => {
        if (state.socket && state.socket.conn === this) state.lastClose = { code: ev.code, reason: ev.reason };
        log("close", `closed code=${ev.code}${ev.reason ? ` reason=${JSON.stringify(ev.reason)}` : ""}`);
      });
    }

    send(data) {
      const d = describeFrame(data);
      log("out", d.text, { heartbeat: d.heartbeat });
      return super.send(data);
    }
  }

  // The same logging over phoenix.js's LongPoll (GET/POST <socket>/longpoll): frames in and out, open, close.
  class LoggingLongPoll extends LongPoll {
    constructor(url, protocols) {
      log("info", `long-poll ${url.replace(/^ws/, "http").replace(/\/websocket/, "/longpoll")}`);
      super(url, protocols);
    }
    set onopen(fn) { this._onopen = fn; }
    get onopen() { return (ev) => { log("info", "open (long-poll)"); return this._onopen && this._onopen(ev); }; }
    set onmessage(fn) { this._onmessage = fn; }
    get onmessage() {
      return (ev) => { log("in", describeFrame(ev.data).text); return this._onmessage && this._onmessage(ev); };
    }
    set onclose(fn) { this._onclose = fn; }
    get onclose() {
      return (ev) => {
        if (state.socket && state.socket.conn === this) state.lastClose = { code: ev.code, reason: ev.reason };
        log("close", `closed code=${ev.code}${ev.reason ? ` reason=${JSON.stringify(ev.reason)}` : ""}`);
        return this._onclose && this._onclose(ev);
      };
    }
    send(data) {
      log("out", describeFrame(data).text);
      return super.send(data);
    }
  }

  // ---- helpers ---------------------------------------------------------------------------------------
  function parseObject(field, what) {
    const el = $(field);
    try {
      const value = JSON.parse(el.value || "{}");
      if (value === null || typeof value !== "object" || Array.isArray(value)) throw new Error("not a JSON object");
      el.classList.remove("invalid");
      return value;
    } catch (err) {
      el.classList.add("invalid");
      log("error", `${what}: ${err.message}`);
      return null;
    }
  }

  function intField(field) {
    return Math.trunc(Number($(field).value));
  }

  // ---- connection ------------------------------------------------------------------------------------
  function connect() {
    const params = parseObject("params", "params");
    if (params === null) return;
    const url = $("url").value.trim();
    const previous = state.socket ? [...state.channels.entries()].filter(([, c]) => !c.closed) : [];
    if (state.socket) {
      state.byUser = true;
      state.socket.disconnect();
    }
    state.channels.clear();
    state.lastClose = null;
    state.byUser = false;
    const socket = new Socket(url, {
      params,
      transport: $("transport").value === "longpoll" ? LoggingLongPoll : LoggingWebSocket,
      heartbeatIntervalMs: Math.max(100, intField("heartbeat") || 30000),
      timeout: pushTimeoutMs,
    });
    socket.onOpen(() => log("info", "socket open"));
    socket.onError(() => {});
    state.socket = socket;
    socket.connect();
    for (const [topic, c] of previous) join(topic, c.params); // carry the joined topics over
    render();
  }

  function disconnect() {
    if (!state.socket) return;
    state.byUser = true;
    state.socket.disconnect(() => log("info", "disconnected (by you)"));
    render();
  }

  // ---- channels --------------------------------------------------------------------------------------
  function join(topic, params) {
    if (!topic) return null;
    if (!state.socket) connect();
    if (!state.socket) return null;
    const existing = state.channels.get(topic);
    if (existing && !existing.closed) {
      log("info", `${topic}: already joined (leave it first to join with other params)`);
      return existing;
    }
    const channel = state.socket.channel(topic, params);
    const item = { channel, params, presence: null, closed: false };
    state.channels.set(topic, item);
    channel.onError((reason) => {
      const why = reason && (typeof reason !== "object" || Object.keys(reason).length) ? ` (${JSON.stringify(reason)})` : "";
      log("chan", `${topic}: channel errored${why}; phoenix.js rejoins it once the socket is up`);
    });
    channel.onClose(() => {
      item.closed = true;
      log("chan", `${topic}: channel closed (no rejoin)`);
      render();
    });
    if (topic.startsWith("test:")) {
      item.presence = new Presence(channel);
      item.presence.onSync(() => renderPresence());
    }
    channel
      .join()
      .receive("ok", (resp) => log("reply", `${topic}: joined join_ref=${channel.joinRef()} ${JSON.stringify(resp)}`))
      .receive("error", (resp) => log("error", `${topic}: join refused ${JSON.stringify(resp)}`))
      .receive("timeout", () => log("error", `${topic}: join timed out`));
    render();
    return item;
  }

  function leave(topic) {
    const item = state.channels.get(topic);
    if (!item) return;
    if (item.closed) {
      state.channels.delete(topic);
      render();
      return;
    }
    item.channel
      .leave()
      .receive("ok", () => log("reply", `${topic}: left`))
      .receive("timeout", () => log("error", `${topic}: leave timed out`));
    state.channels.delete(topic);
    render();
  }

  function push(topic, event, payload) {
    const item = state.channels.get(topic);
    if (!item || item.closed) {
      log("error", `${topic || "(no topic)"}: not joined`);
      return;
    }
    item.channel
      .push(event, payload, pushTimeoutMs)
      .receive("ok", (resp) => log("reply", `${topic} ${event}: ok ${JSON.stringify(resp)}`))
      .receive("error", (resp) => log("error", `${topic} ${event}: error ${JSON.stringify(resp)}`))
      .receive("timeout", () => log("error", `${topic} ${event}: timeout (no reply within ${pushTimeoutMs} ms)`));
  }

  function fault(name) {
    const topic = $("fault-topic").value.trim();
    if (!topic.startsWith("fault:")) {
      log("error", `fault topic must start with fault:, got ${JSON.stringify(topic)}`);
      return;
    }
    const item = state.channels.get(topic);
    if (!item || item.closed) join(topic, {});
    const payloads = {
      delay: () => ({ ms: intField("delay-ms") }),
      silence: () => ({ ms: intField("silence-ms") }),
      disconnect: () => ({ code: intField("disconnect-code"), reason: $("disconnect-reason").value }),
      push_after: () => ({ ms: intField("push-after-ms"), event: $("push-after-event").value, payload: { from: "console" } }),
      broadcast_storm: () => ({ count: intField("storm-count"), bytes: intField("storm-bytes") }),
    };
    push(topic, name, payloads[name] ? payloads[name]() : {});
  }

  // ---- rendering (polled: phoenix.js has no hook for every state change) ------------------------------
  function badge() {
    const s = state.socket;
    const last = state.lastClose
      ? `closed ${state.lastClose.code}${state.lastClose.reason ? ` "${state.lastClose.reason}"` : ""}`
      : "";
    if (!s) return ["disconnected", "red", "not connected"];
    const cs = s.connectionState();
    if (cs === "open") return ["connected", "green", "connected"];
    if (state.byUser) return ["disconnected", "red", "disconnected (by you)"];
    if (cs === "connecting") return ["connecting", "amber", last ? `reconnecting… (${last})` : "connecting…"];
    if (s.reconnectTimer && s.reconnectTimer.timer) {
      return ["connecting", "amber", `reconnecting… (${last || "connection lost"})`];
    }
    return ["disconnected", "red", `disconnected${last ? ` (${last}; no reconnect)` : ""}`];
  }

  let lastSignature = "";

  function render() {
    const [st, color, text] = badge();
    const b = $("badge");
    if (b.dataset.state !== st || b.textContent !== text) {
      b.dataset.state = st;
      b.className = `badge ${color}`;
      b.textContent = text;
    }
    const rows = [...state.channels.entries()].map(([topic, c]) => ({
      topic,
      state: c.closed ? "closed" : c.channel.state,
      joinRef: c.channel.joinRef(),
    }));
    const signature = JSON.stringify(rows);
    if (signature === lastSignature) return;
    lastSignature = signature;
    const list = $("channels");
    list.replaceChildren(
      ...rows.map((r) => {
        const li = document.createElement("li");
        li.dataset.topic = r.topic;
        li.dataset.state = r.state;
        li.dataset.joinRef = r.joinRef;
        const name = document.createElement("span");
        name.className = `chan ${r.state}`;
        name.textContent = `${r.topic} — ${r.state} (join_ref ${r.joinRef})`;
        const button = document.createElement("button");
        button.type = "button";
        button.textContent = r.state === "closed" ? "Remove" : "Leave";
        button.addEventListener("click", () => leave(r.topic));
        li.append(name, button);
        return li;
      }),
    );
    const select = $("push-topic");
    const chosen = select.value;
    const open = rows.filter((r) => r.state !== "closed").map((r) => r.topic);
    select.replaceChildren(
      ...open.map((topic) => {
        const o = document.createElement("option");
        o.value = o.textContent = topic;
        return o;
      }),
    );
    if (open.includes(chosen)) select.value = chosen;
    renderPresence();
  }

  function renderPresence() {
    const box = $("presence");
    const parts = [];
    for (const [topic, c] of state.channels) {
      if (!c.presence) continue;
      const h = document.createElement("h3");
      h.textContent = topic;
      const ul = document.createElement("ul");
      ul.dataset.topic = topic;
      const people = c.presence.list((key, { metas }) => ({ key, metas }));
      for (const { key, metas } of people.sort((a, b) => (a.key < b.key ? -1 : 1))) {
        const li = document.createElement("li");
        li.dataset.key = key;
        li.textContent = `${key}${metas.length > 1 ? ` (${metas.length} connections)` : ""}`;
        ul.appendChild(li);
      }
      parts.push(h, ul);
    }
    box.replaceChildren(...parts);
  }

  // ---- wiring ----------------------------------------------------------------------------------------
  $("connect").addEventListener("click", connect);
  $("disconnect").addEventListener("click", disconnect);
  $("join").addEventListener("click", () => {
    const params = parseObject("join-params", "join params");
    if (params !== null) join($("topic").value.trim(), params);
  });
  $("topic").addEventListener("keydown", (ev) => ev.key === "Enter" && $("join").click());
  $("push").addEventListener("click", () => {
    const payload = parseObject("payload", "payload");
    if (payload !== null) push($("push-topic").value, $("event").value.trim(), payload);
  });
  for (const button of document.querySelectorAll("[data-fault]")) {
    button.addEventListener("click", () => fault(button.dataset.fault));
  }
  $("hide-heartbeats").addEventListener("change", (ev) => logEl.classList.toggle("hide-hb", ev.target.checked));
  logEl.classList.toggle("hide-hb", $("hide-heartbeats").checked);
  $("clear").addEventListener("click", () => logEl.replaceChildren());
  setInterval(render, 200);
  render();

  window.tpConsole = { state, connect, disconnect, join, leave, push, fault }; // for tests and the devtools
})();
