/**
 * A capturing logger for tests: quiet by default, and lets a test assert on what was
 * logged. Installed for the whole run by `setup.ts`.
 */
import { setLogger, type LogFields, type Logger } from '../../src/index.ts';

export interface LogLine {
  readonly level: 'debug' | 'info' | 'warn' | 'error';
  readonly message: string;
  readonly fields: LogFields | undefined;
}

export const logLines: LogLine[] = [];

const capture = (level: LogLine['level']) => (message: string, fields?: LogFields) => {
  logLines.push({ level, message, fields });
  if (process.env['STATESMITH_TEST_LOG']) process.stderr.write(`[test log] ${level} ${message}\n`);
};

export const capturingLogger: Logger = {
  debug: capture('debug'),
  info: capture('info'),
  warn: capture('warn'),
  error: capture('error'),
};

export function installCapturingLogger(): void {
  setLogger(capturingLogger);
}

export function clearLogs(): void {
  logLines.length = 0;
}

export function logged(level: LogLine['level'], pattern: RegExp): LogLine[] {
  return logLines.filter((line) => line.level === level && pattern.test(line.message));
}
