/**
 * Finding and killing a process tree on Linux through `/proc` (with `kill(pid, 0)` where
 * there is no `/proc`). Errors from processes that are already gone are expected and
 * ignored; anything else is logged, never thrown.
 *
 * Internal to statesmith (not exported from the package). A file header says so in words:
 * the TSDoc tag for internal would attach to the first import, and `stripInternal` would drop it.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { getLogger } from '../logger.ts';

interface ProcStat {
  readonly ppid: number;
  readonly state: string;
}

function readStat(pid: number): ProcStat | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    // Gone (or no /proc): the caller treats undefined as "not found".
    return undefined;
  }
  // The command name may hold spaces and parentheses: the fields start after the last ')'.
  const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return { state: rest[0] ?? '?', ppid: Number(rest[1]) };
}

const hasProc = (() => {
  let known: boolean | undefined;
  return (): boolean => {
    if (known === undefined) {
      try {
        readdirSync('/proc/self');
        known = true;
      } catch {
        known = false;
      }
    }
    return known;
  };
})();

/** True while `pid` exists and is not a zombie. */
export function isAlive(pid: number): boolean {
  if (hasProc()) {
    const stat = readStat(pid);
    return stat !== undefined && stat.state !== 'Z' && stat.state !== 'X';
  }
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The pids in `/proc` now (none when it cannot be read). */
function procPids(): number[] {
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return [];
  }
  return entries.map(Number).filter((pid) => Number.isInteger(pid));
}

/** Every live descendant of `pid` (children, grandchildren, ...), from a `/proc` snapshot. */
export function listDescendants(pid: number): number[] {
  if (!hasProc()) return [];
  const children = new Map<number, number[]>();
  for (const child of procPids()) {
    const stat = readStat(child);
    if (!stat || stat.state === 'Z') continue;
    const list = children.get(stat.ppid);
    if (list) list.push(child);
    else children.set(stat.ppid, [child]);
  }
  const found: number[] = [];
  const queue = [pid];
  while (queue.length > 0) {
    for (const child of children.get(queue.pop() as number) ?? []) {
      found.push(child);
      queue.push(child);
    }
  }
  return found;
}

/** The environment variable that marks every process of one call: the child and all it starts inherit it. */
export const RUN_MARKER = 'STATESMITH_RUN';

/**
 * The environment variable that marks every process started under one durable actor, with a
 * token its snapshot keeps: the next incarnation finds what a killed one left running by it.
 */
export const OWNER_MARKER = 'STATESMITH_OWNER';

/**
 * Every live process (but this one) whose environment holds `RUN_MARKER=<runId>`: a
 * call's whole tree, including what left it. A daemon that double-forked and called
 * `setsid` is in neither the process group nor the `/proc` tree of the call any more,
 * but it still carries the environment it was started with. Escapes: a process that
 * cleared or replaced its environment (`env -i`, `execve` with a new one), and one
 * whose `/proc/<pid>/environ` this user may not read (another uid).
 */
export function listMarked(runId: string, marker: string = RUN_MARKER): number[] {
  return scanMarked(marker).get(runId) ?? [];
}

/**
 * Every live process (but this one) whose environment holds `marker=<value>`, grouped by
 * value: one pass over `/proc` for any number of values (a process restoring 10,000 durable
 * actors looks for each one's orphans once, not 10,000 times).
 */
export function scanMarked(marker: string): Map<string, number[]> {
  const found = new Map<string, number[]>();
  if (!hasProc()) return found;
  const needle = Buffer.from(`${marker}=`);
  for (const pid of procPids()) {
    if (pid === process.pid) continue;
    let environ: Buffer;
    try {
      environ = readFileSync(`/proc/${pid}/environ`);
    } catch {
      continue; // gone, or not ours to read
    }
    for (let at = environ.indexOf(needle); at !== -1; at = environ.indexOf(needle, at + 1)) {
      // Each entry starts the file or follows a NUL: match at a boundary only.
      if (at !== 0 && environ[at - 1] !== 0) continue;
      const end = environ.indexOf(0, at);
      const value = environ.toString('utf8', at + needle.length, end === -1 ? environ.length : end);
      const pids = found.get(value);
      if (pids === undefined) found.set(value, [pid]);
      else pids.push(pid);
      break;
    }
  }
  return found;
}

/**
 * Sends `signal` to `target` (a pid, or a negative process-group id). Returns false when
 * the target is gone; logs permission errors.
 */
export function sendSignal(target: number, signal: NodeJS.Signals): boolean {
  try {
    process.kill(target, signal);
    return true;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code !== 'ESRCH') getLogger().warn(`could not send ${signal} to ${target}`, { error });
    return false;
  }
}
