// Opens built pages as a reader would (a 1280 x 800 window, the theme's default layout) and
// reports what does not fit the content column: code and output blocks that scroll sideways,
// figures wider than the column, and a page that scrolls sideways. Prints one JSON object:
// {page: [problem, ...]}.
//
//   node page_layout.mjs CHROMIUM_BINARY WIDTH HEIGHT PAGE.html [PAGE.html ...]
import { chromium } from "playwright-core";
import { pathToFileURL } from "node:url";

const [executablePath, width, height, ...pages] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath,
  args: [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run",
    "--disable-component-update", "--disable-sync", "--host-resolver-rules=MAP * ~NOTFOUND",
  ],
});
const page = await browser.newPage({ viewport: { width: Number(width), height: Number(height) } });
const report = {};
for (const file of pages) {
  await page.goto(pathToFileURL(file).href, { waitUntil: "load" });
  report[file] = await page.evaluate(() => {
    const problems = [];
    const describe = (element) => {
      const cell = element.closest(".cell");
      const text = (element.innerText || element.alt || element.src || "").trim().split("\n")[0];
      const where = cell ? `cell ${[...document.querySelectorAll(".cell")].indexOf(cell)}` : "page";
      return `${where}: ${text.slice(0, 60)}`;
    };
    // code cells, printed output, and any other block of text in the article
    for (const block of document.querySelectorAll("article pre, article .cell_output, article table")) {
      if (block.scrollWidth > block.clientWidth + 1) {
        problems.push(`scrolls sideways (${block.scrollWidth} > ${block.clientWidth} px): ${describe(block)}`);
      }
    }
    const page = document.scrollingElement;
    if (page.scrollWidth > page.clientWidth + 1) {
      problems.push(`page scrolls sideways (${page.scrollWidth} > ${page.clientWidth} px)`);
    }
    const column = document.querySelector("article").getBoundingClientRect();
    for (const image of document.querySelectorAll("article img")) {
      const box = image.getBoundingClientRect();
      if (box.right > column.right + 1) {
        problems.push(`figure wider than the column (${Math.round(box.width)} px): ${describe(image)}`);
      }
    }
    return problems;
  });
}
await browser.close();
console.log(JSON.stringify(report));
