import { expect } from 'chai';
import { runExample } from '../support/examples.ts';

describe('the statesmith CLI', function () {
  this.timeout(30_000);

  it('prints its usage for no command or --help, and exits 2 on an unknown one or a bad argument', async () => {
    expect(await runExample('src/cli.ts', 20_000)).to.deep.include({ code: 0 });
    expect((await runExample('src/cli.ts', 20_000, ['--help'])).out).to.match(/^usage: statesmith demo \[--inspect \[port\]\]/);
    const unknown = await runExample('src/cli.ts', 20_000, ['frobnicate']);
    expect(unknown.code).to.equal(2);
    const bad = await runExample('src/cli.ts', 20_000, ['demo', '--for', 'soon']);
    expect(bad.code).to.equal(2);
    expect(bad.out).to.match(/--for needs a number of seconds > 0/);
  });

  it('statesmith demo runs the HA agent and stops by itself with --for', async () => {
    const { code, out } = await runExample('src/cli.ts', 30_000, ['demo', '--for', '2']);
    expect(code, out).to.equal(0);
    expect(out).to.match(/became the leader/);
    expect(out).to.match(/stopped cleanly/);
  });
});
