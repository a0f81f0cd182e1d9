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
    if (warnings.length > 0) throw new Error(`Node warned during the tests:\n${warnings.join('\n')}`);
  },
};
