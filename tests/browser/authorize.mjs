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

import { byId, expectStatus, failer, logIn, startBrowser } from './harness.mjs';

const USAGE = 'usage: node authorize.mjs <admin-url> <account> <before.png> <after.png>';
const [adminArg, account, beforePng, afterPng] = process.argv.slice(2);
if (!adminArg || !account || !beforePng || !afterPng) failer('authorize.mjs')(USAGE);
const admin = adminArg.replace(/\/+$/, '');
const row = byId(`account-${account}`);
const { page, step, finish } = await startBrowser('authorize.mjs', { width: 1100, height: 360 });

await step('log in to the ops page', () => logIn(page, admin));

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

await finish(`${account} authorized in the browser; screenshots ${beforePng} ${afterPng}`);
