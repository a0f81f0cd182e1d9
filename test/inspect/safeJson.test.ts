import { expect } from 'chai';
import { createActor, createMachine } from 'xstate';
import { Subject } from 'rxjs';
import { REDACTED, describeAs, isStable, safeStringify, toSafeJson, type SafeJsonLimits } from '../../src/inspect/safeJson.ts';
import { Mutex } from '../../src/locks/Mutex.ts';
import { WakeupBus } from '../../src/bus/WakeupBus.ts';

describe('toSafeJson (what the inspector may show)', () => {
  it('survives cycles and shared references', () => {
    const a: Record<string, unknown> = { name: 'a' };
    a['self'] = a;
    const shared = { n: 1 };
    expect(toSafeJson({ a, left: shared, right: shared })).to.deep.equal({ a: { name: 'a', self: '[Circular]' }, left: { n: 1 }, right: { n: 1 } });
  });

  it('names functions, symbols, bigints, errors, dates, maps, sets, buffers and actor refs', () => {
    const actor = createActor(createMachine({ id: 'm' }), { id: 'child' });
    const out = toSafeJson({
      fn: function restart() {},
      arrow: () => 1,
      sym: Symbol('s'),
      big: 12n,
      nan: Number.NaN,
      error: Object.assign(new Error('disk full'), { code: 'ENOSPC' }),
      date: new Date(0),
      map: new Map([['k', 1]]),
      set: new Set([1, 2]),
      bytes: new Uint8Array(8),
      actor,
      undef: undefined,
    });
    expect(out).to.deep.equal({
      fn: '[Function restart]',
      arrow: '[Function arrow]',
      sym: 'Symbol(s)',
      big: '12n',
      nan: 'NaN',
      error: { name: 'Error', message: 'disk full', code: 'ENOSPC' },
      date: '1970-01-01T00:00:00.000Z',
      map: { k: 1 },
      set: [1, 2],
      bytes: '[Uint8Array(8 bytes)]',
      actor: { xstate$$type: 1, id: 'child' },
      undef: undefined,
    });
    expect(JSON.stringify(out)).to.be.a('string');
  });

  it('cuts huge strings, long arrays, wide objects and deep nesting', () => {
    const out = toSafeJson(
      { text: 'x'.repeat(5_000), list: Array.from({ length: 150 }, (_, i) => i), deep: { a: { b: { c: { d: 1 } } } } },
      { depth: 3, stringLength: 100, items: 100 },
    ) as { text: string; list: unknown[]; deep: unknown };
    expect(out.text).to.have.length.below(130);
    expect(out.text).to.match(/…\(5000 chars\)$/);
    expect(out.list).to.have.length(101);
    expect(out.list.at(-1)).to.equal('…(50 more)');
    expect(out.deep).to.deep.equal({ a: { b: '[Object]' } });
    const wide = toSafeJson(Object.fromEntries(Array.from({ length: 120 }, (_, i) => [`k${i}`, i]))) as Record<string, unknown>;
    expect(wide['…']).to.equal('20 more keys');
  });

  it('redacts secrets by key and passwords in URLs', () => {
    expect(
      toSafeJson({
        password: 'hunter2',
        apiKey: 'abc',
        Authorization: 'Bearer x',
        token: 't',
        nested: { clientSecret: 's', user: 'bob' },
        url: 'redis://admin:s3cret@10.0.0.1:6379/0',
        noSecret: null,
      }),
    ).to.deep.equal({
      password: REDACTED,
      apiKey: REDACTED,
      Authorization: REDACTED,
      token: REDACTED,
      nested: { clientSecret: REDACTED, user: 'bob' },
      url: 'redis://admin:***@10.0.0.1:6379/0',
      noSecret: null,
    });
  });

  it('the one-pass writer gives exactly the JSON of the reference walk, on every kind of value and limit', () => {
    // A seeded generator: the same values on every run.
    let seed = 7;
    const random = (): number => (seed = (seed * 1_103_515_245 + 12_345) % 2_147_483_648) / 2_147_483_648;
    const actor = createActor(createMachine({ id: 'm' }), { id: 'child' });
    const leaves: Array<() => unknown> = [
      () => 'text',
      () => 'x'.repeat(Math.floor(random() * 40)),
      () => 'postgres://u:pw@db/x',
      () => Math.floor(random() * 1_000) - 500,
      () => [Number.NaN, Infinity, -Infinity, -0, 0.5][Math.floor(random() * 5)],
      () => random() < 0.5,
      () => null,
      () => undefined,
      () => 12n,
      () => Symbol('s'),
      () => function named() {},
      () => Object.assign(new Error('boom'), { code: random() < 0.5 ? 'E_X' : 42 }),
      () => new Date(0),
      () => new Date(Number.NaN),
      () => new Map([['k', { v: 1 }]]),
      () => new Set([1, 'two']),
      () => new Uint8Array(3),
      () => new AbortController().signal,
      () => actor,
      () => new Subject<number>(),
      () => Promise.resolve(1),
      () => new WakeupBus(),
      () => new Mutex({ name: 'm' }),
    ];
    const value = (depth: number): unknown => {
      const roll = random();
      if (depth > 7 || roll < 0.45) return (leaves[Math.floor(random() * leaves.length)] as () => unknown)();
      if (roll < 0.7) return Array.from({ length: Math.floor(random() * 6) }, () => value(depth + 1));
      const keys = ['a', 'b', 'password', 'token', 'list', '10', 'deep', 'x y'];
      return Object.fromEntries(Array.from({ length: Math.floor(random() * 6) }, () => [keys[Math.floor(random() * keys.length)] as string, value(depth + 1)]));
    };
    const limitsList: SafeJsonLimits[] = [
      { depth: 6, stringLength: 2_000, items: 100 },
      { depth: 2, stringLength: 10, items: 3 },
    ];
    for (let i = 0; i < 2_000; i++) {
      const sample = { v: value(0) };
      // Cycles and shared references as well.
      if (i % 10 === 0) (sample as Record<string, unknown>)['self'] = sample;
      if (i % 7 === 0) (sample as Record<string, unknown>)['again'] = (sample as Record<string, unknown>)['v'];
      for (const limits of limitsList) {
        const expected = JSON.stringify(toSafeJson(sample, limits)) ?? 'null';
        expect(safeStringify(sample, limits), `sample ${i} at depth limit ${limits.depth}`).to.equal(expected);
        // Twice: the second is written from the cache of stable parts, and must not differ.
        expect(safeStringify(sample, limits), `sample ${i} again`).to.equal(expected);
      }
    }
  });

  it('judges what capture may keep by reference: plain data and self-describing objects, not what can change', () => {
    expect(isStable({ a: 1, b: [1, 'x', { c: null }], fn() {} })).to.equal(true);
    expect(isStable({ bus: new WakeupBus(), lock: new Mutex(), stream: new Subject(), done: Promise.resolve() })).to.equal(true);
    expect(
      isStable(
        Object.freeze(
          new (class Frozen {
            readonly n = 1;
          })(),
        ),
      ),
    ).to.equal(true);
    // A class instance, a map, a date, an error, a signal can change under the reference.
    class Account {
      balance = 1;
    }
    for (const volatile of [new Account(), new Map(), new Date(0), new Error('x'), new AbortController().signal, new Set()]) {
      expect(isStable({ nested: { value: volatile } }), String(volatile)).to.equal(false);
    }
    // A cycle is not judged, it is copied (the copy shows "[Circular]").
    const cyclic: Record<string, unknown> = { n: 1 };
    cyclic['self'] = cyclic;
    expect(isStable(cyclic)).to.equal(false);
  });

  it('shows a self-describing object by its fixed description, and observables and promises by what they are', () => {
    class Pool {
      readonly name = 'db';
      connections = 3;
    }
    describeAs(Pool, (pool) => `[Pool ${pool.name}]`);
    const pool = new Pool();
    expect(toSafeJson({ pool, bus: new WakeupBus(), lock: new Mutex({ name: 'volumes' }), stream: new Subject(), done: Promise.resolve() })).to.deep.equal({
      pool: '[Pool db]',
      bus: '[WakeupBus]',
      lock: '[Mutex volumes]',
      stream: '[Subject]',
      done: '[Promise]',
    });
    pool.connections = 4;
    expect(isStable({ pool })).to.equal(true);
  });
});
