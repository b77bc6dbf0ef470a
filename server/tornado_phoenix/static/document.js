// tornado-phoenix console, Document panel: a shared Y.Text on a `room:*` topic, edited in a textarea.
// Speaks y-protocols over phoenix.js binary pushes, exactly like y_ex's Phoenix provider: join, push
// `yjs_sync` SyncStep1, answer `yjs` messages, push local updates and awareness as `yjs`. Yjs, y-protocols
// and lib0 are bundled locally (/static/yjs.min.js, window.TPYjs; `make console` rebuilds it).
// It opens its own socket to the URL of the Connection panel, so it works whatever the rest of the page does.
"use strict";

(() => {
  const { Socket, Presence } = window.Phoenix;
  const { Y, syncProtocol, awarenessProtocol, encoding, decoding } = window.TPYjs;
  const $ = (id) => document.getElementById(id);
  const COLORS = ["#d33", "#36c", "#2a2", "#c6c", "#e80", "#099"];

  let session = null;

  const toBuffer = (u8) => new Uint8Array(u8).buffer; // phoenix.js sends an ArrayBuffer as a binary push

  function status(text, cls) {
    const el = $("doc-status");
    el.textContent = text;
    el.dataset.state = cls;
  }

  function open() {
    close();
    const topic = $("doc-room").value.trim() || "room:console";
    const name = $("doc-name").value.trim() || `guest-${Math.floor(Math.random() * 1000)}`;
    $("doc-name").value = name;
    const doc = new Y.Doc();
    const ytext = doc.getText("text");
    const awareness = new awarenessProtocol.Awareness(doc);
    awareness.setLocalState({ user: { name, color: COLORS[doc.clientID % COLORS.length] } });
    const socket = new Socket($("url").value, { params: {} });
    const channel = socket.channel(topic, { user_id: name, protocol: "yjs" });
    const presence = new Presence(channel);
    const area = $("doc-text");
    const s = { topic, doc, ytext, awareness, socket, channel, presence, synced: false };
    session = s;

    const send = (event, u8) => {
      if (channel.state === "joined") channel.push(event, toBuffer(u8));
    };
    const sendAwareness = (clients) => {
      const enc = encoding.createEncoder();
      encoding.writeVarUint(enc, 1);
      encoding.writeVarUint8Array(enc, awarenessProtocol.encodeAwarenessUpdate(awareness, clients));
      send("yjs", encoding.toUint8Array(enc));
    };
    channel.on("yjs", (payload) => {
      const dec = decoding.createDecoder(new Uint8Array(payload));
      const type = decoding.readVarUint(dec);
      if (type === 0) {
        const enc = encoding.createEncoder();
        encoding.writeVarUint(enc, 0);
        const sub = syncProtocol.readSyncMessage(dec, enc, doc, s);
        if (sub === syncProtocol.messageYjsSyncStep2 && !s.synced) {
          s.synced = true;
          area.disabled = false;
          status(`synced: ${topic}`, "synced");
        }
        if (encoding.length(enc) > 1) send("yjs", encoding.toUint8Array(enc));
      } else if (type === 1) {
        awarenessProtocol.applyAwarenessUpdate(awareness, decoding.readVarUint8Array(dec), s);
      }
    });
    doc.on("update", (update, origin) => {
      if (origin === s) return;
      const enc = encoding.createEncoder();
      encoding.writeVarUint(enc, 0);
      syncProtocol.writeUpdate(enc, update);
      send("yjs", encoding.toUint8Array(enc));
    });
    awareness.on("update", ({ added, updated, removed }, origin) => {
      if (origin === "local") sendAwareness(added.concat(updated, removed));
      renderPeers();
    });
    presence.onSync(renderPeers);

    // textarea -> Y.Text: replace the changed middle (common prefix and suffix kept)
    s.onInput = () => {
      const before = ytext.toString();
      const after = area.value;
      let start = 0;
      while (start < before.length && start < after.length && before[start] === after[start]) start++;
      let end = 0;
      while (end < before.length - start && end < after.length - start &&
             before[before.length - 1 - end] === after[after.length - 1 - end]) end++;
      doc.transact(() => {
        if (before.length - start - end > 0) ytext.delete(start, before.length - start - end);
        if (after.length - start - end > 0) ytext.insert(start, after.slice(start, after.length - end));
      }, "textarea");
    };
    area.addEventListener("input", s.onInput);
    // Y.Text -> textarea, keeping the caret where it was relative to the text around it
    ytext.observe((event) => {
      if (event.transaction.origin === "textarea") return;
      let caret = area.selectionStart;
      let index = 0;
      for (const op of event.delta) {
        if (op.retain) index += op.retain;
        else if (op.insert) {
          if (index < caret) caret += op.insert.length;
          index += op.insert.length;
        } else if (op.delete) {
          if (index < caret) caret -= Math.min(op.delete, caret - index);
        }
      }
      area.value = ytext.toString();
      area.setSelectionRange(caret, caret);
    });

    status(`joining ${topic}…`, "joining");
    area.value = "";
    area.disabled = true;
    socket.connect();
    channel
      .join()
      .receive("ok", () => {
        status(`syncing ${topic}…`, "joining");
        const enc = encoding.createEncoder();
        encoding.writeVarUint(enc, 0);
        syncProtocol.writeSyncStep1(enc, doc);
        send("yjs_sync", encoding.toUint8Array(enc));
        sendAwareness([doc.clientID]);
      })
      .receive("error", (resp) => status(`join refused: ${JSON.stringify(resp)}`, "error"));
    channel.onError(() => {
      s.synced = false;
      status(`reconnecting ${topic}…`, "joining");
      awarenessProtocol.removeAwarenessStates(
        awareness, [...awareness.getStates().keys()].filter((id) => id !== doc.clientID), s);
    });
    renderPeers();
  }

  function renderPeers() {
    const s = session;
    const list = $("doc-peers");
    list.replaceChildren();
    if (!s) {
      $("doc-members").textContent = "0";
      return;
    }
    $("doc-members").textContent = String(s.presence.list().length);
    for (const [id, state] of s.awareness.getStates()) {
      if (!state || !state.user) continue;
      const li = document.createElement("li");
      li.textContent = state.user.name + (id === s.doc.clientID ? " (you)" : "");
      li.style.color = state.user.color || "";
      li.dataset.name = state.user.name;
      list.appendChild(li);
    }
  }

  function close() {
    const s = session;
    if (!s) return;
    session = null;
    $("doc-text").removeEventListener("input", s.onInput);
    s.awareness.setLocalState(null);
    s.awareness.destroy();
    s.channel.leave();
    s.socket.disconnect();
    $("doc-text").disabled = true;
    status("closed", "closed");
    renderPeers();
  }

  $("doc-open").addEventListener("click", open);
  $("doc-close").addEventListener("click", close);
  window.tpDocument = { get session() { return session; } }; // for the browser test and the devtools
})();
