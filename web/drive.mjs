// The node side of browsertest.Open: one headless Chromium page (Debian's, through
// playwright-core) driven by commands, one JSON object per line on stdin, each answered by one
// JSON line on stdout ({"ok": result} or {"error": "..."}). The page's console messages,
// uncaught errors, failed requests and every request URL are collected for the "log" command.
//
// The first line is the job: {"userDataDir", "chromium", "width", "height"}.
// Commands: goto, fill, click, clickAt, hover, drag, press, select, wait, waitFor, eval, text, screenshot,
// viewport, download, clock, log, close (see browsertest/page.go).
import { chromium } from 'playwright-core';
import { createInterface } from 'node:readline';

const maxLog = 500;
const sleep = ms => new Promise(r => setTimeout(r, ms));

async function main() {
  const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
  const next = async () => { const r = await lines.next(); return r.done ? null : JSON.parse(r.value); };
  const reply = v => process.stdout.write(JSON.stringify(v) + '\n');
  const job = await next();
  const log = { console: [], errors: [], requests: [], failed: [] };
  const push = (list, v) => { if (list.length < maxLog) list.push(v); };
  const ctx = await chromium.launchPersistentContext(job.userDataDir, {
    executablePath: job.chromium || '/usr/bin/chromium', headless: true, acceptDownloads: true,
    viewport: { width: job.width || 1280, height: job.height || 800 },
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--autoplay-policy=no-user-gesture-required', '--disable-crash-reporter', '--disable-breakpad'],
    timeout: 30000,
  });
  const page = ctx.pages()[0] || await ctx.newPage();
  page.on('console', m => push(log.console, `${m.type()}: ${m.text()}`));
  page.on('pageerror', e => push(log.errors, e.stack || e.message));
  page.on('request', r => push(log.requests, `${r.method()} ${r.url()}`));
  page.on('requestfailed', r => push(log.failed, `${r.method()} ${r.url()}: ${r.failure() ? r.failure().errorText : ''}`));
  page.on('response', r => { if (r.status() >= 400) push(log.console, `response ${r.status()}: ${r.request().method()} ${r.url()}`); });

  // waitFor polls a page expression until it is truthy; page.waitForFunction would need eval,
  // which the page's CSP forbids.
  const waitFor = async (expr, timeoutMs) => {
    const end = Date.now() + (timeoutMs || 10000);
    let last;
    for (;;) {
      try {
        last = await page.evaluate(expr);
        if (last) return last;
      } catch (e) {
        last = e.message;
      }
      if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${expr} (last: ${JSON.stringify(last)})`);
      await sleep(100);
    }
  };
  const ops = {
    goto: c => page.goto(c.url, { waitUntil: 'load', timeout: 15000 }).then(() => null),
    fill: c => page.fill(c.sel, c.value, { timeout: c.timeoutMs || 10000 }),
    click: c => page.click(c.sel, { timeout: c.timeoutMs || 10000 }),
    clickAt: c => page.click(c.sel, { position: { x: c.x, y: c.y }, timeout: c.timeoutMs || 10000 }),
    hover: c => page.hover(c.sel, { position: { x: c.x, y: c.y }, timeout: c.timeoutMs || 10000 }),
    drag: async c => {
      const box = await (await page.waitForSelector(c.sel, { state: 'visible', timeout: c.timeoutMs || 10000 })).boundingBox();
      await page.mouse.move(box.x + c.x, box.y + c.y);
      await page.mouse.down();
      await page.mouse.move(box.x + c.toX, box.y + c.toY, { steps: c.steps || 10 });
      await page.mouse.up();
      return null;
    },
    press: c => page.press(c.sel, c.key, { timeout: c.timeoutMs || 10000 }),
    select: c => page.selectOption(c.sel, c.value, { timeout: c.timeoutMs || 10000 }).then(() => null),
    wait: c => page.waitForSelector(c.sel, { state: c.state || 'visible', timeout: c.timeoutMs || 10000 }).then(() => null),
    waitFor: c => waitFor(c.expr, c.timeoutMs),
    eval: c => page.evaluate(c.expr),
    text: c => page.textContent(c.sel, { timeout: c.timeoutMs || 10000 }),
    screenshot: c => page.screenshot({ path: c.path, fullPage: !!c.fullPage }).then(() => null),
    viewport: c => page.setViewportSize({ width: c.width, height: c.height }),
    download: async c => {
      const [dl] = await Promise.all([page.waitForEvent('download', { timeout: c.timeoutMs || 30000 }),
        page.click(c.sel, { timeout: 10000 })]);
      await dl.saveAs(c.path);
      return dl.suggestedFilename();
    },
    clock: c => page.clock.install({ time: c.ms }),
    log: async () => log,
  };
  for (;;) {
    const c = await next();
    if (!c || c.op === 'close') break;
    const fn = ops[c.op];
    try {
      if (!fn) throw new Error(`unknown op ${c.op}`);
      const v = await fn(c);
      reply({ ok: v === undefined ? null : v });
    } catch (e) {
      reply({ error: e && e.message ? e.message : String(e) });
    }
  }
  await ctx.close();
}

main().catch(e => {
  process.stdout.write(JSON.stringify({ error: 'drive.mjs: ' + (e && e.stack ? e.stack : String(e)) }) + '\n');
  process.exitCode = 1;
});
