// Runs the drawing pad's JavaScript (vit.js, model.js) under Node.js on digits from the tests, so
// that tests/test_export.py can compare it with vitlib. Reads a request, writes float32 files:
//
//   node vitpad_node.mjs VIT_JS MODEL_JS REQUEST.json OUT_DIR
//
// REQUEST: {images: base64 float32 (B, 28, 28) in [0, 1], drawings: [{size, scale, x, y}]}.
// OUT_DIR gets logits.f32 (B, 10), maps.f32 (B, L, h, T, T), rollout.f32 (B, T, T), and for drawing
// i prepared{i}.f32 (B, 28, 28): every digit drawn on a size x size pad, scaled by `scale` with
// bilinear interpolation and its top-left corner at (x, y), then prepared as the pad prepares it.
import { readFileSync, writeFileSync, mkdirSync } from "node:fs";
import { runInThisContext } from "node:vm";

const [vitPath, modelPath, requestPath, outDir] = process.argv.slice(2);
runInThisContext(readFileSync(vitPath, "utf8"), { filename: vitPath });
runInThisContext(readFileSync(modelPath, "utf8"), { filename: modelPath });
const { ViT, VITPAD_MODEL } = globalThis;
const model = ViT.load(VITPAD_MODEL);
const request = JSON.parse(readFileSync(requestPath, "utf8"));
const bytes = Buffer.from(request.images, "base64");
const images = new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
const count = images.length / 784;
mkdirSync(outDir, { recursive: true });

const logits = [], maps = [], rollouts = [];
for (let b = 0; b < count; b++) {
  const result = ViT.forward(model, images.subarray(b * 784, (b + 1) * 784));
  logits.push(...result.logits);
  for (const layer of result.maps) for (const head of layer) maps.push(head);
  rollouts.push(ViT.rollout(result.maps));
}
const save = (name, arrays) => {
  const total = arrays.reduce((n, a) => n + a.length, 0);
  const out = new Float32Array(total);
  let at = 0;
  for (const a of arrays) { out.set(a, at); at += a.length; }
  writeFileSync(`${outDir}/${name}`, Buffer.from(out.buffer));
};
save("logits.f32", [logits]);
save("maps.f32", maps);
save("rollout.f32", rollouts);

// a 28 x 28 digit drawn on a size x size pad: bilinear, pixel centres aligned as in a canvas drawImage
function drawOnPad(digit, { size, scale, x, y }) {
  const ink = new Float32Array(size * size);
  for (let py = 0; py < size; py++) {
    for (let px = 0; px < size; px++) {
      const sx = (px + 0.5 - x) / scale - 0.5, sy = (py + 0.5 - y) / scale - 0.5;
      const x0 = Math.floor(sx), y0 = Math.floor(sy), fx = sx - x0, fy = sy - y0;
      const at = (r, c) => (r >= 0 && r < 28 && c >= 0 && c < 28 ? digit[r * 28 + c] : 0);
      ink[py * size + px] = (1 - fy) * ((1 - fx) * at(y0, x0) + fx * at(y0, x0 + 1))
        + fy * ((1 - fx) * at(y0 + 1, x0) + fx * at(y0 + 1, x0 + 1));
    }
  }
  return ink;
}

(request.drawings || []).forEach((drawing, index) => {
  const prepared = [];
  for (let b = 0; b < count; b++) {
    const ink = drawOnPad(images.subarray(b * 784, (b + 1) * 784), drawing);
    prepared.push(ViT.prepare(ink, drawing.size, drawing.size).image);
  }
  save(`prepared${index}.f32`, prepared);
});
