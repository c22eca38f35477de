// temporary: screenshot the element containing given text, for review (not committed)
import { chromium } from "playwright-core";
import { pathToFileURL } from "node:url";
const [file, out, ...needles] = process.argv.slice(2);
const browser = await chromium.launch({ executablePath: "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run",
         "--disable-component-update", "--disable-sync", "--host-resolver-rules=MAP * ~NOTFOUND"] });
const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
await page.goto(pathToFileURL(file).href, { waitUntil: "load" });
await page.waitForTimeout(1500);
let i = 0;
for (const needle of needles) {
  const y = await page.evaluate((n) => {
    const els = [...document.querySelectorAll("article p, article li")];
    const el = els.find((e) => e.innerText.includes(n));
    if (!el) return -1;
    el.scrollIntoView({ block: "start" });
    return window.scrollY;
  }, needle);
  if (y < 0) { console.log("not found:", needle); continue; }
  await page.evaluate(() => window.scrollBy(0, -60));
  await page.screenshot({ path: `${out}_${i++}.png` });
}
await browser.close();
