/**
 * The package as a user gets it: packed, installed into a project outside the
 * repository, imported from `statesmith` and `statesmith/inspector`, run, and
 * type-checked against with `skipLibCheck: false` and `strict` (so a declaration file
 * that names a type `stripInternal` removed fails here, not in a user's build).
 */
import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const packageVersion = (JSON.parse(await readFile(join(root, 'package.json'), 'utf8')) as { version: string }).version;

const consumerTs = `import { createActor } from 'xstate';
import { TaskGroup, taskGroupLogic, executorLogic, coordinatorLogic, type TaskGroupReply } from 'statesmith';
import { startInspector } from 'statesmith/inspector';
import { enableTelemetry, type TelemetryOptions } from 'statesmith/telemetry';
const options: TelemetryOptions = { metrics: true, lockNamesInLabels: false };
void enableTelemetry; void options;
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
import { enableTelemetry } from 'statesmith/telemetry';
const group = new TaskGroup({ uniqueId: 'consumer' });
const task = group.createTask(async () => 42, { name: 'answer' });
const value = await task.wait();
await group.stop();
const actor = createActor(taskGroupLogic, { input: { uniqueId: 'c2' } }).start();
const done = new Promise((resolve) => actor.on('statesmith.taskGroup.taskDone', resolve));
actor.send({ type: 'statesmith.taskGroup.createTask', name: 'x', fn: async () => 'ok' });
// prom-client is an optional peer this project did not install: a typed error says so.
const missing = await enableTelemetry().then(() => 'enabled', (error) => error.code);
console.log(value, (await done).result, typeof startInspector, missing);
actor.stop();
`;

describe('the installed package', function () {
  // Packing builds the package (prepare); installing fetches its dependencies from the registry.
  this.timeout(240_000);
  let dir: string;
  let tarball: string;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'statesmith-consumer-'));
    await run('npm', ['pack', root, '--silent', '--pack-destination', dir], { cwd: dir, maxBuffer: 1 << 24 });
    const packed = (await readdir(dir)).find((file) => file.endsWith('.tgz'));
    expect(packed, 'a tarball').to.be.a('string');
    tarball = join(dir, packed as string);
  });

  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  /** A fresh consumer project in its own folder under the temp dir. */
  async function consumer(name: string): Promise<string> {
    const project = join(dir, name);
    await mkdir(project);
    await writeFile(join(project, 'package.json'), JSON.stringify({ name: `consumer-${name}`, private: true, type: 'module' }));
    return project;
  }

  it('installs from the packed tarball, runs, and type-checks with skipLibCheck false', async () => {
    const project = await consumer('tarball');
    await run('npm', ['install', '--no-audit', '--no-fund', '--silent', tarball], { cwd: project, maxBuffer: 1 << 24 });
    await writeFile(join(project, 'use.mjs'), consumerJs);
    const { stdout } = await run(process.execPath, ['use.mjs'], { cwd: project });
    expect(stdout.trim()).to.equal('42 ok function ERR_TELEMETRY_CLIENT_MISSING');
    await writeFile(join(project, 'use.ts'), consumerTs);
    await writeFile(
      join(project, 'tsconfig.json'),
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
    const checked = await run(process.execPath, [tsc, '-p', 'tsconfig.json'], { cwd: project }).then(
      () => '',
      (error: { stdout?: string }) => error.stdout ?? String(error),
    );
    expect(checked, 'tsc reports nothing').to.equal('');
    // The installed bin, as `npx statesmith` finds it in node_modules/.bin.
    const version = await run('npx', ['--no-install', 'statesmith', '--version'], { cwd: project });
    expect(version.stdout.trim()).to.equal(packageVersion);
  });

  it('runs through npx without a project, straight from the package', async () => {
    const empty = await mkdtemp(join(dir, 'npx-'));
    const help = await run('npx', ['--yes', `--package=${tarball}`, 'statesmith', '--help'], { cwd: empty, maxBuffer: 1 << 24 });
    expect(help.stdout).to.match(/^usage: statesmith <command>/m);
    const bad = await run('npx', ['--yes', `--package=${tarball}`, 'statesmith', 'demo', '--inspect', '99999'], { cwd: empty }).then(
      () => ({ code: 0, stderr: '' }),
      (error: { code: number; stderr: string }) => error,
    );
    expect(bad.code).to.equal(2);
    expect(bad.stderr).to.include('ERR_OUT_OF_RANGE');
  });

  it('installs from a git URL, building dist/ through the prepare script', async function () {
    // npm clones the repository's committed HEAD, installs its devDependencies and runs `prepare`.
    // Those include better-sqlite3, compiled from source here (its prebuilt binaries are on GitHub,
    // which this network does not reach): about 90 s of one core, more on a busy machine.
    this.timeout(420_000);
    const head = await run('git', ['rev-parse', 'HEAD'], { cwd: root }).catch(() => null);
    if (head === null) throw new Error(`${root} is not a git checkout: the git-URL install needs one`);
    const project = await consumer('git');
    await run('npm', ['install', '--no-audit', '--no-fund', '--silent', `git+file://${root}#${head.stdout.trim()}`], { cwd: project, maxBuffer: 1 << 24 });
    await writeFile(join(project, 'use.mjs'), consumerJs);
    const { stdout } = await run(process.execPath, ['use.mjs'], { cwd: project });
    expect(stdout.trim()).to.equal('42 ok function ERR_TELEMETRY_CLIENT_MISSING');
  });
});
