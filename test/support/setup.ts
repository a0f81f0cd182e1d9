/** Mocha root hooks: a quiet, capturing logger, and a clean log before each test. */
import { clearLogs, installCapturingLogger } from './logs.ts';

installCapturingLogger();

export const mochaHooks = {
  beforeEach(): void {
    clearLogs();
  },
};
