"use strict";
// Auth — connect with a token, then join an allowed and a forbidden topic. The token comes from the env
// AUTH_TOKEN; AUTH_MODE=params sends it as the connect param `token` (phoenix.js 1.7 and 1.8),
// AUTH_MODE=authToken as phoenix.js 1.8's `authToken` (Sec-WebSocket-Protocol). Reports the join replies, the
// presence_state keys and the negotiated subprotocol.
const { run, awaitPush } = require("../lib/harness");

run(async ({ url, phoenix, transport, requireOpen }) => {
  const { Socket } = phoenix;
  const token = process.env.AUTH_TOKEN;
  const mode = process.env.AUTH_MODE || "params";
  const opts = { transport: transport("A") };
  if (mode === "authToken") opts.authToken = token;
  else opts.params = () => ({ token });
  const socket = new Socket(url, opts);
  socket.connect();
  requireOpen("A");
  const allowed = socket.channel(process.env.ALLOWED_TOPIC || "test:auth", { user_id: "not-the-sub" });
  const state = new Promise((resolve) => allowed.on("presence_state", (p) => resolve(Object.keys(p))));
  const join = await awaitPush(allowed.join());
  const presenceKeys = await state;
  const forbidden = socket.channel(process.env.FORBIDDEN_TOPIC || "echo:nope", {});
  const refused = await awaitPush(forbidden.join());
  forbidden.leave();
  const protocol = socket.conn.protocol;
  socket.disconnect();
  return { join, presence_keys: presenceKeys, refused, protocol };
});
