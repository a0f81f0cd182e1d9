/**
 * The offline inspector: an HTTP server (`node:http`) that serves the page in
 * `inspector/` and a WebSocket (`ws`) that streams the inspection records to it.
 *
 * @module
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { WebSocketServer, type WebSocket } from 'ws';
import { ArgumentRangeError, ArgumentTypeError, ArgumentValueError } from '../errors.ts';
import { getLogger } from '../logger.ts';
import { startCapture } from '../runtime/startActor.ts';
import { optionalObject } from '../runtime/validate.ts';
import { requireConnection, requireSubjectPatterns, type NatsConnectionLike } from '../nats/wire.ts';
import { inspection, type CapturedRecord } from './capture.ts';
import { safeStringify } from './safeJson.ts';
import { watchRemoteFeeds } from './remote.ts';

/** Options of {@link startInspector}. */
export interface InspectorOptions {
  /** TCP port; default 0 (a free one; read it from `url`). */
  readonly port?: number;
  /** Interface to bind; default `127.0.0.1`. Anything not loopback needs `allowRemote: true`. */
  readonly host?: string;
  /** Allow binding a non-loopback interface (the token is still required). Default false. */
  readonly allowRemote?: boolean;
  /** The access token; default 16 random bytes. */
  readonly token?: string;
  /**
   * Let the page send events to actors (a form on the selected actor). Off by default: a
   * viewer then only watches. Sends need the token like everything else, and are logged.
   */
  readonly allowSend?: boolean;
  /**
   * Also show the actors of other processes that publish their inspection feed over NATS
   * (`exposeInspection` from `statesmith/nats`; `statesmith demo --nats` does): each
   * process is a row of kind `agent` with its actors under it. `subjects` are the feeds'
   * subject prefixes, with wildcards: `['statesmith.agents.>']` shows every agent.
   */
  readonly nats?: InspectorNatsOptions;
}

/** The `nats` option of {@link startInspector}. */
export interface InspectorNatsOptions {
  /** A connected NATS client (`@nats-io/transport-node`'s `connect()`); the inspector does not close it. */
  readonly connection: NatsConnectionLike;
  /** Feed prefixes to watch; `*` and a final `>` are allowed. */
  readonly subjects: readonly string[];
}

/** A running inspector. */
export interface Inspector extends AsyncDisposable {
  /** Open this in a browser (it carries the token). */
  readonly url: string;
  /** The TCP port it listens on: the one asked for, or the free one it was given for port 0. */
  readonly port: number;
  /** Stops serving and capturing. */
  close(): Promise<void>;
}

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '::1']);
/** Above this many unsent bytes a viewer gets only the latest snapshot per actor. */
const BACKLOG_BYTES = 4 * 1024 * 1024;
const FLUSH_MS = 50;
const FRAME_RECORDS = 2_000;
const PENDING_LIMIT = 10_000;
/** How much of a late viewer's history comes with its first frame (the page shows 300 events). */
const PICTURE_FIRST = 500;
/** The rest of the history goes in chunks of this many records. */
const EARLIER_CHUNK = 1_000;

/** Finds the page's folder, from the sources or from `dist/`. */
function pageDirectory(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    const candidate = join(dir, 'inspector');
    if (existsSync(join(candidate, 'index.html'))) return candidate;
    dir = dirname(dir);
  }
  throw new Error('the inspector page (inspector/index.html) is missing from the package');
}

const ASSETS: Record<string, string> = {
  '/app.js': 'text/javascript; charset=utf-8',
  '/style.css': 'text/css; charset=utf-8',
};

/** The layout engine the page draws statecharts with (elkjs, a dependency), served from the package: no CDN. */
let elkSource: Buffer | null | undefined;
function elkScript(): Buffer | null {
  if (elkSource === undefined) {
    try {
      elkSource = readFileSync(createRequire(import.meta.url).resolve('elkjs/lib/elk.bundled.js'));
    } catch (error) {
      getLogger().warn('the inspector could not load elkjs; charts are drawn as nested boxes', { error });
      elkSource = null;
    }
  }
  return elkSource;
}

function sameToken(given: string | null, token: string): boolean {
  if (given === null || given.length !== token.length) return false;
  return timingSafeEqual(Buffer.from(given), Buffer.from(token));
}

/**
 * Starts the inspector and turns capture on: every statesmith actor (and its events,
 * snapshots and transitions) and every lock shows on the page at `url`, live. Actors
 * started earlier are picked up with their current state.
 *
 * It binds to `127.0.0.1` unless told otherwise, and refuses a non-loopback address
 * without `allowRemote: true`. The page and the socket need the token in `url`; the
 * `Host` and `Origin` headers must name this server (DNS rebinding); everything the
 * page shows is rendered as text.
 *
 * @example
 * ```ts
 * import { startInspector } from 'statesmith/inspector';
 * const inspector = await startInspector();
 * console.log(inspector.url.startsWith('http://127.0.0.1:')); // true
 * await inspector.close();
 * ```
 */
export async function startInspector(options?: InspectorOptions): Promise<Inspector> {
  const opts = optionalObject<InspectorOptions>('options', options, ['port', 'host', 'allowRemote', 'token', 'nats', 'allowSend']);
  const allowSend = opts.allowSend ?? false;
  if (typeof allowSend !== 'boolean') throw new ArgumentTypeError('options.allowSend', 'a boolean', allowSend);
  let remote: { connection: NatsConnectionLike; subjects: string[] } | undefined;
  if (opts.nats !== undefined) {
    const nats = optionalObject<InspectorNatsOptions>('options.nats', opts.nats, ['connection', 'subjects']);
    remote = {
      connection: requireConnection('options.nats.connection', nats.connection),
      subjects: requireSubjectPatterns('options.nats.subjects', nats.subjects),
    };
  }
  const host = opts.host ?? '127.0.0.1';
  if (typeof host !== 'string' || host.length === 0) throw new ArgumentTypeError('options.host', 'a host name or address', host);
  const port = opts.port ?? 0;
  // A number that is no port is out of range (ERR_OUT_OF_RANGE), as the CLI's --inspect says; anything else is the wrong type.
  if (typeof port !== 'number' || Number.isNaN(port)) throw new ArgumentTypeError('options.port', 'an integer port from 0 to 65535', port);
  if (!Number.isInteger(port) || port < 0 || port > 65_535) throw new ArgumentRangeError('options.port', 'an integer port from 0 to 65535', port);
  const allowRemote = opts.allowRemote ?? false;
  if (!LOOPBACK.has(host) && allowRemote !== true) {
    throw new ArgumentValueError('options.host', 'a loopback address (127.0.0.1, ::1, localhost) unless allowRemote is true', host);
  }
  const token = opts.token ?? randomBytes(16).toString('hex');
  // Which inspector a page is talking to: one that reconnects to a restarted process starts afresh.
  const boot = randomBytes(6).toString('hex');
  if (typeof token !== 'string' || !/^[A-Za-z0-9_-]{16,}$/.test(token))
    throw new ArgumentValueError('options.token', 'at least 16 letters, digits, - or _', token);
  const pages = pageDirectory();
  const html = readFileSync(join(pages, 'index.html'), 'utf8').replaceAll('__TOKEN__', token);

  let boundPort = 0;
  const hostAllowed = (header: string | undefined): boolean => {
    if (header === undefined) return false;
    if (allowRemote) return true;
    return [`127.0.0.1:${boundPort}`, `localhost:${boundPort}`, `[::1]:${boundPort}`].includes(header.toLowerCase());
  };

  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://inspector');
    const headers = {
      'Cache-Control': 'no-store',
      'X-Content-Type-Options': 'nosniff',
      'Referrer-Policy': 'no-referrer',
      'X-Frame-Options': 'DENY',
      'Content-Security-Policy':
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'",
    };
    if (!hostAllowed(req.headers.host)) {
      res.writeHead(421, { ...headers, 'Content-Type': 'text/plain' }).end('Misdirected request: this inspector answers only to its own address');
      return;
    }
    if (url.pathname === '/favicon.ico') {
      res.writeHead(204, headers).end();
      return;
    }
    if (req.method !== 'GET') {
      res.writeHead(405, { ...headers, Allow: 'GET' }).end();
      return;
    }
    if (!sameToken(url.searchParams.get('token'), token)) {
      res.writeHead(403, { ...headers, 'Content-Type': 'text/plain' }).end('The inspector needs the token from its URL');
      return;
    }
    if (url.pathname === '/') {
      res.writeHead(200, { ...headers, 'Content-Type': 'text/html; charset=utf-8' }).end(html);
      return;
    }
    if (url.pathname === '/elk.js') {
      const elk = elkScript();
      if (elk === null) res.writeHead(404, { ...headers, 'Content-Type': 'text/plain' }).end('elkjs is not installed');
      else res.writeHead(200, { ...headers, 'Content-Type': 'text/javascript; charset=utf-8', 'Cache-Control': 'private, max-age=3600' }).end(elk);
      return;
    }
    const type = ASSETS[url.pathname];
    if (type === undefined) {
      res.writeHead(404, { ...headers, 'Content-Type': 'text/plain' }).end('Not found');
      return;
    }
    res.writeHead(200, { ...headers, 'Content-Type': type }).end(readFileSync(join(pages, url.pathname.slice(1))));
  });

  const sockets = new WebSocketServer({ noServer: true, maxPayload: 64 * 1024 });
  server.on('upgrade', (req, socket, head) => {
    const url = new URL(req.url ?? '/', 'http://inspector');
    const origin = req.headers.origin;
    const originOk = origin === undefined ? false : origin === `http://${req.headers.host ?? ''}`;
    if (url.pathname !== '/ws' || !hostAllowed(req.headers.host) || !originOk || !sameToken(url.searchParams.get('token'), token)) {
      socket.end('HTTP/1.1 403 Forbidden\r\nConnection: close\r\n\r\n');
      return;
    }
    sockets.handleUpgrade(req, socket, head, (ws) => sockets.emit('connection', ws, req));
  });

  const clients = new Set<WebSocket>();
  sockets.on('connection', (ws: WebSocket) => {
    clients.add(ws);
    ws.on('close', () => clients.delete(ws));
    ws.on('error', (error) => getLogger().debug('inspector socket error', { error }));
    ws.on('message', (data) => onPageMessage(ws, data));
    // What the page may do, then the current picture, then the live stream.
    ws.send(JSON.stringify([{ type: 'statesmith.inspector.hello', allowSend, boot }]));
    // The picture: first what the page paints (every current state and the newest history),
    // then the rest of the history, which the page merges in behind. Each actor's earlier
    // steps go without their context, as in a live batch (asked for on time travel).
    const { first, earlier } = inspection.pictureParts(PICTURE_FIRST);
    ws.send(`[${liveTexts(first).join(',')}]`);
    // Newest first, a chunk per turn of the event loop: the runtime and live batches go on meanwhile.
    let end = earlier.length;
    const sendEarlier = (): void => {
      if (end === 0 || ws.readyState !== ws.OPEN) return;
      const chunk = earlier.slice(Math.max(0, end - EARLIER_CHUNK), end);
      end -= chunk.length;
      const texts = chunk.map((r) => (lightable(r) ? (r.lightJson as string) : r.json));
      ws.send(`[{"type":"statesmith.inspector.earlier","count":${chunk.length}},${texts.join(',')}]`);
      setImmediate(sendEarlier);
    };
    setImmediate(sendEarlier);
  });

  /**
   * A page's request to send an event: `{ type: 'statesmith.inspector.send', requestId,
   * sessionId, event }`. The answer goes back to that page only: the actor's first reply
   * (its `statesmith.rejected` too), `sent` when it gives none within a second, or a refusal
   * (`ERR_SEND_DISABLED`, `ERR_UNKNOWN_ACTOR`, `ERR_INVALID_COMMAND`).
   */
  const onPageMessage = (ws: WebSocket, data: unknown): void => {
    let request: { type?: unknown; requestId?: unknown; sessionId?: unknown; event?: unknown };
    try {
      request = JSON.parse(String(data)) as typeof request;
    } catch {
      return;
    }
    if (request?.type === 'statesmith.inspector.record') {
      // The whole record of a step whose context a live batch left out (time travel to it).
      const seq = (request as { seq?: unknown }).seq;
      const record = typeof seq === 'number' ? inspection.recordOf(seq) : undefined;
      if (ws.readyState === ws.OPEN)
        ws.send(`[{"type":"statesmith.inspector.recordResult","seq":${typeof seq === 'number' ? seq : 'null'},"record":${record?.json ?? 'null'}}]`);
      return;
    }
    if (request?.type !== 'statesmith.inspector.send') return;
    const requestId = typeof request.requestId === 'string' ? request.requestId : '';
    const answer = (reply: Record<string, unknown>): void => {
      if (ws.readyState === ws.OPEN) ws.send(JSON.stringify([{ type: 'statesmith.inspector.sendResult', requestId, ...reply }]));
    };
    if (!allowSend)
      return answer({ ok: false, code: 'ERR_SEND_DISABLED', reason: 'this inspector was started without allowSend: true; the page may only watch' });
    const event = request.event as { type?: unknown } | null;
    if (
      event === null ||
      typeof event !== 'object' ||
      Array.isArray(event) ||
      typeof event.type !== 'string' ||
      event.type.length === 0 ||
      event.type.startsWith('xstate.') ||
      'replyTo' in event
    ) {
      return answer({
        ok: false,
        code: 'ERR_INVALID_COMMAND',
        reason: 'an event is a JSON object with a string "type", not an xstate.* event, without "replyTo"',
      });
    }
    const actor = typeof request.sessionId === 'string' ? inspection.actorOf(request.sessionId) : undefined;
    if (actor === undefined) return answer({ ok: false, code: 'ERR_UNKNOWN_ACTOR', reason: `no running actor ${JSON.stringify(request.sessionId)}` });
    getLogger().info(`inspector: a viewer sent ${event.type} to ${actor.id}`);
    let done = false;
    const finish = (reply: Record<string, unknown>): void => {
      if (done) return;
      done = true;
      clearTimeout(quiet);
      answer(reply);
    };
    const quiet = setTimeout(() => finish({ ok: true, reply: null }), 1_000);
    quiet.unref();
    const port = {
      id: `inspector-send-${requestId}`,
      sessionId: `inspector-send-${requestId}`,
      send: (reply: unknown) => finish({ ok: true, reply: JSON.parse(safeStringify(reply)) as unknown }),
      _send(reply: unknown): void {
        port.send(reply);
      },
      getSnapshot: () => ({ status: done ? 'done' : 'active' }),
      toJSON: () => ({ id: `inspector-send-${requestId}` }),
    };
    try {
      actor.send({ ...(event as object), replyTo: port } as never);
    } catch (error) {
      finish({ ok: false, code: 'ERR_SEND_FAILED', reason: (error as Error).message });
    }
  };

  // Records go out in batches, at most every FLUSH_MS and at most FRAME_RECORDS per frame.
  // Capture never waits on a viewer: a viewer that falls behind, or a runtime that keeps
  // the event loop busy so long that PENDING_LIMIT records pile up, gets the latest
  // snapshot per actor instead of every step, with a count of what was dropped.
  let pending: CapturedRecord[] = [];
  let droppedSinceFlush = 0;
  let timer: NodeJS.Timeout | undefined;
  const flush = (): void => {
    timer = undefined;
    const batch = pending;
    const dropped = droppedSinceFlush;
    pending = [];
    droppedSinceFlush = 0;
    if (batch.length === 0 || clients.size === 0) return;
    const frames: string[] = [];
    const texts = liveTexts(batch);
    for (let i = 0; i < texts.length; i += FRAME_RECORDS) frames.push(`[${texts.slice(i, i + FRAME_RECORDS).join(',')}]`);
    if (dropped > 0) frames.push(JSON.stringify([{ type: 'statesmith.dropped', count: dropped }]));
    let coalesced: string | undefined;
    for (const ws of clients) {
      if (ws.readyState !== ws.OPEN) continue;
      if (ws.bufferedAmount < BACKLOG_BYTES) {
        for (const frame of frames) ws.send(frame);
        continue;
      }
      coalesced ??= frameOf(coalesce(batch), batch.length + dropped);
      ws.send(coalesced);
    }
  };
  const unsubscribe = inspection.subscribe((record) => {
    if (clients.size === 0) return;
    pending.push(record);
    if (pending.length >= PENDING_LIMIT) {
      const kept = coalesce(pending);
      droppedSinceFlush += pending.length - kept.length;
      pending = kept;
    }
    if (timer === undefined) {
      timer = setTimeout(flush, FLUSH_MS);
      timer.unref();
    }
  });
  const stopCapture = startCapture();
  const stopRemote = remote === undefined ? undefined : watchRemoteFeeds(remote.connection, remote.subjects);

  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (error) {
    // A port in use: nothing is left capturing or listening.
    stopRemote?.();
    unsubscribe();
    stopCapture();
    throw error;
  }
  boundPort = (server.address() as { port: number }).port;
  const shownHost = host.includes(':') ? `[${host}]` : host;
  const url = `http://${shownHost === '0.0.0.0' ? '127.0.0.1' : shownHost}:${boundPort}/?token=${token}`;

  let closed: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closed ??= (async () => {
      stopRemote?.();
      unsubscribe();
      stopCapture();
      // The last batch goes out, then word that the inspector closed: a viewer does not keep showing "live".
      if (timer !== undefined) clearTimeout(timer);
      flush();
      const farewell = JSON.stringify([{ type: 'statesmith.inspector.closed', ts: Date.now() }]);
      await Promise.all(
        [...clients].map(
          (ws) =>
            new Promise<void>((resolve) => {
              if (ws.readyState !== ws.OPEN) return resolve();
              ws.send(farewell, () => resolve());
            }),
        ),
      );
      for (const ws of clients) ws.close(1001, 'the inspector closed');
      // A viewer that does not answer the close handshake is cut off.
      await new Promise((resolve) => setTimeout(resolve, 50).unref());
      for (const ws of clients) ws.terminate();
      sockets.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    })();
    return closed;
  };
  return { url, port: boundPort, close, [Symbol.asyncDispose]: close };
}

/**
 * The JSON of a live batch, or of a late viewer's picture: a step of an actor that takes
 * another step later in the same batch goes without its context (the page asks for it
 * only to travel back there); the last step of each actor, and every other record, go
 * whole. A busy actor's steps cost the viewer their event, transitions and state, not a
 * context each.
 */
function liveTexts(batch: readonly CapturedRecord[]): string[] {
  const last = new Map<string, number>();
  for (let i = 0; i < batch.length; i++) {
    const record = batch[i] as CapturedRecord;
    if (lightable(record)) last.set(record.sessionId as string, i);
  }
  const texts = new Array<string>(batch.length);
  for (let i = 0; i < batch.length; i++) {
    const record = batch[i] as CapturedRecord;
    texts[i] = lightable(record) && last.get(record.sessionId as string) !== i ? (record.lightJson as string) : record.json;
  }
  return texts;
}

/** True for a record that can go without its context: it has the getter (reading it would make the JSON). */
function lightable(record: CapturedRecord): boolean {
  return record.sessionId !== undefined && 'lightJson' in record;
}

/**
 * What a viewer that fell behind needs of `batch`: the structure records (actors,
 * graphs) and the latest record of each key (an actor's snapshot, a lock's state):
 * the steps in between are dropped.
 */
function coalesce(batch: readonly CapturedRecord[]): CapturedRecord[] {
  const latest = new Map<string, CapturedRecord>();
  const kept: CapturedRecord[] = [];
  for (const record of batch) {
    if (record.key !== undefined) latest.set(record.key, record);
    else kept.push(record);
  }
  return [...kept, ...latest.values()];
}

/** One frame of `records`, noting how many of `total` were dropped. */
function frameOf(records: readonly CapturedRecord[], total: number): string {
  const note = JSON.stringify({ type: 'statesmith.dropped', count: total - records.length });
  return `[${records
    .map((r) => r.json)
    .concat(note)
    .join(',')}]`;
}
