import { expect } from 'chai';
import { request } from 'node:http';
import WebSocket from 'ws';
import { AsyncExecutor, WakeupBus } from '../../src/index.ts';
import { inspection } from '../../src/inspect/capture.ts';
import { startInspector, type Inspector } from '../../src/inspect/index.ts';
import { rejection } from '../support/async.ts';

function get(url: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string; headers: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { headers }, (res) => {
      let body = '';
      res.on('data', (chunk: Buffer) => (body += chunk.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }));
    });
    req.on('error', reject);
    req.end();
  });
}

function connect(url: string, headers: Record<string, string>): Promise<{ ws: WebSocket; first: unknown[] }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers });
    // The server's hello (what the page may do) comes first; `first` is the picture after it.
    const onMessage = (data: unknown): void => {
      const batch = JSON.parse(String(data)) as Array<{ type?: string }>;
      if (batch.length === 1 && batch[0]?.type === 'statesmith.inspector.hello') return;
      ws.off('message', onMessage);
      resolve({ ws, first: batch });
    };
    ws.on('message', onMessage);
    ws.once('error', reject);
    ws.once('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
  });
}

describe('startInspector', function () {
  this.timeout(15_000);
  let inspector: Inspector | undefined;
  afterEach(async () => {
    await inspector?.close();
    inspector = undefined;
    inspection.reset();
  });

  it('binds to loopback, serves the page only with the token, and sends safe headers', async () => {
    inspector = await startInspector();
    const url = new URL(inspector.url);
    expect(url.hostname).to.equal('127.0.0.1');
    const page = await get(inspector.url);
    expect(page.status).to.equal(200);
    expect(page.body).to.include('statesmith inspector');
    expect(page.headers['content-security-policy']).to.match(/default-src 'none'; script-src 'self'/);
    expect(page.headers['x-content-type-options']).to.equal('nosniff');
    const token = url.searchParams.get('token') as string;
    expect((await get(`${url.origin}/app.js?token=${token}`)).status).to.equal(200);
    expect((await get(`${url.origin}/`)).status, 'no token').to.equal(403);
    expect((await get(`${url.origin}/?token=${'0'.repeat(token.length)}`)).status, 'wrong token').to.equal(403);
    expect((await get(`${url.origin}/app.js`)).status, 'assets need it too').to.equal(403);
    expect((await get(`${url.origin}/../package.json?token=${token}`)).status).to.equal(404);
  });

  it('refuses requests whose Host is not this server (DNS rebinding)', async () => {
    inspector = await startInspector();
    const res = await get(inspector.url, { Host: `attacker.example:${inspector.port}` });
    expect(res.status).to.equal(421);
    expect((await get(inspector.url, { Host: `localhost:${inspector.port}` })).status).to.equal(200);
  });

  it('refuses a non-loopback bind unless allowRemote, and checks its options', async () => {
    const error = (await rejection(startInspector({ host: '0.0.0.0' }))) as { code: string; message: string };
    expect(error.code).to.equal('ERR_INVALID_ARG_VALUE');
    expect(error.message).to.match(/loopback address.*unless allowRemote/);
    // A number that is no port is out of range, the code the CLI's --inspect gives too; another type is the wrong type.
    for (const port of [-1, 99_999, 1.5])
      expect(((await rejection(startInspector({ port }))) as { code: string }).code, String(port)).to.equal('ERR_OUT_OF_RANGE');
    expect(((await rejection(startInspector({ port: '80' as never }))) as { code: string }).code).to.equal('ERR_INVALID_ARG_TYPE');
    expect(((await rejection(startInspector({ token: 'short' }))) as { code: string }).code).to.equal('ERR_INVALID_ARG_VALUE');
    expect(inspection.enabled).to.equal(false);
  });

  it('the socket needs the token and a matching Origin; a viewer gets the current picture first, then live records', async () => {
    const executor = new AsyncExecutor({ wakeup: new WakeupBus(), name: 'watched' });
    executor.schedule('restart');
    inspector = await startInspector();
    const url = new URL(inspector.url);
    const token = url.searchParams.get('token') as string;
    const ws = `ws://${url.host}/ws?token=${token}`;
    const origin = { Origin: url.origin };
    expect(((await rejection(connect(`ws://${url.host}/ws`, origin))) as Error).message).to.equal('HTTP 403');
    expect(((await rejection(connect(ws, { Origin: 'http://evil.example' }))) as Error).message).to.equal('HTTP 403');
    const { ws: socket, first } = await connect(ws, origin);
    const picture = first as Array<{ type: string; id?: string; value?: unknown; sessionId?: string }>;
    const actor = picture.find((r) => r.type === '@xstate.actor' && r.id === 'watched');
    expect(actor, 'the executor is in the picture').to.not.equal(undefined);
    expect(picture.find((r) => r.type === '@xstate.snapshot' && r.sessionId === actor?.sessionId)?.value).to.deep.equal({ scheduled: 'waiting' });
    const live = new Promise<unknown[]>((resolve) => socket.once('message', (data) => resolve(JSON.parse(String(data)) as unknown[])));
    executor.resetScheduledAction();
    const next = (await live) as Array<{ type: string; sessionId?: string; value?: unknown }>;
    expect(next.some((r) => r.type === '@xstate.snapshot' && r.sessionId === actor?.sessionId && r.value === 'idle')).to.equal(true);
    socket.close();
  });

  it("sends a busy actor's earlier steps in a batch without their context, and the whole record when the page asks for it", async () => {
    inspector = await startInspector();
    const url = new URL(inspector.url);
    const { ws: socket } = await connect(`ws://${url.host}/ws?token=${url.searchParams.get('token')}`, { Origin: url.origin });
    type Step = { type: string; seq: number; sessionId?: string; context?: { generation?: number }; contextOmitted?: boolean; record?: Step | null };
    const frames: Step[][] = [];
    socket.on('message', (data) => frames.push(JSON.parse(String(data)) as Step[]));
    const executor = new AsyncExecutor({ wakeup: new WakeupBus(), name: 'busy' });
    // One run is several steps within one turn: they go out in one batch.
    await executor.run(async () => 1);
    const session = executor.actor.sessionId;
    const mine = (): Step[] => frames.flat().filter((r) => r.type === '@xstate.snapshot' && r.sessionId === session);
    const deadline = Date.now() + 5_000;
    while (mine().length < 5 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
    const steps = mine();
    expect(steps.length).to.be.greaterThan(3);
    const last = steps.at(-1) as Step;
    expect(last.contextOmitted, 'the last step of the batch carries the context').to.equal(undefined);
    expect(last.context?.generation).to.equal(1);
    const earlier = steps.slice(0, -1);
    expect(earlier.every((r) => r.contextOmitted === true && r.context === undefined)).to.equal(true);
    // Time travel to an earlier step asks for it whole; a number the ring does not hold gets null.
    const ask = (seq: number): Promise<Step> =>
      new Promise((resolve) => {
        const onMessage = (data: unknown): void => {
          const reply = (JSON.parse(String(data)) as Step[]).find((r) => r.type === 'statesmith.inspector.recordResult' && r.seq === seq);
          if (reply === undefined) return;
          socket.off('message', onMessage);
          resolve(reply);
        };
        socket.on('message', onMessage);
        socket.send(JSON.stringify({ type: 'statesmith.inspector.record', seq }));
      });
    const whole = await ask((earlier[1] as Step).seq);
    expect(whole.record?.seq).to.equal((earlier[1] as Step).seq);
    expect(whole.record?.context?.generation).to.be.a('number');
    expect((await ask(10_000_000)).record).to.equal(null);
    socket.close();
  });

  it('close() stops serving and capturing', async () => {
    inspector = await startInspector();
    expect(inspection.enabled).to.equal(true);
    const { url } = inspector;
    await inspector.close();
    inspector = undefined;
    expect(inspection.enabled).to.equal(false);
    expect(((await rejection(get(url))) as { code: string }).code).to.equal('ECONNREFUSED');
  });
});
