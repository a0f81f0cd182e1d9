/**
 * The viewer of the inspector bench, in its own process as a browser would be: it reads
 * every frame of the inspector's socket, says when it is connected, and answers "count"
 * with the frames and bytes it got.
 */
import WebSocket from 'ws';

const [url] = process.argv.slice(2) as [string];
const target = new URL(url);
let frames = 0;
let bytes = 0;
const viewer = new WebSocket(`ws://${target.host}/ws?token=${target.searchParams.get('token')}`, { headers: { Origin: target.origin } });
viewer.on('message', (data: Buffer) => {
  frames++;
  bytes += data.length;
});
viewer.once('open', () => process.send?.({ open: true }));
viewer.once('error', (error) => {
  process.stderr.write(`viewer: ${error.message}\n`);
  process.exit(1);
});
process.on('message', (message: { count?: boolean }) => {
  if (message.count) {
    process.send?.({ frames, bytes });
    viewer.close();
    process.disconnect();
  }
});
