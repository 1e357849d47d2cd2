/* mqpipe live page: subscribes (read-only) to what the agents publish and
 * shows it. Messages only update the state below and mark panels dirty; one
 * requestAnimationFrame callback redraws the dirty panels, so 2 000 msg/s
 * cost a few redraws a second, not one per message. Everything from the
 * broker is shown with textContent, never parsed as HTML. */
'use strict';

const params = new URLSearchParams(location.search);
const PREFIX = params.get('prefix') ? params.get('prefix').replace(/\/+$/, '') + '/' : '';
const BROKER = params.get('broker') ||
  (location.protocol === 'https:' ? 'wss://' : 'ws://') + (location.host || '127.0.0.1:9001');
const TOPICS = ['mqpipe/status/#', 'mqpipe/metrics/#', 'success_rate', 'alerts/#', 'deadletter/#',
  'job.summary', 'dashboard.ready'];
const HISTORY = 30;        /* points per sparkline */
const FEED_MAX = 100;      /* alerts, dead letters and job summaries kept */
const MODULE_ROWS = 200;   /* rows drawn; the rest are counted */
const MODULES_EVERY_MS = 250; /* the module table is re-sorted at most this often */

const state = {
  agents: new Map(),       /* client id -> {status, metrics, hist, seen} */
  modules: new Map(),      /* module id -> {id, rate, received, attempts, ts, hist} */
  alerts: [], deadletters: [], jobs: [],
  dashboard: null,
  messages: 0,
  sort: {key: 'rate', desc: false},
};
const decoder = new TextDecoder();
const dirty = new Set();
let frameQueued = false;
let modulesDrawnAt = 0;

function $(id) { return document.getElementById(id); }

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}

function fmt(n, digits) {
  if (n === null || n === undefined || Number.isNaN(n)) return '–';
  return Number(n).toLocaleString('en-US', {maximumFractionDigits: digits === undefined ? 1 : digits});
}

function sparkline(values) {
  const ns = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(ns, 'svg');
  svg.setAttribute('class', 'spark');
  svg.setAttribute('viewBox', '0 0 120 20');
  svg.setAttribute('preserveAspectRatio', 'none');
  const pts = values.filter(v => typeof v === 'number');
  if (pts.length > 1) {
    const max = Math.max(...pts), min = Math.min(...pts), span = max - min || 1;
    const line = document.createElementNS(ns, 'polyline');
    line.setAttribute('points', pts.map((v, i) =>
      `${(i * 120 / (pts.length - 1)).toFixed(1)},${(19 - (v - min) * 18 / span).toFixed(1)}`).join(' '));
    svg.appendChild(line);
  }
  return svg;
}

function markDirty(panel) {
  dirty.add(panel);
  if (!frameQueued) {
    frameQueued = true;
    requestAnimationFrame(draw);
  }
}

function pushCapped(list, item) {
  list.unshift(item);
  if (list.length > FEED_MAX) list.length = FEED_MAX;
}

/* ---- messages -> state ---------------------------------------------------- */

function onMessage(topic, payload) {
  state.messages++;
  if (PREFIX && topic.startsWith(PREFIX)) topic = topic.slice(PREFIX.length);
  let body;
  try { body = JSON.parse(decoder.decode(payload)); } catch (e) { return; }
  if (body === null || typeof body !== 'object') return;
  let m;
  if ((m = /^mqpipe\/(status|metrics)\/(.+)$/.exec(topic))) {
    const a = state.agents.get(m[2]) || {status: null, metrics: null, hist: []};
    if (m[1] === 'status') {
      a.status = body;
      /* An instance's shard, K of S (README "Scaling out"), kept when it goes offline. */
      if (typeof body.shards === 'number') a.shard = (typeof body.shard === 'number' ? body.shard : '–') + '/' + body.shards;
    } else {
      a.metrics = body;
      a.hist.push(typeof body.in_per_s === 'number' ? body.in_per_s : 0);
      if (a.hist.length > HISTORY) a.hist.shift();
    }
    state.agents.set(m[2], a);
    markDirty('agents');
  } else if (topic === 'success_rate') {
    const id = String(body.moduleid ?? body.moduleId ?? '?');
    const mod = state.modules.get(id) || {id, hist: []};
    mod.rate = typeof body.success_rate === 'number' ? body.success_rate : null;
    mod.received = body.received;
    mod.attempts = body.attempts;
    mod.ts = body.timestamp;
    mod.hist.push(mod.rate);
    if (mod.hist.length > HISTORY) mod.hist.shift();
    state.modules.set(id, mod);
    markDirty('modules');
  } else if (topic.startsWith('alerts/')) {
    pushCapped(state.alerts, {topic, body, at: new Date()});
    markDirty('alerts');
  } else if (topic.startsWith('deadletter/')) {
    pushCapped(state.deadletters, {topic, body, at: new Date()});
    markDirty('deadletters');
  } else if (topic === 'job.summary') {
    pushCapped(state.jobs, {body, at: new Date()});
    markDirty('jobs');
  } else if (topic === 'dashboard.ready') {
    state.dashboard = {body, at: new Date()};
    markDirty('dashboard');
  }
}

/* ---- state -> DOM, once per animation frame ----------------------------- */

function draw(now) {
  frameQueued = false;
  document.body.dataset.messages = state.messages; /* for tests and scripts/bench page */
  for (const panel of [...dirty]) {
    if (panel === 'modules' && now - modulesDrawnAt < MODULES_EVERY_MS) {
      frameQueued = true; /* come back for it: at most four sorts a second */
      continue;
    }
    dirty.delete(panel);
    DRAW[panel]();
    if (panel === 'modules') modulesDrawnAt = now;
  }
  if (frameQueued) requestAnimationFrame(draw);
}

function showEmpty(name, empty) { $(name + '-empty').hidden = !empty; }

function drawAgents() {
  const tbody = $('agents').tBodies[0];
  const rows = [];
  for (const id of [...state.agents.keys()].sort()) {
    const a = state.agents.get(id), mt = a.metrics || {}, h = mt.handling_us || {};
    const online = a.status ? a.status.state === 'online' : !!a.metrics;
    const tr = el('tr');
    tr.dataset.agent = id;
    tr.append(el('td', id), el('td', a.shard || '–', 'shard'), el('td', online ? 'online' : (a.status && a.status.state) || 'offline',
      online ? 'online' : 'offline'),
    el('td', fmt(mt.in_per_s), 'num'), el('td', fmt(mt.out_per_s), 'num'),
    /* Handling times of the last interval: none handled, none to show. */
    el('td', h.count ? fmt(h.p50 / 1000, 2) : '–', 'num'),
    el('td', h.count ? fmt(h.p99 / 1000, 2) : '–', 'num'),
    el('td', fmt(mt.deadletters, 0), 'num'), el('td', fmt(mt.outbox_depth, 0), 'num'));
    const spark = el('td');
    spark.appendChild(sparkline(a.hist));
    tr.appendChild(spark);
    rows.push(tr);
  }
  tbody.replaceChildren(...rows);
  showEmpty('agents', rows.length === 0);
}

function rateClass(r) {
  return r === null || r === undefined ? '' : r < 50 ? 'rate-bad' : r < 90 ? 'rate-warn' : 'rate-good';
}

function compareModules(key, desc) {
  const dir = desc ? -1 : 1;
  return (a, b) => {
    let x = a[key], y = b[key];
    if (key === 'id') return dir * String(x).localeCompare(String(y));
    /* A rate of null (no attempts) sorts after every number, either way. */
    if (x === null || x === undefined) return (y === null || y === undefined) ? 0 : 1;
    if (y === null || y === undefined) return -1;
    return dir * (x - y) || String(a.id).localeCompare(String(b.id));
  };
}

function drawModules() {
  const all = [...state.modules.values()].sort(compareModules(state.sort.key, state.sort.desc));
  const rows = all.slice(0, MODULE_ROWS).map(mod => {
    const tr = el('tr');
    tr.dataset.module = mod.id;
    tr.append(el('td', mod.id),
      el('td', mod.rate === null ? 'n/a' : mod.rate.toFixed(2) + ' %', 'num ' + rateClass(mod.rate)),
      el('td', fmt(mod.received, 0), 'num'), el('td', fmt(mod.attempts, 0), 'num'),
      el('td', typeof mod.ts === 'number' ? new Date(mod.ts * 1000).toISOString().slice(0, 10) : '–'));
    const spark = el('td');
    spark.appendChild(sparkline(mod.hist));
    tr.appendChild(spark);
    return tr;
  });
  $('modules').tBodies[0].replaceChildren(...rows);
  $('modules-count').textContent = all.length > MODULE_ROWS
    ? `(${fmt(all.length, 0)}; the first ${MODULE_ROWS} shown)` : `(${fmt(all.length, 0)})`;
  showEmpty('modules', all.length === 0);
}

function drawFeed(name, list, render) {
  $(name).replaceChildren(...list.map(item => {
    const li = el('li');
    render(li, item);
    return li;
  }));
  showEmpty(name, list.length === 0);
}

function drawAlerts() {
  drawFeed('alerts', state.alerts, (li, {body, at}) => {
    li.append(el('span', body.metric ?? '?', 'what'),
      el('span', ` ${fmt(body.value, 2)} vs average ${fmt(body.average, 2)} (×${fmt(body.ratio, 2)}, ` +
        `${body.rule ?? 'rule'} ${body.direction ?? ''}) `),
      el('span', at.toLocaleTimeString(), 'muted'));
  });
}

function drawDeadletters() {
  drawFeed('deadletters', state.deadletters, (li, {topic, body, at}) => {
    li.append(el('span', topic.slice('deadletter/'.length), 'what'),
      el('span', ` (${body.agent ?? '?'}): ${body.reason ?? ''} `),
      el('span', at.toLocaleTimeString(), 'muted'));
  });
}

function drawJobs() {
  const rows = state.jobs.map(({body, at}) => {
    const results = Array.isArray(body.results) ? body.results : [];
    const failed = results.filter(r => r && r.result && r.result.status && r.result.status !== 'success').length;
    const tr = el('tr');
    tr.dataset.job = String(body.requestId);
    tr.append(el('td', body.requestId), el('td', fmt(body.cases, 0), 'num'), el('td', fmt(failed, 0), 'num'),
      el('td', body.mode ?? '–'), el('td', fmt(body.preResolved, 0), 'num'), el('td', fmt(body.e2eMs, 0), 'num'),
      el('td', at.toLocaleTimeString(), 'muted'));
    return tr;
  });
  $('jobs').tBodies[0].replaceChildren(...rows);
  showEmpty('jobs', rows.length === 0);
}

/* The seed's six panels: the headline figures of each source, then its list. */
const PANELS = [
  ['sales', [['revenue', 'total_revenue'], ['orders', 'orders'], ['average order', 'average_order_value'],
    ['currency', 'currency']], 'top_products', p => `${p.name}: ${fmt(p.revenue, 0)}`],
  ['inventory', [['SKUs', 'total_skus'], ['low stock', 'low_stock_items'], ['out of stock', 'out_of_stock']],
    'warehouses', w => `${w.name}: ${fmt(w.utilization_pct)} % used`],
  ['marketing', [['impressions', 'impressions'], ['clicks', 'clicks'], ['CTR %', 'ctr_pct'],
    ['conversions', 'conversions'], ['spend', 'spend']], 'campaigns', c => `${c.name}: ROAS ${fmt(c.roas, 2)}`],
  ['external_market', [['sentiment', 'sentiment'], ['volatility', 'volatility_index']], 'indices',
    i => `${i.symbol}: ${fmt(i.change_pct, 2)} %`],
  ['weather', [['severe alerts', 'severe_alerts']], 'locations', l => `${l.city}: ${fmt(l.temp_c)} °C, ${l.conditions}`],
  ['competitor_pricing', [['products tracked', 'products_tracked'], ['price changes 24h', 'price_changes_24h']],
    'competitors', c => `${c.name}: price index ${fmt(c.price_index, 3)}`],
];

function drawDashboard() {
  const d = state.dashboard;
  showEmpty('dashboard', !d);
  if (!d) return;
  const b = d.body, sources = b.sources && typeof b.sources === 'object' ? b.sources : {};
  $('dashboard-meta').textContent = `${b.request_id ?? '?'} · ${b.dashboard_type ?? '?'} · ${b.time_range ?? '?'} · ` +
    `mode ${b.mode ?? '?'} · pre-resolved ${fmt(b.pre_resolved, 0)} of ${fmt(b.total_inputs, 0)} · ` +
    `e2e ${fmt(b.e2e_ms, 0)} ms · ${d.at.toLocaleTimeString()}`;
  $('dashboard').replaceChildren(...PANELS.map(([name, fields, listKey, item]) => {
    const src = sources[name] || {};
    const div = el('div', undefined, 'panel');
    div.dataset.source = name;
    div.appendChild(el('h3', name.replace('_', ' ')));
    const dl = el('dl');
    for (const [label, key] of fields) {
      dl.append(el('dt', label), el('dd', typeof src[key] === 'number' ? fmt(src[key], 2) : src[key] ?? '–'));
    }
    div.appendChild(dl);
    const ul = el('ul');
    for (const x of Array.isArray(src[listKey]) ? src[listKey].slice(0, 5) : []) {
      if (x && typeof x === 'object') ul.appendChild(el('li', item(x)));
    }
    div.appendChild(ul);
    return div;
  }));
}

const DRAW = {agents: drawAgents, modules: drawModules, alerts: drawAlerts, deadletters: drawDeadletters,
  jobs: drawJobs, dashboard: drawDashboard};

/* ---- sorting, connection -------------------------------------------------- */

for (const th of document.querySelectorAll('#modules th[data-sort]')) {
  th.addEventListener('click', () => {
    const key = th.dataset.sort;
    state.sort = {key, desc: state.sort.key === key ? !state.sort.desc : false};
    for (const other of document.querySelectorAll('#modules th[data-sort]')) {
      other.classList.toggle('sorted', other === th);
      other.classList.toggle('desc', other === th && state.sort.desc);
    }
    modulesDrawnAt = 0;
    markDirty('modules');
  });
}

function setConn(s, text) {
  const c = $('conn');
  c.dataset.state = s;
  c.textContent = text;
}

$('broker').textContent = BROKER;
const client = mqtt.connect(BROKER, {protocolVersion: 5, clean: true, reconnectPeriod: 2000,
  clientId: 'mqpipe-page-' + Math.random().toString(16).slice(2, 10)});
client.on('connect', () => {
  setConn('online', 'live');
  client.subscribe(TOPICS.map(t => PREFIX + t), {qos: 0}, err => {
    if (err) setConn('error', 'subscribe refused: ' + err.message);
  });
});
client.on('reconnect', () => setConn('connecting', 'reconnecting…'));
client.on('offline', () => setConn('offline', 'offline'));
client.on('error', err => setConn('error', 'error: ' + err.message));
client.on('message', onMessage);

let lastCount = 0;
setInterval(() => {
  $('rate').textContent = `${fmt(state.messages - lastCount, 0)} msg/s · ${fmt(state.messages, 0)} in all`;
  lastCount = state.messages;
}, 1000);
