/**
 * Guard-rails that run with every `npm test`: no import cycle in the library's code, a
 * tree Prettier has formatted, and one vocabulary for errors. Each check is also shown to
 * fail on what it must catch.
 */
import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import madge from 'madge';

const run = promisify(execFile);

/**
 * The cycles among `roots`. Type-only imports are left out: TypeScript erases them, so they
 * cannot make one module load before another (an `import { type X }` still loads, and counts).
 */
async function cycles(roots: string[], baseDir = process.cwd()): Promise<string[][]> {
  const result = await madge(roots, {
    baseDir,
    fileExtensions: ['ts'],
    detectiveOptions: { ts: { skipTypeImports: true }, es6: { skipTypeImports: true } },
  });
  return result.circular();
}

describe('guard-rails', function () {
  this.timeout(60_000);

  it('src/ and machines/ have no import cycle', async () => {
    expect(await cycles(['src', 'machines'])).to.deep.equal([]);
  });

  it('the cycle check sees a value cycle, and not a type-only one', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'statesmith-cycles-'));
    try {
      await writeFile(join(dir, 'a.ts'), "import { b } from './b.ts';\nexport const a = () => b;\n");
      await writeFile(join(dir, 'b.ts'), "import { a } from './a.ts';\nexport const b = () => a;\n");
      await writeFile(join(dir, 'c.ts'), "import type { D } from './d.ts';\nexport interface C { d?: D }\n");
      await writeFile(join(dir, 'd.ts'), "import type { C } from './c.ts';\nexport interface D { c?: C }\n");
      expect(await cycles([dir], dir)).to.deep.equal([['a.ts', 'b.ts']]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('the tree is formatted with Prettier (npx prettier --write . fixes it)', async () => {
    const prettier = join('node_modules', '.bin', 'prettier');
    const { stdout } = await run(prettier, ['--list-different', 'src', 'machines', 'test', 'bench', 'examples', 'scripts', 'inspector']).catch(
      (error: { stdout?: string; code?: number }) => {
        // Exit 1: some files differ (listed on stdout); anything else is Prettier failing.
        if (error.code === 1) return { stdout: error.stdout ?? '' };
        throw error;
      },
    );
    expect(stdout.split('\n').filter(Boolean), 'files Prettier would change').to.deep.equal([]);
  });

  describe('one vocabulary for errors', () => {
    /** Each error class the package's entry points export, made with arguments its constructor takes. */
    const made = async (): Promise<Array<[string, Error]>> => {
      const entries = await Promise.all(
        ['../src/index.ts', '../src/inspect/index.ts', '../src/telemetry/index.ts', '../src/nats/index.ts'].map(
          async (entry) => (await import(entry)) as Record<string, unknown>,
        ),
      );
      // The classes whose code or fields come from their arguments.
      const args: Record<string, unknown[]> = {
        CoordinationError: ['ERR_COORDINATION_URL', 'a message'],
        DurableError: ['ERR_FENCED', 'a message'],
        RejectedError: [{ type: 'statesmith.rejected', command: { type: 'x' }, state: 'idle', code: 'ERR_UNKNOWN_COMMAND', reason: 'r' }],
        TelemetryError: ['ERR_TELEMETRY_STATE', 'a message'],
        UnknownOptionError: ['options', 'timeout', ['timeoutMs']],
      };
      const found: Array<[string, Error]> = [];
      for (const [name, value] of entries.flatMap((module) => Object.entries(module))) {
        if (typeof value !== 'function' || !((value as { prototype?: unknown }).prototype instanceof Error)) continue;
        found.push([name, Reflect.construct(value, args[name] ?? ['a', 'b', 'c']) as Error]);
      }
      return found;
    };

    const vocabulary = (name: string, error: Error): string[] => {
      const wrong: string[] = [];
      const own = Object.getOwnPropertyDescriptors(error);
      if (error.name !== name) wrong.push(`${name}: name is ${JSON.stringify(error.name)}`);
      if (own.name?.enumerable !== true) wrong.push(`${name}: name is not its own (util.inspect and JSON would not show it)`);
      if (own['code']?.enumerable !== true) wrong.push(`${name}: code is not its own`);
      if (!/^ERR_[A-Z_]+$/.test(String((error as { code?: unknown }).code))) wrong.push(`${name}: code ${String((error as { code?: unknown }).code)}`);
      return wrong;
    };

    it('every exported error class has its own name (the class name) and a stable ERR_ code, as Node’s errors do', async () => {
      const errors = await made();
      expect(errors.length, 'error classes found').to.be.greaterThan(20);
      expect(errors.flatMap(([name, error]) => vocabulary(name, error))).to.deep.equal([]);
    });

    it('the check catches a class without a code, or named otherwise', () => {
      class Loose extends Error {}
      class Misnamed extends Error {
        override readonly name = 'Other';
        readonly code = 'ERR_X';
      }
      expect(vocabulary('Loose', new Loose('x'))).to.have.length.greaterThan(0);
      expect(vocabulary('Misnamed', new Misnamed('x'))).to.deep.equal(['Misnamed: name is "Other"']);
    });
  });
});
