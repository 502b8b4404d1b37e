// ambit console. Plain DOM, no framework, no build step. Every call goes to
// /ui/api/ with the credential from sessionStorage as a bearer header; text
// from the server is only ever set with textContent (never innerHTML).
'use strict';

const TOKEN_KEY = 'ambit.console.token';
const SVG = 'http://www.w3.org/2000/svg';
const $ = (id) => document.getElementById(id);
let who = null; // whoami answer

function token() { return sessionStorage.getItem(TOKEN_KEY) || ''; }

function setStatus(text, isError) {
  const s = $('status');
  s.textContent = text || '';
  s.className = isError ? 'error' : '';
}

// api calls /ui/api/PATH; body (an object) makes it a POST. It throws an
// Error carrying the server's message and HTTP status.
async function api(path, body) {
  const headers = {};
  if (token()) headers['Authorization'] = 'Bearer ' + token();
  const init = { method: body === undefined ? 'GET' : 'POST', headers, credentials: 'omit', cache: 'no-store' };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const resp = await fetch('api/' + path, init);
  let data = null;
  try { data = await resp.json(); } catch (e) { data = null; }
  if (!resp.ok) {
    const err = new Error((data && data.error) || resp.statusText);
    err.status = resp.status;
    throw err;
  }
  return data;
}

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  for (const c of children) e.append(c);
  return e;
}

function svgEl(tag, attrs) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
  return e;
}

function confirmAction(text) {
  return new Promise((resolve) => {
    const d = $('confirm');
    $('confirm-text').textContent = text;
    d.returnValue = '';
    d.addEventListener('close', () => resolve(d.returnValue === 'ok'), { once: true });
    d.showModal();
    $('confirm-cancel').focus();
  });
}

async function guarded(fn) {
  try {
    setStatus('');
    await fn();
  } catch (e) {
    if (e.status === 401) {
      signOut('Sign in again: ' + e.message);
      return;
    }
    setStatus(e.message, true);
  }
}

// ---- sign-in and pages ----

async function start() {
  try {
    who = await api('whoami');
  } catch (e) {
    if (token()) sessionStorage.removeItem(TOKEN_KEY);
    showSignIn(e.status === 401 || e.status === 403 ? '' : e.message);
    return;
  }
  $('nav').hidden = false;
  $('who').hidden = false;
  $('who-name').textContent = who.anonymous ? 'no authentication' : (who.name || 'preshared key') + ' (' + who.scopes.join(', ') + ')';
  if (who.anonymous) $('signout').hidden = true;
  // Hide what the credential may not do; the server refuses it anyway.
  for (const e of document.querySelectorAll('[data-needs]')) {
    if (!who.can[e.dataset.needs]) e.remove();
  }
  route();
}

function showSignIn(message) {
  for (const p of document.querySelectorAll('.page')) p.hidden = p.id !== 'page-signin';
  setStatus(message || '', !!message);
  $('signin-token').focus();
}

function signOut(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  location.hash = '';
  location.reload();
  if (message) setStatus(message, true);
}

const loaders = {};
let livePoll = null;

function route() {
  if (!who) return;
  const page = (location.hash || '#check').slice(1);
  const id = 'page-' + (loaders[page] ? page : 'check');
  for (const p of document.querySelectorAll('.page')) p.hidden = p.id !== id;
  for (const a of document.querySelectorAll('#nav a')) {
    if ('page-' + a.dataset.page === id) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
  }
  if (id !== 'page-live' && livePoll) { livePoll.stop = true; livePoll = null; }
  guarded(loaders[id.slice(5)]);
}

// ---- schema ----

function highlighted(pre, text, tokens) {
  pre.textContent = '';
  let at = 0;
  for (const t of tokens) {
    if (t.start > at) pre.append(text.slice(at, t.start));
    pre.append(el('span', { class: 'tok-' + t.class }, text.slice(t.start, t.end)));
    at = t.end;
  }
  pre.append(text.slice(at));
}

loaders.schema = async () => {
  const s = await api('schema');
  highlighted($('schema-view'), s.text || '(no schema yet)', s.text ? s.tokens : []);
  if (!$('schema-edit').value) $('schema-edit').value = s.text;
  drawDiagram($('schema-diagram'), s.diagram);
  if (s.error) setStatus(s.error, true);
};

function showProblems(r) {
  const ul = $('schema-problems');
  ul.textContent = '';
  const all = r.problems.map((p) => [p, 'error']).concat(r.warnings.map((p) => [p, 'warning']));
  if (!all.length) ul.append(el('li', { class: 'ok' }, 'No problems: the schema compiles and orphans no relationship.'));
  for (const [p, kind] of all) {
    const where = p.line ? p.line + ':' + p.col : '';
    const b = el('button', { type: 'button', class: 'link' }, where || kind);
    b.addEventListener('click', () => goTo($('schema-edit'), p.line, p.col));
    ul.append(el('li', { class: kind, 'data-line': String(p.line), 'data-col': String(p.col) }, b, ' ' + p.message));
  }
}

function goTo(ta, line, col) {
  if (!line) return;
  const lines = ta.value.split('\n');
  let off = 0;
  for (let i = 0; i < line - 1 && i < lines.length; i++) off += lines[i].length + 1;
  off += Math.max(0, col - 1);
  ta.focus();
  ta.setSelectionRange(off, off + 1);
}

async function checkSchema() {
  const r = await api('schema/check', { schema: $('schema-edit').value });
  showProblems(r);
  if (r.diagram) drawDiagram($('schema-diagram'), r.diagram);
  return r;
}

async function writeSchema() {
  const r = await checkSchema();
  if (!r.ok) { setStatus('Not written: fix the problems first.', true); return; }
  if (!await confirmAction('Replace the schema on the server?')) return;
  const w = await api('schema/write', { schema: $('schema-edit').value });
  setStatus('Schema written at ' + w.written_at);
  await loaders.schema();
}

// drawDiagram draws definitions as boxes in columns by rank, a row per
// relation, and an edge from a relation to each thing it refers to.
function drawDiagram(svg, d) {
  svg.textContent = '';
  if (!d || !d.definitions.length) { svg.setAttribute('width', 10); svg.setAttribute('height', 10); return; }
  defs(svg);
  const CH = 7.2, ROW = 20, GAP = 70;
  const cols = [];
  for (const def of d.definitions) (cols[def.rank] = cols[def.rank] || []).push(def);
  const place = {}; // "def" or "def#rel" -> {x, y, w}
  let x = 10, height = 0;
  for (const col of cols) {
    if (!col) continue;
    let w = 0;
    for (const def of col) {
      w = Math.max(w, def.name.length * CH + 20);
      for (const r of def.relations) w = Math.max(w, (r.name.length + r.text.length + 14) * CH + 20);
    }
    w = Math.min(w, 520);
    let y = 10;
    for (const def of col) {
      const h = ROW * (def.relations.length + 1) + 6;
      const g = svgEl('g', { class: 'def', 'data-def': def.name });
      g.append(svgEl('rect', { x, y, width: w, height: h, rx: 6 }));
      const title = svgEl('text', { x: x + 8, y: y + 15, class: 'def-name' });
      title.textContent = def.name;
      g.append(title);
      place[def.name] = { x, y: y + 10, w };
      def.relations.forEach((r, i) => {
        const ry = y + ROW * (i + 1) + 14;
        const t = svgEl('text', { x: x + 8, y: ry, class: r.permission ? 'perm' : 'rel' });
        t.textContent = (r.permission ? 'permission ' : 'relation ') + r.name + (r.permission ? ' = ' : ': ') + r.text;
        g.append(t);
        place[def.name + '#' + r.name] = { x, y: ry - 4, w };
      });
      svg.append(g);
      y += h + 16;
    }
    height = Math.max(height, y);
    x += w + GAP;
  }
  for (const e of d.edges) {
    const a = place[e.from], b = place[e.to] || place[e.to.split('#')[0]];
    if (!a || !b || a === b) continue;
    const back = b.x <= a.x;
    const x1 = a.x, y1 = a.y, x2 = back ? b.x : b.x + b.w, y2 = b.y;
    let dpath;
    if (b.x < a.x) {
      dpath = `M${x1},${y1} C${x1 - 40},${y1} ${x2 + b.w + 40},${y2} ${x2 + b.w},${y2}`;
    } else if (b.x === a.x) {
      dpath = `M${x1},${y1} C${x1 - 40},${y1} ${x2 - 40},${y2} ${x2},${y2}`;
    } else {
      dpath = `M${x1 + a.w},${y1} C${x1 + a.w + 40},${y1} ${b.x - 40},${y2} ${b.x},${y2}`;
    }
    const p = svgEl('path', { d: dpath, class: 'dedge kind-' + e.kind, 'marker-end': 'url(#arrow-' + (e.kind === 'type' ? 'grey' : 'blue') + ')', 'data-from': e.from, 'data-to': e.to });
    const tt = svgEl('title');
    tt.textContent = e.from + ' → ' + e.to + (e.via ? ' (via ' + e.via + ')' : '');
    p.append(tt);
    svg.insertBefore(p, svg.firstChild.nextSibling);
  }
  svg.setAttribute('viewBox', `0 0 ${x} ${height + 10}`);
  svg.setAttribute('width', x);
  svg.setAttribute('height', height + 10);
}

function defs(svg) {
  const d = svgEl('defs');
  for (const [name, cls] of [['grey', 'm-grey'], ['blue', 'm-blue'], ['green', 'm-green'], ['red', 'm-red'], ['orange', 'm-orange']]) {
    const m = svgEl('marker', { id: 'arrow-' + name, viewBox: '0 0 10 10', refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: 'auto-start-reverse' });
    m.append(svgEl('path', { d: 'M0,0 L10,5 L0,10 z', class: cls }));
    d.append(m);
  }
  svg.append(d);
}

// ---- relationships ----

let relCursor = '';

async function browse(more) {
  const q = new URLSearchParams();
  for (const [k, id] of [['resource_type', 'rel-type'], ['resource_id', 'rel-id'], ['relation', 'rel-relation'], ['subject', 'rel-subject']]) {
    const v = $(id).value.trim();
    if (v) q.set(k, v);
  }
  if (more && relCursor) q.set('cursor', relCursor);
  const r = await api('relationships?' + q);
  const body = $('rel-table').tBodies[0];
  if (!more) body.textContent = '';
  for (const rel of r.relationships) {
    const cell = el('td');
    if (who.can.write) {
      const b = el('button', { type: 'button', class: 'danger', 'data-needs': 'write', 'aria-label': 'Delete ' + rel }, 'Delete');
      b.addEventListener('click', () => guarded(async () => {
        if (!await confirmAction('Delete ' + rel + '?')) return;
        await api('relationships/write', { operation: 'delete', relationships: [rel] });
        setStatus('Deleted ' + rel);
        await browse(false);
      }));
      cell.append(b);
    }
    body.append(el('tr', {}, el('td', { class: 'mono' }, rel), cell));
  }
  relCursor = r.cursor || '';
  $('rel-more').hidden = !relCursor;
  if (!r.relationships.length && !more) body.append(el('tr', {}, el('td', { colspan: '2' }, 'No relationship matches.')));
}

async function writeRels() {
  const rels = $('rel-new').value.split('\n').map((s) => s.trim()).filter((s) => s && !s.startsWith('//'));
  if (!rels.length) { setStatus('Give at least one relationship.', true); return; }
  const op = $('rel-op').value;
  if (!await confirmAction(op + ' ' + rels.length + ' relationship(s)?')) return;
  const w = await api('relationships/write', { operation: op, relationships: rels });
  setStatus('Written at ' + w.written_at);
  $('rel-new').value = '';
  if ($('rel-type').value.trim() || $('rel-subject').value.trim()) await browse(false);
}

async function importFile() {
  const text = $('import-text').value;
  if (!text.trim()) { setStatus('Choose or paste a validation file.', true); return; }
  const withSchema = $('import-schema') && $('import-schema').checked;
  if (!await confirmAction('Import this file' + (withSchema ? ', schema included' : '') + '?')) return;
  const r = await api('import', { file: text, write_schema: !!withSchema });
  setStatus('Imported ' + r.relationships + ' relationship(s)' + (r.schema_written ? ' and the schema' : ''));
}

loaders.relationships = async () => {
  if ($('rel-type').value.trim() || $('rel-subject').value.trim()) await browse(false);
};

// ---- check ----

async function runCheck() {
  const req = {
    resource: $('check-resource').value.trim(), permission: $('check-permission').value.trim(),
    subject: $('check-subject').value.trim(), context: $('check-context').value.trim(), all: $('check-all').checked,
  };
  const r = await api('check', req);
  const a = $('check-answer');
  a.textContent = req.resource + '#' + req.permission + '@' + req.subject + ': ' + r.permissionship +
    (r.missing_context.length ? ' (missing context: ' + r.missing_context.join(', ') + ')' : '');
  a.className = 'answer result-' + r.permissionship;
  a.dataset.result = r.permissionship;
  $('check-legend').hidden = false;
  drawGraph($('check-graph'), r.graph);
  const ol = $('check-proof');
  ol.textContent = '';
  for (const p of r.proof) ol.append(el('li', { class: 'mono' }, p));
  $('check-text').textContent = r.text + (r.truncated ? '\n… (cut at the server\'s node limit)' : '');
}

loaders.check = async () => {};

// drawGraph lays the explanation out in columns (subject left, resource
// right) and draws nodes as boxes and edges as arrows classed by state.
function drawGraph(svg, g) {
  svg.textContent = '';
  defs(svg);
  const CH = 7.2, ROWH = 58, GAP = 80, H = 30, TOP = 60;
  const label = (n) => { const l = n.label || n.id; return l.length > 44 ? l.slice(0, 42) + '…' : l; };
  const colW = [];
  for (const n of g.nodes) colW[n.col] = Math.max(colW[n.col] || 0, label(n).length * CH + 24);
  const colX = [];
  let x = 20;
  for (let c = 0; c < colW.length; c++) { colX[c] = x; x += (colW[c] || 0) + GAP; }
  const pos = {};
  let height = 0;
  for (const n of g.nodes) {
    const w = label(n).length * CH + 24;
    const nx = colX[n.col] + ((colW[n.col] || w) - w) / 2, ny = TOP + n.row * ROWH;
    pos[n.id] = { x: nx, y: ny, w, col: n.col };
    height = Math.max(height, ny + H + 20);
  }
  const edgeLayer = svgEl('g', { class: 'edges' });
  svg.append(edgeLayer);
  for (const e of g.edges) {
    const a = pos[e.from], b = pos[e.to];
    if (!a || !b) continue;
    const x1 = a.x + a.w, y1 = a.y + H / 2, x2 = b.x, y2 = b.y + H / 2;
    const dx = Math.max(40, Math.abs(x2 - x1) / 2);
    // An edge that skips columns arcs above the rows it would cross.
    const lift = b.col - a.col > 1 ? 24 + 14 * (b.col - a.col) : 0;
    const d = x2 > x1 ? `M${x1},${y1} C${x1 + dx},${y1 - lift} ${x2 - dx},${y2 - lift} ${x2},${y2}`
      : `M${a.x},${y1} C${a.x - 60},${y1 + 40} ${b.x + b.w + 60},${y2 + 40} ${b.x + b.w},${y2}`;
    const marker = { grant: 'green', missing: 'red', excluded: 'red', expired: 'orange' }[e.state] || 'grey';
    const ge = svgEl('g', { class: 'edge state-' + e.state + (e.proof ? ' proof' : ''), 'data-from': e.from, 'data-to': e.to, 'data-state': e.state, 'data-kind': e.kind });
    ge.append(svgEl('path', { d, 'marker-end': 'url(#arrow-' + marker + ')' }));
    const label = e.label ? e.label : '';
    if (label) {
      const t = svgEl('text', { x: (x1 + x2) / 2, y: (y1 + y2) / 2 - 6 - lift * 0.75, 'text-anchor': 'middle' });
      t.textContent = label;
      ge.append(t);
    }
    const tt = svgEl('title');
    tt.textContent = e.from + ' → ' + e.to + ' (' + e.state + (e.note ? ': ' + e.note : '') + ')';
    ge.append(tt);
    edgeLayer.append(ge);
  }
  for (const n of g.nodes) {
    const p = pos[n.id];
    const gn = svgEl('g', { class: 'gnode kind-' + n.kind + (n.result ? ' result-' + n.result : '') + (n.role ? ' role-' + n.role : ''),
      'data-id': n.id, 'data-result': n.result || '', 'data-role': n.role || '', tabindex: 0 });
    gn.append(svgEl('rect', { x: p.x, y: p.y, width: p.w, height: H, rx: n.kind === 'object' ? 15 : 4 }));
    const t = svgEl('text', { x: p.x + p.w / 2, y: p.y + H / 2 + 4, 'text-anchor': 'middle' });
    t.textContent = label(n);
    gn.append(t);
    const tt = svgEl('title');
    tt.textContent = n.id + (n.result ? ': ' + n.result : '');
    gn.append(tt);
    svg.append(gn);
  }
  const W = Math.max(x - GAP + 20, 200), HH = Math.max(height, 60);
  svg.setAttribute('viewBox', `0 0 ${W} ${HH}`);
  svg.setAttribute('width', W);
  svg.setAttribute('height', HH);
}

// ---- access ----

let accessCursor = '';

async function runAccess(more) {
  const q = new URLSearchParams({ resource: $('access-resource').value.trim(), subject_type: $('access-subject-type').value.trim() });
  if ($('access-perms').value.trim()) q.set('permissions', $('access-perms').value.trim());
  if (more && accessCursor) q.set('cursor', accessCursor);
  const r = await api('access?' + q);
  const body = $('access-table').tBodies[0];
  if (!more) body.textContent = '';
  for (const e of r.entries) {
    let perm = e.permission + (e.result === 'CONDITIONAL' ? ' (if ' + (e.missing_context || []).join(', ') + ')' : '');
    if (e.excluded && e.excluded.length) perm += ' except ' + e.excluded.join(', ');
    body.append(el('tr', {}, el('td', { class: 'mono' }, e.subject), el('td', {}, perm), el('td', { class: 'mono' }, e.through.join('  →  ') || 'the subject itself')));
  }
  if (!r.entries.length && !more) body.append(el('tr', {}, el('td', { colspan: '3' }, 'Nobody of this type has access.')));
  accessCursor = r.cursor || '';
  $('access-more').hidden = !accessCursor;
}

loaders.access = async () => {};

// ---- live ----

loaders.live = async () => {
  await refreshCluster();
  if (livePoll) return;
  const poll = { stop: false, cursor: '' };
  livePoll = poll;
  (async () => {
    let n = 0;
    while (!poll.stop) {
      try {
        const q = new URLSearchParams({ wait: '20' });
        if (poll.cursor) q.set('cursor', poll.cursor);
        const w = await api('watch?' + q);
        if (poll.stop) break;
        poll.cursor = w.cursor;
        const ol = $('live-watch');
        for (const c of w.changes) {
          ol.prepend(el('li', { class: 'mono op-' + c.operation }, new Date().toLocaleTimeString() + '  ' + c.operation + '  ' + c.relationship));
        }
        while (ol.children.length > 200) ol.lastChild.remove();
        if (++n % 2 === 0 || w.changes.length) await refreshCluster();
      } catch (e) {
        setStatus('watch: ' + e.message, true);
        await new Promise((res) => setTimeout(res, 5000));
      }
    }
  })();
};

const METRICS = [
  ['ambit_applied_revision', 'applied revision'], ['ambit_raft_state', 'raft role'], ['ambit_grpc_requests_total', 'gRPC calls'],
  ['ambit_grpc_errors_total', 'gRPC errors'], ['ambit_grpc_mean_latency_seconds', 'mean latency'], ['ambit_check_dispatches_total', 'check sub-problems'],
  ['ambit_check_cache_hits_total', 'cache hits'], ['ambit_check_cache_misses_total', 'cache misses'], ['go_memstats_heap_alloc_bytes', 'heap'],
  ['process_resident_memory_bytes', 'resident memory'], ['go_goroutines', 'goroutines'],
];
const ROLES = ['unknown', 'follower', 'candidate', 'leader', 'shutdown'];

function fmtMetric(name, v) {
  if (name === 'ambit_raft_state') return ROLES[v] || String(v);
  if (name.endsWith('_bytes')) return (v / 1048576).toFixed(1) + ' MiB';
  if (name.endsWith('_seconds')) return (v * 1000).toFixed(2) + ' ms';
  return String(Math.round(v));
}

async function refreshCluster() {
  const c = await api('cluster');
  const body = $('live-members').tBodies[0];
  body.textContent = '';
  for (const m of c.members) {
    body.append(el('tr', { class: 'role-' + m.role }, el('td', {}, m.id), el('td', {}, m.role + (m.voter ? '' : ' (non-voter)')),
      el('td', {}, m.applied >= 0 ? String(m.applied) : '?'), el('td', {}, m.applied >= 0 ? String(m.lag) : (m.error || '?')),
      el('td', { class: 'mono' }, m.grpc_addr), el('td', { class: 'mono' }, m.raft_addr)));
  }
  $('live-cluster-error').textContent = c.error || '';
  const dl = $('live-metrics');
  dl.textContent = '';
  for (const [name, label] of METRICS) {
    if (c.metrics[name] === undefined) continue;
    dl.append(el('dt', {}, label), el('dd', { 'data-metric': name }, fmtMetric(name, c.metrics[name])));
  }
}

// ---- wiring ----

document.addEventListener('DOMContentLoaded', () => {
  $('signin-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, $('signin-token').value.trim());
    $('signin-token').value = '';
    start();
  });
  $('signout').addEventListener('click', () => signOut());
  $('schema-check').addEventListener('click', () => guarded(checkSchema));
  if ($('schema-write')) $('schema-write').addEventListener('click', () => guarded(writeSchema));
  $('rel-filter').addEventListener('submit', (ev) => { ev.preventDefault(); guarded(() => browse(false)); });
  $('rel-more').addEventListener('click', () => guarded(() => browse(true)));
  $('rel-write').addEventListener('click', () => guarded(writeRels));
  $('import-file').addEventListener('change', async () => {
    const f = $('import-file').files[0];
    if (f) $('import-text').value = await f.text();
  });
  $('import-run').addEventListener('click', () => guarded(importFile));
  $('check-form').addEventListener('submit', (ev) => { ev.preventDefault(); guarded(runCheck); });
  $('access-form').addEventListener('submit', (ev) => { ev.preventDefault(); guarded(() => runAccess(false)); });
  $('access-more').addEventListener('click', () => guarded(() => runAccess(true)));
  window.addEventListener('hashchange', route);
  start();
});
