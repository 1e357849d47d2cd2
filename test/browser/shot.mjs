// Opens a page in headless chromium, keeps it open for SECONDS, then saves
// a screenshot: how docs/live-page.png was taken, 45 s after opening the
// page while the feed that scripts/pipeline demo starts was running.
// Usage: node shot.mjs URL SECONDS OUT.png
import { launch } from './browser.mjs';

const [url, seconds, out] = process.argv.slice(2);
const browser = await launch();
try {
  const page = await browser.newPage({ viewport: { width: 1400, height: 1150 } });
  await page.goto(url);
  await page.waitForTimeout(Number(seconds) * 1000);
  await page.screenshot({ path: out, fullPage: true });
} finally {
  await browser.close();
}
