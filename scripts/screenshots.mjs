// README's two pictures, taken from a built site in headless Chromium: a chapter page as a reader
// sees it at 1280 px, and the drawing pad after it has read one of its test digits.
//
//   npm ci --prefix tests/browser          # playwright-core, once (make test does it too)
//   node scripts/screenshots.mjs _build/html [OUT_DIR] [--chapter NAME] [--figure N]
//
// OUT_DIR defaults to docs/readme; it gets chapter.png and drawing_pad.png. The chapter (default
// 06_train_and_visualize) is shown around its Nth figure (default 2: the class token's attention
// maps); a page without figures, as in a build with execution off, is shown from the top.
// Chromium is $CHROMIUM, else /usr/bin/chromium. The site is opened from disk and nothing else is
// loaded: the book needs no network.
import { createRequire } from "node:module";
import { existsSync, mkdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";

const require = createRequire(new URL("../tests/browser/package.json", import.meta.url));
const { chromium } = require("playwright-core");

const args = process.argv.slice(2);
const option = (name, fallback) => {
  const at = args.indexOf(name);
  if (at < 0) return fallback;
  const [value] = args.splice(at, 2).slice(1);
  return value;
};
const chapter = option("--chapter", "06_train_and_visualize");
const figure = Number(option("--figure", "2"));
const [site, out = "docs/readme"] = args;
if (!site) {
  console.error("usage: node scripts/screenshots.mjs SITE_DIR [OUT_DIR] [--chapter NAME] [--figure N]");
  process.exit(2);
}
const page_of = (name) => {
  const file = resolve(site, "book", `${name}.html`);
  if (!existsSync(file)) {
    console.error(`${file} not found: build the book first (make book writes _build/html)`);
    process.exit(1);
  }
  return pathToFileURL(file).href;
};
mkdirSync(out, { recursive: true });

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run",
    "--disable-component-update", "--disable-sync", "--host-resolver-rules=MAP * ~NOTFOUND",
  ],
});
const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });

// math typeset by the site's MathJax, when the page has any
async function settle() {
  await page.waitForLoadState("load");
  await page
    .waitForFunction(() => !window.MathJax?.startup || window.MathJax.startup.promise.then(() => true), null, {
      timeout: 20000,
    })
    .catch(() => {});
  await page.waitForTimeout(500);
}

// A chapter: its Nth figure a third of the way down the window, the prose above it in view.
await page.goto(page_of(chapter));
await settle();
const figures = page.locator("article .cell_output img");
const count = await figures.count();
if (count > 0) {
  const shown = figures.nth(Math.min(figure, count) - 1);
  await shown.evaluate((image) => window.scrollBy(0, image.getBoundingClientRect().top - window.innerHeight / 3));
  await page.waitForTimeout(300);
} else {
  console.error(`${chapter}: no figures (a build without execution?): the top of the page instead`);
}
await page.screenshot({ path: join(out, "chapter.png") });

// The drawing pad, after it has read its first test digit.
await page.goto(page_of("drawing_pad"));
await settle();
await page.locator(".vitpad-digit-button").first().click();
await page.waitForFunction(() => document.querySelector(".vitpad")?.dataset.state === "read", null, {
  timeout: 20000,
});
await page.locator(".vitpad").scrollIntoViewIfNeeded();
await page.locator(".vitpad").screenshot({ path: join(out, "drawing_pad.png") });

await browser.close();
console.log(`wrote ${join(out, "chapter.png")} and ${join(out, "drawing_pad.png")}`);
