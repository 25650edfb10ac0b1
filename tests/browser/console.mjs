// The console in a real browser: Debian's headless Chromium driven by playwright-core.
// A technician logs in, finds the USB stick (a folder under a configured usb root) with its
// package, imports it and follows the progress page to the end, first with JavaScript off (the
// page refreshes itself), then verifies the package with JavaScript on (the script moves the
// bar). Then a phone sees the imported lessons. Run by tests/it/browser_console.rs with
// DARS_URL, DARS_USER, DARS_PASSWORD, DARS_STICK (the stick's folder name), DARS_LESSON (a
// title the import brings) and ARTIFACTS (where screenshots go).
import { chromium } from 'playwright-core';
import path from 'node:path';

const base = process.env.DARS_URL;
const artifacts = process.env.ARTIFACTS || '.';
const flags = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];

function check(ok, what) {
  if (!ok) throw new Error(what);
  console.log(`ok: ${what}`);
}

async function login(context) {
  const page = await context.newPage();
  page.on('requestfailed', (r) => console.log(`request failed: ${r.url()} ${r.failure()?.errorText}`));
  await page.goto(`${base}/admin/login`);
  check((await page.locator('h1').textContent()).includes('Konsola giriş'), 'the login page is in Azerbaijani');
  await page.fill('input[name=name]', process.env.DARS_USER);
  await page.fill('input[name=password]', process.env.DARS_PASSWORD);
  await Promise.all([page.waitForURL(/\/admin\/lessons$/), page.click('button[type=submit]')]);
  check(true, 'logged in');
  return page;
}

async function runJob(page, button, label) {
  await Promise.all([page.waitForURL(/\/admin\/jobs\/\d+$/), button.click()]);
  check(true, `${label} started: ${page.url()}`);
  await page.waitForFunction(() => {
    const state = document.getElementById('state');
    return state && !/Running|Gedir|Davam/.test(state.textContent);
  }, null, { timeout: 120000, polling: 200 });
  const state = await page.locator('#state').textContent();
  const message = await page.locator('#message').textContent();
  check(state.includes('Done'), `${label} finished: ${state}: ${message}`);
  return message;
}

const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: flags });
try {
  // Without JavaScript: the progress page must get to the end by refreshing itself.
  const plain = await browser.newContext({ javaScriptEnabled: false });
  let page = await login(plain);
  await page.goto(`${base}/admin/sticks?lang=en`);
  const card = page.locator('section.card', { hasText: process.env.DARS_STICK });
  check(await card.count() === 1, `the stick ${process.env.DARS_STICK} is listed`);
  check((await card.textContent()).includes('✔ trusted'), 'its publisher is shown as trusted');
  await page.screenshot({ path: path.join(artifacts, 'console-sticks.png'), fullPage: true });
  const imported = await runJob(page, card.getByRole('button', { name: 'Import' }), 'the import (no JavaScript)');
  check(/\d+ new/.test(imported), 'the import reports new lessons');
  await page.screenshot({ path: path.join(artifacts, 'console-import-done.png'), fullPage: true });
  await plain.close();

  // With JavaScript: the same page, moved along by the small script reading the JSON.
  const scripted = await browser.newContext();
  page = await login(scripted);
  let polled = 0;
  page.on('request', (r) => { if (r.url().includes('/admin/api/jobs/')) polled += 1; });
  await page.goto(`${base}/admin/sticks?lang=en`);
  const again = page.locator('section.card', { hasText: process.env.DARS_STICK });
  const verified = await runJob(page, again.getByRole('button', { name: 'Verify' }), 'the verify (JavaScript)');
  check(verified.includes('whole'), 'the package is whole');
  console.log(`the script polled the job's JSON ${polled} times`);
  await scripted.close();

  // A phone now finds the lessons from the stick.
  const phone = await browser.newContext();
  const home = await phone.newPage();
  await home.goto(`${base}/search?q=${encodeURIComponent(process.env.DARS_LESSON)}`);
  check((await home.content()).includes(process.env.DARS_LESSON), `phones see ${process.env.DARS_LESSON}`);
  const found = home.locator('main ul.list a.item').first();
  await Promise.all([home.waitForURL(/\/card\//), found.click()]);
  await Promise.all([home.waitForURL(/\/lessons\//), home.locator('main a.btn').first().click()]);
  await phone.close();

  // The opening just made shows in the usage figures, drawn as SVG charts.
  const usageContext = await browser.newContext();
  page = await login(usageContext);
  await page.goto(`${base}/admin/usage?lang=en`);
  check(await page.locator('svg').count() > 0, 'the usage page draws its charts');
  check((await page.locator('main').textContent()).includes(process.env.DARS_LESSON), 'the opened lesson is in the usage table');
  await page.screenshot({ path: path.join(artifacts, 'console-usage.png'), fullPage: true });
  await usageContext.close();
} finally {
  await browser.close();
}
