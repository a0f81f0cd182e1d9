// The statesmith inspector page. Everything shown comes from the inspection stream and
// is rendered with textContent, never as HTML.
'use strict';

const token = new URLSearchParams(location.search).get('token') ?? '';
const graphs = new Map(); // graphId -> root node
const graphCommands = new Map(); // graphId -> Set of the event types it takes from outside
const actors = new Map(); // sessionId -> actor
const locks = new Map(); // lock -> record
const lockHistory = new Map(); // lock -> its records in order (the timeline)
const LOCK_HISTORY = 200;
const events = []; // recent @xstate.event records
// A late viewer gets the whole ring (10,000 records by default): keep all of it.
const MAX_EVENTS = 10000;
let selected = null;
let dropped = 0;
let closedAt = null; // when the inspector said it was closing
let downSince = null; // when the connection was lost
let retryAt = 0;
let retryDelay = 1000;
let travel = null; // the history record the detail shows instead of the live state (time travel)
let allowSend = false; // the inspector lets this page send events
let socket = null;
let sendFormKey = '';
let sends = 0;
let dirty = { tree: true, detail: true, events: true, locks: true };
const flashes = []; // microsteps of the selected actor to animate
let boot = null; // the inspector's boot id, from its hello
let chosen = false; // the person picked an actor: the page no longer picks one for them

/** Forgets everything shown: the page is now connected to another inspector (a restarted process). */
function forgetAll() {
  for (const map of [graphs, graphCommands, actors, locks, lockHistory, layouts]) map.clear();
  events.length = 0;
  flashes.length = 0;
  for (const row of treeRows.values()) row.li.remove();
  treeRows.clear();
  selected = null;
  chosen = false;
  travel = null;
  dropped = 0;
  drawn = null;
  dirty = { tree: true, detail: true, events: true, locks: true };
}

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
  return Object.entries(value)
    .map(([k, v]) => `${k}.${stateText(v)}`)
    .join(', ');
}

function apply(record) {
  switch (record.type) {
    case 'statesmith.graph':
      graphs.set(record.graphId, record.root);
      if (Array.isArray(record.commands)) graphCommands.set(record.graphId, new Set(record.commands));
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
      Object.assign(actor, { status: record.status, value: record.value, activeIds: record.activeIds, output: record.output, error: record.error });
      // A step sent without its context has a later one in the same batch, which carries it.
      if (!record.contextOmitted) actor.context = record.context;
      // What failed it: the error of an errored actor, or the one its fail event carries (a task's).
      if (record.error !== undefined) actor.failure = record.error;
      else if (record.event && /\.fail(ed)?$/.test(String(record.event.type)) && record.event.error) actor.failure = record.event.error;
      else if (actor.context?.outcome === 'failed' && actor.context.error) actor.failure = actor.context.error;
      else if (!isFailed(actor)) actor.failure = undefined;
      dirty.tree = true;
      if (record.sessionId === selected) {
        dirty.detail = true;
        if (record.transitions?.length && travel === null) flashes.push(record);
      }
      if (record.event && record.event.type !== 'statesmith.inspect.attach') {
        events.push(record);
        if (events.length > MAX_EVENTS) events.splice(0, events.length - MAX_EVENTS);
        dirty.events = true;
      }
      break;
    }
    case 'statesmith.lock': {
      const history = lockHistory.get(record.lock) ?? [];
      if (history.length === 0 || history[history.length - 1].seq < record.seq) {
        history.push(record);
        if (history.length > LOCK_HISTORY) history.splice(0, history.length - LOCK_HISTORY);
        lockHistory.set(record.lock, history);
        locks.set(record.lock, record);
      }
      dirty.locks = true;
      break;
    }
    case 'statesmith.dropped':
      dropped += record.count;
      break;
    case 'statesmith.inspector.closed':
      closedAt = record.ts ?? Date.now();
      break;
    case 'statesmith.inspector.hello':
      // Another inspector than before (its process restarted): what the page holds is of the old one.
      if (boot !== null && record.boot !== boot) forgetAll();
      boot = record.boot ?? null;
      allowSend = record.allowSend === true;
      sendFormKey = '';
      dirty.detail = true;
      break;
    case 'statesmith.inspector.recordResult': {
      // The whole record of a step whose context a live batch left out, asked for by time travel.
      const step = events.find((e) => e.seq === record.seq);
      if (step && step.contextOmitted) {
        if (record.record && record.record.seq === record.seq) {
          step.context = record.record.context;
          step.contextOmitted = false;
        } else {
          step.contextGone = true;
        }
        if (travel === step) dirty.detail = true;
      }
      break;
    }
    case 'statesmith.inspector.sendResult': {
      const out = document.getElementById('send-result');
      if (out && out.getAttribute('data-request') === record.requestId) {
        const { type: _t, requestId: _r, ...rest } = record;
        const rejected = rest.ok === false || rest.reply?.type === 'statesmith.rejected';
        out.className = rejected ? 'send-result refused' : 'send-result';
        out.textContent =
          rest.ok === false ? `refused: ${rest.code}: ${rest.reason}` : rest.reply === null ? 'sent (no reply within 1 s)' : JSON.stringify(rest.reply);
      }
      break;
    }
  }
}

/** `older` and `newer`, each in sequence order, as one list in sequence order. */
function mergeBySeq(older, newer) {
  const out = [];
  let i = 0;
  let j = 0;
  while (i < older.length || j < newer.length) {
    if (j >= newer.length || (i < older.length && older[i].seq < newer[j].seq)) out.push(older[i++]);
    else if (i < older.length && older[i].seq === newer[j].seq) i++;
    else out.push(newer[j++]);
  }
  return out;
}

/**
 * The part of a late viewer's history that comes after its first frame: older steps and
 * lock changes, merged into the event log and the lock timelines in sequence order. The
 * states are current already (the first frame had the latest of each).
 */
function mergeEarlier(records) {
  const steps = [];
  const lockSteps = new Map();
  for (const record of records) {
    if (record.type === '@xstate.snapshot' && actors.has(record.sessionId) && record.event && record.event.type !== 'statesmith.inspect.attach')
      steps.push(record);
    else if (record.type === 'statesmith.lock') (lockSteps.get(record.lock) ?? lockSteps.set(record.lock, []).get(record.lock)).push(record);
  }
  const merged = mergeBySeq(steps, events);
  events.splice(0, events.length, ...merged.slice(Math.max(0, merged.length - MAX_EVENTS)));
  for (const [lock, older] of lockSteps) {
    const history = mergeBySeq(older, lockHistory.get(lock) ?? []);
    lockHistory.set(lock, history.slice(Math.max(0, history.length - LOCK_HISTORY)));
    if (!locks.has(lock)) locks.set(lock, history[history.length - 1]);
  }
  // The states are as they were: only the log, the timelines and the selected actor's scrubber change.
  dirty.events = true;
  if (lockSteps.size > 0) dirty.locks = true;
  if (steps.some((step) => step.sessionId === selected)) dirty.detail = true;
}

/** An actor's name: its id, or its machine's id for an actor with a generated one (x:0). */
function actorLabel(actor) {
  if (!actor) return '?';
  if (/^x:\d+$/.test(actor.id) && actor.name) return actor.name;
  // An id XState made up for an invoke without one (`0.haAgent.running.cycle`): the logic's name, or the state it runs in.
  if (/^\d+\./.test(actor.id)) return actor.src ?? actor.id.split('.').at(-1) ?? actor.id;
  return actor.id;
}

/** Outcomes an executor's run shows red for: it failed, or a crash cut it short (a durable executor's `interrupted`). */
const BAD_OUTCOMES = new Set(['failed', 'interrupted']);

/**
 * True for an actor that ended in failure: XState's error status, or a done.failed state;
 * and for an executor whose last run failed or was interrupted (until a later one ends otherwise).
 */
function isFailed(actor) {
  if (actor.status === 'error') return true;
  const context = actor.context;
  if (context && (BAD_OUTCOMES.has(context.outcome) || (context.outcome == null && BAD_OUTCOMES.has(context.lastOutcome)))) return true;
  const value = actor.value;
  return value !== null && typeof value === 'object' && value.done === 'failed';
}

/** The session ids of `sessionId` and every actor under it. */
function subtreeOf(sessionId) {
  const out = new Set([sessionId]);
  let grew = true;
  while (grew) {
    grew = false;
    for (const actor of actors.values()) {
      if (actor.parentId && out.has(actor.parentId) && !out.has(actor.sessionId)) {
        out.add(actor.sessionId);
        grew = true;
      }
    }
  }
  return out;
}

/**
 * The event-type filter: words separated by spaces or commas; a word starting with "-" or
 * "!" excludes the types containing it, the others include (any of them).
 */
function typeFilter(text) {
  const words = text
    .toLowerCase()
    .split(/[\s,]+/)
    .filter(Boolean);
  const exclude = words.filter((w) => /^[-!]./.test(w)).map((w) => w.slice(1));
  const include = words.filter((w) => !/^[-!]/.test(w));
  return (type) => {
    const t = type.toLowerCase();
    if (exclude.some((w) => t.includes(w))) return false;
    return include.length === 0 || include.some((w) => t.includes(w));
  };
}

/**
 * The event types the actor's current states take (from its chart) that may be sent from
 * outside: without XState's own, wildcards, and a statesmith actor's internal events (the
 * capture lists the machine's commands).
 */
function acceptedTypes(actor) {
  const graph = graphs.get(actor.graphId);
  if (!graph) return [];
  const commands = graphCommands.get(actor.graphId);
  const active = new Set(actor.activeIds ?? []);
  const types = new Set();
  const visit = (node) => {
    if (active.has(node.id) || node === graph)
      for (const edge of node.edges)
        if (!edge.event.startsWith('xstate.') && !edge.event.includes('*') && (!commands || commands.has(edge.event))) types.add(edge.event);
    for (const child of node.children) visit(child);
  };
  visit(graph);
  return [...types].sort();
}

/** The form that sends an event to the selected actor (only when the inspector allows it). */
function renderSendForm(actor) {
  const host = document.getElementById('send');
  if (!allowSend || !actor || actor.status !== 'active' || travel !== null) {
    if (sendFormKey !== '') host.replaceChildren();
    sendFormKey = '';
    return;
  }
  const types = acceptedTypes(actor);
  const key = `${actor.sessionId}|${types.join(',')}`;
  if (key === sendFormKey) return;
  sendFormKey = key;
  const previous = document.getElementById('send-payload')?.value ?? '{}';
  const typeInput = el('input', { id: 'send-type', placeholder: 'event type', value: types[0] ?? '' });
  typeInput.setAttribute('list', 'send-types');
  const list = el('datalist', { id: 'send-types' }, ...types.map((type) => el('option', { value: type })));
  const payload = el('textarea', { id: 'send-payload', rows: 2, value: previous, title: 'the payload, as a JSON object' });
  const result = el('div', { id: 'send-result', class: 'send-result' });
  const button = el('button', { id: 'send-button', type: 'submit' }, 'send');
  const form = el('form', { id: 'send-form' }, el('h3', {}, 'Send an event'), typeInput, list, payload, button, result);
  form.addEventListener('submit', (submit) => {
    submit.preventDefault();
    let fields;
    try {
      fields = JSON.parse(payload.value || '{}');
      if (fields === null || typeof fields !== 'object' || Array.isArray(fields)) throw new Error('a JSON object');
    } catch (error) {
      result.className = 'send-result refused';
      result.textContent = `the payload must be a JSON object (${error.message})`;
      return;
    }
    const requestId = `send-${++sends}`;
    result.setAttribute('data-request', requestId);
    result.className = 'send-result';
    result.textContent = 'sending…';
    socket?.send(
      JSON.stringify({ type: 'statesmith.inspector.send', requestId, sessionId: actor.sessionId, event: { ...fields, type: typeInput.value.trim() } }),
    );
  });
  host.replaceChildren(form);
}

/** The tree's rows by session id: updated in place, so a row under the pointer is never replaced while it is clicked. */
const treeRows = new Map();

function setText(node, text) {
  if (node.textContent !== text) node.textContent = text;
}

function setAttr(node, name, value) {
  if (node.getAttribute(name) !== value) node.setAttribute(name, value);
}

/** A durable actor's mark: whether it came back from a snapshot, and the fence it runs under. */
function durableMark(actor) {
  if (actor.kind !== 'durable' || actor.context === null || typeof actor.context !== 'object') return '';
  const { restored, fence } = actor.context;
  const parts = [];
  if (restored === true) parts.push('restored');
  if (typeof fence === 'string') parts.push(`fence ${fence}`);
  return parts.join(' · ');
}

function rowFor(actor) {
  let row = treeRows.get(actor.sessionId);
  if (row === undefined) {
    const sessionId = actor.sessionId;
    const button = el('button', { onclick: () => select(sessionId) });
    const kind = el('span', { class: 'kind' });
    const name = el('span', { class: 'name' });
    const badge = el('span', {});
    const mark = el('span', { class: 'durable-mark' });
    button.append(kind, name, badge, mark);
    row = { li: el('li', { role: 'treeitem' }, button), button, kind, name, badge, mark, ul: null };
    treeRows.set(sessionId, row);
  }
  return row;
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
  const place = (container, all) => {
    const list = collapseFinished(all);
    list.forEach(({ actor, count }, i) => {
      const row = rowFor(actor);
      const state = stateText(actor.value);
      const failed = isFailed(actor);
      setAttr(row.button, 'class', `actor status-${actor.status}${failed ? ' failed' : ''}${actor.sessionId === selected ? ' selected' : ''}`);
      setAttr(row.button, 'data-session', actor.sessionId);
      setAttr(row.button, 'data-kind', actor.kind);
      setAttr(
        row.button,
        'title',
        `${actor.kind} ${actorLabel(actor)} (${actor.sessionId})${failed && actor.failure ? `: ${actor.failure.name}: ${actor.failure.message}` : ''}`,
      );
      setText(row.kind, actor.kind);
      setText(row.name, count > 1 ? `${actorLabel(actor)} ×${count}` : actorLabel(actor));
      if (count > 1) setAttr(row.button, 'title', `${count} finished ${actor.kind} actors named ${actorLabel(actor)}; the latest is shown`);
      setAttr(row.button, 'data-count', String(count));
      setAttr(row.badge, 'class', `badge state state-badge-${state.split(/[.,]/)[0]}`);
      setText(row.badge, actor.status === 'active' ? state : `${state} (${actor.status})`);
      setText(row.mark, durableMark(actor));
      if (container.children[i] !== row.li) container.insertBefore(row.li, container.children[i] ?? null);
      const kids = children.get(actor.sessionId);
      if (kids) {
        if (row.ul === null) {
          row.ul = el('ul', { role: 'group' });
          row.li.append(row.ul);
        }
        place(row.ul, kids);
      } else if (row.ul !== null) {
        row.ul.remove();
        row.ul = null;
      }
    });
    while (container.children.length > list.length) container.lastElementChild.remove();
  };
  place(tree, roots);
  // On load the middle panel shows something: the running root with the largest tree (the
  // agent, in a demo), until the person picks an actor themselves.
  if (!chosen && (selected === null || !actors.has(selected))) {
    const size = (actor) => 1 + (children.get(actor.sessionId) ?? []).reduce((n, kid) => n + size(kid), 0);
    let best = null;
    let bestSize = 0;
    for (const root of roots) {
      if (root.status !== 'active') continue;
      const n = size(root);
      if (n > bestSize) [best, bestSize] = [root, n];
    }
    if (best !== null) {
      selected = best.sessionId;
      dirty.detail = true;
      const row = treeRows.get(selected);
      if (row) setAttr(row.button, 'class', `${row.button.getAttribute('class')} selected`);
    }
  }
  for (const [sessionId, row] of treeRows) {
    if (!actors.has(sessionId)) {
      row.li.remove();
      treeRows.delete(sessionId);
    }
  }
}

/**
 * Siblings that finished under one name (a coordinator's pings, one per heartbeat) as one
 * row: the latest, with how many there were. Running actors and the selected one always
 * have their own row.
 */
function collapseFinished(list) {
  const keyOf = (actor) => `${actor.kind}|${actorLabel(actor)}`;
  const latest = new Map();
  const counts = new Map();
  for (const actor of list) {
    if (actor.status === 'active') continue;
    latest.set(keyOf(actor), actor);
    counts.set(keyOf(actor), (counts.get(keyOf(actor)) ?? 0) + 1);
  }
  const out = [];
  for (const actor of list) {
    if (actor.status === 'active') out.push({ actor, count: 1 });
    else if (latest.get(keyOf(actor)) === actor) out.push({ actor, count: counts.get(keyOf(actor)) });
    else if (actor.sessionId === selected) out.push({ actor, count: 1 });
  }
  return out;
}

function renderNode(node, actor, depth) {
  const active = (actor.activeIds ?? []).includes(node.id);
  const classes = ['node', node.type === 'final' ? 'final' : '', active ? 'active' : ''];
  const box = el('div', { class: classes.join(' '), 'data-node': node.id }, el('div', { class: 'title' }, depth === 0 ? (actor.name ?? node.key) : node.key));
  if (node.edges.length > 0) {
    box.append(
      el(
        'ul',
        { class: 'edges' },
        ...node.edges.map((edge) => {
          const targets = edge.targets.map((t) => t.split('.').at(-1)).join(', ') || '(self)';
          return el(
            'li',
            { class: 'edge', 'data-source': node.id, 'data-target': edge.targets[0] ?? '', 'data-event': edge.event },
            `${edgeLabel(edge)} → ${targets}`,
          );
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

// ---- The drawn statechart: laid out by elkjs (served by the inspector, no CDN), drawn as SVG ----

const SVG = 'http://www.w3.org/2000/svg';
const layouts = new Map(); // graphId -> Promise of the laid-out ELK graph
let drawn = null; // { graphId, svg } now in #chart

function svg(tag, attrs, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs ?? {})) node.setAttribute(key, String(value));
  for (const child of children) if (child !== null && child !== undefined) node.append(typeof child === 'string' ? document.createTextNode(child) : child);
  return node;
}

const shortEvent = (event) => event.replace(/^statesmith\.[a-zA-Z]+\./, '');

/** An arrow's label: the event (eventless, delayed and done events in words) and its guard in brackets. */
function edgeLabel(edge) {
  const event = edge.event;
  let text;
  if (event === '') text = 'always';
  else if (event.startsWith('xstate.after.')) text = `after ${event.split('.')[2]} ms`;
  else if (event.startsWith('xstate.done.actor.')) text = `done: ${event.slice('xstate.done.actor.'.length)}`;
  else if (event.startsWith('xstate.error.actor.')) text = `error: ${event.slice('xstate.error.actor.'.length)}`;
  else if (event.startsWith('xstate.done.state.')) text = 'done';
  else text = shortEvent(event);
  return edge.guard ? `${text} [${edge.guard}]` : text;
}

/** The machine's graph as ELK wants it: states (compound ones hold their children) and one edge per event and target. */
function elkGraphOf(root) {
  const edges = [];
  const seen = new Set();
  const node = (state, depth) => {
    const label = depth === 0 ? state.id : state.key;
    const children = state.children.map((child) => node(child, depth + 1));
    for (const edge of state.edges) {
      if (edge.event === 'xstate.init') continue;
      for (const target of edge.targets) {
        if (target === state.id) continue;
        const id = `${state.id}|${edge.event}|${edge.guard ?? ''}|${target}`;
        if (seen.has(id)) continue;
        seen.add(id);
        const text = edgeLabel(edge);
        edges.push({
          id,
          sources: [state.id],
          targets: [target],
          labels: [{ text, width: text.length * 6 + 4, height: 12 }],
          event: edge.event,
          source: state.id,
          target,
          guard: edge.guard ?? '',
        });
      }
    }
    const width = Math.max(70, label.length * 7 + 20);
    return {
      id: state.id,
      labels: [{ text: label, width: label.length * 7, height: 14 }],
      ...(children.length ? { children, layoutOptions: { 'elk.padding': '[top=26,left=10,bottom=10,right=10]' } } : { width, height: 28 }),
      stateType: state.type,
      initial: state.initial,
    };
  };
  const top = node(root, 0);
  return {
    id: '__root',
    layoutOptions: {
      'elk.algorithm': 'layered',
      'elk.direction': 'DOWN',
      'elk.hierarchyHandling': 'INCLUDE_CHILDREN',
      'elk.json.shapeCoords': 'ROOT',
      'elk.json.edgeCoords': 'ROOT',
      'elk.layered.spacing.nodeNodeBetweenLayers': '40',
      'elk.spacing.edgeLabel': '2',
    },
    children: [top],
    edges,
  };
}

let elkLoaded = null;

/** Loads elkjs (1.6 MB) the first time a chart is drawn, so the page and its socket do not wait for it. */
function loadElk() {
  elkLoaded ??= new Promise((resolve, reject) => {
    if (typeof ELK === 'function') return resolve();
    const script = document.createElement('script');
    script.src = `elk.js?token=${encodeURIComponent(token)}`;
    script.addEventListener('load', () => resolve());
    script.addEventListener('error', () => reject(new Error('elk.js did not load')));
    document.head.append(script);
  });
  return elkLoaded;
}

function layoutOf(graphId) {
  if (!layouts.has(graphId)) {
    const graph = graphs.get(graphId);
    const laid = loadElk().then(() => {
      if (typeof ELK !== 'function' || !graph) throw new Error('no layout engine');
      return new ELK().layout(elkGraphOf(graph));
    });
    laid.catch((error) => console.warn('statesmith inspector: the chart could not be laid out', error));
    layouts.set(graphId, laid);
  }
  return layouts.get(graphId);
}

/** Draws a laid-out graph: states as boxes (compound ones around their children), transitions as labelled arrows. */
function drawLayout(layout) {
  const width = Math.ceil(layout.width ?? 400) + 20;
  const height = Math.ceil(layout.height ?? 200) + 20;
  // As wide as the panel, as tall as the layout's shape needs (at most 70% of the window: zoom for more).
  const root = svg('svg', { id: 'chart-svg', viewBox: `-10 -10 ${width} ${height}`, width: '100%', role: 'img', 'aria-label': 'statechart' });
  root.style.maxHeight = '70vh';
  root.append(
    svg(
      'defs',
      {},
      svg(
        'marker',
        { id: 'arrow', viewBox: '0 0 10 10', refX: 9, refY: 5, markerWidth: 8, markerHeight: 8, markerUnits: 'userSpaceOnUse', orient: 'auto-start-reverse' },
        svg('path', { d: 'M 0 0 L 10 5 L 0 10 z', class: 'arrow-head' }),
      ),
    ),
  );
  const nodes = svg('g', { class: 'states' });
  const visit = (n, parentInitial) => {
    const g = svg('g', { class: `svg-node${n.children ? ' compound' : ''}${n.stateType === 'final' ? ' final' : ''}`, 'data-node': n.id });
    g.append(svg('rect', { x: n.x, y: n.y, width: n.width, height: n.height, rx: 6 }));
    const label = n.labels?.[0]?.text ?? n.id;
    g.append(
      svg('text', { x: n.x + 8, y: n.y + 17, class: 'state-label' }, `${parentInitial === label ? '→ ' : ''}${label}${n.stateType === 'final' ? ' ◉' : ''}`),
    );
    nodes.append(g);
    for (const child of n.children ?? []) visit(child, n.initial);
  };
  for (const child of layout.children ?? []) visit(child, undefined);
  const arrows = svg('g', { class: 'transitions' });
  for (const edge of layout.edges ?? []) {
    const section = edge.sections?.[0];
    if (!section) continue;
    const points = [section.startPoint, ...(section.bendPoints ?? []), section.endPoint].map((p) => `${p.x},${p.y}`).join(' ');
    const g = svg('g', { class: 'edge', 'data-source': edge.source, 'data-target': edge.target, 'data-event': edge.event, 'data-guard': edge.guard });
    g.append(svg('polyline', { points, 'marker-end': 'url(#arrow)' }));
    const label = edge.labels?.[0];
    if (label) g.append(svg('text', { x: label.x, y: label.y + 10, class: 'edge-label' }, label.text));
    arrows.append(g);
  }
  root.append(nodes, arrows);
  enableZoom(root, width, height);
  return root;
}

/** Wheel zooms around the pointer, dragging pans; a double click resets. */
function enableZoom(root, width, height) {
  let box = { x: -10, y: -10, w: width, h: height };
  const apply = () => root.setAttribute('viewBox', `${box.x} ${box.y} ${box.w} ${box.h}`);
  // The view as it is now (a first view may have been set after drawing: see fitReadable).
  const current = () => {
    const [x, y, w, h] = (root.getAttribute('viewBox') ?? '').split(' ').map(Number);
    return Number.isFinite(w) && Number.isFinite(h) ? { x, y, w, h } : box;
  };
  root.addEventListener(
    'wheel',
    (event) => {
      event.preventDefault();
      box = current();
      const rect = root.getBoundingClientRect();
      const fx = (event.clientX - rect.left) / rect.width;
      const fy = (event.clientY - rect.top) / rect.height;
      const scale = event.deltaY < 0 ? 0.8 : 1.25;
      const w = Math.min(width * 4, Math.max(40, box.w * scale));
      const h = (w / box.w) * box.h;
      box = { x: box.x + (box.w - w) * fx, y: box.y + (box.h - h) * fy, w, h };
      apply();
    },
    { passive: false },
  );
  let drag = null;
  root.addEventListener('pointerdown', (event) => {
    drag = { x: event.clientX, y: event.clientY, box: current() };
  });
  root.addEventListener('pointermove', (event) => {
    if (!drag) return;
    const rect = root.getBoundingClientRect();
    box = {
      ...drag.box,
      x: drag.box.x - ((event.clientX - drag.x) * drag.box.w) / rect.width,
      y: drag.box.y - ((event.clientY - drag.y) * drag.box.h) / rect.height,
    };
    apply();
  });
  root.addEventListener('pointerup', () => (drag = null));
  root.addEventListener('pointerleave', () => (drag = null));
  root.addEventListener('dblclick', () => {
    box = { x: -10, y: -10, w: width, h: height };
    apply();
  });
}

/** The smallest scale at which a state's label can be read (they are laid out at 11 px). */
const READABLE_SCALE = 0.6;

/**
 * A chart too large to read whole in its panel (a locksmith's force run) starts at a
 * readable scale, centred on the active state, in a taller frame; a double click shows it
 * whole, and the wheel and a drag move about as ever.
 */
function fitReadable(root) {
  const [, , w, h] = (root.getAttribute('viewBox') ?? '').split(' ').map(Number);
  const panel = root.getBoundingClientRect().width;
  if (!panel || !w || panel / w >= READABLE_SCALE) return;
  const frameHeight = Math.round(Math.min(window.innerHeight * 0.7, h * READABLE_SCALE));
  root.style.height = `${frameHeight}px`;
  const viewW = panel / READABLE_SCALE;
  const viewH = frameHeight / READABLE_SCALE;
  // Centre on the innermost active state (the last one drawn is the deepest), else the top left.
  const actives = [...root.querySelectorAll('g.svg-node.active > rect')];
  const target = actives[actives.length - 1];
  const cx = target ? Number(target.getAttribute('x')) + Number(target.getAttribute('width')) / 2 : viewW / 2;
  const cy = target ? Number(target.getAttribute('y')) + Number(target.getAttribute('height')) / 2 : viewH / 2;
  // Kept inside the drawing: no empty band past its edges.
  const within = (centre, view, whole) => Math.max(-10, Math.min(centre - view / 2, whole - 10 - view));
  root.setAttribute('viewBox', `${within(cx, viewW, w)} ${within(cy, viewH, h)} ${viewW} ${viewH}`);
  root.setAttribute('data-fit', 'readable');
}

/** Marks the active states of `actor` on the drawn chart. */
function markActive(root, actor) {
  const active = new Set(actor.activeIds ?? []);
  for (const g of root.querySelectorAll('g.svg-node')) g.classList.toggle('active', active.has(g.getAttribute('data-node')));
}

/** Draws the selected actor's chart (laid out once per machine), or nested boxes when no layout engine is there. */
function drawChart(chart, graphId, shown) {
  if (drawn && drawn.graphId === graphId && chart.contains(drawn.svg)) {
    markActive(drawn.svg, shown);
    return;
  }
  const graph = graphs.get(graphId);
  chart.replaceChildren(graph ? renderNode(graph, shown, 0) : el('p', {}, 'not a state machine'));
  if (!graph) return;
  const want = selected;
  layoutOf(graphId).then(
    (layout) => {
      if (selected !== want) return;
      const root = drawLayout(layout);
      drawn = { graphId, svg: root };
      chart.replaceChildren(root);
      const actor = actors.get(selected);
      if (actor) markActive(root, travel && travel.sessionId === selected ? { ...actor, activeIds: travel.activeIds } : actor);
      fitReadable(root);
    },
    () => undefined,
  );
}

// ---- The sequence view: who sent what to whom, for the selected actor's subtree ----

/** The messages between actors (the sender is known) around the selected actor, as a sequence diagram. */
function renderSequence() {
  const host = document.getElementById('sequence');
  if (!selected || !document.getElementById('show-sequence').checked) {
    host.replaceChildren();
    return;
  }
  const scope = subtreeOf(selected);
  const windowMs = Number(document.getElementById('sequence-window').value);
  const since = windowMs > 0 ? Date.now() - windowMs : 0;
  const messages = events.filter((r) => r.sourceId && r.sourceId !== 'null' && (scope.has(r.sessionId) || scope.has(r.sourceId)) && r.ts >= since).slice(-150);
  if (messages.length === 0) {
    host.replaceChildren(el('p', { class: 'muted' }, 'no messages between actors in this window'));
    return;
  }
  const lanes = [];
  for (const m of messages) for (const id of [m.sourceId, m.sessionId]) if (!lanes.includes(id)) lanes.push(id);
  const laneWidth = 130;
  const x = (id) => 65 + lanes.indexOf(id) * laneWidth;
  const height = 40 + messages.length * 20;
  const root = svg('svg', { id: 'sequence-svg', viewBox: `0 0 ${lanes.length * laneWidth} ${height}`, width: lanes.length * laneWidth, height });
  root.append(
    svg(
      'defs',
      {},
      svg(
        'marker',
        { id: 'seq-arrow', viewBox: '0 0 10 10', refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, markerUnits: 'userSpaceOnUse', orient: 'auto' },
        svg('path', { d: 'M 0 0 L 10 5 L 0 10 z', class: 'arrow-head' }),
      ),
    ),
  );
  for (const id of lanes) {
    const actor = actors.get(id);
    root.append(
      svg('text', { x: x(id), y: 14, class: 'lane-label', 'text-anchor': 'middle', 'data-lane': id }, actor ? actorLabel(actor) : id),
      svg('line', { x1: x(id), y1: 20, x2: x(id), y2: height, class: 'lifeline' }),
    );
  }
  messages.forEach((m, i) => {
    const y = 36 + i * 20;
    const from = x(m.sourceId);
    const to = x(m.sessionId);
    const type = String(m.event?.type ?? '');
    const g = svg('g', { class: 'message', 'data-seq': m.seq, 'data-from': m.sourceId, 'data-to': m.sessionId });
    if (from === to) g.append(svg('path', { d: `M ${from} ${y - 6} h 24 v 8 h -24`, 'marker-end': 'url(#seq-arrow)' }));
    else g.append(svg('line', { x1: from, y1: y, x2: to, y2: y, 'marker-end': 'url(#seq-arrow)' }));
    g.append(
      svg(
        'text',
        { x: (from + to) / 2 + (from === to ? 30 : 0), y: y - 3, 'text-anchor': from === to ? 'start' : 'middle', class: 'message-label' },
        shortEvent(type),
      ),
    );
    g.append(svg('title', {}, `#${m.seq} ${type}`));
    g.addEventListener('click', () => travelTo(m));
    root.append(g);
  });
  host.replaceChildren(root);
}

function jsonTree(value, key) {
  const label = key === undefined ? [] : [el('span', { class: 'key' }, `${key}: `)];
  if (value === null || typeof value !== 'object') {
    return el('div', { class: 'leaf' }, ...label, JSON.stringify(value) ?? 'undefined');
  }
  const entries = Array.isArray(value) ? value.map((v, i) => [i, v]) : Object.entries(value);
  const details = el(
    'details',
    { open: entries.length <= 12 },
    el('summary', {}, ...label, Array.isArray(value) ? `[${entries.length}]` : `{${entries.length}}`),
  );
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
    document.getElementById('history').replaceChildren();
    renderSendForm(null);
    return;
  }
  title.textContent = `${actor.kind} ${actorLabel(actor)}`;
  // Time travel: the snapshot, context and active states right after the chosen event.
  const history = events.filter((record) => record.sessionId === selected);
  const past = travel !== null && travel.sessionId === selected ? travel : null;
  const shown = past ? { ...actor, status: past.status, value: past.value, context: past.context, activeIds: past.activeIds } : actor;
  const scrubber = el('input', {
    type: 'range',
    id: 'scrubber',
    min: '0',
    max: String(Math.max(0, history.length - 1)),
    value: String(past ? history.indexOf(past) : history.length - 1),
    title: "step through this actor's history",
  });
  scrubber.addEventListener('input', () => {
    const index = Number(scrubber.value);
    travelTo(index >= history.length - 1 ? null : history[index]);
  });
  const when = past
    ? el(
        'div',
        { class: 'travel', id: 'travel' },
        `as it was after #${past.seq} ${String(past.event?.type ?? '')} (${new Date(past.ts).toISOString().slice(11, 23)}) `,
        el('button', { id: 'back-to-live', onclick: () => travelTo(null) }, 'back to live'),
      )
    : el('div', { class: 'travel live-view' }, 'live');
  document.getElementById('history').replaceChildren(scrubber, when);
  const failed = isFailed(shown);
  state.replaceChildren(el('span', { class: `badge${failed ? ' failed' : ''}`, id: 'selected-state' }, stateText(shown.value)), ` status: ${shown.status}`);
  const restoredFrom = actor.kind === 'durable' ? actor.context?.restoredFrom : undefined;
  if (typeof restoredFrom === 'number') {
    state.append(
      el(
        'div',
        { class: 'durable-detail', id: 'durable-detail' },
        `restored the snapshot saved at ${new Date(restoredFrom).toISOString()}${typeof actor.context.fence === 'string' ? `, under fence ${actor.context.fence}` : ''}`,
      ),
    );
  }
  if (failed && actor.failure) {
    const failure = actor.failure;
    const headline = `${failure.name ?? 'Error'}${failure.code ? ` [${failure.code}]` : ''}: ${failure.message ?? ''}`;
    const box = el('div', { class: 'failure', id: 'failure' }, el('strong', {}, headline));
    if (failure.stack) box.append(el('details', {}, el('summary', {}, 'stack'), el('pre', {}, String(failure.stack))));
    state.append(box);
  }
  drawChart(chart, actor.graphId, shown);
  if (past && past.contextOmitted) {
    context.replaceChildren(
      el(
        'div',
        { class: 'context-pending', id: 'context-pending' },
        past.contextGone ? "this step has left the inspector's history; its context is no longer held" : "loading this step's context…",
      ),
    );
  } else {
    context.replaceChildren(jsonTree(shown.context ?? null));
  }
  renderSendForm(actor);
}

function animateFlashes() {
  const chart = document.getElementById('chart');
  for (const step of flashes.splice(0)) {
    for (const t of step.transitions) {
      // The arrow of this microstep: from its source to its target, by the event that took it
      // (an eventless or delayed step was taken by another event than the one processed).
      const arrows = [...chart.querySelectorAll('.edge')].filter(
        (edge) => edge.getAttribute('data-source') === t.source && (t.targets.length === 0 || edge.getAttribute('data-target') === t.targets[0]),
      );
      const byEvent = arrows.filter((edge) => edge.getAttribute('data-event') === step.event.type);
      for (const edge of byEvent.length > 0 ? byEvent : arrows.slice(0, 1)) {
        edge.classList.remove('taken');
        void edge.offsetWidth;
        edge.classList.add('taken');
      }
      for (const target of t.targets) {
        for (const box of chart.querySelectorAll('[data-node]')) {
          if (box.getAttribute('data-node') === target) box.classList.add('entered');
        }
      }
    }
  }
}

/**
 * Heartbeat-only traffic: delayed events (`xstate.after.*`: heartbeats, back-offs, timer
 * slices) and a coordinator's `ping` child with what it answers. Hidden unless asked for.
 */
function isHeartbeat(record) {
  const type = String(record.event?.type ?? '');
  if (type.startsWith('xstate.after.') || type === 'xstate.done.actor.ping' || type === 'xstate.error.actor.ping') return true;
  return actors.get(record.sessionId)?.id === 'ping';
}

function renderEvents() {
  const onlySelected = document.getElementById('only-selected').checked;
  const showHeartbeats = document.getElementById('show-heartbeats').checked;
  const accepts = typeFilter(document.getElementById('type-filter').value);
  // The selected actor with its children, grandchildren...
  const scope = onlySelected && selected ? subtreeOf(selected) : null;
  const rows = [];
  for (let i = events.length - 1; i >= 0 && rows.length < 300; i--) {
    const record = events[i];
    if (scope && !scope.has(record.sessionId)) continue;
    const type = String(record.event?.type ?? '');
    if (!accepts(type)) continue;
    if (!showHeartbeats && isHeartbeat(record)) continue;
    const { type: _type, ...payload } = record.event ?? {};
    const time = new Date(record.ts).toISOString().slice(11, 23);
    rows.push(
      el(
        'tr',
        { 'data-seq': String(record.seq), class: travel === record ? 'travelled' : '', onclick: () => travelTo(record) },
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
        el('td', {}, l.op === 'held' ? (l.holder ?? '') : l.by ? `forced by ${l.by}` : ''),
        el('td', {}, String(l.waiters ?? 0)),
        el('td', {}, l.fence ?? ''),
      ),
    );
  document.querySelector('#locks tbody').replaceChildren(...rows);
  renderTimeline();
}

/**
 * A lock's holds from its history: a bar from each grant to the change that ended it (a
 * release, a force, a loss), or to now. A record that only updates the waiters of the same
 * hold does not start a new bar.
 */
function holdsOf(history, now) {
  const holds = [];
  let open = null;
  for (const record of history) {
    if (record.op === 'held') {
      if (open && open.holder === record.holder && open.fence === record.fence) {
        open.waiters = Math.max(open.waiters, record.waiters ?? 0);
        continue;
      }
      if (open) open.end = record.ts;
      open = { holder: record.holder, fence: record.fence, start: record.ts, end: null, waiters: record.waiters ?? 0, forcedBy: null };
      holds.push(open);
    } else if (record.op === 'waiting') {
      // Someone here waits while another process holds it: counted on the open hold, if any.
      if (open) open.waiters = Math.max(open.waiters, record.waiters ?? 0);
    } else if (open) {
      open.end = record.ts;
      if (record.op === 'forced' || record.op === 'lost') {
        // A force names who took it; a loss says why (a lease that ran out, a break it heard of).
        open.forcedBy = record.op === 'forced' ? (record.by ?? 'a force') : null;
        open.lostWhy = record.op === 'lost' ? (record.by ?? 'its lease or connection was lost') : null;
        // The locksmith's force run that took it, when capture saw it: the bar links to its actor.
        open.forceRun = record.forceRun && typeof record.forceRun === 'object' ? record.forceRun : null;
      }
      open = null;
    }
  }
  for (const hold of holds) if (hold.end === null) hold.end = now;
  return holds;
}

/** The actor of a force run, named by its locksmith's session id and its child id, once it has shown. */
function forceRunActor(place) {
  for (const actor of actors.values()) if (actor.parentId === place.parentId && actor.id === place.id) return actor;
  return undefined;
}

/** About how wide one character of a bar's 10 px label is, in px. */
const CHAR_PX = 6.2;

/** Who held each lock when: bars on a shared time axis, with fences, waiters and forces. */
/**
 * What part of time the lock timeline shows: the last `span` ms up to `end` (null: up to
 * now, following live), or everything (`span` null). The window menu sets the span; the
 * wheel zooms about the pointer, a drag pans, a double click goes back to live.
 */
const timelineView = { span: null, end: null };

function timelineRange(now, first) {
  const end = timelineView.end ?? now;
  const span = timelineView.span ?? Math.max(1, end - first);
  return { t0: end - span, t1: end, span };
}

/** The locks the timeline shows (the first 16 by name), and when the earliest of their records is. */
function timelineLocks() {
  const shown = [...lockHistory.entries()].sort((a, b) => a[0].localeCompare(b[0])).slice(0, 16);
  const starts = shown.flatMap(([, history]) => history.map((r) => r.ts)).filter((t) => typeof t === 'number');
  return { shown, first: starts.length ? Math.min(...starts) : null };
}

function renderTimeline() {
  const host = document.getElementById('timeline');
  const now = Date.now();
  const { shown, first } = timelineLocks();
  if (first === null) {
    host.replaceChildren();
    return;
  }
  const { t0, t1, span } = timelineRange(now, first);
  // The track's width in pixels (the label column takes the rest), for what a bar's label can hold.
  const trackWidth = Math.max(40, host.clientWidth - 110);
  const rows = shown.map(([lock, history]) => {
    const track = el('div', { class: 'track' });
    for (const hold of holdsOf(history, now)) {
      // Only what falls in the window, cut at its edges.
      if (hold.end < t0 || hold.start > t1) continue;
      const from = Math.max(hold.start, t0);
      const to = Math.min(hold.end, t1);
      const left = ((from - t0) / span) * 100;
      const width = Math.max(0.5, ((to - from) / span) * 100);
      const fence = hold.fence !== null && hold.fence !== undefined ? String(hold.fence) : '';
      const title = `${hold.holder ?? '?'}${fence ? `, fence ${fence}` : ''}, held ${Math.round(hold.end - hold.start)} ms${hold.waiters ? `, ${hold.waiters} waiting` : ''}${hold.forcedBy ? `, taken by ${hold.forcedBy}` : ''}${hold.lostWhy ? `, lost: ${hold.lostWhy}` : ''}`;
      const run = hold.forceRun ? forceRunActor(hold.forceRun) : undefined;
      const taken = hold.forcedBy || hold.lostWhy;
      const attrs = {
        class: `lock-bar${taken ? ' forced' : ''}${run ? ' linked' : ''}`,
        title: run ? `${title}; click to open the force run ${actorLabel(run)}` : title,
        'data-fence': fence,
        'data-holder': hold.holder ?? '',
      };
      if (run) {
        attrs['data-force-run'] = run.sessionId;
        attrs.onclick = () => select(run.sessionId);
      }
      // The fence is never cut inside its digits: the whole fence, or its last digits after an
      // ellipsis, or none (the tooltip has it) when even that does not fit; the holder is what shortens.
      const px = (width / 100) * trackWidth - 6;
      const fenceText = !fence ? '' : fence.length * CHAR_PX + 8 <= px ? `#${fence}` : 5 * CHAR_PX + 8 <= px ? `#…${fence.slice(-4)}` : '';
      const bar = el('div', attrs, fenceText ? el('span', { class: 'fence' }, fenceText) : null, el('span', { class: 'holder' }, hold.holder ?? ''));
      bar.style.left = `${left}%`;
      bar.style.width = `${width}%`;
      track.append(bar);
    }
    return el(
      'div',
      { class: 'timeline-row', 'data-lock': lock },
      el('div', { class: 'timeline-label', title: lock }, lock.replace(/^(mutex|distributed):/, '')),
      track,
    );
  });
  const seconds = span >= 10_000 ? `${Math.round(span / 1000)} s` : `${(span / 1000).toFixed(span >= 1000 ? 1 : 3)} s`;
  const axis =
    timelineView.end === null
      ? `last ${seconds}`
      : `${new Date(t0).toISOString().slice(11, 23)} – ${new Date(t1).toISOString().slice(11, 23)} (${seconds}; double-click: live)`;
  host.replaceChildren(el('div', { class: 'timeline-axis', id: 'timeline-axis' }, axis), ...rows);
}

/** The timeline's zoom (wheel, about the pointer) and pan (drag); a double click goes back to live. */
function enableTimelineControls() {
  const host = document.getElementById('timeline');
  const menu = document.getElementById('timeline-window');
  menu.addEventListener('change', () => {
    timelineView.span = menu.value === 'all' ? null : Number(menu.value);
    timelineView.end = null;
    dirty.locks = true;
  });
  const current = () => timelineRange(Date.now(), timelineLocks().first ?? Date.now());
  const trackBox = () => host.querySelector('.track')?.getBoundingClientRect();
  host.addEventListener(
    'wheel',
    (wheel) => {
      const box = trackBox();
      if (!box) return;
      wheel.preventDefault();
      const { t0, span } = current();
      // The instant under the pointer stays under it.
      const at = t0 + Math.min(1, Math.max(0, (wheel.clientX - box.left) / box.width)) * span;
      const next = Math.max(1, span * (wheel.deltaY < 0 ? 0.8 : 1.25));
      const fraction = (at - t0) / span;
      timelineView.span = next;
      timelineView.end = at - fraction * next + next;
      if (timelineView.end >= Date.now()) timelineView.end = null;
      dirty.locks = true;
    },
    { passive: false },
  );
  let drag = null;
  host.addEventListener('pointerdown', (down) => {
    const box = trackBox();
    if (!box || down.button !== 0) return;
    const { t1, span } = current();
    drag = { x: down.clientX, end: t1, span, width: box.width };
  });
  window.addEventListener('pointermove', (move) => {
    if (!drag || Math.abs(move.clientX - drag.x) < 3) return;
    timelineView.span = drag.span;
    timelineView.end = Math.min(Date.now(), drag.end - ((move.clientX - drag.x) / drag.width) * drag.span);
    dirty.locks = true;
  });
  window.addEventListener('pointerup', () => (drag = null));
  host.addEventListener('dblclick', () => {
    timelineView.end = null;
    timelineView.span = menu.value === 'all' ? null : Number(menu.value);
    dirty.locks = true;
  });
}

/** Shows `record`'s actor as it was right after that event (null: live again). */
function travelTo(record) {
  travel = record;
  // A live batch sent this step without its context (a later step carried one): ask for it once.
  if (record && record.contextOmitted && !record.contextAsked && socket && socket.readyState === WebSocket.OPEN) {
    record.contextAsked = true;
    socket.send(JSON.stringify({ type: 'statesmith.inspector.record', seq: record.seq }));
  }
  if (record) {
    selected = record.sessionId;
    chosen = true;
  }
  dirty = { tree: true, detail: true, events: true, locks: dirty.locks };
}

function select(sessionId) {
  travel = null;
  chosen = true;
  selected = sessionId;
  dirty = { tree: true, detail: true, events: true, locks: dirty.locks };
}

function render() {
  if (dirty.tree) renderTree();
  if (dirty.detail) renderDetail();
  if (dirty.events) renderEvents();
  if (dirty.events || dirty.detail) renderSequence();
  if (dirty.locks) renderLocks();
  animateFlashes();
  dirty = { tree: false, detail: false, events: false, locks: false };
  const live = [...actors.values()].filter((a) => a.status === 'active').length;
  document.getElementById('counts').textContent =
    `${actors.size} actors (${live} active) · ${events.length} events${dropped ? ` · ${dropped} dropped while behind` : ''}`;
  if (downSince !== null) {
    const wait = Math.max(0, Math.ceil((retryAt - Date.now()) / 1000));
    const since = new Date(downSince).toLocaleTimeString();
    document.getElementById('connection').textContent = `${closedAt !== null ? 'inspector closed' : 'disconnected'} since ${since}; retrying in ${wait} s`;
  }
  requestAnimationFrame(render);
}

function connect() {
  const badge = document.getElementById('connection');
  const ws = new WebSocket(`${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws?token=${encodeURIComponent(token)}`);
  socket = ws;
  ws.addEventListener('open', () => {
    badge.textContent = 'live';
    badge.className = 'badge live';
    downSince = null;
    closedAt = null;
    retryDelay = 1000;
  });
  ws.addEventListener('message', (message) => {
    const batch = JSON.parse(message.data);
    if (Array.isArray(batch) && batch[0]?.type === 'statesmith.inspector.earlier') return mergeEarlier(batch.slice(1));
    for (const record of Array.isArray(batch) ? batch : [batch]) apply(record);
  });
  ws.addEventListener('close', () => {
    // The last known states stay on the page; retries back off, doubling up to 30 s.
    downSince ??= Date.now();
    badge.className = 'badge down';
    retryAt = Date.now() + retryDelay;
    setTimeout(connect, retryDelay);
    retryDelay = Math.min(retryDelay * 2, 30000);
  });
}

document.getElementById('only-selected').addEventListener('change', () => (dirty.events = true));
document.getElementById('show-heartbeats').addEventListener('change', () => (dirty.events = true));
enableTimelineControls();
document.getElementById('type-filter').addEventListener('input', () => (dirty.events = true));
document.getElementById('show-sequence').addEventListener('change', () => (dirty.events = true));
document.getElementById('sequence-window').addEventListener('change', () => (dirty.events = true));
connect();
requestAnimationFrame(render);
