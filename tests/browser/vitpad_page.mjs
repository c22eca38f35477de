// Uses the drawing pad as a reader would, in headless Chromium: draws digits on the canvas with
// the mouse, presses the buttons, hovers over the attention map, and reads what the page says.
// Then opens the page again with JavaScript off. Prints one JSON report for tests/test_book.py.
//
//   node vitpad_page.mjs CHROMIUM_BINARY PAGE.html [SCREENSHOT_DIR]
import { chromium } from "playwright-core";
import { pathToFileURL } from "node:url";

const [executablePath, file, shots] = process.argv.slice(2);
const url = pathToFileURL(file).href;
const browser = await chromium.launch({
  executablePath,
  args: [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run",
    "--disable-component-update", "--disable-sync", "--host-resolver-rules=MAP * ~NOTFOUND",
  ],
});
const report = { errors: [], requests: [] };

// what the page says: the verdict, the predicted class, the ten bars as numbers
async function read(page) {
  return page.evaluate(() => {
    const root = document.querySelector(".vitpad");
    const values = [...root.querySelectorAll(".vitpad-value")].map((v) => v.textContent);
    return {
      state: root.dataset.state,
      prediction: root.dataset.state === "read" ? Number(root.dataset.prediction) : null,
      verdict: root.querySelector(".vitpad-verdict").textContent,
      bars: values.map((v) => (v.endsWith("%") ? Number(v.slice(0, -1)) / 100 : v)),
      widths: [...root.querySelectorAll(".vitpad-fill")].map((f) => f.style.width),
      rawVerdict: root.querySelector(".vitpad-raw-verdict").textContent,
      heatCaption: root.querySelector(".vitpad-heat-caption").textContent,
    };
  });
}

// strokes: lists of [x, y] points in pad units (0 to 1), each drawn as one press of the mouse
async function draw(page, strokes) {
  const box = await page.locator(".vitpad-canvas").boundingBox();
  for (const stroke of strokes) {
    const [[x0, y0], ...rest] = stroke;
    await page.mouse.move(box.x + x0 * box.width, box.y + y0 * box.height);
    await page.mouse.down();
    for (const [x, y] of rest) {
      await page.mouse.move(box.x + x * box.width, box.y + y * box.height, { steps: 8 });
    }
    await page.mouse.up();
  }
}

const DIGITS = {
  1: [[[0.52, 0.15], [0.5, 0.85]]],
  7: [[[0.28, 0.2], [0.72, 0.2], [0.45, 0.85]]],
  0: [[[0.5, 0.15], [0.3, 0.3], [0.28, 0.6], [0.4, 0.83], [0.6, 0.83], [0.72, 0.6], [0.7, 0.3], [0.5, 0.15]]],
};
const SCRIBBLE = [[...Array(24).keys()].map((i) => [0.15 + 0.7 * ((i * 7) % 11) / 10, 0.15 + 0.7 * ((i * 5) % 13) / 12])];

const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
// errors with where they come from, so the test can tell the pad's from the theme's
page.on("pageerror", (error) => report.errors.push(error.stack || String(error)));
page.on("console", (message) => {
  if (message.type() === "error") report.errors.push(`${message.text()} at ${message.location().url}`);
});
page.on("request", (request) => { if (!request.url().startsWith("file:")) report.requests.push(request.url()); });
await page.goto(url, { waitUntil: "load" });
await page.waitForSelector(".vitpad-widget", { timeout: 10000 });
await page.locator(".vitpad").scrollIntoViewIfNeeded();
report.empty = await read(page);
report.fallbackShownWithScript = await page.locator(".vitpad-fallback").count();

report.drawn = {};
for (const [digit, strokes] of Object.entries(DIGITS)) {
  await page.click(".vitpad-clear");
  await draw(page, strokes);
  report.drawn[digit] = await read(page);
  if (shots && digit === "7") await page.locator(".vitpad").screenshot({ path: `${shots}/pad_drawn_7.png` });
}
await page.click(".vitpad-clear");
report.cleared = await read(page);
await draw(page, [[[0.5, 0.5]]]); // one click: a dot, too small to read
report.dot = await read(page);
await page.click(".vitpad-clear");
await draw(page, SCRIBBLE);
report.scribble = await read(page);

report.buttons = [];
for (const button of await page.locator(".vitpad-digit-button").all()) {
  await button.click();
  report.buttons.push({ label: Number(await button.textContent()), ...(await read(page)) });
}
// keyboard: a button is reached and pressed without the mouse
await page.focus(".vitpad-clear");
await page.keyboard.press("Enter");
report.clearedByKeyboard = (await read(page)).state;
await page.locator(".vitpad-digit-button").last().click();

const menusDisabled = () => page.evaluate(() => [...document.querySelectorAll(".vitpad-controls select")]
  .map((menu) => menu.disabled));
report.menusInRollout = await menusDisabled(); // one rollout for all layers and heads
const heat = await page.locator(".vitpad-heat").boundingBox();
await page.mouse.move(heat.x + heat.width * 0.5, heat.y + heat.height * 0.3);
report.hovered = (await read(page)).heatCaption;
await page.mouse.down(); // a click pins the patch
await page.mouse.up();
await page.mouse.move(0, 0);
await page.selectOption(".vitpad-controls select >> nth=0", "attention");
report.menusInAttention = await menusDisabled();
report.pinnedCaption = (await read(page)).heatCaption;
await page.focus(".vitpad-heat");
await page.keyboard.press("Escape");
report.unpinned = (await read(page)).heatCaption;
if (shots) await page.locator(".vitpad").screenshot({ path: `${shots}/pad_desktop.png` });

// a phone: the pad fits the screen, and a finger draws (touch events become pointer events)
const phone = await browser.newPage({ viewport: { width: 390, height: 844 }, hasTouch: true, isMobile: true });
await phone.goto(url, { waitUntil: "load" });
await phone.waitForSelector(".vitpad-widget");
await phone.locator(".vitpad").scrollIntoViewIfNeeded();
await phone.locator(".vitpad-digit-button").first().tap();
report.phone = {
  prediction: (await read(phone)).prediction,
  overflow: await phone.evaluate(() => {
    const widget = document.querySelector(".vitpad-widget");
    return widget.scrollWidth - widget.clientWidth;
  }),
};
if (shots) await phone.locator(".vitpad").screenshot({ path: `${shots}/pad_phone.png` });

// JavaScript off: the picture and its sentence, no broken widget
const noScript = await browser.newContext({ javaScriptEnabled: false });
const still = await noScript.newPage({ viewport: { width: 1280, height: 900 } });
await still.goto(url, { waitUntil: "load" });
report.withoutScript = await still.evaluate(() => {
  const figure = document.querySelector(".vitpad .vitpad-fallback");
  const image = figure && figure.querySelector("img");
  return {
    widget: document.querySelectorAll(".vitpad-widget").length,
    caption: figure ? figure.querySelector("figcaption").textContent : null,
    imageLoaded: Boolean(image && image.complete && image.naturalWidth > 0),
  };
});
if (shots) await still.locator(".vitpad").screenshot({ path: `${shots}/pad_no_javascript.png` });

await browser.close();
console.log(JSON.stringify(report));
