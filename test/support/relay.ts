/**
 * A TCP relay that delays what it forwards: run by `FaultNet.relay` in the server's
 * namespace, as `relay.ts <host> <targetPort>`. It listens on `<host>`, on a port of its own,
 * and tells its parent `{ port }`. The parent sends `{ delayMs, way }`; the relay holds each
 * chunk that arrives from then on for `delayMs` before passing it on, toward the server,
 * toward the member, or both, keeping each direction's order, and answers `{ ok: true }`.
 *
 * Test support only: it trusts its parent and the harness's own namespace.
 */
import { createConnection, createServer, type Socket } from 'node:net';

const [host = '127.0.0.1', targetPort = '0'] = process.argv.slice(2);
const delay = { toServer: 0, toMember: 0 };

/** Forwards `from` to `to`, each chunk held for the current delay of its direction, in order. */
function pipe(from: Socket, to: Socket, direction: 'toServer' | 'toMember'): void {
  // Chunks leave in the order they came: a chunk never overtakes one held longer.
  let last = 0;
  let pending = 0;
  let ended = false;
  const send = (write: () => void): void => {
    const due = Math.max(Date.now() + delay[direction], last);
    last = due;
    const wait = due - Date.now();
    if (wait <= 0 && pending === 0) return write();
    pending++;
    setTimeout(() => {
      pending--;
      write();
    }, wait);
  };
  from.on('data', (chunk) => send(() => to.writable && to.write(chunk)));
  from.on('end', () => {
    ended = true;
    send(() => ended && to.end());
  });
  from.on('error', () => to.destroy());
  from.on('close', () => send(() => to.destroy()));
}

const server = createServer((member) => {
  const upstream = createConnection({ host, port: Number(targetPort) });
  pipe(member, upstream, 'toServer');
  pipe(upstream, member, 'toMember');
});
server.listen(0, host, () => process.send?.({ port: (server.address() as { port: number }).port }));

process.on('message', (message: { delayMs: number; way: 'both' | 'toServer' | 'toMember' }) => {
  if (message.way !== 'toMember') delay.toServer = message.delayMs;
  if (message.way !== 'toServer') delay.toMember = message.delayMs;
  process.send?.({ ok: true });
});
// The parent gone: nothing to relay for.
process.on('disconnect', () => process.exit(0));
