// The drawing pad: draw a digit and watch the book's ViT read it, in the page. Each element of
// class "vitpad" is replaced by a pad; its content (a picture and a sentence) is what a reader
// without JavaScript sees. Needs vit.js (the model's forward pass) and model.js (its weights).
(function () {
  "use strict";

  const PAD = 280; // the pad's pixels: 10 per pixel of the 28 x 28 digit
  // Pen width in pad pixels. The pen does not shrink with the drawing, so a drawing that fills the
  // pad ends up with strokes 2 pixels wide after preparation, like MNIST's, and a small one with fat
  // strokes; below SMALLEST pad pixels (longest side) the pad asks for a bigger drawing.
  const STROKE = 20, SMALLEST = 60;
  // The verdict's wording changes below these probabilities. Label smoothing 0.1 trained the shipped
  // model to give its answer about 0.91 at most, so 0.8 is already as sure as it gets.
  const SURE = 0.8, UNSURE = 0.5;
  const INFERNO = [[0, 0, 4], [87, 16, 110], [188, 55, 84], [249, 142, 9], [252, 255, 164]];

  function element(tag, attributes = {}, children = []) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes)) {
      if (name === "text") node.textContent = value;
      else node.setAttribute(name, value);
    }
    for (const child of children) node.append(child);
    return node;
  }

  function inferno(value) {
    const at = Math.min(0.9999, Math.max(0, value)) * (INFERNO.length - 1);
    const i = Math.floor(at), f = at - i;
    return INFERNO[i].map((c, k) => Math.round(c + f * (INFERNO[i + 1][k] - c)));
  }

  const percent = (p) => `${(100 * p).toFixed(1)}%`;

  const a = (digit) => (digit === 8 ? `an ${digit}` : `a ${digit}`);

  // The sentence beside the drawing: a confident reading, a hesitant one, or an honest "cannot tell"
  function verdict(probabilities) {
    const ranked = [...probabilities.keys()].sort((a, b) => probabilities[b] - probabilities[a]);
    const [first, second, third] = ranked.map((digit) => ({ digit, p: probabilities[digit] }));
    if (first.p >= SURE) return `It reads ${a(first.digit)} (${percent(first.p)}).`;
    if (first.p >= UNSURE) {
      return `It reads ${a(first.digit)} (${percent(first.p)}), but is not sure: next comes ${second.digit} ` +
        `(${percent(second.p)}).`;
    }
    return `It cannot tell: ${first.digit} (${percent(first.p)}), ${second.digit} (${percent(second.p)}) ` +
      `or ${third.digit} (${percent(third.p)})?`;
  }

  function drawGrey(canvas, image, size = 28) {
    const context = canvas.getContext("2d");
    const pixels = context.createImageData(size, size);
    for (let i = 0; i < size * size; i++) {
      const v = Math.round(255 * image[i]);
      pixels.data.set([v, v, v, 255], 4 * i);
    }
    context.putImageData(pixels, 0, 0);
  }

  class Pad {
    constructor(root, model) {
      Pad.count = (Pad.count || 0) + 1; // ids unique on the page
      this.root = root;
      this.model = model;
      this.view = { map: "rollout", layer: model.config.depth - 1, head: "mean", patch: null };
      this.result = null;
      this.build();
      this.clear();
    }

    build() {
      const { depth, heads } = this.model.config;
      this.canvas = element("canvas", {
        class: "vitpad-canvas", width: PAD, height: PAD, role: "img",
        "aria-label": "Drawing pad: draw a digit with the mouse, a pen or a finger",
      });
      this.context = this.canvas.getContext("2d", { willReadFrequently: true });
      const clear = element("button", { type: "button", class: "vitpad-clear", text: "Clear" });
      clear.addEventListener("click", () => this.clear());
      const digitButtons = this.model.digits.map((digit, index) => {
        const button = element("button", {
          type: "button", class: "vitpad-digit-button", "data-digit": index,
          "aria-label": `Start from a test digit ${digit.label}`, text: String(digit.label),
        });
        button.addEventListener("click", () => this.loadDigit(digit));
        return button;
      });
      const draw = element("div", { class: "vitpad-draw" }, [
        this.canvas,
        element("div", { class: "vitpad-buttons" }, [clear]),
        element("div", { class: "vitpad-buttons", role: "group", "aria-labelledby": `vitpad-digits-${Pad.count}` },
          [element("span", { id: `vitpad-digits-${Pad.count}`, text: "start from a test digit:" }), ...digitButtons]),
      ]);

      this.rawCanvas = element("canvas", { class: "vitpad-small", width: 28, height: 28, role: "img",
        "aria-label": "The pad shrunk to 28 by 28 pixels, unprepared" });
      this.preparedCanvas = element("canvas", { class: "vitpad-small", width: 28, height: 28, role: "img",
        "aria-label": "The drawing prepared as MNIST's digits were: 28 by 28 pixels" });
      this.rawVerdict = element("p", { class: "vitpad-raw-verdict" });
      const seen = element("div", { class: "vitpad-seen" }, [
        element("figure", {}, [this.rawCanvas, element("figcaption", { text: "the pad, shrunk to 28 × 28" })]),
        element("figure", {}, [this.preparedCanvas, element("figcaption", { text: "prepared as MNIST was" })]),
        this.rawVerdict,
      ]);

      this.verdict = element("p", { class: "vitpad-verdict", "aria-live": "polite" });
      this.bars = [...Array(10).keys()].map((digit) => {
        const fill = element("span", { class: "vitpad-fill" });
        const value = element("span", { class: "vitpad-value" });
        const row = element("li", { class: "vitpad-bar-row" }, [
          element("span", { class: "vitpad-label", text: String(digit) }),
          element("span", { class: "vitpad-bar" }, [fill]), value,
        ]);
        return { row, fill, value };
      });
      this.timing = element("p", { class: "vitpad-timing" });
      const result = element("div", { class: "vitpad-result" }, [
        this.verdict,
        element("ol", { class: "vitpad-bars", start: 0, "aria-label": "The ten class probabilities" },
          this.bars.map((bar) => bar.row)),
        this.timing,
      ]);

      this.menus = {};
      const select = (label, options, key) => {
        const menu = element("select", { "aria-label": label },
          options.map(([value, text]) => element("option", { value, text })));
        menu.value = String(this.view[key]);
        menu.addEventListener("change", () => {
          this.view[key] = key === "map" || menu.value === "mean" ? menu.value : Number(menu.value);
          this.showAttention();
        });
        this.menus[key] = menu;
        return element("label", {}, [`${label} `, menu]);
      };
      this.heat = element("canvas", { class: "vitpad-heat", width: 28 * 6, height: 28 * 6, tabindex: 0,
        role: "img", "aria-label": "Where the model looks; hover, tap or use the arrow keys to pick a patch" });
      this.heatCaption = element("p", { class: "vitpad-heat-caption", id: `vitpad-caption-${Pad.count}`,
        "aria-live": "polite" });
      this.heat.setAttribute("aria-describedby", this.heatCaption.id);
      this.bindHeat();
      const looks = element("div", { class: "vitpad-looks" }, [
        element("div", { class: "vitpad-controls" }, [
          select("map", [["rollout", "rollout, all blocks"], ["attention", "attention, one block"]], "map"),
          select("block", [...Array(depth).keys()].map((l) => [l, String(l + 1)]), "layer"),
          select("head", [["mean", "mean of heads"], ...[...Array(heads).keys()].map((h) => [h, String(h + 1)])], "head"),
        ]),
        element("div", { class: "vitpad-heat-row" }, [this.heat, this.heatCaption]),
      ]);

      this.root.replaceChildren(element("div", { class: "vitpad-widget" }, [
        element("div", { class: "vitpad-row" }, [draw, result]),
        element("div", { class: "vitpad-row vitpad-second" }, [seen, looks]),
      ]));
      this.bindDrawing();
    }

    bindDrawing() {
      let last = null;
      const point = (event) => { // the pad's pixels, inside its border
        const box = this.canvas.getBoundingClientRect();
        const { clientLeft, clientTop, clientWidth, clientHeight } = this.canvas;
        return [(event.clientX - box.left - clientLeft) * PAD / clientWidth,
          (event.clientY - box.top - clientTop) * PAD / clientHeight];
      };
      const dot = ([x, y]) => {
        this.context.fillStyle = "#fff";
        this.context.beginPath();
        this.context.arc(x, y, STROKE / 2, 0, 2 * Math.PI);
        this.context.fill();
      };
      const line = (from, to) => {
        const c = this.context;
        c.strokeStyle = "#fff";
        c.lineWidth = STROKE;
        c.lineCap = "round";
        c.lineJoin = "round";
        c.beginPath();
        c.moveTo(...from);
        c.lineTo(...to);
        c.stroke();
      };
      this.canvas.addEventListener("pointerdown", (event) => {
        // one pen at a time: a second finger or a palm draws nothing, nor does a right click
        if (!event.isPrimary || (event.pointerType === "mouse" && event.button !== 0)) return;
        event.preventDefault();
        this.canvas.setPointerCapture(event.pointerId);
        last = point(event);
        dot(last); // a tap leaves a dot
      });
      this.canvas.addEventListener("pointermove", (event) => {
        if (last === null || !event.isPrimary) return;
        const next = point(event);
        line(last, next);
        last = next;
      });
      const end = (event) => {
        if (last === null || !event.isPrimary) return;
        last = null;
        this.classify(); // after every stroke
      };
      this.canvas.addEventListener("pointerup", end);
      this.canvas.addEventListener("pointercancel", end);
    }

    bindHeat() {
      const { grid_size: [gh, gw] } = this.model.config;
      const patchAt = (event) => {
        const box = this.heat.getBoundingClientRect();
        const row = Math.floor((event.clientY - box.top) / box.height * gh);
        const col = Math.floor((event.clientX - box.left) / box.width * gw);
        return row >= 0 && row < gh && col >= 0 && col < gw ? [row, col] : null;
      };
      // a hovering mouse previews a patch; a click or a tap pins it (or lets it go), so that the
      // menus can change the layer and head while it stays
      let pinned = null;
      const pick = (patch) => {
        this.view.patch = patch;
        this.showAttention();
      };
      const same = (a, b) => a && b && a[0] === b[0] && a[1] === b[1];
      this.heat.addEventListener("pointermove", (event) => {
        if (event.pointerType === "mouse") pick(patchAt(event) || pinned);
      });
      this.heat.addEventListener("pointerleave", (event) => {
        if (event.pointerType === "mouse") pick(pinned);
      });
      this.heat.addEventListener("pointerdown", (event) => {
        const patch = patchAt(event);
        pinned = same(patch, pinned) ? null : patch;
        pick(pinned || (event.pointerType === "mouse" ? patch : null));
      });
      this.unpin = () => { pinned = null; this.view.patch = null; };
      this.heat.addEventListener("keydown", (event) => {
        const moves = { ArrowUp: [-1, 0], ArrowDown: [1, 0], ArrowLeft: [0, -1], ArrowRight: [0, 1] };
        if (event.key === "Escape") { pinned = null; return pick(null); }
        if (!(event.key in moves)) return;
        event.preventDefault();
        const [r, c] = this.view.patch || [Math.floor(gh / 2), Math.floor(gw / 2)];
        const [dr, dc] = this.view.patch ? moves[event.key] : [0, 0];
        pinned = [Math.min(gh - 1, Math.max(0, r + dr)), Math.min(gw - 1, Math.max(0, c + dc))];
        pick(pinned);
      });
    }

    clear() {
      this.context.clearRect(0, 0, PAD, PAD);
      this.unpin();
      this.classify();
    }

    loadDigit(digit) {
      const small = element("canvas", { width: 28, height: 28 });
      const context = small.getContext("2d");
      const pixels = context.createImageData(28, 28);
      digit.pixels.forEach((v, i) => pixels.data.set([255, 255, 255, Math.round(255 * v)], 4 * i));
      context.putImageData(pixels, 0, 0);
      this.context.clearRect(0, 0, PAD, PAD);
      this.context.imageSmoothingEnabled = true;
      this.context.drawImage(small, 0, 0, PAD, PAD);
      this.unpin();
      this.classify();
    }

    ink() {
      const { data } = this.context.getImageData(0, 0, PAD, PAD);
      const ink = new Float32Array(PAD * PAD);
      for (let i = 0; i < ink.length; i++) ink[i] = data[4 * i + 3] / 255; // the strokes' coverage
      return ink;
    }

    classify() {
      const ink = this.ink();
      const prepared = ViT.prepare(ink, PAD, PAD);
      const raw = ViT.shrink(ink, PAD, PAD);
      drawGrey(this.rawCanvas, raw);
      const tooSmall = prepared !== null && Math.max(prepared.box.width, prepared.box.height) < SMALLEST;
      if (prepared === null || tooSmall) {
        this.result = null;
        this.root.dataset.state = tooSmall ? "small" : "empty";
        delete this.root.dataset.prediction;
        drawGrey(this.preparedCanvas, new Float32Array(784));
        this.verdict.textContent = tooSmall
          ? "Draw the digit bigger: scaled up to MNIST's size, a speck this small is only a blob."
          : "Draw a digit in the box, with the mouse, a pen or a finger (or start from a test digit).";
        this.rawVerdict.textContent = "";
        for (const bar of this.bars) {
          bar.fill.style.width = "0";
          bar.value.textContent = "–";
          bar.row.classList.remove("vitpad-top");
        }
        this.timing.textContent = "";
        this.showAttention();
        return;
      }
      const started = performance.now();
      const result = ViT.forward(this.model, prepared.image);
      const milliseconds = performance.now() - started;
      result.rollout = ViT.rollout(result.maps);
      result.image = prepared.image;
      this.result = result;
      this.root.dataset.state = "read";
      drawGrey(this.preparedCanvas, prepared.image);
      const top = result.probabilities.indexOf(Math.max(...result.probabilities));
      this.root.dataset.prediction = top;
      this.verdict.textContent = verdict(result.probabilities);
      this.bars.forEach((bar, digit) => {
        const p = result.probabilities[digit];
        bar.fill.style.width = `${(100 * p).toFixed(2)}%`;
        bar.value.textContent = percent(p);
        bar.row.classList.toggle("vitpad-top", digit === top);
      });
      const unprepared = ViT.forward(this.model, raw).probabilities;
      const rawTop = unprepared.indexOf(Math.max(...unprepared));
      this.rawVerdict.textContent = `Unprepared, the model would read ${a(rawTop)} (${percent(unprepared[rawTop])}).`;
      this.timing.textContent = `One forward pass took ${milliseconds.toFixed(0)} ms in your browser.`;
      this.showAttention();
    }

    // the map to draw: (gh * gw) weights over the patches, and the sentence that says what they are
    currentMap() {
      const { grid_size: [gh, gw], num_prefix_tokens: prefix, heads } = this.model.config;
      const tokens = prefix + gh * gw;
      const { map, layer, head, patch } = this.view;
      const query = patch ? prefix + patch[0] * gw + patch[1] : 0;
      const who = patch ? `patch (row ${patch[0] + 1}, column ${patch[1] + 1})` : "the class token";
      let matrix, what;
      if (map === "rollout") {
        matrix = this.result.rollout;
        what = `Attention rollout: how much of ${who} at the output comes from each patch, through all blocks.`;
      } else {
        const maps = this.result.maps[layer];
        matrix = head === "mean" ? maps[0].map((_, i) => maps.reduce((s, m) => s + m[i], 0) / heads) : maps[head];
        what = `Where ${who} looks in block ${layer + 1}, ${head === "mean" ? "mean of the heads" : `head ${head + 1}`}.`;
      }
      const weights = matrix.slice(query * tokens + prefix, (query + 1) * tokens);
      const own = prefix ? matrix[query * tokens] : 0;
      const distillation = prefix > 1 ? matrix[query * tokens + 1] : null; // a distilled model's token 1
      return { weights, what, own, distillation };
    }

    showAttention() {
      const context = this.heat.getContext("2d");
      const { grid_size: [gh, gw], patch_size: P } = this.model.config;
      const cell = this.heat.width / gw;
      context.fillStyle = "#000";
      context.fillRect(0, 0, this.heat.width, this.heat.height);
      for (const key of ["layer", "head"]) this.menus[key].disabled = this.view.map === "rollout"; // one map for all
      if (this.result === null) {
        this.heatCaption.textContent = "Draw a digit to see where the model looks.";
        return;
      }
      const { weights, what, own, distillation } = this.currentMap();
      const max = Math.max(...weights);
      for (let r = 0; r < gh; r++) {
        for (let c = 0; c < gw; c++) {
          const [red, green, blue] = inferno(weights[r * gw + c] / max);
          context.fillStyle = `rgb(${red}, ${green}, ${blue})`;
          context.fillRect(c * cell, r * cell, cell, cell);
        }
      }
      const pixel = cell / P; // the digit's strokes on top, in the book's outline colour
      for (let y = 0; y < 28; y++) {
        for (let x = 0; x < 28; x++) {
          const v = this.result.image[y * 28 + x];
          if (v > 0.5) {
            context.fillStyle = `rgba(51, 224, 255, ${0.55 * v})`;
            context.fillRect(x * pixel, y * pixel, pixel, pixel);
          }
        }
      }
      if (this.view.patch) {
        context.strokeStyle = "#fff";
        context.lineWidth = 2;
        context.strokeRect(this.view.patch[1] * cell + 1, this.view.patch[0] * cell + 1, cell - 2, cell - 2);
      }
      const keeps = !this.model.config.num_prefix_tokens ? ""
        : this.view.patch ? ` Its share from the class token: ${percent(own)}.`
          : ` The class token's share of itself: ${percent(own)}.`;
      const taught = distillation === null ? "" : ` The distillation token's share: ${percent(distillation)}.`;
      this.heatCaption.textContent = `${what} Each map is scaled to its brightest patch, which holds ` +
        `${percent(max)}; the strokes are the prepared digit's.${keeps}${taught} ` +
        (this.view.patch ? "Click or tap it again, or press Escape, to go back to the class token."
          : "Hover over, click or tap a patch (or use the arrow keys) to see where that patch looks.");
    }
  }

  function start() {
    const roots = document.querySelectorAll(".vitpad");
    if (!roots.length) return;
    if (!globalThis.ViT || !globalThis.VITPAD_MODEL) return; // a script is missing: keep the picture
    const model = ViT.load(VITPAD_MODEL);
    roots.forEach((root) => new Pad(root, model));
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
