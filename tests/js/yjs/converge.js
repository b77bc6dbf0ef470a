"use strict";
// node yjs/converge.js <socket-url> <topic> <json|yjs|mixed> [edits]
// Three clients edit one Y.Text concurrently; all must converge to the same text holding every edit, then
// late joiners (one per protocol in use) must get the whole document.
const { JsonClient, YjsClient, until, sleep, run } = require("./collab");

const [url, topic, mode, editsArg] = process.argv.slice(2);
const EDITS = Number(editsArg || 20);

const SETUPS = {
  json: [
    (n) => new JsonClient(url, topic, n, { phoenix: "1.7", vsn: "1.0.0", encoding: "array" }),
    (n) => new JsonClient(url, topic, n, { phoenix: "1.8", encoding: "base64" }),
    (n) => new JsonClient(url, topic, n, { phoenix: "1.7", encoding: "binary" }),
  ],
  yjs: [
    (n) => new YjsClient(url, topic, n, { phoenix: "1.7" }),
    (n) => new YjsClient(url, topic, n, { phoenix: "1.8" }),
    (n) => new YjsClient(url, topic, n, { phoenix: "1.8", params: { user_id: n, protocol: "yjs" } }),
  ],
  mixed: [
    (n) => new JsonClient(url, topic, n, { phoenix: "1.7", vsn: "1.0.0" }),
    (n) => new YjsClient(url, topic, n, { phoenix: "1.8" }),
    (n) => new JsonClient(url, topic, n, { phoenix: "1.8", encoding: "binary" }),
  ],
};

run(async () => {
  const clients = SETUPS[mode].map((make, i) => make(`c${i}`));
  await Promise.all(clients.map((c) => c.join()));
  await Promise.all(
    clients.map(async (c) => {
      for (let i = 0; i < EDITS; i++) {
        const pos = () => {
          // a position between two markers, never inside one (markers must survive to be counted)
          const s = c.text.toString();
          const cuts = [0];
          for (let k = 0; k < s.length; k++) if (s[k] === ">" || s[k] === "~") cuts.push(k + 1);
          return cuts[Math.floor(Math.random() * cuts.length)];
        };
        c.text.insert(pos(), `<${c.name}.${i}>`);
        c.text.insert(pos(), "~");
        const tilde = c.text.toString().indexOf("~");
        if (i % 3 === 2 && tilde >= 0) c.text.delete(tilde, 1); // deletions too (never inside a marker)
        await sleep(Math.random() * 15);
      }
    }),
  );
  await Promise.all(clients.map((c) => c.settle()));
  const markers = clients.flatMap((c) => Array.from({ length: EDITS }, (_, i) => `<${c.name}.${i}>`));
  await until(
    () => clients.every((c) => c.text.toString() === clients[0].text.toString()),
    `convergence: ${clients.map((c) => c.text.length).join(" ")}`,
  );
  const text = clients[0].text.toString();
  const missing = markers.filter((m) => text.split(m).length !== 2); // each marker exactly once
  const lateMakers = mode === "json" ? [SETUPS.json[1]] : mode === "yjs" ? [SETUPS.yjs[0]] : [SETUPS.json[1], SETUPS.yjs[1]];
  const late = lateMakers.map((make, i) => make(`late${i}`));
  await Promise.all(late.map((c) => c.join()));
  await until(() => late.every((c) => c.text.toString() === text), "late joiners get everything");
  const acked = clients.map((c) => c.acked || 0);
  [...clients, ...late].forEach((c) => c.close());
  return { converged: true, length: text.length, text, missing, acked, late: late.map((c) => c.text.toString() === text) };
});
