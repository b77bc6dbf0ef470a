"use strict";
// node yjs/awareness.js <socket-url> <topic>
// alice and bob (y-protocols) set awareness; each sees the other; carol joins late and gets both with her
// SyncStep1 reply; a query-awareness [3] is answered; then alice's connection drops (no leave) and bob and
// carol see her state removed.
const { YjsClient, until, run } = require("./collab");
const [url, topic] = process.argv.slice(2);

run(async () => {
  const alice = new YjsClient(url, topic, "alice", { awareness: { user: { name: "alice" } } });
  const bob = new YjsClient(url, topic, "bob", { awareness: { user: { name: "bob" } } });
  await alice.join();
  await bob.join();
  await until(() => bob.names().join() === "alice" && alice.names().join() === "bob", "alice and bob see each other");
  const carol = new YjsClient(url, topic, "carol", { phoenix: "1.7", awareness: null });
  await carol.join();
  await until(() => carol.names().join() === "alice,bob", `carol sees alice and bob (${carol.names()})`);
  const firstThree = carol.received.slice(0, 3);
  const before = carol.received.length;
  carol.channel.push("yjs", new Uint8Array([3]).buffer);
  await until(() => carol.received.length > before, "query awareness answered");
  const queried = carol.received[before];
  alice.socket.reconnectAfterMs = () => 3600000; // no reconnect
  alice.socket.conn.terminate(); // the TCP connection drops: no phx_leave, no close frame
  await until(() => bob.names().join() === "" && carol.names().join() === "bob", "alice's awareness removed");
  const result = { bobSees: bob.names(), carolSees: carol.names(), firstThree, queried };
  bob.close();
  carol.close();
  alice.awareness.destroy();
  return result;
});
