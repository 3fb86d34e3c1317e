// Browser tests of the operator's console, against a real `eventide local` on a temporary
// SQLite file, in Debian's chromium driven by playwright-core. Run by scripts/check-console:
//
//   node console.test.mjs EVENTIDE_BINARY SCREENSHOT_DIR
//
// The scenario: a reporting database whose rule refuses the rows of `lab/*` series (a SQLite
// trigger on daily_summary, as a DBA would add), an ingest with good, refused and invalid
// items, a fix of the rule, and replays from the page that make the refused days reach their
// summaries; a load while the Now view watches; the Summaries view of a day summarized twice.
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const [binary, screenshots] = process.argv.slice(2);
if (!binary || !screenshots) {
  console.error('usage: node console.test.mjs EVENTIDE_BINARY SCREENSHOT_DIR');
  process.exit(2);
}
mkdirSync(screenshots, { recursive: true });

const RULE = 'series lab/* is not registered in the reporting database';
const dir = mkdtempSync(join(tmpdir(), 'eventide-console-'));
const db = join(dir, 'eventide.db');
const iso = (d) => d.toISOString().slice(0, 10);
const today = iso(new Date());
const yesterday = iso(new Date(Date.now() - 86400000));

function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

// The runtime's settings, and nothing from the environment of whoever runs the tests.
function settings(port) {
  return {
    PATH: process.env.PATH,
    EVENTIDE_DB: db,
    EVENTIDE_PORT: String(port),
    // The timer every second, and days due a second after their end: summaries within seconds.
    EVENTIDE_SUMMARIZE_SCHEDULE: '*/1 * * * * *',
    EVENTIDE_GRACE: '1s',
    EVENTIDE_SETTLE: '1s',
    // The refusals this scenario provokes are warnings; only errors would be news.
    EVENTIDE_LOG: 'error',
  };
}

function sql(statement) {
  execFileSync('python3', ['-c', 'import sqlite3, sys\nc = sqlite3.connect(sys.argv[1])\nc.execute(sys.argv[2])\nc.commit()', db, statement]);
}

async function until(what, probe, timeoutMs = 20000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error('timed out waiting for ' + what);
    await new Promise((r) => setTimeout(r, 100));
  }
}

let runtime;
let browser;
const results = [];
async function step(name, body) {
  const started = Date.now();
  await body();
  results.push(name);
  console.log(`ok - ${name} (${Date.now() - started} ms)`);
}

try {
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const env = settings(port);
  execFileSync(binary, ['migrate'], { env, stdio: ['ignore', 'ignore', 'inherit'] });
  // The reporting database's own rule, in place before the runtime starts.
  sql(`CREATE TRIGGER lab_not_registered BEFORE INSERT ON daily_summary WHEN NEW.series LIKE 'lab/%' BEGIN SELECT RAISE(ABORT, '${RULE}'); END`);
  runtime = spawn(binary, ['local'], { env, stdio: ['ignore', 'ignore', 'inherit'] });
  const api = async (path, init) => {
    const response = await fetch(base + path, init);
    return { status: response.status, body: await response.json() };
  };
  const ingest = (lines) => api('/api/ingest', { method: 'POST', headers: { 'content-type': 'application/x-ndjson' }, body: lines.map((l) => JSON.stringify(l)).join('\n') });
  const status = async () => (await api('/api/status')).body;
  await until('the runtime to listen', () => fetch(base + '/api/status').then((r) => r.ok, () => false));

  browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
  });
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const problems = [];
  page.on('console', (m) => { if (m.type() === 'error' || m.type() === 'warning') problems.push(`console ${m.type()}: ${m.text()}`); });
  page.on('pageerror', (e) => problems.push('page error: ' + e.message));
  page.on('requestfailed', (r) => problems.push(`request failed: ${r.url()} ${r.failure()?.errorText}`));

  await step('the console loads from the binary, with no console errors', async () => {
    const started = Date.now();
    const response = await page.goto(base + '/', { waitUntil: 'load' });
    const loaded = Date.now() - started;
    assert.equal(response.status(), 200);
    await page.locator('#connection', { hasText: 'Live' }).waitFor();
    assert.ok(await page.locator('#view-now').isVisible());
    console.log(`   page loaded in ${loaded} ms on loopback`);
    assert.deepEqual(problems, []);
  });

  await step('the Now view follows a load, and its figures agree with /api/status', async () => {
    const seen = new Set();
    let stop = false;
    const load = (async () => {
      let minute = 0;
      while (!stop) {
        const lines = [];
        for (let s = 0; s < 40; s++) {
          for (let k = 0; k < 5; k++) {
            const m = minute + k;
            lines.push({ series: `load/s${s}`, ts: `${today}T00:${String(Math.floor(m / 60) % 60).padStart(2, '0')}:${String(m % 60).padStart(2, '0')}Z`, value: s + k });
          }
        }
        minute = (minute + 5) % 3600;
        const reply = await ingest(lines);
        assert.equal(reply.status, 200, JSON.stringify(reply.body));
        await new Promise((r) => setTimeout(r, 50));
      }
    })();
    await until('the ingest rate to show the load', async () => {
      const rate = Number(await page.locator('#figure-ingest-rate').getAttribute('data-value'));
      if (rate > 0) seen.add(rate);
      return seen.size >= 3;
    });
    const merged = Number(await page.locator('#figure-merge-rate').getAttribute('data-value'));
    await page.screenshot({ path: join(screenshots, 'now.png'), fullPage: true });
    stop = true;
    await load;
    await until('the observations queue to drain', async () => {
      const s = await status();
      return s.queues.observations.active + s.queues.observations.deferred === 0;
    });
    assert.ok(seen.size >= 3, 'the ingest rate changed while the load ran');
    assert.ok(merged >= 0);
    // Once nothing moves, the page's counters are the status endpoint's.
    const names = ['observations_accepted', 'chunks_sent', 'messages_processed', 'points_merged'];
    await until('the page to show the settled counters', async () => {
      const truth = (await status()).counters;
      for (const name of names) {
        const shown = Number(await page.locator(`#counters td[data-counter="${name}"]`).textContent());
        if (shown !== truth[name]) return false;
      }
      return truth.observations_accepted > 0;
    });
    await until('the ingest rate to fall back to zero', async () => Number(await page.locator('#figure-ingest-rate').getAttribute('data-value')) === 0);
    const current = page.locator(`#progress tr[data-day="${today}"] td[data-field="series"]`);
    await until('the current day to count the load series', async () => (await current.count()) > 0 && Number(await current.textContent()) === 40);
  });

  await step('refused rows are listed in the quarantine view with their reason, and their bytes', async () => {
    const reply = await ingest([
      { series: 'plant/temp', ts: `${yesterday}T10:00:00Z`, value: 20 },
      { series: 'plant/temp', ts: `${yesterday}T11:00:00Z`, value: 22 },
      { series: 'lab/ph', ts: `${yesterday}T10:00:00Z`, value: 7.1 },
      { series: 'lab/o2', ts: `${yesterday}T10:00:00Z`, value: 8.4 },
      { series: 'plant/temp', ts: `${yesterday}T12:00:00Z` },
    ]);
    assert.equal(reply.status, 200);
    // An invalid item is refused in the reply, never quarantined.
    assert.equal(reply.body.rejected.length, 1);
    await until('two quarantine entries', async () => (await status()).quarantine === 2);
    await page.click('#nav-quarantine');
    const group = page.locator('.group', { hasText: RULE });
    await group.waitFor();
    assert.equal(await group.locator('tbody tr').count(), 2);
    assert.match(await group.locator('h3').textContent(), /2$/);
    const entry = group.locator('tr', { hasText: 'lab/ph' });
    await entry.locator('button.view-body').click();
    const bytes = entry.locator('pre.body');
    assert.ok(await bytes.isVisible());
    assert.match(await bytes.textContent(), /"series":"lab\/ph"/);
    assert.equal(await entry.locator('button.view-body').getAttribute('aria-expanded'), 'true');
    await page.screenshot({ path: join(screenshots, 'quarantine.png'), fullPage: true });
  });

  await step('a replay asks first; cancelling replays nothing', async () => {
    await page.locator('.group tr', { hasText: 'lab/ph' }).locator('button.replay-entry').click();
    assert.ok(await page.locator('#confirm').isVisible());
    await page.click('#confirm-cancel');
    await page.waitForTimeout(300);
    assert.equal((await status()).quarantine, 2);
  });

  await step('after the fix, replays from the page bring the refused days to their summaries', async () => {
    sql('DROP TRIGGER lab_not_registered');
    await page.locator('.group tr', { hasText: 'lab/ph' }).locator('button.replay-entry').click();
    await page.click('#confirm-replay');
    await page.locator('#replay-result', { hasText: /Replayed 1: .*lab\/ph/ }).waitFor();
    await until('the lab/ph summary', async () => (await api('/api/summaries?series=lab/ph')).body.length === 1);
    // The rest of the group, by its reason.
    await page.locator('.group', { hasText: RULE }).locator('button.replay-group').click();
    await page.click('#confirm-replay');
    await page.locator('#replay-result', { hasText: /Replayed 1: .*lab\/o2/ }).waitFor();
    const rows = await until('the lab/o2 summary', async () => {
      const r = (await api('/api/summaries?series=lab/o2')).body;
      return r.length === 1 && r;
    });
    assert.equal(rows[0].mean, 8.4);
    await page.locator('#quarantine-summary', { hasText: 'Nothing is quarantined.' }).waitFor();
  });

  await step('the Summaries view charts a series, marking pending and re-summarized days', async () => {
    await until('plant/temp summarized', async () => (await api(`/api/summaries?series=plant/temp&day=${yesterday}`)).body.length === 1);
    // A late correction opens a second epoch for yesterday; today's point waits for its day.
    await ingest([{ series: 'plant/temp', ts: `${yesterday}T11:00:00Z`, value: 30 }, { series: 'plant/temp', ts: `${today}T00:00:00Z`, value: 1 }]);
    await until('yesterday summarized again', async () => {
      const r = (await api(`/api/summaries?series=plant/temp&day=${yesterday}`)).body;
      return r.length === 1 && r[0].max === 30;
    });
    // Reached by keyboard: Tab to the view's link and press Enter.
    await page.locator('#nav-quarantine').focus();
    await page.keyboard.press('Tab');
    assert.equal(await page.evaluate(() => document.activeElement.id), 'nav-summaries');
    await page.keyboard.press('Enter');
    await page.locator('#view-summaries').waitFor();
    await page.fill('#summaries-series', 'plant/temp');
    await page.fill('#summaries-from', iso(new Date(Date.now() - 6 * 86400000)));
    await page.fill('#summaries-to', today);
    await page.click('#summaries-form button[type="submit"]');
    await page.locator('#summaries-table tbody tr').first().waitFor();
    assert.equal(await page.locator(`#summaries-table tr[data-day="${yesterday}"]`).getAttribute('data-state'), 're-summarized');
    assert.equal(await page.locator(`#summaries-table tr[data-day="${today}"]`).getAttribute('data-state'), 'pending');
    assert.equal(await page.locator('#summaries-chart circle.marker').count(), 2);
    assert.equal(await page.locator('#summaries-chart circle.ring').count(), 1);
    assert.equal(await page.locator('#summaries-chart rect.band-minmax').count(), 1);
    assert.equal(await page.locator('#summaries-chart rect.band-p50p90').count(), 1);
    await page.screenshot({ path: join(screenshots, 'summaries.png'), fullPage: true });
  });

  await step('a replay without the console header, or from another origin, is refused', async () => {
    const plain = await api('/api/quarantine/replay', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"ids":["x"]}' });
    assert.equal(plain.status, 403);
    const form = await api('/api/quarantine/replay', { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-eventide-console': '1' }, body: 'ids=x' });
    assert.equal(form.status, 415);
  });

  await step('no console errors in the whole session', async () => {
    assert.deepEqual(problems, []);
  });
  console.log(`console: ${results.length} checks passed; screenshots in ${screenshots}`);
} catch (error) {
  console.error('not ok -', error);
  process.exitCode = 1;
} finally {
  if (browser) await browser.close();
  if (runtime) {
    runtime.kill('SIGTERM');
    await new Promise((r) => runtime.exitCode !== null ? r() : runtime.once('exit', r));
  }
  rmSync(dir, { recursive: true, force: true });
}
