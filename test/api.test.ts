/**
 * The public API as API Extractor sees it in the built declarations: every exported
 * declaration and public member has a TSDoc comment, the TSDoc parses, and the API
 * report files in `api/` match the code. A change to the public surface therefore fails
 * here until `npm run api:update` rewrites the report, which then shows in review.
 */
import { Extractor, ExtractorConfig, type ExtractorMessage } from '@microsoft/api-extractor';
import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
const root = join(dirname(fileURLToPath(import.meta.url)), '..');

describe('the public API', function () {
  this.timeout(120_000);

  before(async () => {
    await run('npm', ['run', 'build', '--silent'], { cwd: root, maxBuffer: 1 << 24 });
  });

  for (const [entry, file] of [
    ['statesmith', 'api-extractor.json'],
    ['statesmith/inspector', 'api-extractor.inspector.json'],
    ['statesmith/telemetry', 'api-extractor.telemetry.json'],
    ['statesmith/nats', 'api-extractor.nats.json'],
  ] as const) {
    it(`${entry}: every export is documented and api/ matches the code`, () => {
      const config = ExtractorConfig.loadFileAndPrepare(join(root, file));
      const problems: string[] = [];
      const result = Extractor.invoke(config, {
        localBuild: false,
        messageCallback: (message: ExtractorMessage) => {
          if (message.logLevel === 'error' || message.logLevel === 'warning') {
            problems.push(`${message.sourceFilePath ?? ''}:${message.sourceFileLine ?? ''} ${message.messageId} ${message.text}`);
          }
          message.handled = true;
        },
      });
      expect(problems, 'API Extractor errors and warnings').to.deep.equal([]);
      expect(result.apiReportChanged, `the API report of ${entry} in api/ is stale: run npm run api:update`).to.equal(false);
      expect(result.succeeded).to.equal(true);
    });
  }
});
