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

import { appendFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { byId, expectStatus, failer, logIn, startBrowser } from './harness.mjs';

const USAGE = 'usage: node add_accounts.mjs <admin-url> <accounts.json> <map-file> <shots-dir>';
const [adminArg, accountsJson, mapFile, shots] = process.argv.slice(2);
if (!adminArg || !accountsJson || !mapFile || !shots) failer('add_accounts.mjs')(USAGE);
const accounts = JSON.parse(readFileSync(accountsJson, 'utf8'));
const admin = adminArg.replace(/\/+$/, '');
const { page, step, finish } = await startBrowser('add_accounts.mjs', { width: 1100, height: 700 });

await step('log in', () => logIn(page, admin));
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

await finish(`${cc.name} and ${ac.name} added in the browser; screenshots in ${shots}`);
