#!/usr/bin/env node
// Drives a real Chromium over HTTPS, where it speaks HTTP/2 (ALPN h2),
// against a test page served through platform-proxy, and checks what the
// page reports: 24 downloads at once, each byte for byte; a 3 MiB upload
// whole; three server-sent events; two cookies the app set, sent back
// (Chromium splits the Cookie field over HTTP/2, the proxy joins it for
// the HTTP/1.1 upstream); and that the navigation and every resource went
// over h2.
//
// Usage: node tests/browser/h2.mjs URL
//
// URL's host must end in .apps.test: Chromium is told to send those names
// to 127.0.0.1, and to accept the test's certificate. Prints one JSON line
// and exits 0 when every check passed, 1 otherwise, 2 on bad usage. The
// whole run is bounded by OVERALL_TIMEOUT_MS.
//
// CHROMIUM overrides the browser binary (default: Debian's /usr/bin/chromium).

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

import { CHROMIUM_ARGS, within } from './chromium.mjs';

const PAGE_TIMEOUT_MS = 30_000;
const OVERALL_TIMEOUT_MS = 60_000;
const CLOSE_TIMEOUT_MS = 5_000;

const ARGS = [
  ...CHROMIUM_ARGS,
  '--host-resolver-rules=MAP *.apps.test 127.0.0.1',
  '--ignore-certificate-errors',
];

async function main(url) {
  const userDataDir = await mkdtemp(join(tmpdir(), 'pp-browser-h2-'));
  let context = null;
  const watchdog = setTimeout(() => {
    console.error(`FAIL: overall timeout of ${OVERALL_TIMEOUT_MS / 1000}s reached`);
    process.exit(1);
  }, OVERALL_TIMEOUT_MS);
  let result = { ok: false };
  try {
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
      headless: true,
      args: ARGS,
      ignoreHTTPSErrors: true,
      timeout: PAGE_TIMEOUT_MS,
    });
    const page = await context.newPage();
    const consoleErrors = [];
    page.on('console', (msg) => {
      if (msg.type() === 'error') consoleErrors.push(msg.text());
    });
    page.on('pageerror', (err) => consoleErrors.push(String(err)));
    const response = await page.goto(url, { waitUntil: 'domcontentloaded', timeout: PAGE_TIMEOUT_MS });
    if (!response || !response.ok()) throw new Error(`navigation answered ${response?.status()}`);
    await page.waitForFunction(() => document.body?.dataset.done === '1', null, {
      timeout: PAGE_TIMEOUT_MS,
      polling: 100,
    });
    const seen = await page.evaluate(() => ({
      report: JSON.parse(document.body.dataset.report),
      navigation: performance.getEntriesByType('navigation')[0]?.nextHopProtocol,
      resources: performance.getEntriesByType('resource').map((e) => e.nextHopProtocol),
    }));
    const allH2 = seen.navigation === 'h2' && seen.resources.length > 0 && seen.resources.every((p) => p === 'h2');
    result = { ...seen.report, navigation: seen.navigation, resources: seen.resources.length, allH2 };
    result.ok = Boolean(seen.report.ok && allH2);
    if (!result.ok) result.consoleErrors = consoleErrors;
  } catch (err) {
    result.error = err instanceof Error ? err.message.split('\n')[0] : String(err);
  } finally {
    clearTimeout(watchdog);
    if (context) await within(context.close(), CLOSE_TIMEOUT_MS, undefined);
    await rm(userDataDir, { recursive: true, force: true }).catch(() => {});
  }
  console.log(JSON.stringify(result));
  return result.ok ? 0 : 1;
}

const url = process.argv[2];
if (!url) {
  console.error('usage: node tests/browser/h2.mjs URL');
  process.exit(2);
}
process.exit(await main(url));
