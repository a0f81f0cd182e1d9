/**
 * The package logger. Every facility logs through it; applications plug in their own
 * (pino, winston, console) with {@link setLogger}. The default writes `info` and above
 * to stderr; set `STATESMITH_LOG=debug` for more, or `silent` for nothing.
 *
 * @module
 */
import { ArgumentTypeError } from './errors.ts';

/** Structured fields attached to a log line (an `error` field carries the cause). */
export type LogFields = Readonly<Record<string, unknown>>;

/** The logging interface statesmith writes to. */
export interface Logger {
  /** Detail for debugging, such as the stack of an expected restart; hidden by default. */
  debug(message: string, fields?: LogFields): void;
  /** Normal events worth a line, such as a task restarted under its policy. */
  info(message: string, fields?: LogFields): void;
  /** Something failed and was handled, such as a failed HA cycle that the loop survived. */
  warn(message: string, fields?: LogFields): void;
  /** Something failed that needs an operator's attention. */
  error(message: string, fields?: LogFields): void;
}

const LEVELS = ['debug', 'info', 'warn', 'error', 'silent'] as const;
/** A log level: the four of {@link Logger}, or `'silent'` for nothing. */
export type LogLevel = (typeof LEVELS)[number];

function levelFromEnv(): LogLevel {
  const raw = process.env['STATESMITH_LOG'];
  return (LEVELS as readonly string[]).includes(raw ?? '') ? (raw as LogLevel) : 'info';
}

function formatFields(fields: LogFields | undefined): string {
  if (!fields) return '';
  const parts: string[] = [];
  for (const [key, value] of Object.entries(fields)) {
    try {
      if (value instanceof Error) parts.push(`${key}=${value.stack ?? value.message}`);
      else parts.push(`${key}=${typeof value === 'string' ? value : safeJson(value)}`);
    } catch {
      // A value whose getters or proxy traps throw: the line is still written.
      parts.push(`${key}=[unreadable]`);
    }
  }
  return parts.length ? ` ${parts.join(' ')}` : '';
}

function safeJson(value: unknown): string {
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    // A cycle or a BigInt: fall back to the plain rendering rather than lose the line.
    return String(value);
  }
}

/** A logger writing `[statesmith] level message fields` lines to stderr from `minLevel` up. */
export function createConsoleLogger(minLevel: LogLevel = levelFromEnv()): Logger {
  const min = LEVELS.indexOf(minLevel);
  const write = (level: LogLevel) => (message: string, fields?: LogFields) => {
    if (LEVELS.indexOf(level) >= min) process.stderr.write(`[statesmith] ${level} ${message}${formatFields(fields)}\n`);
  };
  return { debug: write('debug'), info: write('info'), warn: write('warn'), error: write('error') };
}

let current: Logger | undefined;

/**
 * Replaces the package logger; `null` restores the default console logger.
 *
 * @example
 * ```ts
 * import { getLogger, setLogger } from 'statesmith';
 * const lines: string[] = [];
 * setLogger({ debug() {}, info: (m) => lines.push(m), warn: (m) => lines.push(m), error: (m) => lines.push(m) });
 * getLogger().info('Cancelling long running task restart');
 * console.log(lines); // [ 'Cancelling long running task restart' ]
 * setLogger(null);
 * ```
 */
export function setLogger(logger: Logger | null): void {
  if (logger !== null) {
    const methods = logger as Partial<Record<keyof Logger, unknown>> | undefined;
    if (typeof methods !== 'object' || methods === null || LOGGER_METHODS.some((name) => typeof methods[name] !== 'function')) {
      throw new ArgumentTypeError('logger', 'a Logger (an object with debug, info, warn and error methods) or null', logger);
    }
  }
  current = logger ?? undefined;
}

const LOGGER_METHODS = ['debug', 'info', 'warn', 'error'] as const;

/** The logger in force now. */
export function getLogger(): Logger {
  current ??= createConsoleLogger();
  return current;
}
