/**
 * The package as a user gets it: packed, installed into a project outside the
 * repository, imported from `statesmith` and `statesmith/inspector`, run, and
 * type-checked against with `skipLibCheck: false` and `strict` (so a declaration file
 * that names a type `stripInternal` removed fails here, not in a user's build).
 */
import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
const root = join(dirname(fileURLToPath(import.meta.url)), '..');

const consumerTs = `import { createActor } from 'xstate';
import { TaskGroup, taskGroupLogic, executorLogic, coordinatorLogic, type TaskGroupReply } from 'statesmith';
import { startInspector } from 'statesmith/inspector';
const group = new TaskGroup({ uniqueId: 'consumer' });
const answer: number = await group.createTask(async () => 42, { name: 'answer' }).wait();
await group.stop();
const actor = createActor(taskGroupLogic, { input: { uniqueId: 'typed' } }).start();
actor.on('statesmith.taskGroup.taskDone', (reply: TaskGroupReply) => void reply.type);
void answer; void executorLogic; void coordinatorLogic; void startInspector;
`;

const consumerJs = `import { createActor } from 'xstate';
import { TaskGroup, taskGroupLogic } from 'statesmith';
import { startInspector } from 'statesmith/inspector';
const group = new TaskGroup({ uniqueId: 'consumer' });
const task = group.createTask(async () => 42, { name: 'answer' });
const value = await task.wait();
await group.stop();
const actor = createActor(taskGroupLogic, { input: { uniqueId: 'c2' } }).start();
const done = new Promise((resolve) => actor.on('statesmith.taskGroup.taskDone', resolve));
actor.send({ type: 'statesmith.taskGroup.createTask', name: 'x', fn: async () => 'ok' });
console.log(value, (await done).result, typeof startInspector);
actor.stop();
`;

describe('the installed package', function () {
  // Packing builds the package (prepare); installing fetches its dependencies from the registry.
  this.timeout(240_000);
  let dir: string;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'statesmith-consumer-'));
  });

  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('packs, installs outside the repository, runs, and type-checks with skipLibCheck false', async () => {
    await run('npm', ['pack', root, '--silent', '--pack-destination', dir], { cwd: dir, maxBuffer: 1 << 24 });
    const tarball = (await readdir(dir)).find((file) => file.endsWith('.tgz'));
    expect(tarball, 'a tarball').to.be.a('string');
    await writeFile(join(dir, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }));
    await run('npm', ['install', '--no-audit', '--no-fund', '--silent', `./${tarball}`], { cwd: dir, maxBuffer: 1 << 24 });
    await writeFile(join(dir, 'use.mjs'), consumerJs);
    const { stdout } = await run(process.execPath, ['use.mjs'], { cwd: dir });
    expect(stdout.trim()).to.equal('42 ok function');
    await writeFile(join(dir, 'use.ts'), consumerTs);
    await writeFile(
      join(dir, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          target: 'ES2022',
          module: 'NodeNext',
          moduleResolution: 'NodeNext',
          strict: true,
          skipLibCheck: false,
          noEmit: true,
          types: ['node'],
          typeRoots: [join(root, 'node_modules', '@types')],
        },
        files: ['use.ts'],
      }),
    );
    const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
    const checked = await run(process.execPath, [tsc, '-p', 'tsconfig.json'], { cwd: dir }).then(
      () => '',
      (error: { stdout?: string }) => error.stdout ?? String(error),
    );
    expect(checked, 'tsc reports nothing').to.equal('');
  });
});
