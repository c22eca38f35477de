"""How long the drawing pad's forward pass takes: vit.js on the shipped model, in Node.js and in
headless Chromium, and the size of what the page loads.

    python benchmarks/pad_forward.py            # needs node; Chromium and playwright-core for the browser

One forward pass of the shipped model (the 28 x 28 digit to ten logits and the 24 attention maps)
on a test digit, timed 30 times after 5 to warm up; the median is printed. Take it with nothing
else running: it is one CPU thread.
"""

import json
import shutil
import subprocess
import tempfile
from pathlib import Path

from vitlib.export import write_pad_assets

ROOT = Path(__file__).resolve().parent.parent
PAD = ROOT / "_assets" / "vitpad"
TIMER = """
const model = ViT.load(VITPAD_MODEL);
const image = model.digits[0].pixels;
const times = [];
for (let i = 0; i < 35; i++) {
  const started = performance.now();
  ViT.forward(model, image);
  times.push(performance.now() - started);
}
const sorted = times.slice(5).sort((a, b) => a - b);
globalThis.MEDIAN_MS = sorted[Math.floor(sorted.length / 2)];
"""
BROWSER = """
import { chromium } from "playwright-core";
const [chromiumPath, page] = process.argv.slice(2);
const browser = await chromium.launch({ executablePath: chromiumPath, args: ["--no-sandbox", "--disable-gpu"] });
const tab = await browser.newPage();
await tab.goto(page, { waitUntil: "load" });
console.log(await tab.evaluate(() => globalThis.MEDIAN_MS));
await browser.close();
"""


def output(*command: str) -> str:
    return subprocess.run(command, capture_output=True, text=True, check=True).stdout.strip()


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        sizes = write_pad_assets(folder)
        for path in (PAD / "vit.js", PAD / "pad.js", ROOT / "_static" / "vitpad.css"):
            sizes[path.name] = path.stat().st_size
        print("what the page loads:", ", ".join(f"{name} {size / 1e3:.0f} kB" for name, size in sizes.items()))
        print(f"  in all {sum(sizes.values()) / 1e6:.2f} MB")
        node = shutil.which("node")
        if node is None:
            print("node not found: no timings")
            return
        (folder / "timer.js").write_text(TIMER)
        scripts = [PAD / "vit.js", folder / "model.js", folder / "timer.js"]
        load = "".join(f"require('vm').runInThisContext(require('fs').readFileSync({json.dumps(str(path))}, 'utf8'));"
                       for path in scripts)  # fmt: skip
        median = float(output(node, "-e", load + "console.log(MEDIAN_MS)"))
        print(f"one forward pass, Node.js {output(node, '--version')}: {median:.1f} ms")
        chromium = shutil.which("chromium") or shutil.which("chromium-browser")
        browser_tests = ROOT / "tests" / "browser"
        if chromium is None or not (browser_tests / "node_modules" / "playwright-core").is_dir():
            print("Chromium or playwright-core missing: no browser timing")
            return
        tags = "".join(f'<script src="{path.as_uri()}"></script>' for path in scripts)
        (folder / "page.html").write_text(f"<!doctype html><html><body>{tags}</body></html>")
        timer = browser_tests / ".pad_timer.mjs"  # beside node_modules, so that it finds playwright-core
        timer.write_text(BROWSER)
        try:
            median = float(output(node, str(timer), chromium, (folder / "page.html").as_uri()))
        finally:
            timer.unlink()
        print(f"one forward pass, headless {output(chromium, '--version')}: {median:.1f} ms")


if __name__ == "__main__":
    main()
