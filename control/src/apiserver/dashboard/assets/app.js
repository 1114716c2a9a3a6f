// The dashboard: a page of the API server that talks only to the API, with
// the signed-in user's own token, so RBAC decides what it shows and does.
// Lists are the API's own Tables (kubectl's columns) and follow watches;
// nothing is rendered from HTML strings (object fields are user data).

'use strict';

const TABLE = 'application/json;as=Table;v=v1;g=meta.k8s.io, application/json';
const FIELD_MANAGER = 'kedge-dashboard';
const LAST_APPLIED = 'kubectl.kubernetes.io/last-applied-configuration';
const METRICS_PERIOD_MS = 15000;

// What the dashboard shows, by plural. `scale`: has a scale subresource;
// `restart`: restarts its pods by a template annotation, as `kubectl
// rollout restart`; `owns`: the kinds of its dependents.
const KINDS = {
  deployments: { group: 'apps', title: 'Deployments', kind: 'Deployment', scale: true, restart: true, owns: ['replicasets'] },
  replicasets: { group: 'apps', title: 'ReplicaSets', kind: 'ReplicaSet', scale: true, owns: ['pods'] },
  statefulsets: { group: 'apps', title: 'StatefulSets', kind: 'StatefulSet', scale: true, restart: true, owns: ['pods'] },
  daemonsets: { group: 'apps', title: 'DaemonSets', kind: 'DaemonSet', restart: true, owns: ['pods'] },
  jobs: { group: 'batch', title: 'Jobs', kind: 'Job', owns: ['pods'] },
  cronjobs: { group: 'batch', title: 'CronJobs', kind: 'CronJob', owns: ['jobs'] },
  pods: { title: 'Pods', kind: 'Pod' },
  services: { title: 'Services', kind: 'Service' },
  ingresses: { group: 'networking.k8s.io', title: 'Ingresses', kind: 'Ingress' },
  configmaps: { title: 'ConfigMaps', kind: 'ConfigMap' },
  secrets: { title: 'Secrets', kind: 'Secret' },
  events: { title: 'Events', kind: 'Event' },
  nodes: { title: 'Nodes', kind: 'Node', cluster: true },
  namespaces: { title: 'Namespaces', kind: 'Namespace', cluster: true },
};
const NAV = [
  ['Workloads', ['deployments', 'replicasets', 'statefulsets', 'daemonsets', 'jobs', 'cronjobs', 'pods']],
  ['Network', ['services', 'ingresses']],
  ['Configuration', ['configmaps', 'secrets']],
  ['Activity', ['events']],
];

// ---------------------------------------------------------------- DOM

/** An element with attributes (`on…` are listeners) and children (text is text). */
function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else if (k === 'class') e.className = v;
    else if (k === 'value') e.value = v;
    // Through the CSSOM: the page's policy refuses style attributes.
    else if (k === 'style') e.style.cssText = v;
    else e.setAttribute(k, v === true ? '' : v);
  }
  append(e, children);
  return e;
}
function append(parent, children) {
  for (const c of [children].flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    parent.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return parent;
}
function replace(parent, ...children) {
  parent.replaceChildren();
  return append(parent, children);
}
const SVG = 'http://www.w3.org/2000/svg';
function svg(tag, attrs = {}, ...children) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  for (const c of children) e.append(c);
  return e;
}

// ---------------------------------------------------------------- session

const session = {
  get token() { return sessionStorage.getItem('kedge.token') || ''; },
  set token(t) { t ? sessionStorage.setItem('kedge.token', t) : sessionStorage.removeItem('kedge.token'); },
  get namespace() { return sessionStorage.getItem('kedge.namespace') || 'default'; },
  set namespace(n) { sessionStorage.setItem('kedge.namespace', n); },
  user: null,
};

// Everything a page starts (requests, watches, timers) stops when the next
// page replaces it.
let page = new AbortController();
function onLeave(f) { page.signal.addEventListener('abort', f); }
function every(ms, f) { const id = setInterval(f, ms); onLeave(() => clearInterval(id)); }
function sleep(ms, signal) {
  return new Promise((resolve) => {
    const id = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => { clearTimeout(id); resolve(); });
  });
}

// ---------------------------------------------------------------- API

/** An answer of the API that was not a success, with its Status. */
class ApiError extends Error {
  constructor(code, status, text) {
    super(status?.message || text || `${code}`);
    this.code = code;
    this.status = status;
    this.causes = status?.details?.causes || [];
  }
}

function headers(extra = {}) {
  const h = { Accept: 'application/json', ...extra };
  if (session.token) h.Authorization = `Bearer ${session.token}`;
  return h;
}

async function call(method, path, { body, type, accept, signal } = {}) {
  const h = headers(accept ? { Accept: accept } : {});
  if (body !== undefined) h['Content-Type'] = type || 'application/json';
  const r = await fetch(path, {
    method, headers: h, signal: signal || page.signal, credentials: 'same-origin',
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await r.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch { /* not JSON */ }
  if (r.status === 401 && path !== SELF_REVIEW) { signOut('Your session is no longer accepted; sign in again.'); }
  if (!r.ok) throw new ApiError(r.status, json, text);
  return json;
}

function path(kind, ns, name, sub) {
  const k = KINDS[kind];
  let p = k.group ? `/apis/${k.group}/${k.version || 'v1'}` : '/api/v1';
  if (!k.cluster && ns) p += `/namespaces/${encodeURIComponent(ns)}`;
  p += `/${kind}`;
  if (name) p += `/${encodeURIComponent(name)}`;
  if (sub) p += `/${sub}`;
  return p;
}

function table(kind, ns, query = '') {
  return call('GET', `${path(kind, ns)}?includeObject=Object${query}`, { accept: TABLE });
}

/**
 * Follow a watch of `url` from `rv`, calling `changed()` after events
 * (coalesced); it resumes where it stopped, and starts over (changed()
 * again) when the server has forgotten the version.
 */
function watch(url, rv, changed) {
  const signal = page.signal;
  let pending = null;
  const soon = () => { if (!pending) pending = setTimeout(() => { pending = null; if (!signal.aborted) changed(); }, 250); };
  (async () => {
    let from = rv;
    while (!signal.aborted) {
      try {
        const sep = url.includes('?') ? '&' : '?';
        const q = `${sep}watch=1&allowWatchBookmarks=true${from ? `&resourceVersion=${from}` : ''}`;
        const r = await fetch(url + q, { headers: headers(), signal });
        if (!r.ok) throw new Error(`watch answered ${r.status}`);
        const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
        let buf = '';
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buf += value;
          let i;
          while ((i = buf.indexOf('\n')) >= 0) {
            const line = buf.slice(0, i);
            buf = buf.slice(i + 1);
            if (!line.trim()) continue;
            const ev = JSON.parse(line);
            if (ev.type === 'ERROR') { from = ''; soon(); break; }
            from = ev.object?.metadata?.resourceVersion || from;
            if (ev.type !== 'BOOKMARK') soon();
          }
        }
      } catch (e) {
        if (signal.aborted) return;
      }
      await sleep(1000, signal);
    }
  })();
}

const SELF_REVIEW = '/apis/authentication.k8s.io/v1/selfsubjectreviews';
async function whoAmI() {
  const r = await call('POST', SELF_REVIEW, {
    body: { apiVersion: 'authentication.k8s.io/v1', kind: 'SelfSubjectReview' },
  });
  return r?.status?.userInfo || {};
}

// ---------------------------------------------------------------- values

const UNITS = { n: 1e-9, u: 1e-6, m: 1e-3, k: 1e3, M: 1e6, G: 1e9, T: 1e12, P: 1e15,
  Ki: 1024, Mi: 1024 ** 2, Gi: 1024 ** 3, Ti: 1024 ** 4, Pi: 1024 ** 5 };
/** A Kubernetes quantity ("250m", "1Gi", "123456n") as a number. */
function quantity(q) {
  if (q === undefined || q === null) return 0;
  const m = String(q).match(/^([0-9.]+(?:[eE][-+]?[0-9]+)?)([a-zA-Z]*)$/);
  if (!m) return 0;
  return parseFloat(m[1]) * (UNITS[m[2]] ?? 1);
}
const cores = (n) => (n < 1 ? `${Math.round(n * 1000)}m` : `${n.toFixed(2)} cores`);
function bytes(n) {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
  return `${n.toFixed(n < 10 && i ? 1 : 0)} ${units[i]}`;
}
function age(ts) {
  if (!ts) return '';
  const s = Math.max(0, (Date.now() - Date.parse(ts)) / 1000);
  if (s < 120) return `${Math.floor(s)}s`;
  if (s < 7200) return `${Math.floor(s / 60)}m`;
  if (s < 172800) return `${Math.floor(s / 3600)}h`;
  return `${Math.floor(s / 86400)}d`;
}
function badge(text, tone) { return el('span', { class: `badge ${tone || ''}` }, text); }
function errorBox(e, prefix) {
  // An invalid object's message repeats its causes: they are listed instead.
  const message = e.causes?.length && / is invalid: /.test(e.message) ? `${e.message.split(' is invalid: ')[0]} is invalid` : e.message || String(e);
  const box = el('div', { class: 'alert error', role: 'alert' }, prefix ? `${prefix}: ` : '', message);
  if (e.causes?.length) {
    append(box, el('ul', {}, e.causes.map((c) => el('li', {}, c.field ? el('code', {}, c.field) : '', c.field ? ': ' : '', c.message || c.reason))));
  }
  return box;
}
function forbidden(e) { return e instanceof ApiError && e.code === 403; }

// ---------------------------------------------------------------- metrics

// Usage seen since the page opened, per node and pod, for the charts.
const history = new Map();
function remember(key, cpu, mem) {
  const h = history.get(key) || [];
  const last = h[h.length - 1];
  if (!last || Date.now() - last.t > 5000) h.push({ t: Date.now(), cpu, mem });
  else Object.assign(last, { cpu, mem });
  while (h.length > 60) h.shift();
  history.set(key, h);
}
async function nodeMetrics() {
  const r = await call('GET', '/apis/metrics.k8s.io/v1beta1/nodes');
  const out = new Map();
  for (const m of r.items || []) {
    const cpu = quantity(m.usage?.cpu), mem = quantity(m.usage?.memory);
    out.set(m.metadata.name, { cpu, mem });
    remember(`node/${m.metadata.name}`, cpu, mem);
  }
  return out;
}
async function podMetrics(ns) {
  const r = await call('GET', `/apis/metrics.k8s.io/v1beta1/namespaces/${encodeURIComponent(ns)}/pods`);
  const out = new Map();
  for (const m of r.items || []) {
    let cpu = 0, mem = 0;
    for (const c of m.containers || []) { cpu += quantity(c.usage?.cpu); mem += quantity(c.usage?.memory); }
    out.set(m.metadata.name, { cpu, mem });
    remember(`pod/${ns}/${m.metadata.name}`, cpu, mem);
  }
  return out;
}

/** A small line chart of `series` (numbers), labelled for screen readers. */
function sparkline(series, label, format) {
  const w = 200, h = 40;
  const latest = series.length ? format(series[series.length - 1]) : 'no data yet';
  const wrap = el('div', { class: 'chart' }, el('div', { class: 'label' }, el('span', {}, label), el('span', {}, latest)));
  const max = Math.max(...series, 1e-9) * 1.15;
  const y = (v) => h - (v / max) * (h - 2) - 1;
  // One sample is a level line until the next arrives.
  const pts = series.length === 1 ? [`0,${y(series[0])}`, `${w},${y(series[0])}`]
    : series.map((v, i) => `${(i / (series.length - 1)) * w},${y(v)}`);
  const chart = svg('svg', { class: 'spark', viewBox: `0 0 ${w} ${h}`, preserveAspectRatio: 'none', role: 'img',
    'aria-label': `${label}: ${latest}, ${series.length} samples` });
  if (pts.length) {
    chart.append(svg('polygon', { class: 'area', points: `0,${h} ${pts.join(' ')} ${w},${h}` }));
    chart.append(svg('polyline', { points: pts.join(' ') }));
  }
  wrap.append(chart);
  return wrap;
}
function usageBar(used, total, format, label) {
  const pct = total ? Math.min(100, (used / total) * 100) : 0;
  return el('div', {},
    el('div', { class: `bar ${pct > 80 ? 'high' : ''}`, role: 'meter', 'aria-label': label,
      'aria-valuemin': '0', 'aria-valuemax': '100', 'aria-valuenow': pct.toFixed(0) }, el('i', { style: `width:${pct}%` })),
    el('div', { class: 'usage' }, `${label}: ${format(used)} of ${format(total)} (${pct.toFixed(0)}%)`));
}
function usageCharts(key) {
  const h = history.get(key) || [];
  return el('div', { class: 'charts' },
    sparkline(h.map((p) => p.cpu), 'CPU', cores),
    sparkline(h.map((p) => p.mem), 'Memory', bytes));
}

// ---------------------------------------------------------------- shell

function go(hash) { if (location.hash === hash) render(); else location.hash = hash; }

function signOut(message) {
  session.token = '';
  session.user = null;
  sessionStorage.setItem('kedge.message', message || '');
  go('#/login');
}

async function namespacePicker() {
  const label = el('label', { for: 'namespace' }, 'Namespace');
  try {
    const list = await call('GET', '/api/v1/namespaces');
    const names = (list.items || []).map((n) => n.metadata.name);
    if (!names.includes(session.namespace)) names.unshift(session.namespace);
    const select = el('select', { id: 'namespace', onchange: (e) => { session.namespace = e.target.value; go(`#/ns/${e.target.value}`); } },
      names.map((n) => el('option', { value: n, selected: n === session.namespace }, n)));
    return el('span', {}, label, select);
  } catch (e) {
    // Not allowed to list namespaces: the user names theirs.
    const input = el('input', { id: 'namespace', value: session.namespace, size: 14,
      onchange: (ev) => { session.namespace = ev.target.value.trim() || 'default'; go(`#/ns/${session.namespace}`); } });
    return el('span', {}, label, input);
  }
}

function nav(route) {
  const ns = session.namespace;
  const link = (href, text, current) => el('a', { href, 'aria-current': current ? 'page' : false }, text);
  return el('nav', { class: 'side', 'aria-label': 'Sections' },
    link('#/', 'Overview', route.view === 'overview'),
    el('h2', {}, 'Cluster'),
    link('#/cluster/nodes', 'Nodes', route.kind === 'nodes'),
    link('#/cluster/namespaces', 'Namespaces', route.kind === 'namespaces'),
    el('h2', {}, `Namespace ${ns}`),
    link(`#/ns/${ns}`, 'Summary', route.view === 'namespace'),
    NAV.map(([group, kinds]) => [el('h2', {}, group),
      kinds.map((k) => link(`#/ns/${ns}/${k}`, KINDS[k].title, route.kind === k && route.ns === ns))]));
}

async function frame(route) {
  const main = el('main', { id: 'main', tabindex: '-1' }, el('p', { class: 'loading' }, 'Loading…'));
  const top = el('header', { class: 'top' },
    el('a', { class: 'brand', href: '#/' }, 'kedge', el('span', {}, ' dashboard')),
    el('span', { class: 'spacer' }),
    await namespacePicker(),
    el('span', { class: 'user', title: (session.user?.groups || []).join(', ') }, session.user?.username || ''),
    el('button', { type: 'button', onclick: () => signOut('Signed out.') }, 'Sign out'));
  replace(document.getElementById('app'), top, el('div', { class: 'layout' }, nav(route), main));
  return main;
}

// ---------------------------------------------------------------- routes

function parseRoute() {
  const parts = location.hash.replace(/^#\/?/, '').split('/').filter(Boolean).map(decodeURIComponent);
  if (parts[0] === 'login') return { view: 'login' };
  if (parts[0] === 'cluster' && KINDS[parts[1]]) {
    return parts[2] ? { view: 'detail', kind: parts[1], name: parts[2] } : { view: 'list', kind: parts[1] };
  }
  if (parts[0] === 'ns' && parts[1]) {
    const ns = parts[1];
    if (!parts[2]) return { view: 'namespace', ns };
    if (KINDS[parts[2]]) {
      return parts[3] ? { view: 'detail', kind: parts[2], ns, name: parts[3] } : { view: 'list', kind: parts[2], ns };
    }
  }
  return { view: 'overview' };
}

async function render() {
  page.abort();
  page = new AbortController();
  const route = parseRoute();
  // Which page is drawn (`data-page`, once its first data is in).
  document.documentElement.dataset.page = '';
  const drawn = page.signal;
  if (route.view === 'login' || !session.token && !session.user) {
    if (route.view !== 'login') sessionStorage.setItem('kedge.after', location.hash);
    return loginPage();
  }
  if (route.ns && route.ns !== session.namespace) session.namespace = route.ns;
  if (!session.user) {
    try { session.user = await whoAmI(); } catch (e) { return signOut(e.message); }
  }
  const main = await frame(route);
  try {
    if (route.view === 'overview') await overviewPage(main);
    else if (route.view === 'namespace') await namespacePage(main, route.ns);
    else if (route.view === 'list') await listPage(main, route.kind, route.ns);
    else await detailPage(main, route.kind, route.ns, route.name);
  } catch (e) {
    if (!page.signal.aborted) replace(main, errorBox(e));
  }
  if (!drawn.aborted) document.documentElement.dataset.page = location.hash;
}

// ---------------------------------------------------------------- login

function loginPage() {
  const message = sessionStorage.getItem('kedge.message');
  sessionStorage.removeItem('kedge.message');
  const status = el('div', { 'aria-live': 'polite' }, message ? el('div', { class: 'alert info' }, message) : '');
  const token = el('textarea', { id: 'token', name: 'token', autocomplete: 'off', spellcheck: 'false',
    placeholder: 'eyJhbGciOi…  or a kubeconfig with a token' });
  const signIn = async (credential) => {
    session.token = credential;
    try {
      session.user = await whoAmI();
      if (!session.user.username || session.user.username === 'system:anonymous') {
        throw new Error('these credentials sign in as nobody (system:anonymous)');
      }
      const after = sessionStorage.getItem('kedge.after');
      sessionStorage.removeItem('kedge.after');
      go(after && after !== '#/login' ? after : '#/');
    } catch (e) {
      session.token = '';
      session.user = null;
      replace(status, errorBox(e, 'Signing in failed'));
    }
  };
  const form = el('form', { onsubmit: (ev) => { ev.preventDefault(); signIn(tokenOf(token.value)).catch((e) => replace(status, errorBox(e))); } },
    el('label', { for: 'token' }, el('b', {}, 'Bearer token')),
    el('p', { class: 'hint', id: 'token-hint' }, 'A ServiceAccount token (', el('code', {}, 'kubectl create token <serviceaccount>'),
      '), or paste a kubeconfig that holds a token. Every request is made with it, so your RBAC permissions decide what you see.'),
    token,
    el('div', { class: 'actions' }, el('button', { type: 'submit', class: 'primary' }, 'Sign in'),
      el('button', { type: 'button', onclick: () => signIn('').catch((e) => replace(status, errorBox(e))) }, 'Use this browser’s client certificate')));
  token.setAttribute('aria-describedby', 'token-hint');
  replace(document.getElementById('app'),
    el('main', { id: 'main', class: 'login card' }, el('h1', {}, 'kedge dashboard'), status, form));
  token.focus();
}

/** The token in what was pasted: the token itself, or a kubeconfig's. */
function tokenOf(text) {
  const t = text.trim();
  if (!/\bapiVersion\b|\bcurrent-context\b|\busers\b/.test(t)) return t;
  const config = window.jsyaml.load(t);
  const context = (config.contexts || []).find((c) => c.name === config['current-context'])?.context;
  const user = (config.users || []).find((u) => u.name === context?.user)?.user || config.users?.[0]?.user || {};
  if (user.token) return user.token;
  if (user['client-certificate-data']) {
    throw new Error('this kubeconfig signs in with a client certificate, which a page cannot present; '
      + 'import it into the browser (openssl pkcs12 -export) and use “Use this browser’s client certificate”, or use a token');
  }
  throw new Error('this kubeconfig holds no token');
}

// ---------------------------------------------------------------- overview

async function overviewPage(main) {
  const nodes = el('section', { class: 'card', 'aria-labelledby': 'h-nodes' }, el('h2', { id: 'h-nodes' }, 'Nodes'));
  const workloads = el('section', { class: 'card', 'aria-labelledby': 'h-workloads' }, el('h2', { id: 'h-workloads' }, 'Workloads'));
  const pods = el('section', { class: 'card', 'aria-labelledby': 'h-pods' }, el('h2', { id: 'h-pods' }, 'Pods'));
  const namespaces = el('section', { class: 'card', 'aria-labelledby': 'h-ns' }, el('h2', { id: 'h-ns' }, 'Namespaces'));
  const strip = headline();
  replace(main, el('h1', {}, 'Cluster overview'), el('p', { class: 'crumbs' }, `Signed in as ${session.user.username}`),
    strip.box, nodes, el('div', { class: 'grid wide' }, workloads, pods), namespaces);
  await Promise.all([
    live(nodes, '/api/v1/nodes', (box, list) => {
      const ready = (list.items || []).filter((n) => (n.status?.conditions || []).some((c) => c.type === 'Ready' && c.status === 'True')).length;
      strip.set('nodes', `${ready}/${(list.items || []).length}`, 'nodes ready', ready < (list.items || []).length);
      return nodeCards(box, list);
    }),
    live(workloads, null, async (box) => {
      const [healthy, all] = await workloadHealth(box);
      strip.set('workloads', `${healthy}/${all}`, 'workloads healthy', healthy < all);
    }),
    live(pods, '/api/v1/pods', (box, list) => {
      const items = list.items || [];
      strip.set('pods', items.length, 'pods');
      const attention = items.filter((p) => podHealth(p)[1] !== 'ok').length;
      strip.set('attention', attention, 'need attention', attention > 0);
      return podSummary(box, list, true);
    }),
    live(namespaces, '/api/v1/namespaces', (box, list) => namespaceList(box, list)),
  ]);
}

/** The overview's headline figures, filled in as their sections load. */
function headline() {
  const box = el('section', { class: 'card stat headline', 'aria-label': 'At a glance' });
  const slots = new Map();
  return {
    box,
    set(key, value, label, warn) {
      let slot = slots.get(key);
      if (!slot) { slot = el('div'); slots.set(key, slot); box.append(slot); }
      replace(slot, el('b', { class: warn ? 'warn' : '' }, value), label);
    },
  };
}

/**
 * Fill `box` (after its heading) from `url`'s list, again whenever the
 * list changes (its watch) and every metrics period; a 403 is shown as the
 * API's message.
 */
async function live(box, url, draw) {
  const body = el('div');
  box.append(body);
  const refresh = async () => {
    try {
      const list = url ? await call('GET', url) : null;
      await draw(body, list);
      return list;
    } catch (e) {
      if (!page.signal.aborted) replace(body, forbidden(e) ? el('p', { class: 'muted' }, e.message) : errorBox(e));
      return null;
    }
  };
  const list = await refresh();
  if (url && list) watch(url, list.metadata?.resourceVersion, refresh);
  every(METRICS_PERIOD_MS, refresh);
}

async function nodeCards(box, list) {
  let usage = new Map();
  let metricsError = null;
  try { usage = await nodeMetrics(); } catch (e) { metricsError = e; }
  const cards = (list.items || []).map((n) => {
    const ready = (n.status?.conditions || []).find((c) => c.type === 'Ready');
    const alloc = n.status?.allocatable || {};
    const u = usage.get(n.metadata.name);
    return el('div', { class: 'card' }, el('div', { class: 'node' },
      el('h3', {}, el('a', { href: `#/cluster/nodes/${encodeURIComponent(n.metadata.name)}` }, n.metadata.name),
        ready?.status === 'True' ? badge('Ready', 'ok') : badge('NotReady', 'bad'),
        n.spec?.unschedulable ? badge('SchedulingDisabled', 'warn') : ''),
      usageBar(u?.cpu || 0, quantity(alloc.cpu), cores, 'CPU'),
      usageBar(u?.mem || 0, quantity(alloc.memory), bytes, 'Memory'),
      usageCharts(`node/${n.metadata.name}`)));
  });
  replace(box, el('div', { class: 'grid' }, cards), metricsError ? el('p', { class: 'muted' }, `Usage: ${metricsError.message}`) : '');
}

async function workloadHealth(box) {
  const rows = [];
  for (const kind of ['deployments', 'statefulsets', 'daemonsets']) {
    const k = KINDS[kind];
    const list = await call('GET', `/apis/${k.group}/v1/${kind}`);
    for (const o of list.items || []) {
      const [ready, want] = kind === 'daemonsets'
        ? [o.status?.numberReady || 0, o.status?.desiredNumberScheduled || 0]
        : [o.status?.readyReplicas || 0, o.spec?.replicas ?? 1];
      rows.push({ kind, o, ready, want });
    }
  }
  const healthy = rows.filter((r) => r.ready >= r.want).length;
  if (!rows.length) { replace(box, el('p', { class: 'muted' }, 'No workloads yet.')); return [0, 0]; }
  replace(box, el('table', {},
    el('caption', { class: 'sr-only' }, 'Workloads and their readiness'),
    el('thead', {}, el('tr', {}, ['Name', 'Namespace', 'Kind', 'Ready', 'Health'].map((h) => el('th', { scope: 'col' }, h)))),
    el('tbody', {}, rows.map(({ kind, o, ready, want }) => el('tr', {},
      el('td', {}, el('a', { href: `#/ns/${encodeURIComponent(o.metadata.namespace)}/${kind}/${encodeURIComponent(o.metadata.name)}` }, o.metadata.name)),
      el('td', {}, o.metadata.namespace), el('td', {}, KINDS[kind].kind), el('td', { class: 'num' }, `${ready}/${want}`),
      el('td', {}, ready >= want ? badge('Healthy', 'ok') : ready === 0 && want > 0 ? badge('Unavailable', 'bad') : badge('Progressing', 'warn')))))));
  return [healthy, rows.length];
}

function podHealth(p) {
  const statuses = p.status?.containerStatuses || [];
  const waiting = statuses.map((s) => s.state?.waiting?.reason).find(Boolean);
  if (p.metadata.deletionTimestamp) return ['Terminating', 'warn'];
  if (waiting) return [waiting, /BackOff|Err|Invalid/.test(waiting) ? 'bad' : 'warn'];
  const phase = p.status?.phase || 'Pending';
  if (phase === 'Running') return statuses.every((s) => s.ready) ? ['Running', 'ok'] : ['NotReady', 'warn'];
  return [phase, phase === 'Succeeded' ? 'ok' : phase === 'Failed' ? 'bad' : 'warn'];
}

function podSummary(box, list, withNamespace) {
  const items = list.items || [];
  const counts = {};
  for (const p of items) { const [h] = podHealth(p); counts[h] = (counts[h] || 0) + 1; }
  const unhealthy = items.filter((p) => !['ok'].includes(podHealth(p)[1]));
  replace(box,
    el('div', { class: 'stat' }, el('div', {}, el('b', {}, items.length), 'pods'),
      Object.entries(counts).map(([h, n]) => el('div', {}, el('b', {}, n), h))),
    unhealthy.length ? el('table', {}, el('caption', { class: 'sr-only' }, 'Pods that need attention'),
      el('tbody', {}, unhealthy.slice(0, 10).map((p) => el('tr', {},
        el('td', {}, el('a', { href: `#/ns/${encodeURIComponent(p.metadata.namespace)}/pods/${encodeURIComponent(p.metadata.name)}` }, p.metadata.name)),
        withNamespace ? el('td', {}, p.metadata.namespace) : '',
        el('td', {}, badge(...podHealth(p))))))) : el('p', { class: 'muted' }, 'Every pod is running and ready.'));
}

function namespaceList(box, list) {
  replace(box, el('p', {}, (list.items || []).map((n) => [el('a', { class: 'chip', href: `#/ns/${encodeURIComponent(n.metadata.name)}` }, n.metadata.name), ' '])));
}

async function namespacePage(main, ns) {
  const sections = ['deployments', 'statefulsets', 'pods', 'services'].map((kind) => {
    const s = el('section', { class: 'card', 'aria-labelledby': `h-${kind}` },
      el('h2', { id: `h-${kind}` }, el('a', { href: `#/ns/${encodeURIComponent(ns)}/${kind}` }, KINDS[kind].title)));
    return [kind, s];
  });
  replace(main, el('h1', {}, 'Namespace ', el('small', {}, ns)), sections.map(([, s]) => s));
  await Promise.all(sections.map(([kind, s]) => liveTable(s, kind, ns)));
}

// ---------------------------------------------------------------- lists

async function listPage(main, kind, ns) {
  const k = KINDS[kind];
  const section = el('section', { class: 'card', 'aria-labelledby': 'h-list' }, el('h2', { id: 'h-list', class: 'sr-only' }, k.title));
  replace(main, el('h1', {}, k.title, ns && !k.cluster ? el('small', {}, ` in ${ns}`) : ''), section);
  await liveTable(section, kind, k.cluster ? null : ns);
}

/** The API's Table of `kind` in `box`, following its watch. */
async function liveTable(box, kind, ns) {
  const body = el('div');
  box.append(body);
  let usage = null;
  const refresh = async () => {
    try {
      const t = await table(kind, ns);
      if (kind === 'pods' && ns) usage = await podMetrics(ns).catch(() => null);
      drawTable(body, t, kind, ns, usage);
      return t;
    } catch (e) {
      if (!page.signal.aborted) replace(body, forbidden(e) ? el('div', { class: 'alert error', role: 'alert' }, e.message) : errorBox(e));
      return null;
    }
  };
  const t = await refresh();
  if (t) watch(path(kind, ns), t.metadata?.resourceVersion, refresh);
  if (kind === 'pods') every(METRICS_PERIOD_MS, refresh);
}

function drawTable(box, t, kind, ns, usage) {
  const cols = (t.columnDefinitions || []).map((c, i) => [c, i]).filter(([c]) => !c.priority);
  const rows = t.rows || [];
  if (!rows.length) return replace(box, el('p', { class: 'muted' }, `No ${KINDS[kind].title.toLowerCase()} ${ns ? `in ${ns}` : ''}.`));
  const metricCols = usage ? ['CPU', 'Memory'] : [];
  replace(box, el('table', {},
    el('caption', { class: 'sr-only' }, `${KINDS[kind].title}${ns ? ` in ${ns}` : ''}`),
    el('thead', {}, el('tr', {}, cols.map(([c]) => el('th', { scope: 'col', title: c.description || '' }, c.name)),
      metricCols.map((c) => el('th', { scope: 'col' }, c)))),
    el('tbody', {}, rows.map((r) => {
      const meta = r.object?.metadata || {};
      const href = KINDS[kind].cluster ? `#/cluster/${kind}/${encodeURIComponent(meta.name)}`
        : `#/ns/${encodeURIComponent(meta.namespace || ns)}/${kind}/${encodeURIComponent(meta.name)}`;
      const u = usage?.get(meta.name);
      return el('tr', {}, cols.map(([c, i], n) => el('td', { class: c.type === 'integer' ? 'num' : '' },
        n === 0 && kind !== 'events' ? el('a', { href }, String(r.cells[i])) : cellText(r.cells[i]))),
        metricCols.length ? [el('td', { class: 'num' }, u ? cores(u.cpu) : '—'), el('td', { class: 'num' }, u ? bytes(u.mem) : '—')] : '');
    }))));
}
function cellText(v) {
  if (v === null || v === undefined) return '';
  if (typeof v === 'object') return JSON.stringify(v);
  return String(v);
}

// ---------------------------------------------------------------- details

async function detailPage(main, kind, ns, name) {
  const k = KINDS[kind];
  const url = path(kind, ns, name);
  let obj = await call('GET', url);
  const notice = el('div', { 'aria-live': 'polite' });
  const summary = el('div');
  const yaml = yamlSection(kind, ns, name, () => obj, notice);
  replace(main,
    el('p', { class: 'crumbs' }, el('a', { href: k.cluster ? `#/cluster/${kind}` : `#/ns/${encodeURIComponent(ns)}/${kind}` }, k.title), ' / ', name),
    el('h1', {}, `${k.kind} ${name}`, ns && !k.cluster ? el('small', {}, ` in ${ns}`) : ''),
    actions(kind, ns, name, () => obj, notice), notice, summary,
    kind === 'pods' ? [logsSection(ns, name, obj), consoleSection(ns, name, obj)] : '',
    yaml.section);
  const draw = async () => {
    try {
      obj = await call('GET', url);
    } catch (e) {
      if (e.code === 404) { replace(summary, el('div', { class: 'alert info' }, `${k.kind} ${name} was deleted.`)); return; }
      throw e;
    }
    yaml.update(obj);
    await drawSummary(summary, kind, ns, obj);
  };
  await draw();
  const collection = `${path(kind, ns)}?fieldSelector=metadata.name%3D${encodeURIComponent(name)}`;
  watch(collection, obj.metadata.resourceVersion, draw);
  if (['pods', 'nodes'].includes(kind) || KINDS[kind].owns) every(METRICS_PERIOD_MS, draw);
}

async function drawSummary(box, kind, ns, obj) {
  const meta = obj.metadata || {};
  const facts = [
    ['Created', `${meta.creationTimestamp || ''} (${age(meta.creationTimestamp)} ago)`],
    ['UID', meta.uid],
  ];
  if (obj.spec?.replicas !== undefined) facts.push(['Replicas', `${obj.status?.readyReplicas || 0} ready of ${obj.spec.replicas} desired (${obj.status?.replicas || 0} current)`]);
  if (kind === 'pods') facts.push(['Node', obj.spec?.nodeName || '—'], ['Pod IP', obj.status?.podIP || '—'], ['Status', badge(...podHealth(obj))]);
  if (kind === 'services') facts.push(['Type', obj.spec?.type], ['Cluster IP', obj.spec?.clusterIP],
    ['Ports', (obj.spec?.ports || []).map((p) => `${p.port}${p.nodePort ? `:${p.nodePort}` : ''}/${p.protocol || 'TCP'}`).join(', ')]);
  for (const o of meta.ownerReferences || []) {
    const plural = Object.keys(KINDS).find((p) => KINDS[p].kind === o.kind);
    facts.push(['Owner', plural ? el('a', { href: `#/ns/${encodeURIComponent(ns)}/${plural}/${encodeURIComponent(o.name)}` }, `${o.kind} ${o.name}`) : `${o.kind} ${o.name}`]);
  }
  const parts = [el('section', { class: 'card', 'aria-labelledby': 'h-facts' }, el('h2', { id: 'h-facts' }, 'Summary'),
    el('dl', { class: 'facts' }, facts.map(([k, v]) => [el('dt', {}, k), el('dd', {}, v)]),
      el('dt', {}, 'Labels'), el('dd', {}, Object.entries(meta.labels || {}).map(([k, v]) => el('span', { class: 'chip' }, `${k}=${v}`)), Object.keys(meta.labels || {}).length ? '' : '—')))];
  if (kind === 'pods' || kind === 'nodes') {
    const key = kind === 'pods' ? `pod/${ns}/${meta.name}` : `node/${meta.name}`;
    try { kind === 'pods' ? await podMetrics(ns) : await nodeMetrics(); } catch { /* shown as no data */ }
    parts.push(el('section', { class: 'card', 'aria-labelledby': 'h-usage' }, el('h2', { id: 'h-usage' }, 'Usage'), usageCharts(key)));
  }
  if (kind === 'pods') parts.push(containersCard(obj));
  if (kind === 'secrets' || kind === 'configmaps') parts.push(dataCard(kind, obj));
  const conditions = obj.status?.conditions || [];
  if (conditions.length) {
    parts.push(el('section', { class: 'card', 'aria-labelledby': 'h-cond' }, el('h2', { id: 'h-cond' }, 'Conditions'),
      el('table', {}, el('thead', {}, el('tr', {}, ['Type', 'Status', 'Reason', 'Message', 'Last transition'].map((h) => el('th', { scope: 'col' }, h)))),
        el('tbody', {}, conditions.map((c) => el('tr', {}, el('td', {}, c.type),
          el('td', {}, badge(c.status, c.status === 'True' ? (/Pressure|Unavailable|Failed/.test(c.type) ? 'bad' : 'ok') : 'warn')),
          el('td', {}, c.reason || ''), el('td', {}, c.message || ''), el('td', {}, age(c.lastTransitionTime))))))));
  }
  if (KINDS[kind].owns) parts.push(await ownedCard(kind, ns, obj));
  if (kind === 'nodes') parts.push(await nodePodsCard(meta.name));
  parts.push(await eventsCard(kind, ns, obj));
  replace(box, parts);
}

function containersCard(pod) {
  const statuses = new Map([...(pod.status?.initContainerStatuses || []), ...(pod.status?.containerStatuses || [])].map((s) => [s.name, s]));
  const all = [...(pod.spec?.initContainers || []).map((c) => [c, 'init']), ...(pod.spec?.containers || []).map((c) => [c, ''])];
  return el('section', { class: 'card', 'aria-labelledby': 'h-containers' }, el('h2', { id: 'h-containers' }, 'Containers'),
    el('table', {}, el('thead', {}, el('tr', {}, ['Name', 'Image', 'State', 'Ready', 'Restarts'].map((h) => el('th', { scope: 'col' }, h)))),
      el('tbody', {}, all.map(([c, init]) => {
        const s = statuses.get(c.name) || {};
        const state = Object.keys(s.state || {})[0] || 'waiting';
        const reason = s.state?.[state]?.reason;
        return el('tr', {}, el('td', {}, c.name, init ? ' (init)' : ''), el('td', {}, c.image),
          el('td', {}, badge(reason || state, state === 'running' ? 'ok' : state === 'terminated' && reason === 'Completed' ? 'ok' : 'warn')),
          el('td', {}, s.ready ? 'yes' : 'no'), el('td', { class: 'num' }, s.restartCount || 0));
      }))));
}

// Which Secret values the user chose to see (by object and key).
const revealed = new Set();
function dataCard(kind, obj) {
  const data = obj.data || {};
  const id = `${obj.metadata.namespace}/${obj.metadata.name}`;
  const rows = Object.entries(data).map(([key, value]) => {
    if (kind === 'configmaps') return el('tr', {}, el('th', { scope: 'row' }, key), el('td', {}, el('pre', {}, value)));
    const shown = revealed.has(`${id}/${key}`);
    const cell = el('td', { class: 'secret-value' }, shown ? decode(value) : '••••••••');
    const button = el('button', { type: 'button', 'aria-label': `${shown ? 'Hide' : 'Reveal'} ${key}`,
      onclick: () => { shown ? revealed.delete(`${id}/${key}`) : revealed.add(`${id}/${key}`); render(); } }, shown ? 'Hide' : 'Reveal');
    return el('tr', {}, el('th', { scope: 'row' }, key), cell, el('td', {}, button));
  });
  return el('section', { class: 'card', 'aria-labelledby': 'h-data' }, el('h2', { id: 'h-data' }, 'Data'),
    rows.length ? el('table', {}, el('tbody', {}, rows)) : el('p', { class: 'muted' }, 'No data.'));
}
function decode(b64) {
  try { return new TextDecoder().decode(Uint8Array.from(atob(b64), (c) => c.charCodeAt(0))); } catch { return b64; }
}

async function ownedCard(kind, ns, obj) {
  const box = el('section', { class: 'card', 'aria-labelledby': 'h-owned' }, el('h2', { id: 'h-owned' }, 'Owned objects'));
  const rows = [];
  const collect = async (owner, depth) => {
    for (const child of KINDS[owner.kind]?.owns || []) {
      const list = await call('GET', path(child, ns));
      for (const c of list.items || []) {
        if (!(c.metadata.ownerReferences || []).some((r) => r.uid === owner.obj.metadata.uid)) continue;
        rows.push({ kind: child, obj: c, depth });
        if (depth < 2) await collect({ kind: child, obj: c }, depth + 1);
      }
    }
  };
  try { await collect({ kind, obj }, 0); } catch (e) { box.append(errorBox(e)); return box; }
  if (!rows.length) return append(box, [el('p', { class: 'muted' }, 'None.')]);
  return append(box, [el('table', {}, el('tbody', {}, rows.map(({ kind: k, obj: o, depth }) => {
    const health = k === 'pods' ? badge(...podHealth(o)) : o.spec?.replicas !== undefined ? `${o.status?.readyReplicas || 0}/${o.spec.replicas} ready` : '';
    return el('tr', {}, el('td', { style: `padding-left:${8 + depth * 18}px` }, `${KINDS[k].kind} `,
      el('a', { href: `#/ns/${encodeURIComponent(ns)}/${k}/${encodeURIComponent(o.metadata.name)}` }, o.metadata.name)),
    el('td', {}, health), el('td', {}, age(o.metadata.creationTimestamp)));
  })))]);
}

async function nodePodsCard(node) {
  const box = el('section', { class: 'card', 'aria-labelledby': 'h-nodepods' }, el('h2', { id: 'h-nodepods' }, 'Pods on this node'));
  try {
    const list = await call('GET', `/api/v1/pods?fieldSelector=spec.nodeName%3D${encodeURIComponent(node)}`);
    podSummary(box.appendChild(el('div')), list, true);
  } catch (e) { box.append(forbidden(e) ? el('p', { class: 'muted' }, e.message) : errorBox(e)); }
  return box;
}

async function eventsCard(kind, ns, obj) {
  const box = el('section', { class: 'card', 'aria-labelledby': 'h-events' }, el('h2', { id: 'h-events' }, 'Events'));
  const selector = [`involvedObject.name=${obj.metadata.name}`, `involvedObject.kind=${KINDS[kind].kind}`].join(',');
  const where = KINDS[kind].cluster ? '/api/v1/events' : `/api/v1/namespaces/${encodeURIComponent(ns)}/events`;
  try {
    const list = await call('GET', `${where}?fieldSelector=${encodeURIComponent(selector)}`);
    const items = (list.items || []).filter((e) => !e.involvedObject?.uid || e.involvedObject.uid === obj.metadata.uid)
      .sort((a, b) => Date.parse(b.lastTimestamp || b.eventTime || 0) - Date.parse(a.lastTimestamp || a.eventTime || 0));
    if (!items.length) return append(box, [el('p', { class: 'muted' }, 'No events.')]);
    append(box, [el('table', {}, el('thead', {}, el('tr', {}, ['Type', 'Reason', 'Age', 'From', 'Message'].map((h) => el('th', { scope: 'col' }, h)))),
      el('tbody', {}, items.slice(0, 50).map((e) => el('tr', {}, el('td', {}, badge(e.type, e.type === 'Warning' ? 'warn' : '')),
        el('td', {}, e.reason), el('td', {}, `${age(e.lastTimestamp || e.eventTime)}${e.count > 1 ? ` (×${e.count})` : ''}`),
        el('td', {}, e.source?.component || e.reportingComponent || ''), el('td', {}, e.message)))))]);
  } catch (e) { box.append(forbidden(e) ? el('p', { class: 'muted' }, e.message) : errorBox(e)); }
  return box;
}

// ---------------------------------------------------------------- actions

function actions(kind, ns, name, current, notice) {
  const k = KINDS[kind];
  const bar = el('div', { class: 'actions', role: 'group', 'aria-label': 'Actions' });
  const done = (text) => replace(notice, el('div', { class: 'alert info', role: 'status' }, text));
  const failed = (e, what) => replace(notice, errorBox(e, what));
  if (k.scale) {
    const input = el('input', { type: 'number', id: 'replicas', min: '0', value: current().spec?.replicas ?? 1 });
    bar.append(el('label', { for: 'replicas' }, 'Replicas'), input, el('button', { type: 'button', class: 'primary', onclick: async () => {
      try {
        await call('PATCH', path(kind, ns, name, 'scale'), { type: 'application/merge-patch+json', body: { spec: { replicas: Number(input.value) } } });
        done(`Scaled ${k.kind} ${name} to ${input.value} replicas.`);
      } catch (e) { failed(e, 'Scaling failed'); }
    } }, 'Scale'));
  }
  if (k.restart) {
    bar.append(el('button', { type: 'button', onclick: async () => {
      const patch = { spec: { template: { metadata: { annotations: { 'kubectl.kubernetes.io/restartedAt': new Date().toISOString() } } } } };
      try {
        await call('PATCH', `${path(kind, ns, name)}?fieldManager=${FIELD_MANAGER}`, { type: 'application/strategic-merge-patch+json', body: patch });
        done(`Restarting the pods of ${k.kind} ${name}.`);
      } catch (e) { failed(e, 'Restart failed'); }
    } }, 'Restart'));
  }
  if (kind !== 'nodes') {
    // Two steps, in the page: a dialog would block keyboard-less users and tests alike.
    const del = el('button', { type: 'button', class: 'danger', onclick: async () => {
      if (!del.classList.contains('armed')) {
        del.classList.add('armed');
        del.textContent = `Confirm: delete ${name}`;
        setTimeout(() => { del.classList.remove('armed'); del.textContent = 'Delete'; }, 5000);
        return;
      }
      try {
        await call('DELETE', path(kind, ns, name), { body: { kind: 'DeleteOptions', apiVersion: 'v1', propagationPolicy: 'Background' } });
        done(`Deleted ${k.kind} ${name}.`);
      } catch (e) { failed(e, 'Delete failed'); }
    } }, 'Delete');
    bar.append(del);
  }
  return bar;
}

// The fields the server owns, left out of what the editor shows and applies.
function editable(obj) {
  const o = structuredClone(obj);
  delete o.status;
  for (const f of ['managedFields', 'resourceVersion', 'uid', 'creationTimestamp', 'generation', 'selfLink']) delete o.metadata?.[f];
  return o;
}

function yamlSection(kind, ns, name, current, notice) {
  const view = el('pre', { class: 'yaml', tabindex: '0', 'aria-label': 'Object as YAML' });
  const editor = el('textarea', { class: 'yaml', id: 'yaml-editor', spellcheck: 'false', hidden: true, 'aria-label': 'YAML to apply' });
  const errors = el('div', { 'aria-live': 'assertive' });
  const edit = el('button', { type: 'button' }, 'Edit');
  const apply = el('button', { type: 'button', class: 'primary', hidden: true }, 'Apply');
  const cancel = el('button', { type: 'button', hidden: true }, 'Cancel');
  const secret = kind === 'secrets';
  let editing = false;
  const shown = (obj) => {
    const o = editable(obj);
    if (secret && !revealed.has(`${ns}/${name}/*`)) {
      for (const k of Object.keys(o.data || {})) o.data[k] = '<hidden>';
      // kubectl apply keeps the whole Secret, values included, here.
      const annotations = o.metadata?.annotations || {};
      if (annotations[LAST_APPLIED]) annotations[LAST_APPLIED] = '<hidden>';
    }
    return window.jsyaml.dump(o, { noRefs: true, lineWidth: 120 });
  };
  const setEditing = (on) => {
    editing = on;
    editor.hidden = !on; apply.hidden = !on; cancel.hidden = !on; edit.hidden = on; view.hidden = on;
    if (on) { editor.value = window.jsyaml.dump(editable(current()), { noRefs: true, lineWidth: 120 }); editor.focus(); }
    replace(errors);
    editor.removeAttribute('aria-invalid');
  };
  edit.addEventListener('click', () => setEditing(true));
  cancel.addEventListener('click', () => setEditing(false));
  apply.addEventListener('click', async () => {
    replace(errors);
    let obj;
    try { obj = window.jsyaml.load(editor.value); } catch (e) {
      editor.setAttribute('aria-invalid', 'true');
      return replace(errors, el('div', { class: 'alert error', role: 'alert' }, `Not valid YAML: ${e.reason || e.message}${e.mark ? ` (line ${e.mark.line + 1})` : ''}`));
    }
    try {
      await call('PATCH', `${path(kind, ns, name)}?fieldManager=${FIELD_MANAGER}&force=true`,
        { type: 'application/apply-patch+yaml', body: JSON.stringify(editable(obj)) });
      setEditing(false);
      replace(notice, el('div', { class: 'alert info', role: 'status' }, `Applied ${KINDS[kind].kind} ${name}.`));
    } catch (e) {
      editor.setAttribute('aria-invalid', 'true');
      const box = errorBox(e, 'The API refused the change');
      const lines = e.causes.map((c) => lineOf(editor.value, c.field)).filter((n) => n > 0);
      if (lines.length) {
        box.append(el('p', {}, `At line ${lines.join(', ')}.`));
        select(editor, lines[0]);
      }
      replace(errors, box);
    }
  });
  const reveal = secret ? el('button', { type: 'button', onclick: () => { revealed.has(`${ns}/${name}/*`) ? revealed.delete(`${ns}/${name}/*`) : revealed.add(`${ns}/${name}/*`); view.textContent = shown(current()); } }, 'Reveal values in YAML') : '';
  const section = el('section', { class: 'card', 'aria-labelledby': 'h-yaml' }, el('h2', { id: 'h-yaml' }, 'YAML'),
    el('div', { class: 'actions' }, edit, apply, cancel, reveal), errors, view, editor);
  return { section, update: (obj) => { if (!editing) view.textContent = shown(obj); } };
}

/** The line (1-based) of a field path (`spec.template.spec.containers[0].image`) in YAML text, or 0. */
function lineOf(text, field) {
  if (!field) return 0;
  const lines = text.split('\n');
  let at = 0, indent = -1;
  for (const seg of field.split('.')) {
    const m = seg.match(/^([^[]+)(?:\[([^\]]+)\])?/);
    if (!m) return 0;
    // `data[key]` names a map's key: look for it as the next segment.
    if (m[2] !== undefined && !/^\d+$/.test(m[2])) return lineOf(text, field.replace(seg, `${m[1]}.${m[2]}`));
    const key = m[1].replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    const re = new RegExp(`^(\\s*)(?:- )?["']?${key}["']?:`);
    let found = -1;
    for (let i = at; i < lines.length; i += 1) {
      const hit = lines[i].match(re);
      if (hit && hit[1].length > indent) { found = i; indent = hit[1].length; break; }
    }
    if (found < 0) return at ? at + 1 : 0;
    at = found;
    if (m[2] !== undefined) {
      // The n-th item of the list under this key.
      let n = -1;
      for (let i = at + 1; i < lines.length; i += 1) {
        if (/^\s*- /.test(lines[i]) && lines[i].search(/\S/) >= indent) { n += 1; if (n === Number(m[2])) { at = i; indent = lines[i].search(/\S/); break; } }
      }
    }
  }
  return at + 1;
}
function select(textarea, line) {
  const lines = textarea.value.split('\n');
  const start = lines.slice(0, line - 1).reduce((n, l) => n + l.length + 1, 0);
  textarea.focus();
  textarea.setSelectionRange(start, start + (lines[line - 1] || '').length);
}

// ---------------------------------------------------------------- logs and exec

function containerPicker(pod, id) {
  const names = (pod.spec?.containers || []).map((c) => c.name);
  return el('select', { id }, names.map((n) => el('option', { value: n }, n)));
}

function logsSection(ns, name, pod) {
  const picker = containerPicker(pod, 'log-container');
  const follow = el('input', { type: 'checkbox', id: 'log-follow', checked: true });
  const out = el('pre', { class: 'logs', role: 'log', tabindex: '0', 'aria-label': 'Container logs' });
  let stream = null;
  const start = async () => {
    stream?.abort();
    stream = new AbortController();
    const mine = stream;
    page.signal.addEventListener('abort', () => mine.abort());
    out.textContent = '';
    const q = `container=${encodeURIComponent(picker.value)}&tailLines=1000${follow.checked ? '&follow=true' : ''}`;
    try {
      const r = await fetch(`/api/v1/namespaces/${encodeURIComponent(ns)}/pods/${encodeURIComponent(name)}/log?${q}`, { headers: headers({ Accept: '*/*' }), signal: mine.signal });
      if (!r.ok) { const t = await r.text(); let s = null; try { s = JSON.parse(t); } catch { /* text */ } throw new ApiError(r.status, s, t); }
      const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        const atEnd = out.scrollTop + out.clientHeight >= out.scrollHeight - 4;
        out.append(plain(value));
        if (atEnd) out.scrollTop = out.scrollHeight;
      }
    } catch (e) {
      if (!mine.signal.aborted) out.append(`\n[${e.message}]\n`);
    }
  };
  picker.addEventListener('change', start);
  follow.addEventListener('change', start);
  setTimeout(start, 0);
  return el('section', { class: 'card', 'aria-labelledby': 'h-logs' }, el('h2', { id: 'h-logs' }, 'Logs'),
    el('div', { class: 'actions' }, el('label', { for: 'log-container' }, 'Container'), picker, follow, el('label', { for: 'log-follow' }, 'Follow')), out);
}

/** Terminal text without its colour and cursor escapes. */
function plain(text) { return text.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, ''); }

// An exec session over the API's WebSocket (channel.k8s.io: the first byte
// of each message names the stream: 0 stdin, 1 stdout, 2 stderr, 3 status).
function consoleSection(ns, name, pod) {
  const picker = containerPicker(pod, 'exec-container');
  const out = el('pre', { class: 'console', role: 'log', tabindex: '0', 'aria-label': 'Shell output' });
  const input = el('input', { id: 'exec-input', autocomplete: 'off', spellcheck: 'false', disabled: true, placeholder: 'a command, then Enter' });
  const state = el('span', { class: 'muted', role: 'status' }, 'Not connected.');
  let socket = null;
  const connect = el('button', { type: 'button', onclick: () => {
    socket?.close();
    out.textContent = '';
    const proto = location.protocol === 'https:' ? 'wss' : 'ws';
    const q = ['sh', '-i'].map((c) => `command=${encodeURIComponent(c)}`).join('&');
    const url = `${proto}://${location.host}/api/v1/namespaces/${encodeURIComponent(ns)}/pods/${encodeURIComponent(name)}/exec?container=${encodeURIComponent(picker.value)}&${q}&stdin=true&stdout=true&stderr=true`;
    const b64 = btoa(session.token).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
    const protocols = ['v5.channel.k8s.io', 'v4.channel.k8s.io'];
    if (session.token) protocols.push(`base64url.bearer.authorization.k8s.io.${b64}`);
    const ws = new WebSocket(url, protocols);
    socket = ws;
    ws.binaryType = 'arraybuffer';
    const decoder = new TextDecoder();
    ws.onopen = () => { state.textContent = `Connected to ${picker.value}.`; input.disabled = false; input.focus(); };
    ws.onmessage = (m) => {
      const data = new Uint8Array(m.data);
      if (!data.length) return;
      const text = decoder.decode(data.slice(1));
      if (data[0] === 3) {
        try { const s = JSON.parse(text); state.textContent = s.status === 'Success' ? 'The shell exited.' : `The shell ended: ${s.message}`; } catch { state.textContent = text; }
        return;
      }
      out.append(plain(text));
      out.scrollTop = out.scrollHeight;
    };
    ws.onclose = () => { input.disabled = true; if (state.textContent.startsWith('Connected')) state.textContent = 'Disconnected.'; };
    ws.onerror = () => { state.textContent = 'The connection failed (is the pod running, and may you exec into it?).'; };
    onLeave(() => ws.close());
  } }, 'Connect');
  input.addEventListener('keydown', (ev) => {
    if (ev.key !== 'Enter' || !socket || socket.readyState !== WebSocket.OPEN) return;
    const line = new TextEncoder().encode(`${input.value}\n`);
    const msg = new Uint8Array(line.length + 1);
    msg.set(line, 1);
    socket.send(msg);
    out.append(`$ ${input.value}\n`);
    input.value = '';
  });
  return el('section', { class: 'card', 'aria-labelledby': 'h-shell' }, el('h2', { id: 'h-shell' }, 'Shell'),
    el('div', { class: 'actions' }, el('label', { for: 'exec-container' }, 'Container'), picker, connect, state),
    out, el('div', { class: 'console-input' }, el('label', { for: 'exec-input', class: 'sr-only' }, 'Command'), input));
}

// ---------------------------------------------------------------- start

addEventListener('hashchange', render);
render();
