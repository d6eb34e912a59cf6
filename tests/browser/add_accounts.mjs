// Adds two accounts through the ops page's New-account form in headless Chromium, as an
// ops person would: log in, New account, a client-credentials account; New account, an
// authorization-code account, straight on to UPS's (the simulator's) login page, Allow,
// back with the account valid; then a form opened before someone else edited the map is
// refused. Screenshots of each page state go to <shots-dir>. Run by tests/browser.rs:
//
//   node tests/browser/add_accounts.mjs <admin-url> <accounts.json> <map-file> <shots-dir>
//
// <accounts.json>: [{name, ups_account_number, grant, client_id, secret_source,
// access_license_number, user_id, password}, …]. UPSBRIDGE_ADMIN_PASSWORD holds the admin
// password. Exits 0 when every step passed; otherwise says which step failed, and exits 1.
// Chromium is Debian's (/usr/bin/chromium, or $UPSBRIDGE_CHROMIUM); never a download.

import { appendFileSync, existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const USAGE = 'usage: node add_accounts.mjs <admin-url> <accounts.json> <map-file> <shots-dir>';
const [adminArg, accountsJson, mapFile, shots] = process.argv.slice(2);
if (!adminArg || !accountsJson || !mapFile || !shots) fail(USAGE);
const accounts = JSON.parse(readFileSync(accountsJson, 'utf8'));
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

const context = await browser.newContext({ viewport: { width: 1100, height: 700 }, deviceScaleFactor: 1 });
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

await step('log in', async () => {
  expectStatus(await page.goto(`${admin}/`), 'login page');
  await page.locator('#password').fill(process.env.UPSBRIDGE_ADMIN_PASSWORD || '');
  const [resp] = await Promise.all([
    page.waitForNavigation({ url: (u) => u.pathname === '/' }),
    page.locator('#login').click(),
  ]);
  expectStatus(resp, 'ops page after logging in');
});
await step('screenshot: the ops page', () => page.screenshot({ path: join(shots, 'ops-1-accounts.png'), fullPage: true }));

async function fillForm(a) {
  await page.locator('#new-account').click();
  await page.waitForURL((u) => u.pathname === '/accounts/new');
  for (const k of ['name', 'ups_account_number', 'client_id', 'secret_source', 'access_license_number', 'user_id', 'password']) {
    await page.locator(byId(k)).fill(a[k]);
  }
  await page.locator('#grant').selectOption(a.grant);
}

const [cc, ac] = accounts;
await step(`New account ${cc.name} (client credentials)`, async () => {
  await fillForm(cc);
  await page.screenshot({ path: join(shots, 'ops-2-new-account.png'), fullPage: true });
  const [resp] = await Promise.all([
    page.waitForNavigation({ url: (u) => u.pathname === '/' && u.searchParams.get('flash') === 'added' }),
    page.locator('#add').click(),
  ]);
  expectStatus(resp, 'ops page after adding');
  await page.locator(byId(`account-${cc.name}`)).waitFor({ state: 'visible' });
});
await step('screenshot: added', () => page.screenshot({ path: join(shots, 'ops-3-added.png'), fullPage: true }));

await step(`New account ${ac.name} (authorization code), on to UPS`, async () => {
  await fillForm(ac);
  const [resp] = await Promise.all([
    page.waitForNavigation({ url: (u) => u.pathname === '/security/v1/oauth/authorize' }),
    page.locator('#add').click(),
  ]);
  expectStatus(resp, "UPS's login page");
});
await step('log in at UPS and allow', async () => {
  await page.locator('#user').fill('owner');
  await page.locator('#password').fill('owner-password');
  const [resp] = await Promise.all([
    page.waitForNavigation({
      url: (u) => u.pathname === '/' && u.searchParams.get('flash') === 'authorized' && u.searchParams.get('account') === ac.name,
    }),
    page.locator('#allow').click(),
  ]);
  expectStatus(resp, 'ops page after the callback');
  await page.locator(`${byId(`account-${ac.name}`)} [data-state="valid"]`).waitFor({ state: 'visible' });
});
await step('screenshot: authorized', () => page.screenshot({ path: join(shots, 'ops-4-authorized.png'), fullPage: true }));

await step(`the account view of ${cc.name}`, async () => {
  expectStatus(await page.goto(`${admin}/accounts/${encodeURIComponent(cc.name)}`), 'account view');
  await page.locator('#traffic').waitFor({ state: 'visible' });
  await page.screenshot({ path: join(shots, 'ops-5-account-view.png'), fullPage: true });
});

await step('a form opened before someone else edited the map is refused', async () => {
  expectStatus(await page.goto(`${admin}/accounts/new`), 'new account form');
  for (const k of ['name', 'ups_account_number', 'client_id', 'secret_source', 'access_license_number', 'user_id', 'password']) {
    await page.locator(byId(k)).fill(k === 'name' ? 'late-edit' : k === 'access_license_number' ? 'LATEKEY1' : cc[k]);
  }
  appendFileSync(mapFile, '\n# edited by hand meanwhile\n');
  const [resp] = await Promise.all([page.waitForNavigation(), page.locator('#add').click()]);
  if (resp.status() !== 409) throw new Error(`expected 409, got ${resp.status()}`);
  const flash = await page.locator('#flash').innerText();
  if (!flash.includes('changed since this form was opened')) throw new Error(`unclear refusal: ${flash}`);
  await page.screenshot({ path: join(shots, 'ops-6-concurrent-edit.png'), fullPage: true });
});

await browser.close();
console.log(`add_accounts.mjs: ${cc.name} and ${ac.name} added in the browser; screenshots in ${shots}`);
for (const s of seen) console.log(`  ${s}`);

// Codes and PKCE values are one-time test values, but keep them out of logs anyway.
function redact(url) {
  return url.replace(/([?&](?:code|code_challenge|state)=)[^&]*/g, '$1…');
}

function fail(msg) {
  console.error(`authorize.mjs: ${msg}`);
  process.exit(1);
}
