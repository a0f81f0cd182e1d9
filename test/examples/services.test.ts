import { expect } from 'chai';
import { runExample } from '../support/examples.ts';

describe('examples/services.ts', function () {
  this.timeout(30_000);

  it('restarts the failing poller with back-off and stops the service cleanly', async () => {
    const { code, out } = await runExample('examples/services.ts', 25_000);
    expect(code, out).to.equal(0);
    expect(out).to.match(/main\s+TaskGroup:volumes:reporter finished: inventory of 12 volumes/);
    expect(out).to.match(/info: Task TaskGroup:volumes:poller failed \(storage API returned 503\); restarting in 50 ms \(task restart 1 of 5 within \d+ ms\)/);
    expect(out).to.match(/restarting in 100 ms \(task restart 2 of 5 within \d+ ms\)/);
    expect(out.match(/poller\s+scheduled/g)).to.have.length(2);
    expect(out).to.match(/poller\s+\{"done":"cancelled"\}/);
    expect(out).to.match(/main\s+stopped cleanly; isRunning=false, state \{"done":"cancelled"\}/);
  });
});
