// Drives Debian's firefox-esr over WebDriver BiDi (puppeteer-core; no browser download) through
// the demo's sign-in / signed-in page / sign-out flow at each base URL given, in one browser,
// and prints one JSON line per URL for the Rust test to check (tests/src/engines.rs).
//
// usage: node firefox-flow.mjs PAGE_PATH BASE_URL...
import puppeteer from 'puppeteer-core';

const [pagePath, ...bases] = process.argv.slice(2);
const executablePath = process.env.FIREFOX_BIN || '/usr/bin/firefox-esr';

function seen(c) {
  return {
    name: c.name,
    value: c.value,
    secure: c.secure,
    http_only: c.httpOnly,
    same_site: c.sameSite ?? null,
    path: c.path,
    persistent: !c.session && c.expires !== -1,
  };
}

async function flow(page, base) {
  await page.goto(`${base}/`);
  await page.waitForSelector('#login-form');
  await page.type('#username', 'alice');
  await page.type('#password', 'alice-password');
  await Promise.all([page.waitForNavigation(), page.click('#sign-in')]);
  await page.goto(`${base}${pagePath}`);
  const welcome = await page.$('#welcome');
  const out = {
    signed_in: welcome !== null,
    username: welcome ? await page.$eval('#welcome #username', (e) => e.textContent) : null,
    cookies_signed_in: (await page.cookies()).map(seen),
    document_cookie: await page.evaluate(() => document.cookie),
    page_source: await page.content(),
    signed_out_to_form: false,
    cookies_signed_out: [],
  };
  if (out.signed_in) {
    await Promise.all([page.waitForNavigation(), page.click('#sign-out')]);
    out.signed_out_to_form = (await page.$('#login-form')) !== null;
    out.cookies_signed_out = (await page.cookies()).map(seen);
  }
  return out;
}

const browser = await puppeteer.launch({
  browser: 'firefox',
  executablePath,
  headless: true,
  acceptInsecureCerts: true,
  timeout: 60000,
  protocolTimeout: 60000,
});
try {
  for (const base of bases) {
    const page = await browser.newPage();
    page.setDefaultTimeout(20000);
    const out = await flow(page, base);
    out.base = base;
    process.stdout.write(`${JSON.stringify(out)}\n`);
    await page.close();
  }
} finally {
  await browser.close();
}
