// The one way the browser tests, scripts/bench page and the README's
// screenshot start Debian's chromium: headless, through playwright-core.
// $CHROMIUM overrides the binary.
import { chromium } from 'playwright-core';

export function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update'],
  });
}
