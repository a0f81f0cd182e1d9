/**
 * A tiny side-by-side benchmark harness: each case runs in the same process, after a
 * warm-up, several rounds, and the median is reported. Ratios against a baseline are
 * what to read; absolute numbers move with the machine.
 */

export interface Case {
  readonly name: string;
  /** Runs `n` iterations once. */
  readonly run: (n: number) => Promise<void> | void;
}

export interface Result {
  readonly name: string;
  readonly nsPerOp: number;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

export { median };

export async function measure(cases: readonly Case[], { n, rounds = 7 }: { n: number; rounds?: number }): Promise<Result[]> {
  for (const c of cases) await c.run(Math.max(1, n >> 2)); // warm-up
  const samples = new Map<string, number[]>(cases.map((c) => [c.name, []]));
  // Interleave the cases round by round so drift in machine load hits them alike.
  for (let round = 0; round < rounds; round++) {
    for (const c of cases) {
      const start = process.hrtime.bigint();
      await c.run(n);
      const elapsed = Number(process.hrtime.bigint() - start);
      samples.get(c.name)?.push(elapsed / n);
    }
  }
  return cases.map((c) => ({ name: c.name, nsPerOp: median(samples.get(c.name) ?? []) }));
}

export function table(title: string, rows: ReadonlyArray<Record<string, string>>): void {
  console.log(`\n${title}`);
  const columns = Object.keys(rows[0] ?? {});
  const widths = columns.map((c) => Math.max(c.length, ...rows.map((r) => (r[c] ?? '').length)));
  const fmt = (cells: string[]) => `| ${cells.map((cell, i) => cell.padEnd(widths[i] as number)).join(' | ')} |`;
  console.log(fmt(columns));
  console.log(`|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`);
  for (const row of rows) console.log(fmt(columns.map((c) => row[c] ?? '')));
}

export const fmtNs = (ns: number): string => (ns >= 1e6 ? `${(ns / 1e6).toFixed(2)} ms` : ns >= 1e3 ? `${(ns / 1e3).toFixed(2)} µs` : `${ns.toFixed(0)} ns`);
export const fmtRatio = (x: number): string => `${x.toFixed(2)}×`;
