/**
 * Refreshes docs/inspector.png: runs the HA-agent demo with its inspector, lets it lead, run
 * actions and break its stuck lock, then photographs the page with the executor selected.
 *
 *   node --conditions=statesmith-source --import tsx scripts/screenshot.ts
 *
 * Needs Debian's chromium (/usr/bin/chromium), as the browser tests do.
 */
import { chromium } from 'playwright-core';
import { runHaAgent } from '../src/demo/haAgent.ts';

const agent = await runHaAgent({ inspectPort: 0, out: () => undefined });
const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
  ],
});
try {
  // Long enough for a leader, a few cycles with actions, and the watchdog's force.
  await new Promise((resolve) => setTimeout(resolve, 9_000));
  const page = await browser.newPage({ viewport: { width: 1500, height: 900 } });
  await page.goto(agent.inspectorUrl as string);
  await page.locator('#connection', { hasText: 'live' }).waitFor({ timeout: 10_000 });
  await page.locator(`[data-session="${agent.executor.actor.sessionId}"]`).click();
  await page.locator('#chart-svg g.svg-node').first().waitFor({ timeout: 10_000 });
  await new Promise((resolve) => setTimeout(resolve, 1_500));
  await page.screenshot({ path: new URL('../docs/inspector.png', import.meta.url).pathname });
  console.log('wrote docs/inspector.png');
} finally {
  await browser.close();
  await agent.stop();
}
