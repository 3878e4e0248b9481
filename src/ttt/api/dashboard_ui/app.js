/* 3T dashboard: a small single-page UI over the read-only JSON API (services.md §9).
 *
 * No framework and no external code. Every value from the API reaches the page through text nodes or
 * setAttribute, never through an HTML parser, so a symbol name or an audit message can never become markup.
 * Pages are addressed by the hash (#/runs/123?...), so reloads, bookmarks and the back button work and a
 * page can always be rebuilt from its address: live updates simply rebuild the current page.
 */
'use strict';

const API = {
  overview: '/api/v1/overview',
  health: '/api/v1/health',
  population: '/api/v1/population',
  positions: '/api/v1/positions',
  runs: '/api/v1/runs',
  run: '/api/v1/runs/{run_id}',
  orders: '/api/v1/orders',
  order: '/api/v1/orders/{client_order_id}',
  fills: '/api/v1/fills',
  equity: '/api/v1/equity',
  epochs: '/api/v1/epochs',
  cycles: '/api/v1/cycles',
  cycle: '/api/v1/cycles/{cycle_id}',
  events: '/api/v1/events',
};

const EVENT_NAMES = ['price', 'balance', 'order', 'alert', 'cycle'];
// The gateway's record statuses (portfolio.md §11.3), for the Orders filter.
const ORDER_STATUSES = [
  'RECEIVED', 'NOT_SENT', 'SENT_UNKNOWN', 'RESTING', 'FILLED', 'PARTIAL', 'CANCELED', 'REJECTED', 'EXPIRED_UNKNOWN',
];
const PAGE_LIMIT = 50;
const SVG_NS = 'http://www.w3.org/2000/svg';

// --- pure helpers (also exported for the node tests) ----------------------------------------------------

/** The API path of `name` with its {placeholders} filled in, URL-encoded, plus a query string. */
function apiPath(name, pathParams, query) {
  let path = API[name];
  if (path === undefined) throw new Error('unknown endpoint ' + name);
  path = path.replace(/\{(\w+)\}/g, (_, key) => {
    const value = pathParams && pathParams[key];
    if (value === undefined || value === null || value === '') throw new Error('missing ' + key);
    return encodeURIComponent(String(value));
  });
  return path + queryString(query);
}

/** `?a=1&b=x` of the non-empty entries, or ''. */
function queryString(query) {
  const parts = [];
  for (const [key, value] of Object.entries(query || {})) {
    if (value === undefined || value === null || value === '') continue;
    parts.push(encodeURIComponent(key) + '=' + encodeURIComponent(String(value)));
  }
  return parts.length ? '?' + parts.join('&') : '';
}

/** `#/runs/123?state=active` → {page: 'runs', id: '123', params: {state: 'active'}}. */
function parseRoute(hash) {
  let text = String(hash || '').replace(/^#/, '').replace(/^\//, '');
  let params = {};
  const q = text.indexOf('?');
  if (q >= 0) {
    for (const pair of text.slice(q + 1).split('&')) {
      if (!pair) continue;
      const eq = pair.indexOf('=');
      const key = safeDecode(eq >= 0 ? pair.slice(0, eq) : pair);
      params[key] = safeDecode(eq >= 0 ? pair.slice(eq + 1) : '');
    }
    text = text.slice(0, q);
  }
  const slash = text.indexOf('/');
  const page = (slash >= 0 ? text.slice(0, slash) : text) || 'overview';
  const rest = slash >= 0 ? text.slice(slash + 1) : '';
  return { page: page, id: rest ? safeDecode(rest) : null, params: params };
}

function safeDecode(text) {
  try {
    return decodeURIComponent(text.replace(/\+/g, ' '));
  } catch (e) {
    return text;
  }
}

/** The inverse of parseRoute. */
function routeHash(page, id, params) {
  return '#/' + page + (id !== null && id !== undefined ? '/' + encodeURIComponent(String(id)) : '') +
    queryString(params);
}

function isMissing(value) {
  return value === null || value === undefined || value === '';
}

/** Numbers arrive as JSON numbers or as exact decimal text; anything else is not a number. */
function toNumber(value) {
  if (typeof value === 'number') return Number.isFinite(value) ? value : null;
  if (typeof value === 'string' && value.trim() !== '' && Number.isFinite(Number(value))) return Number(value);
  return null;
}

/** 1234567.891 → "1,234,567.89"; null → "—"; text that is not a number is shown as it is. */
function fmtNum(value, digits) {
  if (isMissing(value)) return '—';
  const n = toNumber(value);
  if (n === null) return String(value);
  const d = digits === undefined ? 2 : digits;
  const fixed = Math.abs(n).toFixed(d);
  const dot = fixed.indexOf('.');
  const whole = dot >= 0 ? fixed.slice(0, dot) : fixed;
  const frac = dot >= 0 ? fixed.slice(dot) : '';
  const grouped = whole.replace(/\B(?=(\d{3})+(?!\d))/g, ',');
  const negative = n < 0 && Number(fixed) !== 0;
  return (negative ? '-' : '') + grouped + frac;
}

/** A ratio as percent: 0.0123 → "1.23 %". */
function fmtPct(value, digits) {
  const n = toNumber(value);
  if (n === null) return isMissing(value) ? '—' : String(value);
  return fmtNum(n * 100, digits === undefined ? 2 : digits) + ' %';
}

/** Seconds as a short age: 42 → "42 s", 750 → "12.5 min", 5400 → "1.5 h", 172800 → "2.0 d". */
function fmtAge(seconds) {
  const s = toNumber(seconds);
  if (s === null) return '—';
  if (s < 60) return Math.round(s) + ' s';
  if (s < 3600) return (s / 60).toFixed(1) + ' min';
  if (s < 86400) return (s / 3600).toFixed(1) + ' h';
  return (s / 86400).toFixed(1) + ' d';
}

/** ISO-8601 (or epoch seconds) as "YYYY-MM-DD HH:MM:SS" UTC. */
function fmtTime(value) {
  if (isMissing(value)) return '—';
  const ms = toMillis(value);
  if (ms === null) return String(value);
  return new Date(ms).toISOString().slice(0, 19).replace('T', ' ');
}

/** Epoch milliseconds of an ISO-8601 text or of epoch seconds; null if neither. */
function toMillis(value) {
  if (typeof value === 'number') return Number.isFinite(value) ? value * 1000 : null;
  if (typeof value !== 'string' || value === '') return null;
  const ms = Date.parse(value);
  return Number.isFinite(ms) ? ms : null;
}

/** "long" / "short" / "flat" from a position direction. */
function fmtDirection(value) {
  const n = toNumber(value);
  if (n === null) return '—';
  return n > 0 ? 'long' : n < 0 ? 'short' : 'flat';
}

/** The §9 run state of a runs row: ended, flagged or active (heightened shows as the height). */
function runState(row) {
  if (!isMissing(row.end_time)) return 'ended';
  if (row.exit_run) return 'flagged';
  return 'active';
}

/** Any value as short display text: scalars as they are, objects as compact JSON. */
function fmtValue(value) {
  if (isMissing(value)) return '—';
  if (typeof value === 'boolean') return value ? 'yes' : 'no';
  if (typeof value === 'object') return JSON.stringify(value);
  return String(value);
}

/** Points [x, y] scaled into a w×h box (y grows downwards); a flat series sits in the middle. */
function scalePoints(xs, ys, w, h) {
  const n = Math.min(xs.length, ys.length);
  if (n === 0) return [];
  const xMin = Math.min.apply(null, xs), xMax = Math.max.apply(null, xs);
  const yMin = Math.min.apply(null, ys), yMax = Math.max.apply(null, ys);
  const out = [];
  for (let i = 0; i < n; i++) {
    const x = xMax === xMin ? w / 2 : ((xs[i] - xMin) / (xMax - xMin)) * w;
    const y = yMax === yMin ? h / 2 : h - ((ys[i] - yMin) / (yMax - yMin)) * h;
    out.push([round2(x), round2(y)]);
  }
  return out;
}

function round2(v) {
  return Math.round(v * 100) / 100;
}

/** SVG path data through the points: "M0,10L10,0". */
function linePath(points) {
  return points.map((p, i) => (i === 0 ? 'M' : 'L') + p[0] + ',' + p[1]).join('');
}

/** The running maximum of a series (the peak each drawdown is measured from). */
function runningMax(values) {
  const out = [];
  let peak = -Infinity;
  for (const v of values) {
    peak = Math.max(peak, v);
    out.push(peak);
  }
  return out;
}

// --- DOM helpers ----------------------------------------------------------------------------------------

/** An element; string and number children become text nodes, null/false children are skipped. */
function h(tag, attrs) {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  for (let i = 2; i < arguments.length; i++) append(el, arguments[i]);
  return el;
}

function svg(tag, attrs) {
  const el = document.createElementNS(SVG_NS, tag);
  setAttrs(el, attrs);
  for (let i = 2; i < arguments.length; i++) append(el, arguments[i]);
  return el;
}

function setAttrs(el, attrs) {
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === 'onclick' || key === 'onsubmit' || key === 'onchange') {
      el.addEventListener(key.slice(2), value);
    } else {
      el.setAttribute(key, String(value));
    }
  }
}

function append(el, child) {
  if (child === null || child === undefined || child === false) return;
  if (Array.isArray(child)) {
    child.forEach((c) => append(el, c));
  } else if (typeof child === 'object' && child.nodeType) {
    el.appendChild(child);
  } else {
    el.appendChild(document.createTextNode(String(child)));
  }
}

/** A link inside the app. */
function link(page, id, text, params) {
  return h('a', { href: routeHash(page, id, params) }, text);
}

function section(title) {
  const children = Array.prototype.slice.call(arguments, 1);
  return h('section', { class: 'panel' }, h('h2', null, title), children);
}

function note(text, kind) {
  return h('p', { class: 'note' + (kind ? ' ' + kind : '') }, text);
}

/** A table of rows; each column is [heading, row → cell content, optional class]. */
function table(columns, rows, empty) {
  if (!rows || rows.length === 0) return note(empty || 'Nothing yet.');
  return h(
    'table',
    null,
    h('thead', null, h('tr', null, columns.map((c) => h('th', { class: c[2] }, c[0])))),
    h('tbody', null, rows.map((r) => h('tr', null, columns.map((c) => h('td', { class: c[2] }, c[1](r))))))
  );
}

/** Label/value pairs; `pairs` is a list of [label, content]. */
function kv(pairs) {
  return h('dl', { class: 'kv' }, pairs.map((p) => [h('dt', null, p[0]), h('dd', null, p[1])]));
}

/** Every field of an object as label/value pairs (for shapes the page does not know in detail). */
function kvAll(obj, skip) {
  const omit = new Set(skip || []);
  const when = /(_at|_time|^ts)$/;
  return kv(Object.keys(obj || {}).filter((k) => !omit.has(k))
    .map((k) => [k, when.test(k) ? fmtTime(obj[k]) : fmtValue(obj[k])]));
}

/** A panel document that says it could not be read (`{available: false, error}`), or null. */
function unavailable(doc) {
  if (doc && typeof doc === 'object' && doc.available === false) {
    return note('Not available: ' + fmtValue(doc.error), 'warn');
  }
  return null;
}

function num(cls) {
  return cls ? 'num ' + cls : 'num';
}

function signClass(value) {
  const n = toNumber(value);
  return n === null || n === 0 ? '' : n > 0 ? 'pos' : 'neg';
}

/** "Next page" link for a list answered with `next_cursor`; the cursor lives in the address. */
function pager(route, cursorKey, nextCursor) {
  const params = Object.assign({}, route.params);
  const hasCursor = !isMissing(params[cursorKey]);
  const first = Object.assign({}, params);
  delete first[cursorKey];
  return h(
    'div',
    { class: 'pager' },
    hasCursor ? link(route.page, route.id, '« First page', first) : null,
    isMissing(nextCursor)
      ? h('span', { class: 'muted' }, 'No more rows.')
      : link(route.page, route.id, 'Next »', Object.assign(params, { [cursorKey]: nextCursor }))
  );
}

/** A filter form whose submit writes the fields into the address (and so drops any cursor). */
function filterForm(route, fields) {
  const inputs = {};
  const form = h(
    'form',
    {
      class: 'filters',
      onsubmit: (ev) => {
        ev.preventDefault();
        const params = {};
        for (const [name, input] of Object.entries(inputs)) params[name] = input.value.trim();
        location.hash = routeHash(route.page, null, params);
      },
    },
    fields.map((f) => {
      let input;
      if (f.options) {
        input = h('select', { name: f.name }, f.options.map((o) => h('option', { value: o }, o || 'any')));
      } else {
        input = h('input', { name: f.name, type: 'text', placeholder: f.placeholder || '', size: f.size || 14 });
      }
      input.value = route.params[f.name] || '';
      inputs[f.name] = input;
      return h('label', null, f.label + ' ', input);
    }),
    h('button', { type: 'submit' }, 'Apply')
  );
  return form;
}

// --- charts (inline SVG) --------------------------------------------------------------------------------

/** A small line of the values, with the last value as text beside it. */
function sparkline(values, w, hgt) {
  const width = w || 160, height = hgt || 32;
  const pts = scalePoints(values.map((_, i) => i), values, width, height);
  return svg(
    'svg',
    { class: 'spark', viewBox: '0 0 ' + width + ' ' + height, width: width, height: height, role: 'img' },
    svg('title', null, values.length + ' points'),
    pts.length > 1 ? svg('path', { d: linePath(pts), class: 'line' }) : null
  );
}

/** Bars of a histogram {edges, counts}; each bar's tooltip names its range and count. */
function histogramChart(hist) {
  const counts = (hist && hist.counts) || [];
  const edges = (hist && hist.edges) || [];
  if (counts.length === 0) return note('No live_pnl values yet.');
  const width = 600, height = 160, pad = 18;
  const max = Math.max.apply(null, counts.concat([1]));
  const barW = width / counts.length;
  const bars = counts.map((c, i) => {
    const bh = (c / max) * (height - pad);
    const lo = edges[i], hi = edges[i + 1];
    return svg(
      'rect',
      {
        x: round2(i * barW + 1), y: round2(height - pad - bh), width: round2(Math.max(barW - 2, 1)),
        height: round2(bh), class: toNumber(hi) !== null && toNumber(hi) <= 0 ? 'bar neg' : 'bar',
      },
      svg('title', null, fmtNum(lo, 2) + ' … ' + fmtNum(hi, 2) + ': ' + c + ' runs')
    );
  });
  return svg(
    'svg',
    { class: 'chart', viewBox: '0 0 ' + width + ' ' + height, role: 'img' },
    bars,
    svg('text', { x: 0, y: height - 4, class: 'axis' }, fmtNum(edges[0], 2)),
    svg('text', { x: width, y: height - 4, class: 'axis end' }, fmtNum(edges[edges.length - 1], 2))
  );
}

/** Long / short / flat counts as one stacked bar. */
function directionBar(row) {
  const total = (row.long || 0) + (row.short || 0) + (row.flat || 0);
  const width = 200, height = 14;
  if (total === 0) return h('span', { class: 'muted' }, 'no active runs');
  let x = 0;
  const parts = [['long', row.long || 0], ['short', row.short || 0], ['flat', row.flat || 0]].map((p) => {
    const w = (p[1] / total) * width;
    const rect = svg('rect', { x: round2(x), y: 0, width: round2(w), height: height, class: 'dir ' + p[0] },
      svg('title', null, p[0] + ': ' + p[1]));
    x += w;
    return rect;
  });
  return svg('svg', { class: 'dirbar', viewBox: '0 0 ' + width + ' ' + height, width: width, height: height }, parts);
}

/** Account value over time, the drawdown from the running peak shaded, epochs as vertical markers. */
function equityChart(points, epochs) {
  const rows = (points || [])
    .map((p) => [toMillis(p[0]), toNumber(p[1])])
    .filter((p) => p[0] !== null && p[1] !== null);
  if (rows.length === 0) return note('No usable account snapshots in this range.');
  const width = 900, height = 260, padL = 70, padB = 20, padT = 14;
  const plotW = width - padL - 10, plotH = height - padB - padT;
  const xs = rows.map((r) => r[0]), ys = rows.map((r) => r[1]);
  const peaks = runningMax(ys);
  const epochRows = (epochs || []).map((e) => [toMillis(e.ts), e]).filter((e) => e[0] !== null);
  const xAll = xs.concat(epochRows.map((e) => e[0]).filter((t) => t >= xs[0] && t <= xs[xs.length - 1]));
  const xMin = Math.min.apply(null, xAll), xMax = Math.max.apply(null, xAll);
  const yMin = Math.min.apply(null, ys), yMax = Math.max.apply(null, peaks);
  const sx = (t) => round2(padL + (xMax === xMin ? plotW / 2 : ((t - xMin) / (xMax - xMin)) * plotW));
  const sy = (v) => round2(padT + (yMax === yMin ? plotH / 2 : plotH - ((v - yMin) / (yMax - yMin)) * plotH));
  const line = rows.map((r) => [sx(r[0]), sy(r[1])]);
  const peakLine = rows.map((r, i) => [sx(r[0]), sy(peaks[i])]);
  const shade = linePath(peakLine) + line.slice().reverse().map((p) => 'L' + p[0] + ',' + p[1]).join('') + 'Z';
  const markers = epochRows
    .filter((e) => e[0] >= xMin && e[0] <= xMax)
    .map((e) => {
      const x = sx(e[0]);
      const label = e[1].height === null || e[1].height === undefined ? e[1].kind : 'h' + e[1].height;
      return svg('g', { class: 'epoch ' + (e[1].kind || '') },
        svg('title', null, fmtValue(e[1].kind) + ' ' + fmtTime(e[1].ts) + ' height ' + fmtValue(e[1].height)),
        svg('line', { x1: x, x2: x, y1: padT, y2: padT + plotH }),
        svg('text', { x: x + 3, y: padT + 10, class: 'axis' }, label));
    });
  return svg(
    'svg',
    { class: 'chart', viewBox: '0 0 ' + width + ' ' + height, role: 'img' },
    svg('path', { d: shade, class: 'drawdown' }),
    svg('path', { d: linePath(line), class: 'line' }),
    markers,
    svg('text', { x: padL - 6, y: padT + 4, class: 'axis end' }, fmtNum(yMax, 2)),
    svg('text', { x: padL - 6, y: padT + plotH, class: 'axis end' }, fmtNum(yMin, 2)),
    svg('text', { x: padL, y: height - 4, class: 'axis' }, fmtTime(xMin / 1000)),
    svg('text', { x: width - 10, y: height - 4, class: 'axis end' }, fmtTime(xMax / 1000))
  );
}

// --- data -----------------------------------------------------------------------------------------------

class AuthError extends Error {}

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/** GET one endpoint with the page's own credentials (the /login session cookie). */
async function getJSON(name, pathParams, query) {
  const response = await fetch(apiPath(name, pathParams, query), {
    credentials: 'same-origin',
    headers: { Accept: 'application/json' },
  });
  if (response.status === 401) throw new AuthError('not logged in');
  let body = null;
  try {
    body = await response.json();
  } catch (e) {
    body = null;
  }
  if (!response.ok) {
    const message = body && (body.message || body.detail) ? body.message || body.detail : response.statusText;
    throw new ApiError(response.status, fmtValue(message));
  }
  return body;
}

/** Like getJSON, but a failure becomes {available: false, error} so one panel never blanks a page. */
async function tryJSON(name, pathParams, query) {
  try {
    return await getJSON(name, pathParams, query);
  } catch (e) {
    if (e instanceof AuthError) throw e;
    return { available: false, error: e.message };
  }
}

// --- pages ----------------------------------------------------------------------------------------------

async function renderOverview() {
  const [doc, equity] = await Promise.all([getJSON('overview'), tryJSON('equity')]);
  updateBanner(doc.market);
  const account = doc.account || {};
  const value = toNumber(account.value);
  const marginCross = toNumber(account.margin_cross);
  const points = Array.isArray(equity.points) ? equity.points.map((p) => toNumber(p[1])).filter((v) => v !== null) : [];
  const tp = doc.take_profit || {};
  const cycle = doc.last_cycle || {};
  const alerts = Array.isArray(doc.alerts) ? doc.alerts : [];
  const beats = Array.isArray(doc.heartbeats) ? doc.heartbeats : [];
  return [
    section(
      'Account',
      unavailable(account) || kv([
        ['account value', h('span', { class: 'big' }, fmtNum(account.value, 2) + ' USD')],
        ['cross margin used', fmtNum(account.margin_cross, 2)],
        ['total margin used', fmtNum(account.margin_total, 2)],
        ['margin ratio', value !== null && marginCross !== null && value !== 0 ? fmtPct(marginCross / value) : '—'],
        ['snapshot at', fmtTime(account.snapshot_at)],
        ['newest unusable snapshot', account.newest_unusable_at ? fmtTime(account.newest_unusable_at) : null],
      ].filter((p) => p[1] !== null)),
      points.length > 1 ? h('div', null, sparkline(points, 320, 48), h('span', { class: 'muted' }, ' account value, ' + points.length + ' points')) : unavailable(equity)
    ),
    section(
      'Take-profit',
      unavailable(tp) || kv([
        ['enabled', fmtValue(tp.enabled)],
        ['baseline', fmtNum(tp.baseline, 2)],
        ['gain', h('span', { class: signClass(tp.gain) }, fmtPct(tp.gain))],
        ['take-profit threshold', fmtPct(tp.threshold)],
        ['drawdown threshold', fmtPct(tp.drawdown_threshold)],
        ['cooldown until', fmtTime(tp.cooldown_until)],
      ])
    ),
    section(
      'Last cycle',
      unavailable(cycle) || (isMissing(cycle.cycle_id) ? note('No cycle has finished yet.') : kv([
        ['cycle', link('cycles', cycle.cycle_id, cycle.cycle_id)],
        ['finished at', fmtTime(cycle.finished_at)],
        ['outcome', fmtValue(cycle.outcome)],
        ['orders sent', fmtValue(cycle.orders_sent)],
        ['holds', fmtValue(cycle.holds)],
      ]))
    ),
    section(
      'Active alerts (last 24 h)',
      Array.isArray(doc.alerts) ? alertsTable(alerts) : unavailable(doc.alerts) || note('Not reported by this process.')
    ),
    section('Process heartbeats', heartbeatsTable(beats)),
    embeddedStatus(doc),
  ];
}

/** The extra counters `3t run` reports on its overview (runs by state, tasks), when present. */
function embeddedStatus(doc) {
  const pairs = [];
  if (doc.runs && doc.runs.available !== false && doc.runs.by_state) pairs.push(['runs by state', fmtValue(doc.runs.by_state)]);
  for (const key of ['sim_time', 'ticks', 'shard_steps', 'runs_created', 'cycles', 'uptime_s', 'last_error']) {
    if (key in doc) pairs.push([key, key === 'sim_time' ? fmtTime(doc[key]) : fmtValue(doc[key])]);
  }
  return pairs.length ? section('Engine', kv(pairs)) : null;
}

function alertsTable(rows) {
  return table(
    [
      ['time', (a) => fmtTime(a.ts)],
      ['severity', (a) => h('span', { class: 'sev ' + fmtValue(a.severity) }, fmtValue(a.severity))],
      ['kind', (a) => fmtValue(a.kind)],
      ['symbol', (a) => fmtValue(a.symbol)],
      ['cycle', (a) => (isMissing(a.cycle_id) ? '—' : link('cycles', a.cycle_id, a.cycle_id))],
      ['message', (a) => fmtValue(a.message)],
    ],
    rows,
    'No warnings or critical entries in the last 24 h.'
  );
}

function heartbeatsTable(rows) {
  return table(
    [
      ['component', (b) => fmtValue(b.component)],
      ['instance', (b) => fmtValue(b.instance)],
      ['age', (b) => (b.error ? h('span', { class: 'neg' }, b.error) : fmtAge(b.age_s)), 'num'],
      ['version', (b) => fmtValue(b.version)],
      ['detail', (b) => h('code', null, fmtValue(b.detail))],
    ],
    rows,
    'No heartbeats (this process reads none, or no process is alive).'
  );
}

async function renderPopulation(route) {
  const doc = await getJSON('population', null, { symbol: route.params.symbol });
  return [
    filterForm(route, [{ name: 'symbol', label: 'symbol', placeholder: 'BTC/USDC:USDC', size: 18 }]),
    section(
      'Active runs per symbol',
      table(
        [
          ['symbol', (r) => link('runs', null, r.symbol, { symbol: r.symbol, state: 'active' })],
          ['active', (r) => fmtValue(r.active), 'num'],
          ['long / short / flat', (r) => [directionBar(r), ' ' + r.long + ' / ' + r.short + ' / ' + r.flat]],
          ['open PnL', (r) => h('span', { class: signClass(r.open_pnl) }, fmtNum(r.open_pnl, 2)), 'num'],
          ['qualifying', (r) => fmtValue(r.qualifying), 'num'],
          ['Σdir', (r) => fmtValue(r.sum_direction), 'num'],
        ],
        doc.symbols,
        'No active runs.'
      )
    ),
    section('live_pnl of the active runs', histogramChart(doc.pnl_histogram)),
  ];
}

async function renderRuns(route) {
  if (route.id !== null) return renderRun(route.id);
  const p = route.params;
  const doc = await getJSON('runs', null, {
    symbol: p.symbol, state: p.state, height: p.height, limit: PAGE_LIMIT, cursor: p.cursor,
  });
  const now = Date.now();
  return [
    filterForm(route, [
      { name: 'symbol', label: 'symbol', size: 18 },
      { name: 'state', label: 'state', options: ['', 'active', 'ended', 'flagged', 'heightened'] },
      { name: 'height', label: 'height', size: 5 },
    ]),
    section(
      'Runs',
      table(
        [
          ['id', (r) => link('runs', r.id, r.id), 'num'],
          ['symbol', (r) => fmtValue(r.symbol)],
          ['state', (r) => runState(r)],
          ['height', (r) => fmtValue(r.height), 'num'],
          ['live PnL', (r) => h('span', { class: signClass(r.live_pnl) }, fmtNum(r.live_pnl, 4)), 'num'],
          ['direction', (r) => fmtDirection(r.position_direction)],
          ['age', (r) => runAge(r, now), 'num'],
          ['end reason', (r) => fmtValue(r.end_reason)],
        ],
        doc.runs,
        'No runs match.'
      ),
      pager(route, 'cursor', doc.next_cursor)
    ),
  ];
}

function runAge(row, now) {
  const start = toMillis(row.start_time);
  if (start === null) return '—';
  const end = toMillis(row.end_time);
  return fmtAge(((end === null ? now : end) - start) / 1000);
}

async function renderRun(id) {
  const r = await getJSON('run', { run_id: id });
  const params = r.ann_params && typeof r.ann_params === 'object' ? r.ann_params : {};
  const summary = r.run_state || {};
  return [
    h('p', null, link('runs', null, '« all runs')),
    section(
      'Run ' + r.id,
      kv([
        ['symbol', fmtValue(r.symbol)],
        ['state', runState(r)],
        ['shard', fmtValue(r.shard)],
        ['started', fmtTime(r.start_time)],
        ['ended', fmtTime(r.end_time)],
        ['end reason', fmtValue(r.end_reason)],
        ['age', runAge(r, Date.now())],
        ['direction', fmtDirection(r.position_direction)],
        ['live PnL', fmtNum(r.live_pnl, 4)],
        ['start / end balance', fmtNum(r.start_balance, 4) + ' / ' + fmtNum(r.end_balance, 4)],
        ['height', r.height === null ? '—' : link('epochs', null, String(r.height))],
        ['flagged to exit', fmtValue(r.exit_run)],
        ['iterations', fmtValue(r.iteration_count)],
        ['max duration', fmtValue(r.max_duration)],
        ['seed', fmtValue(r.seed)],
        ['apex', isMissing(r.apex_file) ? '—' : fmtValue(r.apex_file) + ' #' + fmtValue(r.apex_rank)],
        ['updated', fmtTime(r.update_time)],
      ])
    ),
    section('Parameters', Object.keys(params).length ? kvAll(params) : note('No parameters stored.')),
    section(
      'State summary (VOMS metrics)',
      summary.available === false ? note('No readable state stored.') : kvAll(summary, ['available'])
    ),
  ];
}

async function renderPositions() {
  const doc = await getJSON('positions');
  if (!doc.symbols || doc.symbols.length === 0) return section('Positions', note('No reconciliation cycle has run yet.'));
  return [
    h('p', null, 'From cycle ', link('cycles', doc.cycle_id, doc.cycle_id), '.'),
    doc.symbols.map((s) => {
      const d = s.desired || {}, a = s.actual || {}, dec = s.decision || {};
      return section(
        s.symbol,
        h('div', { class: 'cols' },
          h('div', null, h('h3', null, 'Desired D'), kv([
            ['status', fmtValue(d.status)],
            ['value', fmtNum(d.value, 6)],
            ['reason', fmtValue(d.reason)],
          ]), d.breakdown && typeof d.breakdown === 'object' ? kvAll(d.breakdown) : null),
          h('div', null, h('h3', null, 'Actual A (quorum)'), kv([
            ['status', fmtValue(a.status)],
            ['value', fmtNum(a.value, 6)],
            ['reason', fmtValue(a.reason)],
          ])),
          h('div', null, h('h3', null, 'Decision'), kv([
            ['row', fmtValue(dec.row)],
            ['side', fmtValue(dec.side)],
            ['size', fmtNum(dec.size, 6)],
            ['outcome', fmtValue(dec.outcome)],
            ['cap', fmtNum(s.cap, 6)],
            ['margin used', fmtNum(s.margin_used, 2)],
          ]))
        ),
        Array.isArray(a.sources) ? table(
          [
            ['source', (x) => fmtValue(x.name)],
            ['status', (x) => h('span', { class: x.status === 'ok' ? 'pos' : 'neg' }, fmtValue(x.status))],
            ['size', (x) => fmtNum(x.size, 6), 'num'],
            ['margin used', (x) => fmtNum(x.margin_used, 2), 'num'],
            ['as of', (x) => fmtTime(x.as_of)],
            ['age', (x) => fmtAge(x.age_s), 'num'],
            ['reason', (x) => fmtValue(x.reason)],
          ],
          a.sources
        ) : note('The cycle stored no per-source readings.')
      );
    }),
  ];
}

function ordersTable(rows) {
  return table(
    [
      ['created', (o) => fmtTime(o.created_at)],
      ['client order id', (o) => link('orders', o.client_order_id, o.client_order_id)],
      ['symbol', (o) => fmtValue(o.symbol)],
      ['side', (o) => fmtValue(o.side)],
      ['size', (o) => fmtNum(o.size, 6), 'num'],
      ['filled', (o) => fmtNum(o.filled_size, 6), 'num'],
      ['avg price', (o) => fmtNum(o.avg_fill_price, 4), 'num'],
      ['fees', (o) => fmtNum(o.fees_usd, 4), 'num'],
      ['status', (o) => h('span', { class: 'status ' + fmtValue(o.status) }, fmtValue(o.status))],
      ['cycle', (o) => (isMissing(o.cycle_id) ? '—' : link('cycles', o.cycle_id, o.cycle_id))],
      ['error', (o) => fmtValue(o.error_message || o.error_code)],
    ],
    rows,
    'No orders match.'
  );
}

function fillsTable(rows) {
  return table(
    [
      ['time', (f) => fmtTime(f.exchange_time)],
      ['symbol', (f) => fmtValue(f.symbol)],
      ['side', (f) => fmtValue(f.side)],
      ['price', (f) => fmtNum(f.price, 4), 'num'],
      ['size', (f) => fmtNum(f.size, 6), 'num'],
      ['fee', (f) => fmtNum(f.fee, 6) + ' ' + fmtValue(f.fee_token), 'num'],
      ['liquidity', (f) => fmtValue(f.liquidity)],
      ['closed PnL', (f) => h('span', { class: signClass(f.closed_pnl) }, fmtNum(f.closed_pnl, 4)), 'num'],
      ['order', (f) => (isMissing(f.client_order_id) ? fmtValue(f.exchange_order_id) : link('orders', f.client_order_id, f.client_order_id))],
    ],
    rows,
    'No fills.'
  );
}

/** Fees per token of a list of fills: {USDC: 1.23}. */
function feeTotals(fills) {
  const out = {};
  for (const f of fills || []) {
    const fee = toNumber(f.fee);
    if (fee === null) continue;
    const token = isMissing(f.fee_token) ? '?' : String(f.fee_token);
    out[token] = (out[token] || 0) + fee;
  }
  return out;
}

async function renderOrders(route) {
  if (route.id !== null) return renderOrder(route.id);
  const p = route.params;
  const [orders, fills] = await Promise.all([
    getJSON('orders', null, { status: p.status, symbol: p.symbol, cycle_id: p.cycle_id, limit: PAGE_LIMIT, cursor: p.cursor }),
    tryJSON('fills', null, { symbol: p.symbol, limit: PAGE_LIMIT, cursor: p.fills_cursor }),
  ]);
  const fillRows = Array.isArray(fills.fills) ? fills.fills : null;
  const fees = feeTotals(fillRows);
  return [
    filterForm(route, [
      {
        name: 'status', label: 'status',
        options: [''].concat(ORDER_STATUSES),
      },
      { name: 'symbol', label: 'symbol', size: 18 },
      { name: 'cycle_id', label: 'cycle', size: 22 },
    ]),
    section('Gateway order records', ordersTable(orders.orders), pager(route, 'cursor', orders.next_cursor)),
    section(
      'Fills',
      fillRows === null ? unavailable(fills) : [
        fillsTable(fillRows),
        Object.keys(fees).length ? h('p', null, 'Fees on this page: ' + Object.entries(fees).map((e) => fmtNum(e[1], 6) + ' ' + e[0]).join(', ')) : null,
        pager(route, 'fills_cursor', fills.next_cursor),
      ]
    ),
  ];
}

async function renderOrder(cloid) {
  const o = await getJSON('order', { client_order_id: cloid });
  const fees = feeTotals(o.fills);
  return [
    h('p', null, link('orders', null, '« all orders')),
    section('Order ' + o.client_order_id, kvAll(o, ['audit', 'fills'])),
    section(
      'Fills',
      fillsTable(o.fills),
      Object.keys(fees).length ? h('p', null, 'Fees: ' + Object.entries(fees).map((e) => fmtNum(e[1], 6) + ' ' + e[0]).join(', ')) : null
    ),
    section('Audit trail', auditTable(o.audit)),
  ];
}

function auditTable(rows) {
  return table(
    [
      ['time', (a) => fmtTime(a.ts)],
      ['kind', (a) => fmtValue(a.kind)],
      ['actor', (a) => fmtValue(a.actor)],
      ['severity', (a) => h('span', { class: 'sev ' + fmtValue(a.severity) }, fmtValue(a.severity))],
      ['symbol', (a) => fmtValue(a.symbol)],
      ['order', (a) => (isMissing(a.client_order_id) ? '—' : link('orders', a.client_order_id, a.client_order_id))],
      ['message', (a) => fmtValue(a.message)],
    ],
    rows,
    'No audit rows.'
  );
}

async function renderEquity(route) {
  const p = route.params;
  const doc = await getJSON('equity', null, { from: p.from, to: p.to, step: p.step });
  const values = (doc.points || []).map((x) => toNumber(x[1])).filter((v) => v !== null);
  let maxDd = 0;
  const peaks = runningMax(values);
  values.forEach((v, i) => {
    if (peaks[i] > 0) maxDd = Math.min(maxDd, v / peaks[i] - 1);
  });
  return [
    filterForm(route, [
      { name: 'from', label: 'from', placeholder: '2024-01-31T00:00:00Z', size: 22 },
      { name: 'to', label: 'to', placeholder: 'ISO-8601 or epoch s', size: 22 },
      { name: 'step', label: 'step (s)', placeholder: 'auto', size: 6 },
    ]),
    section(
      'Account value',
      equityChart(doc.points, doc.epochs),
      kv([
        ['points', String(values.length)],
        ['first / last', values.length ? fmtNum(values[0], 2) + ' / ' + fmtNum(values[values.length - 1], 2) : '—'],
        ['max drawdown', fmtPct(maxDd)],
        ['epochs in range', String((doc.epochs || []).length)],
      ]),
      h('p', { class: 'muted' }, 'Shaded: drawdown from the running peak. Vertical lines: epochs (h = height).')
    ),
  ];
}

async function renderEpochs(route) {
  const doc = await getJSON('epochs', null, { limit: PAGE_LIMIT, cursor: route.params.cursor });
  return section(
    'Epochs',
    table(
      [
        ['id', (e) => fmtValue(e.id), 'num'],
        ['kind', (e) => fmtValue(e.kind)],
        ['height', (e) => (e.height === null ? '—' : link('runs', null, 'h' + e.height, { height: e.height })), 'num'],
        ['triggered', (e) => fmtTime(e.triggered_at)],
        ['runs flagged', (e) => fmtValue(e.runs_flagged), 'num'],
        ['gain', (e) => h('span', { class: signClass(e.gain) }, fmtPct(e.gain)), 'num'],
        ['baseline before', (e) => fmtNum(e.baseline_before, 2), 'num'],
        ['baseline after (value)', (e) => fmtNum(e.value, 2), 'num'],
        ['PnL per symbol', (e) => pnlList(e.pnl_by_symbol)],
      ],
      doc.epochs,
      'No epochs yet.'
    ),
    pager(route, 'cursor', doc.next_cursor)
  );
}

function pnlList(bySymbol) {
  const entries = Object.entries(bySymbol || {});
  if (entries.length === 0) return '—';
  return h('ul', { class: 'plain' }, entries.map((e) => h('li', null, e[0] + ': ', h('span', { class: signClass(e[1]) }, fmtNum(e[1], 4)))));
}

async function renderCycles(route) {
  if (route.id !== null) return renderCycle(route.id);
  const doc = await getJSON('cycles', null, { limit: PAGE_LIMIT, cursor: route.params.cursor });
  return section(
    'Reconciliation cycles',
    table(
      [
        ['cycle', (c) => link('cycles', c.cycle_id, c.cycle_id)],
        ['trigger', (c) => fmtValue(c.trigger)],
        ['scheduled', (c) => fmtTime(c.scheduled_at)],
        ['finished', (c) => fmtTime(c.finished_at)],
        ['outcome', (c) => fmtValue(c.outcome)],
        ['symbols', (c) => fmtValue(c.symbols)],
        ['orders', (c) => fmtValue(c.orders_sent), 'num'],
        ['holds', (c) => fmtValue(c.holds), 'num'],
        ['error', (c) => fmtValue(c.error)],
      ],
      doc.cycles,
      'No cycles yet.'
    ),
    pager(route, 'cursor', doc.next_cursor)
  );
}

async function renderCycle(id) {
  const c = await getJSON('cycle', { cycle_id: id });
  const log = Array.isArray(c.log) ? c.log : [];
  const preferred = ['symbol', 'desired_status', 'desired', 'desired_reason', 'quorum_status', 'actual', 'cap',
    'margin_used', 'decision_row', 'side', 'size', 'outcome'];
  const present = new Set();
  log.forEach((r) => Object.keys(r).forEach((k) => present.add(k)));
  const columns = preferred.filter((k) => present.has(k))
    .concat(Array.from(present).filter((k) => !preferred.includes(k) && k !== 'cycle_id'))
    .map((k) => [k, (r) => fmtValue(r[k])]);
  return [
    h('p', null, link('cycles', null, '« all cycles')),
    section('Cycle ' + c.cycle_id, kvAll(c, ['log', 'audit']),
      h('p', null, link('orders', null, 'orders of this cycle', { cycle_id: c.cycle_id }))),
    section('Per-symbol decisions', table(columns, log, 'No decisions logged.')),
    section('Audit rows', auditTable(c.audit)),
  ];
}

async function renderSystem() {
  const doc = await getJSON('health');
  const known = ['version', 'mode', 'config_sha256', 'market', 'database', 'cache', 'heartbeats'];
  const beats = Array.isArray(doc.heartbeats) ? doc.heartbeats : [];
  const status = (part) => {
    if (!part || typeof part !== 'object') return '—';
    if (part.available === false) return h('span', { class: 'neg' }, 'unavailable: ' + fmtValue(part.error));
    return h('span', { class: part.status === 'ok' ? 'pos' : 'neg' }, fmtValue(part.status));
  };
  const market = doc.market || {};
  return [
    section(
      'Process',
      kv([
        ['version', fmtValue(doc.version)],
        ['mode', fmtValue(doc.mode)],
        ['config hash', h('code', null, fmtValue(doc.config_sha256))],
        ['market source', fmtValue(market.source) + ' (' + fmtValue(market.reason) + ')'],
        ['exchange', fmtValue(market.exchange)],
        ['database', status(doc.database)],
        ['cache', status(doc.cache)],
      ])
    ),
    section('Heartbeats', heartbeatsTable(beats), h('p', { class: 'muted' },
      'Queue depth, price and bar ages, observer document ages and circuit breakers are reported in each ' +
      'process\'s heartbeat detail.')),
    Object.keys(doc).some((k) => !known.includes(k)) ? section('Other', kvAll(doc, known)) : null,
  ];
}

const PAGES = {
  overview: { title: 'Overview', render: renderOverview },
  population: { title: 'Population', render: renderPopulation },
  runs: { title: 'Runs', render: renderRuns },
  positions: { title: 'Positions', render: renderPositions },
  orders: { title: 'Orders', render: renderOrders },
  equity: { title: 'Equity', render: renderEquity },
  epochs: { title: 'Epochs', render: renderEpochs },
  cycles: { title: 'Cycles', render: renderCycles },
  system: { title: 'System', render: renderSystem },
};

// --- the shell: banner, navigation, loading, live updates -----------------------------------------------

/** The banner's text and whether it warns, by the same rule as the server's banner. */
function bannerInfo(market) {
  const m = market || {};
  const source = isMissing(m.source) ? 'unknown' : String(m.source);
  const reason = isMissing(m.reason) ? 'unknown' : String(m.reason);
  const exchange = isMissing(m.exchange) ? 'unknown' : String(m.exchange);
  return {
    text: 'MARKET DATA: ' + source.toUpperCase() + ' (' + reason + ') · exchange ' + exchange,
    simulated: source === 'synthetic' || source === 'replay' || source === 'unknown',
  };
}

function updateBanner(market) {
  const el = document.getElementById('banner');
  if (!el || !market) return;
  const info = bannerInfo(market);
  el.textContent = info.text;
  el.style.background = info.simulated ? '#b00020' : '#1b5e20';
}

const state = { loading: 0, live: 'starting', pollTimer: null, debounceTimer: null, firstEventAt: null };

function refreshSeconds() {
  const raw = Number(document.body.getAttribute('data-refresh-s'));
  return Number.isFinite(raw) && raw > 0 ? raw : 5;
}

function renderNav(current) {
  const nav = document.getElementById('nav');
  nav.replaceChildren(
    ...Object.entries(PAGES).map((e) => h('a', { href: routeHash(e[0]), class: e[0] === current ? 'active' : null }, e[1].title))
  );
}

function setStatus(text) {
  const el = document.getElementById('live');
  if (el) el.textContent = text;
}

function loginPrompt() {
  return section('Not logged in',
    h('p', null, 'This dashboard needs a token. ', h('a', { href: '/login' }, 'Log in'), ' and come back.'));
}

/** Build the current page from its address; a newer load wins over an older one still in flight. */
async function load() {
  const route = parseRoute(location.hash);
  const page = PAGES[route.page];
  renderNav(route.page);
  const view = document.getElementById('view');
  const token = ++state.loading;
  if (!page) {
    view.replaceChildren(section('Unknown page', h('p', null, 'No page "' + route.page + '". '), link('overview', null, 'Overview')));
    return;
  }
  document.title = '3T · ' + page.title;
  let content;
  try {
    content = await page.render(route);
  } catch (e) {
    if (e instanceof AuthError) content = loginPrompt();
    else content = section('Could not load ' + page.title, note((e.status ? e.status + ': ' : '') + e.message, 'warn'));
  }
  if (token !== state.loading) return;
  view.replaceChildren(h('div', null, content));
  const stamp = document.getElementById('updated');
  if (stamp) stamp.textContent = 'updated ' + new Date().toISOString().slice(11, 19) + 'Z';
}

/** A refresh unless the user is typing into a filter (a rebuild would drop what they typed). */
function refresh() {
  const active = document.activeElement;
  if (active && (active.tagName === 'INPUT' || active.tagName === 'SELECT')) return;
  load();
}

/** Events come in bursts (a price every second): refresh once things settle, but at least every refresh_s. */
function onEvent() {
  const now = Date.now();
  if (state.firstEventAt === null) state.firstEventAt = now;
  clearTimeout(state.debounceTimer);
  const waited = now - state.firstEventAt;
  const delay = Math.max(0, Math.min(1000, refreshSeconds() * 1000 - waited));
  state.debounceTimer = setTimeout(() => {
    state.firstEventAt = null;
    refresh();
  }, delay);
}

function startPolling(reason) {
  if (state.pollTimer !== null) return;
  const seconds = refreshSeconds();
  setStatus('polling every ' + seconds + ' s (' + reason + ')');
  state.pollTimer = setInterval(refresh, seconds * 1000);
}

function startLive() {
  if (typeof EventSource === 'undefined') {
    startPolling('no EventSource');
    return;
  }
  const source = new EventSource(API.events);
  source.addEventListener('open', () => setStatus('live'));
  EVENT_NAMES.forEach((name) => source.addEventListener(name, onEvent));
  // A transport error and the server's own `event: error` (cache failed) both end live updates.
  source.addEventListener('error', () => {
    source.close();
    startPolling('no live stream');
  });
}

function boot() {
  window.addEventListener('hashchange', load);
  if (!location.hash) history.replaceState(null, '', routeHash('overview'));
  load();
  startLive();
}

if (typeof window !== 'undefined' && typeof document !== 'undefined') {
  boot();
} else if (typeof module !== 'undefined') {
  module.exports = {
    API, PAGES, EVENT_NAMES, ORDER_STATUSES, apiPath, queryString, parseRoute, routeHash, toNumber, fmtNum, fmtPct, fmtAge,
    fmtTime, fmtDirection, fmtValue, runState, scalePoints, linePath, runningMax, feeTotals, bannerInfo,
  };
}
