"use strict";
// The console's Document panel in headless Chromium: two pages open the same room:* topic, both type into
// the shared textarea, the texts converge, each page shows the other's name (awareness) and 2 members.
// Usage: node document.spec.js <http://127.0.0.1:PORT/> <artifacts dir> [chromium path]
const fs = require("fs");
const os = require("os");
const path = require("path");
const { chromium } = require("playwright-core");

const [pageUrl, artifacts, chromiumPath = "/usr/bin/chromium"] = process.argv.slice(2);
const result = { steps: [], page_errors: [], screenshots: [], error: null };
let context = null;
let userDataDir = null;

async function finish(code) {
  try {
    if (context) await context.close();
  } catch (_err) {
    // gone
  }
  if (userDataDir) fs.rmSync(userDataDir, { recursive: true, force: true });
  process.stdout.write("RESULT " + JSON.stringify(result) + "\n", () => process.exit(code));
}
const timer = setTimeout(() => {
  result.error = "global timeout (45 s)";
  finish(1);
}, 45000);

async function openDoc(page, name, room) {
  page.on("pageerror", (err) => result.page_errors.push(String(err)));
  await page.goto(pageUrl, { timeout: 10000 });
  await page.fill("#doc-room", room);
  await page.fill("#doc-name", name);
  await page.click("#doc-open");
  await page.waitForFunction(() => document.getElementById("doc-status").dataset.state === "synced", null,
    { timeout: 10000, polling: 50 });
}

async function main() {
  fs.mkdirSync(artifacts, { recursive: true });
  userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), "tp-doc-chromium-"));
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: chromiumPath,
    headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"],
    viewport: { width: 1400, height: 1100 },
  });
  const room = `room:browser-${Date.now()}`;
  const a = context.pages()[0] || (await context.newPage());
  const b = await context.newPage();
  await openDoc(a, "ada", room);
  await openDoc(b, "bob", room);
  result.steps.push("both synced");
  // type in both, interleaved
  await a.click("#doc-text");
  await a.keyboard.type("hello from ada. ", { delay: 5 });
  await b.click("#doc-text");
  await b.keyboard.press("End");
  await b.keyboard.type("bob was here. ", { delay: 5 });
  await a.keyboard.type("ada again.", { delay: 5 });
  const read = (p) => p.$eval("#doc-text", (el) => el.value);
  const deadline = Date.now() + 10000;
  let ta = "";
  let tb = "";
  while (Date.now() < deadline) {
    [ta, tb] = [await read(a), await read(b)];
    if (ta === tb && ta.includes("ada again.") && ta.includes("bob was here. ")) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  result.texts = [ta, tb];
  const peers = (p) => p.$$eval("#doc-peers li", (els) => els.map((el) => el.dataset.name).sort());
  await a.waitForFunction(() => document.querySelectorAll("#doc-peers li").length === 2, null, { timeout: 10000 });
  await b.waitForFunction(() => document.querySelectorAll("#doc-peers li").length === 2, null, { timeout: 10000 });
  await a.waitForFunction(() => document.getElementById("doc-members").textContent === "2", null, { timeout: 10000 });
  result.peers = [await peers(a), await peers(b)];
  result.members = [await a.$eval("#doc-members", (el) => el.textContent), await b.$eval("#doc-members", (el) => el.textContent)];
  const file = path.join(artifacts, "07-document-two-pages.png");
  await a.screenshot({ path: file, fullPage: true });
  result.screenshots.push(file);
  // bob closes the page: ada sees bob's name go away and 1 member
  await b.close();
  await a.waitForFunction(() => document.querySelectorAll("#doc-peers li").length === 1, null, { timeout: 10000 });
  result.after_close = await peers(a);
}

main()
  .then(() => {
    clearTimeout(timer);
    finish(0);
  })
  .catch((err) => {
    clearTimeout(timer);
    result.error = String((err && err.stack) || err);
    finish(1);
  });
