/**
 * Mocha root hooks: a quiet, capturing logger, a clean log before each test, and no
 * process warning left unseen: a test during which Node warns (a rejection handled late,
 * a listener leak, a deprecation) fails with the warning.
 */
import { clearLogs, installCapturingLogger } from './logs.ts';

installCapturingLogger();

/** The warnings Node emitted, with the test that was running. */
const warnings: string[] = [];
let running = '(between tests)';
process.on('warning', (warning) => warnings.push(`${running}: ${warning.name}: ${warning.message}`));

export const mochaHooks = {
  beforeEach(this: { currentTest?: { fullTitle(): string } }): void {
    clearLogs();
    running = this.currentTest?.fullTitle() ?? '(unknown test)';
  },
  // Checked once at the end, so one warning cannot stop the rest of the suite.
  afterAll(): void {
    armExitWatch();
    if (warnings.length > 0) throw new Error(`Node warned during the tests:\n${warnings.join('\n')}`);
  },
};

/**
 * How long the process may live on after the last test. Mocha runs without `--exit`, so a leaked
 * socket, timer or child keeps it alive; that is a failure to name, not a run that hangs until CI's
 * limit. The watch is unref'd: a process that ends on its own never sees it.
 */
const EXIT_GRACE_MS = 60_000;

function armExitWatch(): void {
  setTimeout(() => {
    const alive = process.getActiveResourcesInfo().filter((kind) => kind !== 'TTYWrap');
    process.stderr.write(
      `\nthe process is still alive ${EXIT_GRACE_MS / 1000} s after the last test: something leaked and keeps it running (${alive.join(', ')}); failing the run\n`,
    );
    // Mocha sets the exit code to its failure count from an 'exit' listener of its own; this one
    // comes after it.
    process.on('exit', () => (process.exitCode = 1));
    process.exit(1);
  }, EXIT_GRACE_MS).unref();
}
