/* Drives the dashboard's app.js in node against a real dashboard server, for test_dashboard_ui.py.
 *
 * app.js runs in a vm context with a minimal DOM (elements, text nodes, attributes; no HTML parser at
 * all, and innerHTML throws), a fetch that forwards to the server with the session cookie as a
 * browser would, and an EventSource whose events the script fires by hand. Timers are recorded and
 * run on demand. Output: one JSON document on stdout.
 *
 * usage: node dashboard_ui_harness.js APP_JS BASE_URL COOKIE ROUTES_JSON (COOKIE may be '')
 */
'use strict';
const fs = require('fs');
const vm = require('vm');

const [appPath, base, cookie, routesJson] = process.argv.slice(2);
const routes = JSON.parse(routesJson);

class FakeText {
  constructor(text) {
    this.nodeType = 3;
    this.data = String(text);
  }
  get textContent() {
    return this.data;
  }
}

class FakeElement {
  constructor(tag, ns) {
    this.nodeType = 1;
    this.tagName = String(tag).toUpperCase();
    this.namespaceURI = ns || 'http://www.w3.org/1999/xhtml';
    this.childNodes = [];
    this.attributes = {};
    this.listeners = {};
    this.style = {};
    this.value = '';
  }
  appendChild(child) {
    if (!child || (child.nodeType !== 1 && child.nodeType !== 3)) throw new Error('appendChild of a non-node');
    this.childNodes.push(child);
    return child;
  }
  replaceChildren(...children) {
    this.childNodes = [];
    children.forEach((c) => this.appendChild(c));
  }
  setAttribute(name, value) {
    this.attributes[name] = String(value);
  }
  getAttribute(name) {
    return Object.prototype.hasOwnProperty.call(this.attributes, name) ? this.attributes[name] : null;
  }
  addEventListener(type, fn) {
    (this.listeners[type] = this.listeners[type] || []).push(fn);
  }
  get textContent() {
    return this.childNodes.map((c) => c.textContent).join('');
  }
  set textContent(value) {
    this.childNodes = [new FakeText(value)];
  }
  set innerHTML(_) {
    throw new Error('innerHTML assigned');
  }
  set outerHTML(_) {
    throw new Error('outerHTML assigned');
  }
  insertAdjacentHTML() {
    throw new Error('insertAdjacentHTML called');
  }
}

/** Every element and text below a node: tag names, attributes, text pieces. */
function snapshot(root) {
  const out = { tags: [], attributes: [], texts: [] };
  (function walk(node) {
    if (node.nodeType === 3) {
      if (node.data.trim()) out.texts.push(node.data.trim());
      return;
    }
    out.tags.push(node.tagName);
    for (const [k, v] of Object.entries(node.attributes)) out.attributes.push([node.tagName, k, v]);
    node.childNodes.forEach(walk);
  })(root);
  return out;
}

const elements = {};
for (const id of ['banner', 'nav', 'view', 'live', 'updated']) elements[id] = new FakeElement('div');
const body = new FakeElement('body');
const document = {
  body: body,
  title: '',
  activeElement: null,
  createElement: (tag) => new FakeElement(tag),
  createElementNS: (ns, tag) => new FakeElement(tag, ns),
  createTextNode: (text) => new FakeText(text),
  getElementById: (id) => elements[id] || null,
};
const location = { hash: '' };
const requests = [];
const timeouts = [];
const intervals = [];
const sources = [];

async function fakeFetch(url, options) {
  if (!options || options.credentials !== 'same-origin') throw new Error('fetch without same-origin credentials: ' + url);
  requests.push(String(url));
  const headers = Object.assign({}, options.headers || {});
  if (cookie) headers.Cookie = cookie;
  return fetch(base + url, { headers: headers });
}

class FakeEventSource {
  constructor(url) {
    this.url = url;
    this.listeners = {};
    this.closed = false;
    sources.push(this);
  }
  addEventListener(type, fn) {
    (this.listeners[type] = this.listeners[type] || []).push(fn);
  }
  close() {
    this.closed = true;
  }
  fire(type) {
    (this.listeners[type] || []).forEach((fn) => fn({ type: type, data: '{}' }));
  }
}

const context = vm.createContext({
  document: document,
  location: location,
  window: { addEventListener: () => {} },
  history: { replaceState: (_s, _t, url) => { location.hash = url; } },
  fetch: fakeFetch,
  EventSource: FakeEventSource,
  setTimeout: (fn, ms) => { timeouts.push({ fn: fn, ms: ms }); return timeouts.length; },
  clearTimeout: (id) => { if (timeouts[id - 1]) timeouts[id - 1].cleared = true; },
  setInterval: (fn, ms) => { intervals.push({ fn: fn, ms: ms }); return intervals.length; },
  clearInterval: () => {},
  console: console,
});

async function settle() {
  for (let i = 0; i < 5; i++) await new Promise((resolve) => setImmediate(resolve));
}

async function visit(hash) {
  location.hash = hash;
  const before = requests.length;
  await vm.runInContext('load()', context);
  return Object.assign(
    { hash: hash, title: document.title, requests: requests.slice(before), nav: snapshot(elements.nav).texts },
    snapshot(elements.view)
  );
}

/** The page shell as the server renders it: its refresh period goes onto the fake body. */
async function loadShell() {
  const answer = await fetch(base + '/', { headers: cookie ? { Cookie: cookie } : {} });
  const match = /data-refresh-s="([^"]*)"/.exec(await answer.text());
  if (match) body.setAttribute('data-refresh-s', match[1]);
}

async function main() {
  await loadShell();
  vm.runInContext(fs.readFileSync(appPath, 'utf8'), context, { filename: 'app.js' });
  const pages = [];
  for (const hash of routes) pages.push(await visit(hash));

  // Live updates: a burst of events refreshes once; a stream error switches to polling every refresh_s.
  const live = { sources: sources.map((s) => s.url), listens: sources.length ? Object.keys(sources[0].listeners).sort() : [] };
  const source = sources[0];
  location.hash = '#/overview';
  const pending = timeouts.length;
  source.fire('open');
  live.statusOpen = elements.live.textContent;
  source.fire('price');
  source.fire('order');
  live.timersAfterEvents = timeouts.slice(pending).map((t) => ({ ms: t.ms, cleared: !!t.cleared }));
  const before = requests.length;
  timeouts.slice(pending).filter((t) => !t.cleared).forEach((t) => t.fn());
  await settle();
  for (let i = 0; i < 50 && requests.length === before; i++) await new Promise((r) => setTimeout(r, 20));
  live.refreshRequests = requests.slice(before);
  source.fire('error');
  live.closed = source.closed;
  live.intervals = intervals.map((t) => t.ms);
  live.statusAfterError = elements.live.textContent;
  live.banner = elements.banner.textContent;
  live.bannerBackground = elements.banner.style.background || null;
  process.stdout.write(JSON.stringify({ pages: pages, live: live }));
}

main().catch((err) => {
  process.stderr.write(String(err && err.stack ? err.stack : err));
  process.exit(1);
});
