#!/usr/bin/env node
// Drives a real Chromium against the demo app served through platform-proxy
// and checks that its WebSocket echo and server-sent events both flow.
//
// Usage: node tests/browser/demo.mjs URL [URL...]
//
// For each URL it waits until the page reports at least two WebSocket echoes
// and two SSE events (body data-ws-echoes / data-sse-events), then prints one
// JSON line: {"url", "wsEchoes", "sseEvents", "title", "launched", "ok"}.
// The browser starts without a session, so the proxy must send it through
// the platform's launch page and the one-time launch code: `launched` says
// that navigation happened, and a page whose final URL still carries the
// code fails. Exits 0 when
// every URL passed, 1 otherwise (with the page's console errors and the tail
// of its text on stderr), 2 on bad usage. The browser is always closed and
// the whole run is bounded by OVERALL_TIMEOUT_MS.
//
// CHROMIUM overrides the browser binary (default: Debian's /usr/bin/chromium).

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

import { CHROMIUM_ARGS, within } from './chromium.mjs';

const PER_URL_TIMEOUT_MS = 15_000;
const OVERALL_TIMEOUT_MS = 60_000;
const CLOSE_TIMEOUT_MS = 5_000;
const WANT_WS_ECHOES = 2;
const WANT_SSE_EVENTS = 2;
const BODY_TAIL_CHARS = 500;

/** Reads the page's counters and title; never throws. */
async function readCounters(page) {
  const read = page.evaluate(() => ({
    wsEchoes: Number(document.body?.dataset.wsEchoes ?? 0),
    sseEvents: Number(document.body?.dataset.sseEvents ?? 0),
    title: document.title,
  }));
  return within(read, 2_000, { wsEchoes: 0, sseEvents: 0, title: '' });
}

async function checkUrl(context, url) {
  const deadline = Date.now() + PER_URL_TIMEOUT_MS;
  const consoleErrors = [];
  const page = await context.newPage();
  page.on('console', (msg) => {
    if (msg.type() === 'error') consoleErrors.push(msg.text());
  });
  page.on('pageerror', (err) => consoleErrors.push(String(err)));
  let launched = false;
  page.on('request', (req) => {
    if (req.isNavigationRequest() && new URL(req.url()).pathname.endsWith('/.platform-proxy/launch')) {
      launched = true;
    }
  });
  page.on('requestfailed', (req) =>
    consoleErrors.push(`request failed: ${req.url()} (${req.failure()?.errorText ?? 'unknown'})`),
  );

  let error = null;
  try {
    const response = await page.goto(url, { waitUntil: 'domcontentloaded', timeout: PER_URL_TIMEOUT_MS });
    if (response && !response.ok()) {
      throw new Error(`navigation answered HTTP ${response.status()}`);
    }
    await page.waitForFunction(
      ([ws, sse]) =>
        Number(document.body?.dataset.wsEchoes ?? 0) >= ws &&
        Number(document.body?.dataset.sseEvents ?? 0) >= sse,
      [WANT_WS_ECHOES, WANT_SSE_EVENTS],
      { timeout: Math.max(1, deadline - Date.now()), polling: 100 },
    );
    if (!launched) throw new Error('the browser was never sent through the launch code');
    if (new URL(page.url()).searchParams.has('code')) {
      throw new Error(`the launch code stayed in the address bar: ${page.url()}`);
    }
  } catch (err) {
    error = err instanceof Error ? err.message.split('\n')[0] : String(err);
  }

  const counters = await readCounters(page);
  const result = { url, ...counters, launched, ok: error === null };
  if (error !== null) {
    result.error = error;
    const text = await within(
      page.evaluate(() => document.body?.innerText ?? ''),
      2_000,
      '<could not read body text>',
    );
    result.consoleErrors = consoleErrors;
    result.bodyTail = text.slice(-BODY_TAIL_CHARS);
  }
  await within(page.close(), CLOSE_TIMEOUT_MS, undefined);
  return result;
}

async function main(urls) {
  const userDataDir = await mkdtemp(join(tmpdir(), 'pp-browser-'));
  let context = null;
  let timedOut = false;

  const cleanup = async () => {
    if (context) await within(context.close(), CLOSE_TIMEOUT_MS, undefined);
    await rm(userDataDir, { recursive: true, force: true }).catch(() => {});
  };

  // Hard stop: whatever hangs, close the browser and exit non-zero. Playwright
  // kills the browser process it launched when this process exits.
  const watchdog = setTimeout(async () => {
    timedOut = true;
    console.error(`FAIL: overall timeout of ${OVERALL_TIMEOUT_MS / 1000}s reached`);
    await within(cleanup(), CLOSE_TIMEOUT_MS, undefined);
    process.exit(1);
  }, OVERALL_TIMEOUT_MS);

  const results = [];
  try {
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
      headless: true,
      args: CHROMIUM_ARGS,
      timeout: PER_URL_TIMEOUT_MS,
    });
    for (const url of urls) {
      if (timedOut) break;
      const result = await checkUrl(context, url);
      results.push(result);
      const { url: u, wsEchoes, sseEvents, title, launched, ok } = result;
      console.log(JSON.stringify({ url: u, wsEchoes, sseEvents, title, launched, ok }));
    }
  } catch (err) {
    console.error(`FAIL: browser error: ${err instanceof Error ? err.message : String(err)}`);
    results.push({ ok: false });
  } finally {
    clearTimeout(watchdog);
    await cleanup();
  }

  const failed = results.filter((r) => !r.ok);
  for (const r of failed) {
    if (!r.url) continue;
    console.error(`FAIL ${r.url}: ${r.error}`);
    console.error(`  wsEchoes=${r.wsEchoes} sseEvents=${r.sseEvents} (want >= ${WANT_WS_ECHOES} each)`);
    console.error(`  console errors: ${r.consoleErrors.length ? '' : '(none)'}`);
    for (const line of r.consoleErrors) console.error(`    ${line}`);
    console.error(`  last ${BODY_TAIL_CHARS} chars of body text:\n${r.bodyTail}`);
  }
  return failed.length === 0 && results.length === urls.length ? 0 : 1;
}

const urls = process.argv.slice(2);
if (urls.length === 0) {
  console.error('usage: node tests/browser/demo.mjs URL [URL...]');
  process.exit(2);
}
process.exit(await main(urls));
