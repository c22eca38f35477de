// The book's Vision Transformer, in plain JavaScript: the same forward pass as vitlib's
// VisionTransformer (Eq. 1-4 of Dosovitskiy et al. 2020), its attention maps, the attention
// rollout, and the preparation that turns a drawing into an MNIST-like 28 x 28 digit.
//
// No library, no network: weights come from model.js (written by vitlib.export), which sets
// globalThis.VITPAD_MODEL. Tensors are row-major Float32Arrays; activations are Float64Arrays,
// since JavaScript computes in double precision anyway. Shape legend as in the book: C channels,
// P patch size, N patches, T = N + prefix tokens, D width, h heads, d = D / h head width.
// Runs in a browser (a classic script) and under Node.js (tests/browser/vitpad_node.mjs).
(function (root) {
  "use strict";

  // --- Loading -----------------------------------------------------------------------------------

  function decodeFloats(base64) {
    const bytes = typeof atob === "function"
      ? Uint8Array.from(atob(base64), (c) => c.charCodeAt(0))
      : new Uint8Array(Buffer.from(base64, "base64"));
    return new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
  }

  function decodeBytes(base64) {
    return typeof atob === "function"
      ? Uint8Array.from(atob(base64), (c) => c.charCodeAt(0))
      : new Uint8Array(Buffer.from(base64, "base64"));
  }

  // payload: the object model.js sets. Returns {config, get(name), digits: [{label, pixels}]}.
  function load(payload) {
    if (!payload || payload.format !== 1) {
      throw new Error("vit.js reads model.js format 1: rebuild the book so vitlib.export rewrites model.js");
    }
    const all = decodeFloats(payload.weights);
    const tensors = {};
    for (const [name, { offset, shape }] of Object.entries(payload.tensors)) {
      const size = shape.reduce((a, b) => a * b, 1);
      tensors[name] = Float64Array.from(all.subarray(offset, offset + size)); // one array type: faster loops
    }
    const get = (name) => {
      if (!(name in tensors)) throw new Error(`model.js has no tensor ${name}`);
      return tensors[name];
    };
    const digits = payload.digits.map(({ label, pixels }) => ({
      label, pixels: Float32Array.from(decodeBytes(pixels), (v) => v / 255),
    }));
    return { config: payload.config, get, has: (name) => name in tensors, digits };
  }

  // --- Layers --------------------------------------------------------------------------------------

  // x (T, inDim) times W^T plus b, W (outDim, inDim) as nn.Linear stores it -> (T, outDim).
  // Four tokens at a time, so that each weight read from memory serves four multiply-adds.
  function linear(x, tokens, inDim, weight, bias) {
    const outDim = weight.length / inDim;
    const y = new Float64Array(tokens * outDim);
    let t = 0;
    for (; t + 3 < tokens; t += 4) {
      const r0 = t * inDim, r1 = r0 + inDim, r2 = r1 + inDim, r3 = r2 + inDim;
      for (let o = 0; o < outDim; o++) {
        const w = o * inDim;
        let s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        for (let i = 0; i < inDim; i++) {
          const wi = weight[w + i];
          s0 += x[r0 + i] * wi; s1 += x[r1 + i] * wi; s2 += x[r2 + i] * wi; s3 += x[r3 + i] * wi;
        }
        const b = bias ? bias[o] : 0;
        y[t * outDim + o] = s0 + b; y[(t + 1) * outDim + o] = s1 + b;
        y[(t + 2) * outDim + o] = s2 + b; y[(t + 3) * outDim + o] = s3 + b;
      }
    }
    for (; t < tokens; t++) { // the last few tokens, one at a time
      for (let o = 0; o < outDim; o++) {
        y[t * outDim + o] = dot(x, t * inDim, weight, o * inDim, inDim) + (bias ? bias[o] : 0);
      }
    }
    return y;
  }

  // a[i..i+n) . b[j..j+n), with four running sums so the CPU can overlap the multiply-adds
  function dot(a, i, b, j, n) {
    let s0 = 0, s1 = 0, s2 = 0, s3 = 0, k = 0;
    for (; k + 3 < n; k += 4) {
      s0 += a[i + k] * b[j + k];
      s1 += a[i + k + 1] * b[j + k + 1];
      s2 += a[i + k + 2] * b[j + k + 2];
      s3 += a[i + k + 3] * b[j + k + 3];
    }
    for (; k < n; k++) s0 += a[i + k] * b[j + k];
    return (s0 + s1) + (s2 + s3);
  }

  // LN over the last dim of (T, D), with a biased variance, as nn.LayerNorm
  function layerNorm(x, tokens, dim, weight, bias, eps) {
    const y = new Float64Array(x.length);
    for (let t = 0; t < tokens; t++) {
      const row = t * dim;
      let mean = 0;
      for (let i = 0; i < dim; i++) mean += x[row + i];
      mean /= dim;
      let variance = 0;
      for (let i = 0; i < dim; i++) variance += (x[row + i] - mean) ** 2;
      const scale = 1 / Math.sqrt(variance / dim + eps);
      for (let i = 0; i < dim; i++) y[row + i] = (x[row + i] - mean) * scale * weight[i] + bias[i];
    }
    return y;
  }

  // erf, to 1.2e-7 (float32 needs no more): the Chebyshev fit of erfc in Numerical Recipes (Press et al.,
  // Sec. 6.2), one exponential and a polynomial, so the 38,400 GELUs of a forward pass stay cheap
  function erf(x) {
    const z = Math.abs(x);
    const t = 1 / (1 + 0.5 * z);
    const erfc = t * Math.exp(-z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418
      + t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223
      + t * 0.17087277)))))))));
    return x >= 0 ? 1 - erfc : erfc - 1;
  }

  // nn.GELU(): x Phi(x), with the exact normal CDF (not the tanh approximation)
  const gelu = (x) => 0.5 * x * (1 + erf(x / Math.SQRT2));

  // --- The model -----------------------------------------------------------------------------------

  // Eq. 1: pixels (C, H, W), already normalized -> tokens (T, D): [x_class; x_distil; x_p^i E] + E_pos
  function embed(model, pixels) {
    const { in_chans: C, image_size: H, patch_size: P, dim: D, grid_size: [gh, gw] } = model.config;
    const prefix = model.config.num_prefix_tokens;
    const weight = model.get("patch_embed.proj.weight"); // (D, C, P, P): the conv kernel is E
    const bias = model.get("patch_embed.proj.bias");
    const tokens = prefix + gh * gw;
    const x = new Float64Array(tokens * D);
    if (prefix) x.set(model.get("cls_token"), 0);
    if (prefix > 1) x.set(model.get("dist_token"), D); // DeiT's distillation token, token 1
    for (let gy = 0; gy < gh; gy++) {
      for (let gx = 0; gx < gw; gx++) {
        const row = (prefix + gy * gw + gx) * D; // patches in row-major order, as the conv's flatten
        for (let o = 0; o < D; o++) {
          let sum = bias[o];
          for (let c = 0; c < C; c++) {
            for (let py = 0; py < P; py++) {
              for (let px = 0; px < P; px++) {
                sum += weight[((o * C + c) * P + py) * P + px] * pixels[(c * H + gy * P + py) * H + gx * P + px];
              }
            }
          }
          x[row + o] = sum;
        }
      }
    }
    if (model.has("pos_table")) {
      const table = model.get("pos_table"); // (T, D)
      for (let i = 0; i < x.length; i++) x[i] += table[i];
    }
    return x;
  }

  // MSA of Eq. 2 on (T, D): returns the (T, D) output and the h attention maps, each (T, T)
  function attention(model, prefix, x, tokens) {
    const { dim: D, heads } = model.config;
    const d = D / heads;
    const scale = model.config.attention_scales[prefix.layer];
    const qkv = linear(x, tokens, D, model.get(`${prefix.name}.qkv.weight`),
      model.has(`${prefix.name}.qkv.bias`) ? model.get(`${prefix.name}.qkv.bias`) : null); // (T, 3D)
    const merged = new Float64Array(tokens * D); // the heads side by side: (T, h d)
    const maps = [];
    for (let head = 0; head < heads; head++) {
      // columns of qkv are (three h d): head j's query starts at j d, its key at D + j d, its value at 2D + j d
      const [q, k, v] = [0, 1, 2].map((part) => columns(qkv, tokens, 3 * D, part * D + head * d, d)); // (T, d)
      const weights = linear(q, tokens, d, k, null); // q k^T: (T, T), row i the scores of query i
      for (let i = 0; i < tokens; i++) softmaxInPlace(weights, i * tokens, tokens, scale); // A
      const attended = linear(weights, tokens, tokens, transpose(v, tokens, d), null); // SA = A v: (T, d)
      for (let i = 0; i < tokens; i++) merged.set(attended.subarray(i * d, (i + 1) * d), i * D + head * d);
      maps.push(weights);
    }
    const out = linear(merged, tokens, D, model.get(`${prefix.name}.proj.weight`), model.get(`${prefix.name}.proj.bias`));
    return { out, maps };
  }

  // x[from..from+n) <- softmax(scale x[from..from+n))
  function softmaxInPlace(x, from, n, scale) {
    let max = -Infinity;
    for (let j = from; j < from + n; j++) max = Math.max(max, x[j] * scale);
    let total = 0;
    for (let j = from; j < from + n; j++) {
      x[j] = Math.exp(x[j] * scale - max);
      total += x[j];
    }
    for (let j = from; j < from + n; j++) x[j] /= total;
  }

  function transpose(x, rows, cols) {
    const out = new Float64Array(rows * cols);
    for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = x[r * cols + c];
    return out;
  }

  // columns [from, from + count) of a (rows, width) matrix, as a contiguous (rows, count) one
  function columns(x, rows, width, from, count) {
    const out = new Float64Array(rows * count);
    for (let r = 0; r < rows; r++) out.set(x.subarray(r * width + from, r * width + from + count), r * count);
    return out;
  }

  // MLP of Eq. 3 on (T, D): D -> mlp_dim -> D with a GELU between
  function mlp(model, name, x, tokens) {
    const { dim: D, mlp_dim: M } = model.config;
    const hidden = linear(x, tokens, D, model.get(`${name}.fc1.weight`), model.get(`${name}.fc1.bias`));
    for (let i = 0; i < hidden.length; i++) hidden[i] = gelu(hidden[i]);
    return linear(hidden, tokens, M, model.get(`${name}.fc2.weight`), model.get(`${name}.fc2.bias`));
  }

  const addInPlace = (x, y) => { for (let i = 0; i < x.length; i++) x[i] += y[i]; return x; };

  // One encoder block: pre-norm (Eq. 2-3) or post-norm; returns the new tokens and the block's maps
  function block(model, layer, x, tokens) {
    const { dim: D, norm_first: normFirst, layer_norm_eps: eps } = model.config;
    const name = `blocks.${layer}`;
    const norm = (which, input) => layerNorm(input, tokens, D, model.get(`${name}.${which}.weight`),
      model.get(`${name}.${which}.bias`), eps);
    const prefix = { name: `${name}.attn`, layer };
    if (normFirst) {
      const attended = attention(model, prefix, norm("norm1", x), tokens);
      x = addInPlace(Float64Array.from(x), attended.out); // z'_l = MSA(LN(z_{l-1})) + z_{l-1}
      x = addInPlace(x, mlp(model, `${name}.mlp`, norm("norm2", x), tokens)); // z_l = MLP(LN(z'_l)) + z'_l
      return { x, maps: attended.maps };
    }
    const attended = attention(model, prefix, x, tokens);
    x = norm("norm1", addInPlace(Float64Array.from(x), attended.out)); // LN(MSA(z) + z)
    x = norm("norm2", addInPlace(Float64Array.from(x), mlp(model, `${name}.mlp`, x, tokens)));
    return { x, maps: attended.maps };
  }

  // pixels: C * H * W values in [0, 1] (row-major). Returns {logits, probabilities, maps}, where
  // maps[layer][head] is the (T, T) attention matrix, row i where token i looks (token 0 the class token).
  function forward(model, pixels) {
    const { dim: D, depth, pool, norm_first: normFirst, pixel_mean: mean, pixel_std: std } = model.config;
    const normalized = Float64Array.from(pixels, (p) => (p - mean) / std);
    let x = embed(model, normalized);
    const tokens = x.length / D;
    const maps = [];
    for (let layer = 0; layer < depth; layer++) {
      const result = block(model, layer, x, tokens);
      x = result.x;
      maps.push(result.maps);
    }
    if (normFirst) { // Eq. 4's final LayerNorm; a post-norm stack already ends in one
      x = layerNorm(x, tokens, D, model.get("norm.weight"), model.get("norm.bias"), model.config.layer_norm_eps);
    }
    const pooled = new Float64Array(D); // the class token (Eq. 4), or the mean of every token
    if (pool === "cls") pooled.set(x.subarray(0, D));
    else for (let t = 0; t < tokens; t++) for (let i = 0; i < D; i++) pooled[i] += x[t * D + i] / tokens;
    let logits = linear(pooled, 1, D, model.get("head.weight"), model.get("head.bias"));
    if (model.config.distilled) { // the mean of the class head and the distillation head (DeiT)
      const taught = linear(x.subarray(D, 2 * D), 1, D, model.get("head_dist.weight"), model.get("head_dist.bias"));
      logits = logits.map((z, k) => (z + taught[k]) / 2);
    }
    return { logits, probabilities: softmax(logits), maps };
  }

  function softmax(logits) {
    const max = Math.max(...logits);
    const e = logits.map((z) => Math.exp(z - max));
    const total = e.reduce((a, b) => a + b, 0);
    return e.map((z) => z / total);
  }

  // Attention rollout (Abnar & Zuidema 2020), as vitlib.viz.attention_rollout: the heads' mean mixed
  // with the identity, A' = (1 - w) A + w I, rows renormalized, R = A'_L ... A'_1. Returns (T, T).
  function rollout(maps, residualWeight = 0.5) {
    const tokens = Math.round(Math.sqrt(maps[0][0].length));
    let result = new Float64Array(tokens * tokens);
    for (let i = 0; i < tokens; i++) result[i * tokens + i] = 1;
    for (const heads of maps) {
      const mixed = new Float64Array(tokens * tokens);
      for (const weights of heads) for (let i = 0; i < mixed.length; i++) mixed[i] += weights[i] / heads.length;
      for (let i = 0; i < tokens; i++) {
        let total = 0;
        for (let j = 0; j < tokens; j++) {
          const value = (1 - residualWeight) * mixed[i * tokens + j] + (i === j ? residualWeight : 0);
          mixed[i * tokens + j] = value;
          total += value;
        }
        for (let j = 0; j < tokens; j++) mixed[i * tokens + j] /= total;
      }
      const next = new Float64Array(tokens * tokens); // mixed @ result
      for (let i = 0; i < tokens; i++) {
        for (let k = 0; k < tokens; k++) {
          const a = mixed[i * tokens + k];
          if (a === 0) continue;
          for (let j = 0; j < tokens; j++) next[i * tokens + j] += a * result[k * tokens + j];
        }
      }
      result = next;
    }
    return result;
  }

  // --- Preparing a drawing the way MNIST's digits were prepared ------------------------------------

  // Area-averaging weights that map source [start, start + length) onto `size` target pixels:
  // weights[t] lists [sourceIndex, overlap] pairs, the overlaps of target pixel t summing to 1.
  function areaWeights(start, length, size) {
    const weights = [];
    const step = length / size;
    for (let t = 0; t < size; t++) {
      const from = start + t * step, to = from + step;
      const pairs = [];
      for (let s = Math.floor(from); s < Math.ceil(to); s++) {
        const overlap = Math.min(to, s + 1) - Math.max(from, s);
        if (overlap > 1e-12) pairs.push([s, overlap / step]);
      }
      weights.push(pairs);
    }
    return weights;
  }

  // The box [x0, x0 + w) x [y0, y0 + h) of a (height, width) image, resampled to (outH, outW) by area
  function resampleBox(ink, width, x0, y0, w, h, outW, outH) {
    const cols = areaWeights(x0, w, outW), rows = areaWeights(y0, h, outH);
    const out = new Float64Array(outW * outH);
    for (let r = 0; r < outH; r++) {
      for (const [sy, wy] of rows[r]) {
        for (let c = 0; c < outW; c++) {
          let sum = 0;
          for (const [sx, wx] of cols[c]) sum += wx * ink[sy * width + sx];
          out[r * outW + c] += wy * sum;
        }
      }
    }
    return out;
  }

  // The whole pad shrunk to 28 x 28, with no other preparation: what the model would see unprepared
  function shrink(ink, width, height, size = 28) {
    return Float32Array.from(resampleBox(ink, width, 0, 0, width, height, size, size));
  }

  // MNIST's digits were scaled to fit a 20 x 20 box, keeping their aspect ratio (anti-aliased to
  // grey levels), then placed in 28 x 28 so that their centre of mass sits at the centre.
  // ink: width * height values in [0, 1]. Returns {image: 28 * 28 values in [0, 1], box}, or null
  // when there is (almost) no ink.
  function prepare(ink, width, height, { box: fit = 20, size = 28, threshold = 0.05 } = {}) {
    let top = height, bottom = -1, left = width, right = -1, total = 0;
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        const value = ink[y * width + x];
        total += value;
        if (value > threshold) {
          top = Math.min(top, y); bottom = Math.max(bottom, y);
          left = Math.min(left, x); right = Math.max(right, x);
        }
      }
    }
    if (bottom < 0 || total < 1) return null;
    const w = right - left + 1, h = bottom - top + 1;
    const scale = fit / Math.max(w, h); // the longer side becomes 20 pixels
    const outW = Math.max(1, Math.round(w * scale)), outH = Math.max(1, Math.round(h * scale));
    const small = resampleBox(ink, width, left, top, w, h, outW, outH);
    let mass = 0, cy = 0, cx = 0; // centre of mass, in pixel indices; MNIST's sits at (14, 14)
    for (let r = 0; r < outH; r++) {
      for (let c = 0; c < outW; c++) {
        const value = small[r * outW + c];
        mass += value; cy += value * r; cx += value * c;
      }
    }
    const offsetY = Math.round(size / 2 - cy / mass), offsetX = Math.round(size / 2 - cx / mass);
    const image = new Float32Array(size * size);
    for (let r = 0; r < outH; r++) {
      for (let c = 0; c < outW; c++) {
        const y = r + offsetY, x = c + offsetX;
        if (y >= 0 && y < size && x >= 0 && x < size) image[y * size + x] = Math.min(1, small[r * outW + c]);
      }
    }
    return { image, box: { left, top, width: w, height: h } };
  }

  root.ViT = { load, forward, rollout, prepare, shrink };
})(typeof globalThis !== "undefined" ? globalThis : window);
