// The node side of internal/browsertest: reads one job as JSON on stdin, opens the job's page in
// headless Chromium (Debian's, through playwright-core), plays the job's URL there for watchMs
// (less once the player failed fatally or the media ended) and writes one JSON report on stdout.
//
// stdin:  {"page", "player", "url", "config", "watchMs", "sampleMs", "userDataDir", "chromium", "sdk"}
// stdout: {"report": {...kvsdReport()...} | null, "console": ["..."], "error": "..." }
import { chromium } from 'playwright-core';

const maxConsole = 300;

async function readStdin() {
  const chunks = [];
  for await (const c of process.stdin) chunks.push(c);
  return JSON.parse(Buffer.concat(chunks).toString('utf8'));
}

function sleep(ms) {
  return new Promise(r => setTimeout(r, ms));
}

async function main() {
  const job = await readStdin();
  const out = { report: null, console: [], error: '' };
  const log = line => {
    if (out.console.length < maxConsole) out.console.push(line);
    else if (out.console.length === maxConsole) out.console.push('... (more console lines dropped)');
  };
  const ctx = await chromium.launchPersistentContext(job.userDataDir, {
    executablePath: job.chromium || '/usr/bin/chromium',
    headless: true,
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--autoplay-policy=no-user-gesture-required', '--disable-crash-reporter', '--disable-breakpad',
    ],
    timeout: 30000,
  });
  try {
    const page = ctx.pages()[0] || await ctx.newPage();
    page.on('console', m => log(`console.${m.type()}: ${m.text()}`));
    page.on('pageerror', e => log(`page error: ${e.message}`));
    page.on('requestfailed', r => log(`request failed: ${r.method()} ${r.url()}: ${r.failure() ? r.failure().errorText : ''}`));
    page.on('response', r => { if (r.status() >= 400) log(`response ${r.status()}: ${r.request().method()} ${r.url()}`); });
    await page.goto(job.page, { waitUntil: 'load', timeout: 15000 });
    await page.evaluate(j => window.kvsdPlay(j), { player: job.player, url: job.url, config: job.config || null, sampleMs: job.sampleMs || 250, sdk: job.sdk || null });
    const end = Date.now() + job.watchMs;
    while (Date.now() < end) {
      await sleep(Math.min(250, end - Date.now()));
      if (await page.evaluate(() => window.kvsdDone())) {
        await sleep(300); // errors that follow the first one, and a last sample
        break;
      }
    }
    out.report = await page.evaluate(() => window.kvsdReport());
  } catch (e) {
    out.error = e && e.stack ? e.stack : String(e);
  } finally {
    await ctx.close().catch(e => { out.error += (out.error ? '\n' : '') + 'closing chromium: ' + e.message; });
  }
  process.stdout.write(JSON.stringify(out) + '\n');
}

main().catch(e => {
  process.stdout.write(JSON.stringify({ report: null, console: [], error: e && e.stack ? e.stack : String(e) }) + '\n');
  process.exitCode = 1;
});
