"use strict";
// The browser console (GET /) in headless Chromium, driven by playwright-core.
// Usage: node console.spec.js <http://127.0.0.1:PORT/> <artifacts dir> [chromium path]
// Prints one `RESULT <json>` line and exits 0 on success, 1 on failure (with `error` set). Bounded: every
// wait has a timeout and the whole run has a global one.
const fs = require("fs");
const net = require("net");
const os = require("os");
const path = require("path");
const { chromium } = require("playwright-core");

const [pageUrl, artifacts, chromiumPath = "/usr/bin/chromium"] = process.argv.slice(2);
if (!pageUrl || !artifacts) {
  process.stderr.write("usage: node console.spec.js <http://127.0.0.1:PORT/> <artifacts dir> [chromium]\n");
  process.exit(2);
}
const GLOBAL_TIMEOUT_MS = 60000;
const result = { page: pageUrl, steps: [], screenshots: [], page_errors: [], console_errors: [], requests: [], error: null };
const T0 = Date.now();
let context = null;
let userDataDir = null;

function step(name, extra = {}) {
  result.steps.push({ name, t: Date.now() - T0, ...extra });
}

async function shot(page, name) {
  const file = path.join(artifacts, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  result.screenshots.push(file);
}

async function finish(code) {
  result.elapsed_ms = Date.now() - T0;
  try {
    if (context) await context.close();
  } catch (_err) {
    // already gone
  }
  if (userDataDir) fs.rmSync(userDataDir, { recursive: true, force: true });
  process.stdout.write("RESULT " + JSON.stringify(result) + "\n", () => process.exit(code));
}

const globalTimer = setTimeout(() => {
  result.error = `global timeout: the console test did not finish within ${GLOBAL_TIMEOUT_MS} ms`;
  finish(1);
}, GLOBAL_TIMEOUT_MS);

const logText = (page) => page.locator("#log").innerText();

async function waitLog(page, pattern, what, timeout = 10000) {
  await page.waitForFunction(
    ([source, flags]) => new RegExp(source, flags).test(document.getElementById("log").innerText),
    [pattern.source, pattern.flags],
    { timeout, polling: 50 },
  ).catch(async (err) => {
    throw new Error(`${what}: ${err.message.split("\n")[0]}\n--- log ---\n${(await logText(page)).slice(-3000)}`);
  });
}

async function badge(page, state, textPattern, timeout = 10000) {
  await page.waitForFunction(
    ([s, source]) => {
      const b = document.getElementById("badge");
      return b.dataset.state === s && new RegExp(source).test(b.textContent);
    },
    [state, textPattern.source],
    { timeout, polling: 50 },
  );
  return page.locator("#badge").evaluate((b) => ({ state: b.dataset.state, text: b.textContent, color: getComputedStyle(b).backgroundColor }));
}

async function channel(page, topic, state, timeout = 10000) {
  const li = page.locator(`#channels li[data-topic="${topic}"][data-state="${state}"]`);
  await li.waitFor({ timeout });
  return li.getAttribute("data-join-ref");
}

async function join(page, topic, params) {
  await page.fill("#topic", topic);
  await page.fill("#join-params", JSON.stringify(params));
  await page.click("#join");
  return channel(page, topic, "joined");
}

async function main() {
  fs.mkdirSync(artifacts, { recursive: true });
  userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), "tp-console-chromium-"));
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: chromiumPath,
    headless: true,
    args: [
      "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
    ],
    viewport: { width: 1400, height: 950 },
  });
  const page = context.pages()[0] || (await context.newPage());
  page.on("pageerror", (err) => result.page_errors.push(String(err)));
  page.on("console", (msg) => msg.type() === "error" && result.console_errors.push(msg.text()));
  page.on("request", (req) => result.requests.push(req.url()));

  await page.goto(pageUrl, { timeout: 10000 });
  const wsDefault = await page.inputValue("#url");
  result.default_url = wsDefault;
  result.initial_badge = await badge(page, "disconnected", /not connected/);
  step("loaded");

  // Fast heartbeats (so the page exercises them) and a short push timeout come from the query string.
  await page.fill("#heartbeat", "1000");
  await page.click("#connect");
  result.connected_badge = await badge(page, "connected", /^connected$/);
  step("connected");
  await shot(page, "01-connected");

  result.echo_join_ref = await join(page, "echo:browser", { from: "browser" });
  const room = "test:lobby";
  result.room_join_ref = await join(page, room, { user_id: "browser-1" });
  await page.locator(`#presence ul[data-topic="${room}"] li[data-key="browser-1"]`).waitFor({ timeout: 10000 });
  step("joined echo and test:lobby");

  // A second tab in the same room: both appear in the first tab's presence list.
  const other = await context.newPage();
  other.on("pageerror", (err) => result.page_errors.push(`tab 2: ${err}`));
  await other.goto(pageUrl, { timeout: 10000 });
  await other.click("#connect");
  await badge(other, "connected", /^connected$/);
  await join(other, room, { user_id: "browser-2" });
  await page.bringToFront();
  await page.locator(`#presence ul[data-topic="${room}"] li[data-key="browser-2"]`).waitFor({ timeout: 10000 });
  result.presence = await page.locator(`#presence ul[data-topic="${room}"] li`).evaluateAll((lis) => lis.map((li) => li.dataset.key));
  step("presence lists both tabs", { presence: result.presence });

  // Push on echo: the echoed push comes in, then the ok reply.
  await page.selectOption("#push-topic", "echo:browser");
  await page.fill("#event", "ping");
  await page.fill("#payload", '{"hello": "browser"}');
  await page.click("#push");
  await waitLog(page, /◀ \["\d+",null,"echo:browser","ping",\{"hello":"browser"\}\]/, "the echoed push");
  await waitLog(page, /echo:browser ping: ok \{"hello":"browser"\}/, "the ok reply");
  // A shout in the room from the second tab reaches the first.
  await other.selectOption("#push-topic", room);
  await other.fill("#event", "shout");
  await other.fill("#payload", '{"from": "tab 2"}');
  await other.click("#push");
  await waitLog(page, /◀ \[null,null,"test:lobby","shout",\{"from":"tab 2"\}\]/, "tab 2's shout in tab 1");
  step("push, reply and shout");
  await shot(page, "02-push-reply-presence");

  // Crash fault: phx_error for the fault channel, then phoenix.js rejoins it (1 s) with a new join_ref.
  const faultTopic = "fault:browser";
  await page.fill("#fault-topic", faultTopic);
  await page.click("[data-fault=delay]"); // joins fault:browser first, then a 2 s delayed reply
  const faultJoinRef1 = await channel(page, faultTopic, "joined");
  await page.click("[data-fault=crash]");
  await waitLog(page, new RegExp(`◀ \\["${faultJoinRef1}","${faultJoinRef1}","fault:browser","phx_error",\\{\\}\\]`), "phx_error");
  await waitLog(page, /fault:browser: channel errored/, "the channel's onError");
  await shot(page, "03-crash-errored");
  await page.waitForFunction(
    ([topic, old]) => {
      const li = document.querySelector(`#channels li[data-topic="${topic}"]`);
      return li && li.dataset.state === "joined" && li.dataset.joinRef !== old;
    },
    [faultTopic, faultJoinRef1],
    { timeout: 10000, polling: 50 },
  );
  result.fault_join_refs = [faultJoinRef1, await channel(page, faultTopic, "joined")];
  step("crash and rejoin", { join_refs: result.fault_join_refs });
  await shot(page, "04-crash-rejoined");

  // Disconnect fault with 1000: phoenix.js 1.7 does not reconnect -> red badge with the close code.
  await page.fill("#disconnect-code", "1000");
  await page.fill("#disconnect-reason", "bye");
  await page.click("[data-fault=disconnect]");
  result.closed_badge = await badge(page, "disconnected", /closed 1000 "bye"; no reconnect/);
  step("disconnect 1000: red");
  await shot(page, "05-disconnected-1000");

  // Connect again: the joined topics come back on the new socket.
  await page.click("#connect");
  await badge(page, "connected", /^connected$/);
  await channel(page, "echo:browser", "joined");
  await channel(page, room, "joined");
  step("reconnected by hand, topics rejoined");

  // Disconnect fault with 4000: phoenix.js reconnects by itself.
  await page.fill("#disconnect-code", "4000");
  await page.click("[data-fault=disconnect]");
  await waitLog(page, /closed code=4000 reason="bye"/, "close 4000");
  await badge(page, "connected", /^connected$/);
  await channel(page, "echo:browser", "joined");
  step("disconnect 4000: reconnected");

  // Nothing listening: amber while phoenix.js keeps retrying.
  const closedPort = await new Promise((resolve) => {
    const srv = net.createServer().listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
  result.unreachable_url = `ws://127.0.0.1:${closedPort}/socket`;
  await page.fill("#url", result.unreachable_url);
  await page.click("#connect");
  result.retry_badge = await badge(page, "connecting", /connecting|reconnecting/);
  step("unreachable server: amber");
  await shot(page, "06-unreachable-amber");

  // The second tab switches to long-poll: join, push and reply over GET/POST <socket>/longpoll.
  await other.bringToFront();
  const lpRequests = [];
  other.on("request", (req) => lpRequests.push(req.url()));
  await other.selectOption("#transport", "longpoll");
  await other.click("#connect");
  await badge(other, "connected", /^connected$/);
  await join(other, "echo:longpoll", { via: "lp" });
  await other.selectOption("#push-topic", "echo:longpoll");
  await other.fill("#event", "ping");
  await other.fill("#payload", '{"over": "longpoll"}');
  await other.click("#push");
  await waitLog(other, /echo:longpoll ping: ok \{"over":"longpoll"\}/, "the ok reply over long-poll");
  result.longpoll_requests = lpRequests.filter((u) => u.includes("/socket/longpoll")).length;
  step("long-poll: join, push, reply");
  await shot(other, "07-longpoll");
  await other.close();
}

main()
  .then(() => {
    clearTimeout(globalTimer);
    finish(0);
  })
  .catch(async (err) => {
    clearTimeout(globalTimer);
    result.error = err && err.stack ? err.stack : String(err);
    try {
      const page = context && context.pages()[0];
      if (page) await shot(page, "99-failure");
    } catch (_err) {
      // best effort
    }
    finish(1);
  });
