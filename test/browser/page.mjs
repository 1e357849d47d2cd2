// The live page in a real browser (Debian's chromium, driven by
// playwright-core): against a broker started by test/integration/t_page.sh,
// publishes status (shard instances' too), metrics, success rates, an alert, a dead letter, a job
// summary and a dashboard with mosquitto_pub, and asserts what the page shows;
// then 10 000 modules; then that the page published nothing. Leaves a
// screenshot. Usage: node page.mjs WEB_PORT MQTT_PORT SCREENSHOT
import { launch } from './browser.mjs';
import { execFileSync, spawn } from 'node:child_process';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';

const [web, mqttPort, shot] = process.argv.slice(2);
const pub = (topic, body, ...flags) =>
  execFileSync('mosquitto_pub', ['-p', mqttPort, '-q', '1', '-t', topic, '-m', JSON.stringify(body), ...flags]);
const step = what => console.log('-- ' + what);

// Everything on the broker from now on: the page must add nothing to it.
const seen = spawn('mosquitto_sub', ['-p', mqttPort, '-t', '#', '-v', '-q', '1']);
let seenText = '';
seen.stdout.on('data', d => { seenText += d; });

const browser = await launch();
const errors = [];
try {
  const page = await browser.newPage({ viewport: { width: 1400, height: 1300 } });
  page.on('pageerror', e => errors.push(e.message));
  page.on('console', m => { if (m.type() === 'error') errors.push(m.text()); });

  step('the page is served by the broker and connects to it over the same port');
  await page.goto(`http://127.0.0.1:${web}/`);
  await page.waitForSelector('#conn[data-state="online"]', { timeout: 20000 });
  assert.equal(await page.textContent('#broker'), `ws://127.0.0.1:${web}`);

  step('agents: status and metrics');
  pub('mqpipe/status/mqpipe-counter', { agent: 'counter', state: 'online', pid: 42, version: '0.1.0' }, '-r');
  pub('mqpipe/status/mqpipe-alerter', { agent: 'alerter', state: 'offline', pid: 43, version: '0.1.0' }, '-r');
  for (const rate of [3, 9, 12.5]) {
    pub('mqpipe/metrics/mqpipe-counter', { agent: 'counter', in_per_s: rate, out_per_s: 0.5, deadletters: 2,
      outbox_depth: 7, handling_us: { count: 5, p50: 175, p95: 300, p99: 1351, max: 1400 } });
  }
  const counterRow = page.locator('#agents tr[data-agent="mqpipe-counter"]');
  await counterRow.locator('td', { hasText: '12.5' }).waitFor();
  assert.deepEqual(await counterRow.locator('td').allTextContents().then(c => c.slice(0, 9)),
    ['mqpipe-counter', '–', 'online', '12.5', '0.5', '0.18', '1.35', '2', '7']);
  assert.equal(await counterRow.locator('svg.spark polyline').count(), 1, 'a sparkline of in/s');
  assert.equal(await page.textContent('#agents tr[data-agent="mqpipe-alerter"] td:nth-child(3)'), 'offline');

  step('agents: every shard instance on a row of its own, with its shard');
  for (const k of [0, 1]) {
    pub(`mqpipe/status/mqpipe-counter-${k}`, { agent: 'counter', state: 'online', pid: 50 + k, version: '0.1.0',
      shards: 2, shard: k }, '-r');
  }
  pub('mqpipe/status/mqpipe-router', { agent: 'router', state: 'online', pid: 52, version: '0.1.0', shards: 2 }, '-r');
  await page.locator('#agents tr[data-agent="mqpipe-router"]').waitFor();
  const firstCells = id => page.locator(`#agents tr[data-agent="${id}"] td`).allTextContents().then(c => c.slice(0, 3));
  assert.deepEqual(await firstCells('mqpipe-counter-0'), ['mqpipe-counter-0', '0/2', 'online']);
  assert.deepEqual(await firstCells('mqpipe-counter-1'), ['mqpipe-counter-1', '1/2', 'online']);
  assert.deepEqual(await firstCells('mqpipe-router'), ['mqpipe-router', '–/2', 'online']);
  // Its last will (offline) keeps the row and its shard.
  pub('mqpipe/status/mqpipe-counter-1', { agent: 'counter', state: 'offline', pid: 51, version: '0.1.0',
    shards: 2, shard: 1 }, '-r');
  await page.locator('#agents tr[data-agent="mqpipe-counter-1"] td.offline').waitFor();
  assert.deepEqual(await firstCells('mqpipe-counter-1'), ['mqpipe-counter-1', '1/2', 'offline']);

  step('modules: latest rate each, worst first, a history per module');
  pub('success_rate', { moduleid: 'm-good', timestamp: 1700000000, success_rate: 95, received: 19, attempts: 20 });
  pub('success_rate', { moduleid: 'm-bad', timestamp: 1700000000, success_rate: 40, received: 4, attempts: 10 });
  pub('success_rate', { moduleid: 'm-bad', timestamp: 1700604800, success_rate: 12.5, received: 1, attempts: 8 });
  pub('success_rate', { moduleId: 'm-none', timestamp: 1700000000, success_rate: null, received: 3, attempts: 0 });
  await page.locator('#modules-count', { hasText: '(3)' }).waitFor();
  await page.locator('#modules tr[data-module="m-bad"] td', { hasText: '12.50 %' }).waitFor();
  const order = () => page.$$eval('#modules tbody tr', rows => rows.map(r => r.dataset.module));
  assert.deepEqual(await order(), ['m-bad', 'm-good', 'm-none']);
  assert.equal(await page.locator('#modules tr[data-module="m-bad"] svg.spark polyline').count(), 1);
  await page.click('#modules th[data-sort="id"]');
  await page.waitForFunction(() => document.querySelector('#modules tbody tr').dataset.module === 'm-bad' &&
    document.querySelector('#modules tbody tr:last-child').dataset.module === 'm-none');
  await page.click('#modules th[data-sort="id"]');
  await page.waitForFunction(() => document.querySelector('#modules tbody tr').dataset.module === 'm-none');
  await page.click('#modules th[data-sort="rate"]');
  await page.waitForFunction(() => document.querySelector('#modules tbody tr').dataset.module === 'm-bad');

  step('alerts and dead letters, newest first');
  pub('alerts/cpu/host-1', { metric: 'cpu/host-1', value: 400, average: 100, ratio: 4, factor: 3, window_s: 3600,
    samples: 12, timestamp: 1700000000, rule: 'spike', direction: 'above' });
  pub('alerts/cpu/host-2', { metric: 'cpu/host-2', value: 90, average: 20, ratio: 4.5, factor: 3, window_s: 3600,
    samples: 12, timestamp: 1700000060, rule: 'spike', direction: 'above' });
  pub('deadletter/weekly_diagnostic', { agent: 'counter', topic: 'weekly_diagnostic',
    reason: "field 'attempts' must be a whole number from 0 to 4294967295", payload: '{}', received_at: 1 });
  await page.locator('#alerts li').nth(1).waitFor();
  assert.match(await page.textContent('#alerts li:first-child'), /^cpu\/host-2 90 vs average 20/);
  assert.match(await page.textContent('#deadletters li:first-child'),
    /^weekly_diagnostic \(counter\): field 'attempts' must be a whole number/);

  step('the executive dashboard as six panels, and a job summary');
  const dashboard = JSON.parse(readFileSync(new URL('../../schemas/dashboard.ready.schema.json', import.meta.url)))
    .examples[0];
  pub('dashboard.ready', dashboard);
  pub('job.summary', { requestId: 'req-1', cases: 2, results: [
    { caseId: 'c-1', processingMs: 12, result: { status: 'success' } },
    { caseId: 'c-2', processingMs: 9, result: { status: 'error' } }], mode: 'future', preResolved: 1, e2eMs: 31 });
  await page.locator('#dashboard .panel').nth(5).waitFor();
  assert.deepEqual(await page.$$eval('#dashboard .panel', ps => ps.map(p => p.dataset.source)),
    ['sales', 'inventory', 'marketing', 'external_market', 'weather', 'competitor_pricing']);
  assert.match(await page.textContent('#dashboard-meta'),
    /^dash-1 · executive · 24h · mode future · pre-resolved 5 of 6 · e2e 2,710 ms/);
  assert.match(await page.textContent('#dashboard .panel[data-source="sales"]'), /revenue117,370.*Widget Pro: 40,355/);
  assert.match(await page.textContent('#dashboard .panel[data-source="weather"]'), /Chicago: 17 °C, snow/);
  await page.locator('#jobs tr[data-job="req-1"]').waitFor();
  assert.deepEqual(await page.locator('#jobs tr[data-job="req-1"] td').allTextContents().then(c => c.slice(0, 6)),
    ['req-1', '2', '1', 'future', '1', '31']);
  for (const panel of ['agents', 'modules', 'alerts', 'deadletters', 'dashboard', 'jobs']) {
    assert.equal(await page.isHidden(`#${panel}-empty`), true, `${panel} still says it is empty`);
  }

  step('10 000 modules: a count, the 200 worst drawn');
  const lines = [];
  for (let i = 0; i < 10000; i++) {
    lines.push(JSON.stringify({ moduleid: `load-${i}`, timestamp: 1700000000, success_rate: 20 + (i * 7919) % 8000 / 100,
      received: 1, attempts: 1 }));
  }
  execFileSync('mosquitto_pub', ['-p', mqttPort, '-q', '1', '-t', 'success_rate', '-l'], { input: lines.join('\n') + '\n' });
  await page.locator('#modules-count', { hasText: '(10,003; the first 200 shown)' }).waitFor({ timeout: 30000 });
  assert.equal(await page.locator('#modules tbody tr').count(), 200);
  assert.deepEqual((await order()).slice(0, 2), ['m-bad', 'load-0']);
  await page.waitForFunction(() => /10,0\d\d in all$/.test(document.querySelector('#rate').textContent));

  await page.screenshot({ path: shot, fullPage: true });
  console.log(`-- screenshot: ${shot}`);

  step('read-only: the broker carried only what the test published');
  await new Promise(r => setTimeout(r, 500));
  const topics = new Set(seenText.split('\n').filter(Boolean).map(l => l.split(' ')[0]));
  const published = new Set(['mqpipe/status/mqpipe-counter', 'mqpipe/status/mqpipe-alerter', 'mqpipe/metrics/mqpipe-counter',
    'mqpipe/status/mqpipe-counter-0', 'mqpipe/status/mqpipe-counter-1', 'mqpipe/status/mqpipe-router',
    'success_rate', 'alerts/cpu/host-1', 'alerts/cpu/host-2', 'deadletter/weekly_diagnostic', 'dashboard.ready',
    'job.summary']);
  assert.deepEqual([...topics].filter(t => !published.has(t)), []);
  assert.deepEqual(errors, [], 'errors in the page');
  console.log('ok');
} finally {
  seen.kill();
  await browser.close();
}
