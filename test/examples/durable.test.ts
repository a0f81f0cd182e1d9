import { expect } from 'chai';
import { runExample } from '../support/examples.ts';

describe('examples/durable.ts', function () {
  this.timeout(60_000);

  it('a pump killed mid-cool-down comes back cooling down, with its timer re-armed, and finishes it', async () => {
    const { code, out } = await runExample('examples/durable.ts', 50_000);
    expect(code, out).to.equal(0);
    const lines = out.split('\n');
    const killed = lines.findIndex((line) => line === 'killed mid-cool-down');
    expect(killed, out).to.be.greaterThan(-1);
    const after = lines.slice(killed + 1).join('\n');
    expect(after).to.match(
      /pump "coolingDown" \(runs: 1\)\nrestored the snapshot saved at \S+, 1 timer\(s\) re-armed\npump "idle" \(runs: 1\)\ncool-down finished after the restart/,
    );
  });
});
