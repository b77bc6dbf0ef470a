"use strict";
// node yjs/edit.js <socket-url> <topic> <json|yjs> <text-to-append> [hold]
// Joins, prints the text it found, appends text, waits for the server's ack (JSON: the reply; y-protocols:
// a second client sees the edit), prints `ACKED <ms>` and, with `hold`, keeps the socket open until killed.
const { JsonClient, YjsClient, until, run } = require("./collab");
const [url, topic, proto, append, hold] = process.argv.slice(2);

run(async () => {
  const make = (n) => (proto === "yjs" ? new YjsClient(url, topic, n) : new JsonClient(url, topic, n));
  const c = make("editor");
  await c.join();
  if (proto === "yjs") await until(() => c.synced, "synced");
  const found = c.text.toString();
  if (append) {
    c.text.insert(c.text.length, append);
    if (proto === "yjs") {
      const witness = new JsonClient(url, topic, "witness");
      await witness.join();
      await until(() => witness.text.toString().endsWith(append), "witness sees the edit");
      witness.close();
    } else {
      await c.settle();
    }
    process.stdout.write(`ACKED ${Date.now()}\n`);
  }
  if (hold) await new Promise(() => {});
  c.close();
  return { found, text: c.text.toString() };
}, 60000);
