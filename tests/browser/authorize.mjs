// Drives the ops page's Authorize flow in headless Chromium, as an ops person would:
// log in to the ops page with the admin password, click Authorize, log in on UPS's (the
// simulator's) login page, and land back on the ops page with the account valid. Run by
// tests/browser.rs with the admin password in UPSBRIDGE_ADMIN_PASSWORD:
//
//   node tests/browser/authorize.mjs <admin-url> <account> <before.png> <after.png>
//
// Exits 0 when the account shows data-state="valid" after the round trip; otherwise
// prints which step failed, the page it was on and what that page said, and exits 1.
// Chromium is Debian's (/usr/bin/chromium, or $UPSBRIDGE_CHROMIUM); never a download.

import { existsSync } from 'node:fs';

const USAGE = 'usage: node authorize.mjs <admin-url> <account> <before.png> <after.png>';
const [adminArg, account, beforePng, afterPng] = process.argv.slice(2);
if (!adminArg || !account || !beforePng || !afterPng) fail(USAGE);
const admin = adminArg.replace(/\/+$/, '');
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

// Any account name, whatever characters it has, as an exact id match.
const byId = (id) => `[id=${JSON.stringify(id)}]`;
const row = byId(`account-${account}`);
const STEP_MS = 10_000;

const browser = await chromium.launch({
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
}).catch((e) => fail(`Chromium (${executablePath}) did not start: ${e.message}`));

const context = await browser.newContext({ viewport: { width: 1100, height: 360 }, deviceScaleFactor: 1 });
const page = await context.newPage();
page.setDefaultTimeout(STEP_MS);
page.setDefaultNavigationTimeout(STEP_MS);
const seen = []; // every document the browser was sent to, with its status
page.on('response', (r) => {
  if (r.request().isNavigationRequest()) seen.push(`${r.status()} ${r.request().method()} ${redact(r.url())}`);
});
page.on('pageerror', (e) => seen.push(`page error: ${e.message}`));

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

function expectStatus(resp, what) {
  if (!resp) throw new Error(`${what}: no response`);
  if (resp.status() !== 200) throw new Error(`${what}: HTTP ${resp.status()} at ${resp.url()}`);
}

await step('log in to the ops page', async () => {
  // The ops page sends a browser without a session to the login form.
  expectStatus(await page.goto(`${admin}/`), 'login page');
  if (new URL(page.url()).pathname !== '/login') throw new Error(`expected the login form, got ${page.url()}`);
  await page.locator('#password').fill(process.env.UPSBRIDGE_ADMIN_PASSWORD || '');
  const [resp] = await Promise.all([
    page.waitForNavigation({ url: (u) => u.pathname === '/' }),
    page.locator('#login').click(),
  ]);
  expectStatus(resp, 'ops page after logging in');
});

await step('open the ops page', async () => {
  expectStatus(await page.goto(`${admin}/`), 'ops page');
  const state = await page.locator(`${row} [data-state]`).getAttribute('data-state');
  if (state !== 'needs_authorization') {
    throw new Error(`account ${account} shows data-state="${state}" before authorizing, expected "needs_authorization"`);
  }
});
await step('screenshot before', () => page.screenshot({ path: beforePng, fullPage: true }));

await step('click Authorize', async () => {
  const [resp] = await Promise.all([
    page.waitForNavigation({ url: (u) => u.pathname === '/security/v1/oauth/authorize' }),
    page.locator(byId(`authorize-${account}`)).click(),
  ]);
  expectStatus(resp, "UPS's login page");
});

await step('log in on the UPS login page', async () => {
  await page.locator('#user').fill('owner');
  await page.locator('#password').fill('owner-password');
  // Allow -> 302 to the admin callback -> 303 to /?flash=authorized&account=<account>.
  const [resp] = await Promise.all([
    page.waitForNavigation({
      url: (u) => u.origin === new URL(admin).origin && u.pathname === '/' && u.searchParams.get('flash') === 'authorized' && u.searchParams.get('account') === account,
    }),
    page.locator('#allow').click(),
  ]);
  expectStatus(resp, 'ops page after the callback');
});

await step('see the account valid', async () => {
  await page.locator(`${row} [data-state="valid"]`).waitFor({ state: 'visible' });
  const flash = await page.locator('#flash').innerText();
  if (!flash.includes(account)) throw new Error(`flash message does not name ${account}: ${flash}`);
});
await step('screenshot after', () => page.screenshot({ path: afterPng, fullPage: true }));

await browser.close();
console.log(`authorize.mjs: ${account} authorized in the browser; screenshots ${beforePng} ${afterPng}`);
for (const s of seen) console.log(`  ${s}`);

// Codes and PKCE values are one-time test values, but keep them out of logs anyway.
function redact(url) {
  return url.replace(/([?&](?:code|code_challenge|state)=)[^&]*/g, '$1…');
}

function fail(msg) {
  console.error(`authorize.mjs: ${msg}`);
  process.exit(1);
}
