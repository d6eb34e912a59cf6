// What the browser drivers (authorize.mjs, add_accounts.mjs) share: Debian's Chromium
// started headless for a closed network, a page that records every navigation, named steps
// that say where and why they failed, and the ops page's login. Never downloads a browser.

import { existsSync } from 'node:fs';

const STEP_MS = 10_000;

/// Any id, whatever characters it has, as an exact id selector.
export const byId = (id) => `[id=${JSON.stringify(id)}]`;

/// Codes and PKCE values are one-time test values, but keep them out of logs anyway.
function redact(url) {
  return url.replace(/([?&](?:code|code_challenge|state)=)[^&]*/g, '$1…');
}

/// Print why `script` failed and exit 1.
export function failer(script) {
  return (msg) => {
    console.error(`${script}: ${msg}`);
    process.exit(1);
  };
}

/// Start Chromium and one page of `viewport` size for `script` (its name in messages).
export async function startBrowser(script, viewport) {
  const fail = failer(script);
  const executablePath = process.env.UPSBRIDGE_CHROMIUM || '/usr/bin/chromium';
  if (!existsSync(executablePath)) {
    fail(`Chromium not found at ${executablePath}: run \`bash scripts/setup.sh\``);
  }
  let chromium;
  try {
    ({ chromium } = await import('playwright-core'));
  } catch (e) {
    fail(`playwright-core is not installed in tests/browser: run \`bash scripts/setup.sh\` (${e.message})`);
  }
  const browser = await chromium
    .launch({
      executablePath,
      headless: true,
      timeout: 20_000,
      // Root on a closed network: no sandbox, no background connections to Google.
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        '--disable-dev-shm-usage',
      ],
    })
    .catch((e) => fail(`Chromium (${executablePath}) did not start: ${e.message}`));
  const context = await browser.newContext({ viewport, deviceScaleFactor: 1 });
  const page = await context.newPage();
  page.setDefaultTimeout(STEP_MS);
  page.setDefaultNavigationTimeout(STEP_MS);
  const seen = []; // every document the browser was sent to, with its status
  page.on('response', (r) => {
    if (r.request().isNavigationRequest()) seen.push(`${r.status()} ${r.request().method()} ${redact(r.url())}`);
  });
  page.on('pageerror', (e) => seen.push(`page error: ${e.message}`));

  /// Run one named step; on failure say which, the page it was on and what it said, exit 1.
  async function step(name, fn) {
    try {
      return await fn();
    } catch (e) {
      let body = '';
      try {
        body = (await page.locator('body').innerText({ timeout: 1000 })).trim().slice(0, 1500);
      } catch {}
      await browser.close().catch(() => {});
      fail(
        `step "${name}" failed: ${e.message.split('\n')[0]}\n` +
          `  page: ${page.url()}\n` +
          `  navigations:\n${seen.map((s) => '    ' + s).join('\n') || '    (none)'}\n` +
          `  page text:\n${body.replace(/^/gm, '    ') || '    (empty)'}`
      );
    }
  }

  /// Close the browser and print every navigation (the driver's success report).
  async function finish(summary) {
    await browser.close();
    console.log(`${script}: ${summary}`);
    for (const s of seen) console.log(`  ${s}`);
  }

  return { browser, page, step, finish, fail };
}

export function expectStatus(resp, what) {
  if (!resp) throw new Error(`${what}: no response`);
  if (resp.status() !== 200) throw new Error(`${what}: HTTP ${resp.status()} at ${resp.url()}`);
}

/// Log in to the ops page at `admin` with UPSBRIDGE_ADMIN_PASSWORD (the ops page sends a
/// browser without a session to the login form).
export async function logIn(page, admin) {
  expectStatus(await page.goto(`${admin}/`), 'login page');
  if (new URL(page.url()).pathname !== '/login') throw new Error(`expected the login form, got ${page.url()}`);
  await page.locator('#password').fill(process.env.UPSBRIDGE_ADMIN_PASSWORD || '');
  const [resp] = await Promise.all([
    page.waitForNavigation({ url: (u) => u.pathname === '/' }),
    page.locator('#login').click(),
  ]);
  expectStatus(resp, 'ops page after logging in');
}
