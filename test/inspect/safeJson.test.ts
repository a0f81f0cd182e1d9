import { expect } from 'chai';
import { createActor, createMachine } from 'xstate';
import { REDACTED, toSafeJson } from '../../src/inspect/safeJson.ts';

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
});
