// scripts/bench page: the live page under load, in headless chromium. Fills
// it with MODULES modules, then mqpipe-replay offers RATE success_rate
// messages a second for SECONDS seconds while a plain mosquitto_sub (the
// yardstick) receives the same; measures how many the page took and how fast,
// its frame rate, its longest gap between frames and its long tasks.
// Prints one JSON object. Usage:
//   node bench.mjs WEB_PORT MQTT_PORT BIN_DIR WORK_DIR RATE SECONDS MODULES
import { launch } from './browser.mjs';
import { execFileSync, spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';

const [web, port, bin, dir, rate, seconds, modules] = process.argv.slice(2);
const total = Number(rate) * Number(seconds), nModules = Number(modules);
const line = (i, r) => JSON.stringify({ moduleid: `m-${i}`, timestamp: 1700000000 + r, success_rate: (i * 37 + r) % 100,
  received: 1, attempts: 1 });

const browser = await launch();
try {
  const page = await browser.newPage({ viewport: { width: 1400, height: 1150 } });
  await page.goto(`http://127.0.0.1:${web}/`);
  await page.waitForSelector('#conn[data-state="online"]', { timeout: 20000 });
  // The page notes its message count on <body> at every redraw.
  const received = () => page.evaluate(() => Number(document.body.dataset.messages || 0));

  const preload = [];
  for (let i = 0; i < nModules; i++) preload.push(line(i, 0));
  execFileSync('mosquitto_pub', ['-p', port, '-q', '1', '-t', 'success_rate', '-l'], { input: preload.join('\n') + '\n' });
  await page.waitForFunction(n => document.querySelector('#modules-count').textContent.startsWith(
    `(${n.toLocaleString('en-US')};`), nModules, { timeout: 60000 });
  await page.waitForFunction(n => Number(document.body.dataset.messages || 0) >= n, nModules, { timeout: 30000 });
  const before = await received();

  const trace = [];
  for (let k = 0; k < total; k++) {
    trace.push(JSON.stringify({ t: 0, topic: 'success_rate', qos: 1, retain: false,
      payload: line((k * 7919) % nModules, 1 + k) }));
  }
  writeFileSync(`${dir}/page-load.jsonl`, trace.join('\n') + '\n');

  // Frames and long tasks from here on.
  await page.evaluate(() => {
    window.benchFrames = [];
    const tick = t => { window.benchFrames.push(t); requestAnimationFrame(tick); };
    requestAnimationFrame(tick);
    window.benchLong = [];
    new PerformanceObserver(l => l.getEntries().forEach(e => window.benchLong.push(e.duration)))
      .observe({ type: 'longtask' });
  });
  const yard = spawn('mosquitto_sub', ['-p', port, '-q', '1', '-t', 'success_rate', '-C', String(total)],
    { stdio: 'ignore' });
  let yardDone = null;
  const yardExit = new Promise(r => yard.on('exit', () => { yardDone = performance.now(); r(); }));
  await new Promise(r => setTimeout(r, 300));
  const t0 = performance.now();
  execFileSync(`${bin}/mqpipe-replay`, ['-b', `tcp://127.0.0.1:${port}`, '--rate', rate, `${dir}/page-load.jsonl`],
    { stdio: ['ignore', 'ignore', 'ignore'] });
  const sent = performance.now();
  await yardExit;
  await page.waitForFunction(n => Number(document.body.dataset.messages || 0) >= n, before + total,
    { timeout: 60000, polling: 'raf' });
  const pageDone = performance.now();
  const stats = await page.evaluate(() => ({ frames: window.benchFrames, long: window.benchLong }));
  const span = stats.frames.length > 1 ? stats.frames[stats.frames.length - 1] - stats.frames[0] : 0;
  let gap = 0;
  for (let i = 1; i < stats.frames.length; i++) gap = Math.max(gap, stats.frames[i] - stats.frames[i - 1]);
  const secs = ms => ms / 1000;
  console.log(JSON.stringify({
    modules: nModules, messages: total, offered_rate: Number(rate),
    publish_s: secs(sent - t0),
    yardstick_s: secs(yardDone - t0), page_s: secs(pageDone - t0),
    yardstick_mps: total / secs(yardDone - t0), page_mps: total / secs(pageDone - t0),
    fps: span ? (stats.frames.length - 1) / secs(span) : 0, max_frame_gap_ms: gap,
    long_tasks: stats.long.length, longest_task_ms: stats.long.length ? Math.max(...stats.long) : 0,
  }));
} finally {
  await browser.close();
}
