"use strict";
// drop_reply, delay, push_after and broadcast_storm seen through phoenix.js's own push machinery:
//   drop_reply          -> the client's push timeout fires ("timeout" callback), the channel stays joined
//   delay {ms: 600}     -> the "ok" callback fires ~600 ms later with {delayed_ms: 600}
//   delay past timeout  -> "timeout" first; the late reply is then ignored by the client
//   push_after          -> "ok" at once, channel.on(event) ~400 ms later with the payload
//   broadcast_storm     -> every member (A and B) gets all `count` storm events, in order, then A's "ok"
const { run, sleep, awaitPush } = require("../lib/harness");
const { openSocket, topic } = require("./common");

run(async (ctx) => {
  const { recorder } = ctx;
  const a = openSocket(ctx, "A");
  const room = topic("replies");
  const ch = a.socket.channel(room, {});
  const join = await awaitPush(ch.join());

  let t0 = Date.now();
  const dropped = await awaitPush(ch.push("drop_reply", {}, 400));
  const droppedMs = Date.now() - t0;
  const stateAfterDrop = ch.state;

  t0 = Date.now();
  const delayed = await awaitPush(ch.push("delay", { ms: 600 }, 3000));
  const delayedMs = Date.now() - t0;

  const lateCallbacks = [];
  const latePush = ch.push("delay", { ms: 500 }, 200);
  latePush
    .receive("ok", () => lateCallbacks.push("ok"))
    .receive("timeout", () => lateCallbacks.push("timeout"));
  await sleep(800); // the reply arrived at ~500 ms, after the client's 200 ms timeout

  const afters = [];
  ch.on("later", (payload) => afters.push({ payload, t: Date.now() }));
  t0 = Date.now();
  const pushAfter = await awaitPush(ch.push("push_after", { ms: 400, event: "later", payload: { n: 7 } }));
  const pushAfterReplyMs = Date.now() - t0;
  await recorder.until(() => afters.length === 1, "the push_after push");
  const pushAfterPushMs = afters[0].t - t0;

  const b = openSocket(ctx, "B");
  const chB = b.socket.channel(room, {});
  await awaitPush(chB.join());
  const stormA = [];
  const stormB = [];
  ch.on("storm", (p) => stormA.push(p.seq));
  chB.on("storm", (p) => stormB.push(p.seq));
  const count = 2000;
  const storm = await awaitPush(ch.push("broadcast_storm", { count, bytes: 256 }, 10000));
  const stormCountAtReply = stormA.length;
  await recorder.until(() => stormA.length === count && stormB.length === count, `${count} storm events on A and B`, 10000);
  const inOrder = (xs) => xs.every((x, i) => x === i);
  await sleep(100);

  const result = {
    join,
    dropped,
    dropped_ms: droppedMs,
    state_after_drop: stateAfterDrop,
    delayed,
    delayed_ms: delayedMs,
    late_callbacks: lateCallbacks,
    push_after: pushAfter,
    push_after_reply_ms: pushAfterReplyMs,
    push_after_push_ms: pushAfterPushMs,
    afters: afters.map((x) => x.payload),
    storm,
    storm_count_at_reply: stormCountAtReply,
    storm_a: stormA.length,
    storm_b: stormB.length,
    storm_in_order: inOrder(stormA) && inOrder(stormB),
    final_state: ch.state,
  };
  a.socket.disconnect();
  b.socket.disconnect();
  return result;
}, { timeoutMs: 30000 });
