// The statesmith inspector page. Everything shown comes from the inspection stream and
// is rendered with textContent, never as HTML.
'use strict';

const token = new URLSearchParams(location.search).get('token') ?? '';
const graphs = new Map(); // graphId -> root node
const actors = new Map(); // sessionId -> actor
const locks = new Map(); // lock -> record
const events = []; // recent @xstate.event records
const MAX_EVENTS = 2000;
let selected = null;
let dropped = 0;
let dirty = { tree: true, detail: true, events: true, locks: true };
const flashes = []; // microsteps of the selected actor to animate

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs ?? {})) {
    if (key === 'class') node.className = value;
    else if (key.startsWith('data-')) node.setAttribute(key, value);
    else if (key === 'onclick') node.addEventListener('click', value);
    else node[key] = value;
  }
  for (const child of children) if (child !== null && child !== undefined) node.append(typeof child === 'string' ? document.createTextNode(child) : child);
  return node;
}

function stateText(value) {
  if (value === undefined || value === null) return '';
  if (typeof value === 'string') return value;
  return Object.entries(value).map(([k, v]) => `${k}.${stateText(v)}`).join(', ');
}

function apply(record) {
  switch (record.type) {
    case 'statesmith.graph':
      graphs.set(record.graphId, record.root);
      break;
    case '@xstate.actor': {
      const existing = actors.get(record.sessionId) ?? {};
      actors.set(record.sessionId, { ...existing, ...record, status: existing.status ?? 'active' });
      dirty.tree = true;
      break;
    }
    case '@xstate.snapshot': {
      // One record per processed event: the event, the transitions it took, the state after.
      const actor = actors.get(record.sessionId);
      if (!actor) break;
      if (actor.seq !== undefined && record.seq <= actor.seq) break; // already seen (the picture repeats the latest)
      actor.seq = record.seq;
      Object.assign(actor, { status: record.status, value: record.value, context: record.context, activeIds: record.activeIds, output: record.output, error: record.error });
      dirty.tree = true;
      if (record.sessionId === selected) {
        dirty.detail = true;
        if (record.transitions?.length) flashes.push(record);
      }
      if (record.event && record.event.type !== 'statesmith.inspect.attach') {
        events.push(record);
        if (events.length > MAX_EVENTS) events.splice(0, events.length - MAX_EVENTS);
        dirty.events = true;
      }
      break;
    }
    case 'statesmith.lock':
      locks.set(record.lock, record);
      dirty.locks = true;
      break;
    case 'statesmith.dropped':
      dropped += record.count;
      break;
  }
}

function actorLabel(actor) {
  return actor ? actor.id : '?';
}

function renderTree() {
  const tree = document.getElementById('tree');
  const children = new Map();
  const roots = [];
  for (const actor of actors.values()) {
    if (actor.parentId && actors.has(actor.parentId)) {
      if (!children.has(actor.parentId)) children.set(actor.parentId, []);
      children.get(actor.parentId).push(actor);
    } else roots.push(actor);
  }
  const item = (actor) => {
    const state = stateText(actor.value);
    const button = el(
      'button',
      {
        class: `actor status-${actor.status}${actor.sessionId === selected ? ' selected' : ''}`,
        'data-session': actor.sessionId,
        'data-kind': actor.kind,
        title: `${actor.kind} ${actor.id} (${actor.sessionId})`,
        onclick: () => select(actor.sessionId),
      },
      el('span', { class: 'kind' }, actor.kind),
      el('span', { class: 'name' }, actor.id),
      el('span', { class: `badge state state-badge-${state.split(/[.,]/)[0]}` }, actor.status === 'active' ? state : `${state} (${actor.status})`),
    );
    const li = el('li', { role: 'treeitem' }, button);
    const kids = children.get(actor.sessionId);
    if (kids) li.append(el('ul', { role: 'group' }, ...kids.map(item)));
    return li;
  };
  tree.replaceChildren(...roots.map(item));
}

function renderNode(node, actor, depth) {
  const active = (actor.activeIds ?? []).includes(node.id);
  const classes = ['node', node.type === 'final' ? 'final' : '', active ? 'active' : ''];
  const box = el('div', { class: classes.join(' '), 'data-node': node.id }, el('div', { class: 'title' }, depth === 0 ? actor.name ?? node.key : node.key));
  if (node.edges.length > 0) {
    box.append(
      el(
        'ul',
        { class: 'edges' },
        ...node.edges.map((edge) => {
          const targets = edge.targets.map((t) => t.split('.').at(-1)).join(', ') || '(self)';
          return el('li', { class: 'edge', 'data-source': node.id, 'data-event': edge.event }, `${edge.event.replace(/^statesmith\./, '')} → ${targets}`);
        }),
      ),
    );
  }
  if (node.children.length > 0) {
    const inner = el('div', { class: 'children' });
    for (const child of node.children) {
      const rendered = renderNode(child, actor, depth + 1);
      if (node.initial === child.key) rendered.classList.add('initial');
      inner.append(rendered);
    }
    box.append(inner);
  }
  return box;
}

function jsonTree(value, key) {
  const label = key === undefined ? [] : [el('span', { class: 'key' }, `${key}: `)];
  if (value === null || typeof value !== 'object') {
    return el('div', { class: 'leaf' }, ...label, JSON.stringify(value) ?? 'undefined');
  }
  const entries = Array.isArray(value) ? value.map((v, i) => [i, v]) : Object.entries(value);
  const details = el('details', { open: entries.length <= 12 }, el('summary', {}, ...label, Array.isArray(value) ? `[${entries.length}]` : `{${entries.length}}`));
  for (const [k, v] of entries) details.append(jsonTree(v, k));
  return details;
}

function renderDetail() {
  const actor = actors.get(selected);
  const title = document.getElementById('detail-title');
  const chart = document.getElementById('chart');
  const context = document.getElementById('context');
  const state = document.getElementById('detail-state');
  if (!actor) {
    title.textContent = 'Select an actor';
    chart.replaceChildren();
    context.replaceChildren();
    state.textContent = '';
    return;
  }
  title.textContent = `${actor.kind} ${actor.id}`;
  state.replaceChildren(el('span', { class: 'badge', id: 'selected-state' }, stateText(actor.value)), ` status: ${actor.status}`);
  const graph = graphs.get(actor.graphId);
  chart.replaceChildren(graph ? renderNode(graph, actor, 0) : el('p', {}, 'not a state machine'));
  context.replaceChildren(jsonTree(actor.context ?? null));
}

function animateFlashes() {
  const chart = document.getElementById('chart');
  for (const step of flashes.splice(0)) {
    for (const t of step.transitions) {
      for (const edge of chart.querySelectorAll('.edge')) {
        if (edge.getAttribute('data-source') === t.source && edge.getAttribute('data-event') === step.event.type) {
          edge.classList.remove('taken');
          void edge.offsetWidth;
          edge.classList.add('taken');
        }
      }
      for (const target of t.targets) {
        for (const box of chart.querySelectorAll('.node')) {
          if (box.getAttribute('data-node') === target) box.classList.add('entered');
        }
      }
    }
  }
}

function renderEvents() {
  const onlySelected = document.getElementById('only-selected').checked;
  const filter = document.getElementById('type-filter').value.trim().toLowerCase();
  const rows = [];
  for (let i = events.length - 1; i >= 0 && rows.length < 300; i--) {
    const record = events[i];
    if (onlySelected && record.sessionId !== selected) continue;
    const type = String(record.event?.type ?? '');
    if (filter && !type.toLowerCase().includes(filter)) continue;
    const { type: _type, ...payload } = record.event ?? {};
    const time = new Date(record.ts).toISOString().slice(11, 23);
    rows.push(
      el(
        'tr',
        { 'data-seq': String(record.seq) },
        el('td', {}, String(record.seq)),
        el('td', {}, time),
        el('td', { title: actorLabel(actors.get(record.sessionId)) }, actorLabel(actors.get(record.sessionId))),
        el('td', { title: type }, type.replace(/^statesmith\./, '')),
        el('td', { class: 'payload', title: JSON.stringify(payload) }, Object.keys(payload).length ? JSON.stringify(payload) : ''),
      ),
    );
  }
  document.querySelector('#events tbody').replaceChildren(...rows);
}

function renderLocks() {
  const rows = [...locks.values()]
    .sort((a, b) => a.lock.localeCompare(b.lock))
    .map((l) =>
      el(
        'tr',
        { 'data-lock': l.lock },
        el('td', {}, l.lock.replace(/^(mutex|distributed):/, '')),
        el('td', {}, l.kind),
        el('td', {}, l.op),
        el('td', {}, l.op === 'held' ? l.holder ?? '' : l.by ? `forced by ${l.by}` : ''),
        el('td', {}, String(l.waiters ?? 0)),
        el('td', {}, l.fence ?? ''),
      ),
    );
  document.querySelector('#locks tbody').replaceChildren(...rows);
}

function select(sessionId) {
  selected = sessionId;
  dirty = { tree: true, detail: true, events: true, locks: dirty.locks };
}

function render() {
  if (dirty.tree) renderTree();
  if (dirty.detail) renderDetail();
  if (dirty.events) renderEvents();
  if (dirty.locks) renderLocks();
  animateFlashes();
  dirty = { tree: false, detail: false, events: false, locks: false };
  const live = [...actors.values()].filter((a) => a.status === 'active').length;
  document.getElementById('counts').textContent = `${actors.size} actors (${live} active) · ${events.length} events${dropped ? ` · ${dropped} dropped while behind` : ''}`;
  requestAnimationFrame(render);
}

function connect() {
  const badge = document.getElementById('connection');
  const ws = new WebSocket(`${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws?token=${encodeURIComponent(token)}`);
  ws.addEventListener('open', () => {
    badge.textContent = 'live';
    badge.className = 'badge live';
  });
  ws.addEventListener('message', (message) => {
    const batch = JSON.parse(message.data);
    for (const record of Array.isArray(batch) ? batch : [batch]) apply(record);
  });
  ws.addEventListener('close', () => {
    badge.textContent = 'disconnected; retrying';
    badge.className = 'badge down';
    setTimeout(connect, 1000);
  });
}

document.getElementById('only-selected').addEventListener('change', () => (dirty.events = true));
document.getElementById('type-filter').addEventListener('input', () => (dirty.events = true));
connect();
requestAnimationFrame(render);
