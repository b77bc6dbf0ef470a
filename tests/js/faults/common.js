"use strict";
// Shared bits of the fault scenarios (tests/js/faults/*.js), on top of ../lib/harness.js.
const { parseFrame } = require("../lib/harness");

// A phoenix.js Socket on the recording transport `label`; `notes` collects what the client's logger said.
function openSocket({ url, phoenix, transport, requireOpen }, label, opts = {}) {
  const notes = [];
  const socket = new phoenix.Socket(url, {
    transport: transport(label),
    logger: (kind, msg) => {
      if (kind === "transport") notes.push({ t: Date.now(), msg: String(msg) });
    },
    ...opts,
  });
  const opens = [];
  const closes = [];
  socket.onOpen(() => opens.push(Date.now()));
  socket.onClose((e) => closes.push({ code: e && e.code, reason: e && e.reason, t: Date.now() }));
  socket.connect();
  requireOpen(label);
  return { socket, notes, opens, closes };
}

// The ok join replies socket `label` received for `topic` (one per successful join or rejoin).
function joinOks(recorder, label, topic) {
  return recorder
    .frames(label, "recv")
    .map(parseFrame)
    .filter((f) => f && f.topic === topic && f.event === "phx_reply" && f.ref === f.join_ref && f.payload.status === "ok");
}

// The phx_join frames socket `label` sent for `topic`.
function joinsSent(recorder, label, topic) {
  return recorder
    .frames(label, "send")
    .map(parseFrame)
    .filter((f) => f && f.topic === topic && f.event === "phx_join");
}

function opensOf(recorder, label) {
  return recorder.entries.filter((e) => e.kind === "open" && e.socket === label);
}

function topic(name) {
  return `fault:${name}-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
}

module.exports = { openSocket, joinOks, joinsSent, opensOf, topic };
