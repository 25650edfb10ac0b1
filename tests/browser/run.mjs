// Phone tests in Debian's headless Chromium (Pixel 7 emulation) against `dars serve` at a LAN
// address (DARS_URL), driven by tests/it/browser.rs. Fails (exit code 1) on the first broken
// expectation, on any `requestfailed` event, and on any page error. Screenshots of each page
// go to ARTIFACTS.
import { chromium, devices } from 'playwright-core';
import fs from 'node:fs';
import path from 'node:path';
import assert from 'node:assert/strict';

const BASE = process.env.DARS_URL;
const ART = process.env.ARTIFACTS;
const DOWNLOADS = path.join(ART, 'downloads');
fs.mkdirSync(DOWNLOADS, { recursive: true });
const NAMES = ['Aysel', 'Murad'];

const failed = [];
const requests = [];
const errors = [];
let shots = 0;

async function shot(page, name) {
  const file = path.join(ART, `${String(++shots).padStart(2, '0')}-${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  console.log(`screenshot ${file}`);
}

function watch(context) {
  context.on('requestfailed', (r) => failed.push(`${r.url().slice(0, 120)}: ${r.failure()?.errorText}`));
  context.on('request', (r) => requests.push(r.allHeaders().then((h) => r.url() + JSON.stringify(h) + (r.postData() || ''), () => r.url())));
  context.on('page', (p) => p.on('pageerror', (e) => errors.push(`${p.url()}: ${e.message}`)));
}

/** Every <img> of the page has loaded (naturalWidth > 0); returns how many there are. */
async function allImagesLoaded(page, where) {
  await page.waitForLoadState('load');
  const imgs = await page.$$eval('img', (all) => all.map((i) => ({ src: (i.currentSrc || i.src).slice(0, 60), ok: i.complete && i.naturalWidth > 0 })));
  const broken = imgs.filter((i) => !i.ok);
  assert.equal(broken.length, 0, `${where}: pictures not loaded: ${JSON.stringify(broken)}`);
  return imgs.length;
}

async function htmlLang(page) {
  return page.evaluate(() => document.documentElement.lang);
}

const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync'],
});
try {
  const context = await browser.newContext({ ...devices['Pixel 7'], acceptDownloads: true });
  watch(context);
  const page = await context.newPage();

  // 1. Browse down to a lesson in each language, and open it.
  for (const lang of ['az', 'ru', 'en']) {
    await page.goto(`${BASE}/?lang=${lang}`);
    assert.equal(await htmlLang(page), lang);
    await shot(page, `home-${lang}`);
    await page.locator('#grades-h + ul.tiles a').first().click();
    await page.waitForURL(/\/browse\?language=.*grade=/);
    assert.equal(await htmlLang(page), lang, 'the chosen language stays (cookie)');
    await shot(page, `grade-${lang}`);
    await page.locator('ul.tiles a').first().click();
    await page.waitForURL(/subject=/);
    await shot(page, `list-${lang}`);
    await page.locator('a.item').first().click();
    await page.waitForURL(/\/card\//);
    await shot(page, `card-${lang}`);
    const title = await page.locator('h1').textContent();
    await page.locator('a.btn', { hasText: /./ }).first().click();
    await page.waitForURL(/\/lessons\/[^/]+\//);
    const n = await allImagesLoaded(page, `lesson ${title}`);
    console.log(`${lang}: browsed to "${title}" (${n} pictures loaded)`);
    await shot(page, `lesson-${lang}`);
  }

  // Without JavaScript: the same way down works, and what needs the script is not shown.
  const plain = await browser.newContext({ ...devices['Pixel 7'], javaScriptEnabled: false, acceptDownloads: true });
  watch(plain);
  const nojs = await plain.newPage();
  await nojs.goto(`${BASE}/?lang=en`);
  assert.equal(await nojs.locator('#who').isVisible(), false, 'no profile bar without the script');
  await nojs.locator('#grades-h + ul.tiles a').first().click();
  await nojs.locator('ul.tiles a').first().click();
  await nojs.locator('a.item').first().click();
  await nojs.waitForURL(/\/card\//);
  assert.equal(await nojs.locator('button.done').isVisible(), false);
  const [plainDownload] = await Promise.all([nojs.waitForEvent('download'), nojs.click('a[download]')]);
  console.log(`without JavaScript: browsed to a card and downloaded ${plainDownload.suggestedFilename()}`);
  await shot(nojs, 'card-without-js');
  await plain.close();

  // 2. Search with and without Azerbaijani letters, typed into the home page's box.
  for (const words of ['dərs', 'ders', 'sagird', 'xezer']) {
    await page.goto(`${BASE}/?lang=az`);
    await page.fill('#q', words);
    await page.press('#q', 'Enter');
    await page.waitForURL(/\/search\?/);
    const hits = await page.locator('main ul.list a.item').count();
    const marks = await page.locator('main ul.list mark').count();
    console.log(`search "${words}": ${hits} results, ${marks} highlights`);
    assert.ok(hits > 0 && marks > 0, `search for ${words} finds highlighted lessons`);
    await shot(page, `search-${words}`);
  }
  await page.locator('main ul.list a.item').first().click();
  await page.waitForURL(/\/card\//);

  // 3. Profiles: whose turn is it? Two children, one tap to switch, marks kept apart.
  await page.goto(`${BASE}/?lang=az`);
  await page.waitForSelector('#who:not([hidden])');
  for (const name of NAMES) {
    await page.fill('#who-input', name);
    await page.click('#who-add');
  }
  const pressed = () => page.locator('#who-list button[aria-pressed=true]').textContent();
  assert.equal(await pressed(), 'Murad', 'the newest profile is the current one');
  await page.locator('#who-list button', { hasText: 'Aysel' }).click();
  assert.equal(await pressed(), 'Aysel', 'one tap switches');
  await shot(page, 'profiles');
  await page.goto(`${BASE}/card/language-4-cases-ru`);
  const done = page.locator('button.done');
  await done.click();
  assert.equal(await done.getAttribute('aria-pressed'), 'true');
  await page.locator('#who-list button', { hasText: 'Murad' }).click();
  assert.equal(await done.getAttribute('aria-pressed'), 'false', "Murad has not done Aysel's lesson");
  await page.locator('#who-list button', { hasText: 'Aysel' }).click();
  await page.reload();
  assert.equal(await done.getAttribute('aria-pressed'), 'true', 'marks survive a reload');
  await shot(page, 'card-done');

  // 4. Save a lesson, then a pack of ticked lessons (its size shown before the download).
  await page.goto(`${BASE}/card/rich`);
  let [download] = await Promise.all([page.waitForEvent('download'), page.click('a[download]')]);
  const lessonFile = path.join(DOWNLOADS, download.suggestedFilename());
  await download.saveAs(lessonFile);
  console.log(`saved lesson ${lessonFile} (${fs.statSync(lessonFile).size} bytes)`);
  assert.equal(download.suggestedFilename(), 'Lesson rich - dars.html', 'named after the lesson');

  await page.goto(`${BASE}/browse?language=en&grade=5&subject=Science`);
  const boxes = page.locator('input[name=lesson]');
  const ticked = await boxes.count();
  assert.ok(ticked >= 2, 'a list to pick several lessons from');
  for (let i = 0; i < ticked; i++) await boxes.nth(i).check();
  await page.click('form[action="/packs"] button[type=submit]');
  await page.waitForURL(/\/packs\?lesson=/);
  const shown = await page.locator('main strong').textContent();
  assert.match(shown, /\d/, 'the pack size is shown before the download');
  await shot(page, 'pack-confirm');
  [download] = await Promise.all([page.waitForEvent('download'), page.click('a[download]')]);
  const packFile = path.join(DOWNLOADS, download.suggestedFilename());
  await download.saveAs(packFile);
  console.log(`saved pack ${packFile} (${fs.statSync(packFile).size} bytes; page said "${shown}")`);

  await page.goto(`${BASE}/?lang=az`);
  const mine = await page.locator('#mine-list li').allTextContents();
  assert.ok(mine.some((t) => t.includes('Lesson rich')), `My lessons lists the saved lesson: ${mine}`);
  await shot(page, 'my-lessons');

  await page.goto(`${BASE}/poster`);
  const host = new URL(BASE).host;
  assert.equal(await page.locator('p.url').textContent(), host, 'the poster prints the LAN address');
  assert.ok(await page.locator('svg.qr').isVisible(), 'with its QR code');
  await shot(page, 'poster');

  // 5. At home: no network, the saved files from file://, every picture there.
  const home = await browser.newContext({ ...devices['Pixel 7'] });
  watch(home);
  await home.setOffline(true);
  const offline = await home.newPage();
  for (const file of [lessonFile, packFile]) {
    await offline.goto(`file://${file}`);
    const n = await allImagesLoaded(offline, file);
    assert.ok(n > 0, `${file} has pictures`);
    const sections = await offline.locator('section.dars-page').count();
    console.log(`offline ${path.basename(file)}: ${n} pictures loaded, ${sections} pages`);
    await shot(offline, `offline-${path.basename(file, '.html')}`);
  }
  // The table of contents jumps inside the file, and the profiles work there too.
  await offline.locator('.dars-toc a').nth(1).click();
  assert.match(offline.url(), /#lesson-/);
  const bar = await offline.locator('#who').isVisible();
  if (bar) {
    await offline.fill('#who-input', 'Aysel');
    await offline.click('#who-add');
    const mark = offline.locator('button.done').first();
    await mark.click();
    assert.equal(await mark.getAttribute('aria-pressed'), 'true');
    console.log('offline: profiles and done marks work from file://');
  } else {
    console.log('offline: this browser gives file:// no localStorage; the file reads without profiles');
  }
  await shot(offline, 'offline-profile');
  const seen = await Promise.all(requests);
  await home.close();
  await context.close();

  // 6. Nothing failed to load, and no request ever carried a child's name.
  assert.deepEqual(failed, [], 'requestfailed events');
  assert.deepEqual(errors, [], 'page errors');
  for (const text of seen) {
    for (const name of NAMES) assert.ok(!text.includes(name), `a request carried ${name}: ${text.slice(0, 200)}`);
  }
  console.log(`${requests.length} requests, none failed, none carried a profile name`);
} finally {
  await browser.close();
}
