import { expect } from 'chai';
import { runExample } from '../support/examples.ts';

describe('examples/ha-loop.ts', function () {
  this.timeout(30_000);

  it('shows the early wake-up and the cancel of a long action, then exits by itself', async () => {
    const { code, out } = await runExample('examples/ha-loop.ts', 25_000);
    expect(code, out).to.equal(0);
    expect(out).to.match(/bus\s+wake-up: restart completed/);
    expect(out).to.match(/loop\s+cycle 2: busy=false/);
    expect(out).to.match(/process\s+\{"cancelling":"terminating"\}/);
    expect(out).to.match(/executor\s+done \(basebackup → cancelled\)/);
    expect(out).to.match(/main\s+loop stopped: demo finished/);
  });
});
