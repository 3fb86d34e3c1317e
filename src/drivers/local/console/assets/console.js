// Eventide's operator console: polls the local API and draws what it says. No framework, no
// build step; charts are SVG drawn here. Served by `eventide local` (docs/console.md).
'use strict';

const SVG = 'http://www.w3.org/2000/svg';
const SAMPLE_MS = 1000;
const PROGRESS_MS = 2000;
const HISTORY = 300; // samples kept: five minutes at one a second

// Okabe–Ito, distinguishable with the common colour-vision deficiencies.
const PALETTE = { blue: '#0072B2', orange: '#E69F00', green: '#009E73', vermillion: '#D55E00', sky: '#56B4E9', purple: '#CC79A7', grey: '#999999' };

// The figures of the Now view: how each is read from a status sample and its predecessor.
const RATE = (name) => (s, prev) => prev ? Math.max(0, (s.counters[name] - prev.counters[name]) / ((s.at - prev.at) / 1000)) : null;
const FIGURES = [
  { id: 'ingest-rate', label: 'Ingest', unit: 'observations/s', colour: PALETTE.blue, read: RATE('observations_accepted') },
  { id: 'merge-rate', label: 'Merge', unit: 'points/s', colour: PALETTE.green, read: RATE('points_merged') },
  { id: 'observations-backlog', label: 'Observations queue', unit: 'messages waiting', colour: PALETTE.orange, read: (s) => s.queues ? s.queues.observations.active + s.queues.observations.deferred : null },
  { id: 'summaries-due', label: 'Summaries due', unit: 'messages deliverable now', colour: PALETTE.vermillion, read: (s) => s.queues ? s.queues.summaries.active : null },
  { id: 'summaries-deferred', label: 'Summaries scheduled', unit: 'messages not yet due', colour: PALETTE.sky, read: (s) => s.queues ? s.queues.summaries.deferred : null },
  { id: 'quarantine-size', label: 'Quarantine', unit: 'entries (embedded)', colour: PALETTE.purple, read: (s) => s.quarantine },
];
const DEPENDENCIES = [
  { id: 'failures_observations_queue', label: 'Observations queue' },
  { id: 'failures_summaries_queue', label: 'Summaries queue' },
  { id: 'failures_store', label: 'Series-day store' },
  { id: 'failures_sink', label: 'Summary sink' },
  { id: 'failures_quarantine', label: 'Quarantine' },
];

const samples = [];
let quarantineLoaded = false;

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'text') node.textContent = v; else if (k.startsWith('on')) node.addEventListener(k.slice(2), v); else node.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children) if (c !== null && c !== undefined) node.append(c);
  return node;
}

function svg(tag, attrs) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  return node;
}

function fmt(value, digits) {
  if (value === null || value === undefined || Number.isNaN(value)) return '–';
  if (Math.abs(value) >= 1000) return Math.round(value).toLocaleString('en');
  return Number(value.toFixed(digits === undefined ? 1 : digits)).toLocaleString('en');
}

async function getJson(url) {
  const response = await fetch(url, { headers: { accept: 'application/json' } });
  const body = await response.json();
  if (!response.ok) throw new Error(body.error || response.statusText);
  return body;
}

// ---- views -------------------------------------------------------------------------------

function showView() {
  const name = (location.hash || '#now').slice(1);
  const view = ['now', 'quarantine', 'summaries'].includes(name) ? name : 'now';
  for (const v of ['now', 'quarantine', 'summaries']) {
    document.getElementById('view-' + v).hidden = v !== view;
    const link = document.getElementById('nav-' + v);
    if (v === view) link.setAttribute('aria-current', 'page'); else link.removeAttribute('aria-current');
  }
  if (view === 'quarantine') loadQuarantine();
  if (view === 'now') loadProgress();
  if (view === 'summaries') prepareSummaries();
}

// ---- Now -------------------------------------------------------------------------------

function buildCards(container, items) {
  for (const item of items) {
    const value = el('span', { class: 'value', id: 'figure-' + item.id, 'data-value': '' }, '–');
    const chart = el('div', { class: 'spark', id: 'chart-' + item.id, role: 'img', 'aria-label': item.label + ' over the last five minutes' });
    container.append(el('article', { class: 'card', 'aria-labelledby': 'label-' + item.id },
      el('h4', { id: 'label-' + item.id, text: item.label }), value, el('span', { class: 'unit', text: item.unit }), chart));
  }
}

// A small time-series chart: the series as a line over the sample times, its maximum labelled.
function sparkline(container, points, colour) {
  const width = 240, height = 56, pad = 2;
  const values = points.map((p) => p.v).filter((v) => v !== null);
  const max = Math.max(1, ...values);
  // The window is five minutes, or less until five minutes were sampled.
  const t1 = Date.now(), t0 = Math.min(t1 - 30 * SAMPLE_MS, Math.max(t1 - HISTORY * SAMPLE_MS, points.length ? points[0].t : t1));
  const x = (t) => pad + ((t - t0) / (t1 - t0)) * (width - 2 * pad);
  const y = (v) => height - pad - (v / max) * (height - 2 * pad - 10);
  const root = svg('svg', { viewBox: `0 0 ${width} ${height}`, width: '100%', height, 'aria-hidden': 'true', focusable: 'false' });
  root.append(svg('line', { x1: 0, x2: width, y1: height - pad, y2: height - pad, class: 'axis' }));
  let d = '';
  for (const p of points) {
    if (p.v === null) continue;
    d += (d ? 'L' : 'M') + x(p.t).toFixed(1) + ' ' + y(p.v).toFixed(1);
  }
  if (d) root.append(svg('path', { d, fill: 'none', stroke: colour, 'stroke-width': 2 }));
  const label = svg('text', { x: width - pad, y: 10, 'text-anchor': 'end', class: 'axis-label' });
  label.textContent = 'max ' + fmt(max);
  root.append(label);
  container.replaceChildren(root);
}

function drawNow() {
  const latest = samples[samples.length - 1];
  if (!latest) return;
  for (const figure of FIGURES) {
    const points = samples.map((s, i) => ({ t: s.at, v: figure.read(s, samples[i - 1]) }));
    const current = points[points.length - 1].v;
    const node = document.getElementById('figure-' + figure.id);
    node.textContent = fmt(current);
    node.dataset.value = current === null ? '' : String(current);
    sparkline(document.getElementById('chart-' + figure.id), points, figure.colour);
  }
  for (const dep of DEPENDENCIES) {
    const total = latest.counters[dep.id];
    const node = document.getElementById('figure-' + dep.id);
    node.textContent = total === undefined ? '–' : fmt(total, 0);
    node.dataset.value = total === undefined ? '' : String(total);
    node.closest('.card').classList.toggle('alert', total > 0);
    const points = samples.map((s, i) => ({ t: s.at, v: i === 0 || s.counters[dep.id] === undefined ? null : s.counters[dep.id] - samples[i - 1].counters[dep.id] }));
    sparkline(document.getElementById('chart-' + dep.id), points, PALETTE.vermillion);
  }
  const body = document.querySelector('#counters tbody');
  body.replaceChildren(...Object.entries(latest.counters).map(([name, value]) =>
    el('tr', {}, el('th', { scope: 'row', text: name }), el('td', { 'data-counter': name, text: String(value) }))));
  const badge = document.getElementById('nav-quarantine-count');
  badge.textContent = latest.quarantine ? String(latest.quarantine) : '';
}

async function sample() {
  try {
    const status = await getJson('/api/status');
    status.at = Date.now();
    samples.push(status);
    if (samples.length > HISTORY) samples.shift();
    setConnection('Live', false);
    drawNow();
  } catch (e) {
    setConnection('Cannot reach the runtime: ' + e.message, true);
  }
}

function setConnection(text, bad) {
  const node = document.getElementById('connection');
  if (node.textContent !== text) node.textContent = text;
  node.classList.toggle('bad', bad);
}

async function loadProgress() {
  if (document.getElementById('view-now').hidden) return;
  try {
    const progress = await getJson('/api/progress');
    const rows = progress.days.map((d, i) => {
      const bar = el('div', { class: 'bar', role: 'img', 'aria-label': `${d.written} of ${d.series} written` });
      for (const part of ['written', 'stale', 'refused', 'pending']) {
        if (!d[part]) continue;
        const seg = el('span', { class: 'seg ' + part, title: `${part}: ${d[part]}` });
        seg.style.width = (100 * d[part] / d.series) + '%';
        bar.append(seg);
      }
      return el('tr', { 'data-day': d.day },
        el('th', { scope: 'row', text: `${d.day} (${i === progress.days.length - 1 ? 'current' : 'previous'})` }),
        ...['series', 'pending', 'written', 'stale', 'refused', 'overdue'].map((k) => el('td', { 'data-field': k, text: String(d[k]) })),
        el('td', {}, bar));
    });
    document.querySelector('#progress tbody').replaceChildren(...rows);
  } catch (e) {
    setConnection('End-of-day progress unavailable: ' + e.message, true);
  }
}

// ---- Quarantine ----------------------------------------------------------------------------

async function loadQuarantine() {
  try {
    const listing = await getJson('/api/quarantine');
    renderQuarantine(listing);
    quarantineLoaded = true;
  } catch (e) {
    document.getElementById('quarantine-summary').textContent = 'Could not list the quarantine: ' + e.message;
  }
}

function renderQuarantine(listing) {
  const count = listing.entries.length;
  document.getElementById('quarantine-summary').textContent = count === 0 ? 'Nothing is quarantined.'
    : `${count} entr${count === 1 ? 'y' : 'ies'}${listing.truncated ? ' (the newest; there are more)' : ''} in ${listing.groups.length} group${listing.groups.length === 1 ? '' : 's'}.`;
  const groups = listing.groups.map((group, g) => {
    const entries = listing.entries.filter((e) => e.reason === group.reason);
    const rows = entries.map((entry, i) => {
      const bodyId = `body-${g}-${i}`;
      const pre = el('pre', { id: bodyId, class: 'body', hidden: true, tabindex: '0', 'aria-label': 'Original bytes of ' + entry.id, text: entry.body });
      const toggle = el('button', { type: 'button', 'aria-expanded': 'false', 'aria-controls': bodyId, class: 'view-body', text: 'Show bytes',
        onclick: (ev) => { const open = pre.hidden; pre.hidden = !open; ev.target.setAttribute('aria-expanded', String(open)); ev.target.textContent = open ? 'Hide bytes' : 'Show bytes'; } });
      const replay = el('button', { type: 'button', class: 'replay-entry', text: 'Replay', 'aria-label': 'Replay ' + entry.id,
        onclick: () => confirmReplay({ ids: [entry.id] }, `Replay entry ${entry.id}?`) });
      return el('tr', { 'data-id': entry.id },
        el('td', {}, el('time', { datetime: entry.at, text: entry.at.replace('T', ' ').replace(/\.\d+Z$/, 'Z') })),
        el('td', { text: entry.function }),
        el('td', { class: 'wrap', text: entry.source }),
        el('td', { class: 'wrap' }, el('code', { text: entry.id }), pre),
        el('td', { class: 'actions' }, toggle, ' ', replay));
    });
    const headingId = 'group-' + g;
    return el('section', { class: 'group', 'aria-labelledby': headingId, 'data-reason': group.reason },
      el('h3', { id: headingId }, el('span', { class: 'reason', text: group.reason }), ' ', el('span', { class: 'badge', text: String(group.count) })),
      el('div', { class: 'toolbar' }, el('button', { type: 'button', class: 'replay-group', text: `Replay all ${group.count} with this reason`,
        onclick: () => confirmReplay({ reason: group.reason }, `Replay every entry quarantined with the reason “${group.reason}”?`) })),
      el('table', {}, el('thead', {}, el('tr', {}, ...['Time', 'Function', 'Source', 'Entry', 'Actions'].map((h) => el('th', { scope: 'col', text: h })))), el('tbody', {}, ...rows)));
  });
  document.getElementById('quarantine-groups').replaceChildren(...groups);
}

function confirmReplay(selection, text) {
  const dialog = document.getElementById('confirm');
  document.getElementById('confirm-text').textContent = text + ' Fix the cause first: what is still bad comes back into quarantine.';
  dialog.returnValue = '';
  dialog.onclose = () => { if (dialog.returnValue === 'replay') replay(selection); };
  dialog.showModal();
}

async function replay(selection) {
  const result = document.getElementById('replay-result');
  result.textContent = 'Replaying…';
  try {
    const response = await fetch('/api/quarantine/replay', {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-eventide-console': 'replay', accept: 'application/json' },
      body: JSON.stringify(selection),
    });
    const report = await response.json();
    if (!response.ok) throw new Error(report.error || response.statusText);
    const skipped = report.skipped.map((s) => `${s.id}: ${s.reason}`).join('; ');
    result.textContent = `Replayed ${report.replayed.length}` + (report.replayed.length ? ': ' + report.replayed.join(', ') : '')
      + (report.skipped.length ? `; skipped ${report.skipped.length} (${skipped})` : '') + '.';
    result.className = 'ok';
  } catch (e) {
    result.textContent = 'Replay failed: ' + e.message;
    result.className = 'bad';
  }
  loadQuarantine();
}

// ---- Summaries -----------------------------------------------------------------------------

let summariesPrepared = false;

async function prepareSummaries() {
  if (summariesPrepared) return;
  summariesPrepared = true;
  const today = new Date();
  const iso = (d) => d.toISOString().slice(0, 10);
  const from = new Date(today.getTime() - 13 * 86400000);
  const fromInput = document.getElementById('summaries-from');
  const toInput = document.getElementById('summaries-to');
  if (!fromInput.value) fromInput.value = iso(from);
  if (!toInput.value) toInput.value = iso(today);
  try {
    const names = new Set();
    for (const d of [new Date(today.getTime() - 86400000), today]) {
      for (const row of await getJson('/api/summaries?day=' + iso(d))) names.add(row.series);
    }
    document.getElementById('series-options').replaceChildren(...[...names].sort().map((n) => el('option', { value: n })));
  } catch (e) {
    document.getElementById('summaries-message').textContent = 'Could not list recent series: ' + e.message;
  }
}

async function showSummaries(event) {
  event.preventDefault();
  const form = new FormData(event.target);
  const message = document.getElementById('summaries-message');
  const query = new URLSearchParams({ series: form.get('series'), from: form.get('from'), to: form.get('to') });
  message.textContent = 'Loading…';
  try {
    const days = await getJson('/api/summaries/days?' + query);
    message.textContent = days.length ? `${days.length} day${days.length === 1 ? '' : 's'} of ${form.get('series')}.` : `No days of ${form.get('series')} in this range.`;
    renderSummaries(days);
  } catch (e) {
    message.textContent = 'Could not load the summaries: ' + e.message;
  }
}

function dayState(d) {
  if (!d.summary) return 'pending (no row yet)';
  if (d.state && d.state.pending) return 'pending again (row is stale)';
  if (d.state && d.state.epoch > 1) return `re-summarized (epoch ${d.state.epoch})`;
  return d.state ? 'current' : 'current (day no longer stored)';
}

function renderSummaries(days) {
  const rows = days.map((d) => {
    const s = d.summary;
    const cells = s ? [s.count, s.min, s.mean, s.max, s.p50, s.p90, s.p99, s.stddev].map((v) => el('td', { class: 'num', text: fmt(v, 3) }))
      : [el('td', { colspan: 8, text: 'no row yet' })];
    const state = dayState(d);
    return el('tr', { 'data-day': d.day, 'data-state': state.split(' ')[0] },
      el('th', { scope: 'row', text: d.day }), el('td', { text: state }), ...cells, el('td', { text: s ? s.computed_at.slice(0, 19).replace('T', ' ') : '–' }));
  });
  document.querySelector('#summaries-table tbody').replaceChildren(...rows);
  document.getElementById('summaries-table').hidden = days.length === 0;
  document.getElementById('summaries-figure').hidden = days.length === 0;
  drawSummaries(days);
}

// The daily chart: per day a min–max bar, a p50–p90 bar inside it and the mean as a marker on
// a line; bars rather than bands, so a single day or a gap still reads.
function drawSummaries(days) {
  const width = 720, height = 260, left = 56, right = 12, top = 12, bottom = 40;
  const rows = days.filter((d) => d.summary);
  const root = svg('svg', { viewBox: `0 0 ${width} ${height}`, width: '100%', role: 'img', 'aria-label': `Daily statistics of ${days.length} days; the table below has the figures` });
  const lo = Math.min(...rows.map((d) => d.summary.min)), hi = Math.max(...rows.map((d) => d.summary.max));
  const span = hi - lo || Math.abs(hi) || 1;
  const y0 = lo - span * 0.05, y1 = hi + span * 0.05;
  const slot = (width - left - right) / Math.max(days.length, 1);
  const x = (i) => left + (i + 0.5) * slot;
  const y = (v) => top + (1 - (v - y0) / (y1 - y0)) * (height - top - bottom);
  for (const tick of [y0, (y0 + y1) / 2, y1]) {
    root.append(svg('line', { x1: left, x2: width - right, y1: y(tick), y2: y(tick), class: 'grid' }));
    const t = svg('text', { x: left - 6, y: y(tick) + 4, 'text-anchor': 'end', class: 'axis-label' });
    t.textContent = fmt(tick, 2);
    root.append(t);
  }
  const bar = (i, upper, lower, w, cls) => root.append(svg('rect', { x: x(i) - w / 2, y: y(upper), width: w, height: Math.max(1, y(lower) - y(upper)), class: cls }));
  const indexed = days.map((d, i) => ({ d, i })).filter(({ d }) => d.summary);
  const w = Math.max(4, Math.min(24, slot * 0.6));
  for (const { d, i } of indexed) {
    bar(i, d.summary.max, d.summary.min, w, 'band-minmax');
    bar(i, d.summary.p90, d.summary.p50, w * 0.6, 'band-p50p90');
  }
  if (indexed.length > 1) root.append(svg('path', { d: 'M' + indexed.map(({ d, i }) => `${x(i).toFixed(1)} ${y(d.summary.mean).toFixed(1)}`).join('L'), class: 'mean' }));
  days.forEach((d, i) => {
    const state = dayState(d);
    const cy = d.summary ? y(d.summary.mean) : height - bottom;
    const marker = svg('circle', { cx: x(i), cy, r: 4, class: 'marker ' + state.split(' ')[0].replace(/[^a-z-]/g, ''), 'data-day': d.day });
    const title = svg('title', {});
    title.textContent = `${d.day}: ${state}` + (d.summary ? `, mean ${fmt(d.summary.mean, 3)}, min ${fmt(d.summary.min, 3)}, max ${fmt(d.summary.max, 3)}` : '');
    marker.append(title);
    root.append(marker);
    if (d.state && d.state.epoch > 1) root.append(svg('circle', { cx: x(i), cy, r: 8, class: 'ring' }));
    if (days.length <= 16 || i % Math.ceil(days.length / 8) === 0) {
      const label = svg('text', { x: x(i), y: height - bottom + 16, 'text-anchor': 'middle', class: 'axis-label' });
      label.textContent = d.day.slice(5);
      root.append(label);
    }
  });
  document.getElementById('summaries-chart').replaceChildren(root);
}

// ---- start ---------------------------------------------------------------------------------

function start() {
  buildCards(document.getElementById('now-cards'), FIGURES);
  buildCards(document.getElementById('failure-cards'), DEPENDENCIES.map((d) => ({ id: d.id, label: d.label, unit: 'failed calls' })));
  document.getElementById('quarantine-refresh').addEventListener('click', loadQuarantine);
  document.getElementById('summaries-form').addEventListener('submit', showSummaries);
  window.addEventListener('hashchange', () => { showView(); document.getElementById('main').focus(); });
  showView();
  sample();
  setInterval(sample, SAMPLE_MS);
  setInterval(loadProgress, PROGRESS_MS);
  setInterval(() => { if (quarantineLoaded && !document.getElementById('view-quarantine').hidden && !document.getElementById('confirm').open) loadQuarantine(); }, PROGRESS_MS);
}

start();
