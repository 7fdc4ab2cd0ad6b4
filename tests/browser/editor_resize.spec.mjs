// The Matte Prompt Editor behind a resizing node: Load Image -> core "Upscale Image"
// (ImageScale) -> Matte Prompt Editor -> Matting, against a real ComfyUI server.
//
//   node tests/browser/editor_resize.spec.mjs <url> '<json config>'
//
// config: {
//   image: name of an image already uploaded to the server's input folder,
//   size: [W, H] of that image,
//   scaled: [w, h] the Upscale Image node resizes it to,
//   first: [x, y] a pixel of the file to click before the resize node is put in,
//   second: [x, y] a pixel of the RESIZED image to click after the first run,
//   other: {image, size: [W, H]} an uploaded image of another aspect ratio (optional),
//   ckpt: checkpoint for Load Matting Model, resolution: working resolution of the matting node,
//   runTimeoutMs: how long a queued run may take
// }
//
// 1. Load Image feeds the editor directly: the file shows at once, a click is stored in the
//    file's pixels with the file's size.
// 2. The Upscale Image node is put between them (as a user would): the file is no longer what
//    the editor receives, so it is dropped; the click stays. A run: the server scales the click
//    to the resized image (its `points` output), and the editor then shows the image it received
//    with the click drawn where the server put it.
// 3. A click on that image is stored in its pixels (the whole state is rewritten in them);
//    a second run gives both clicks in the resized image's pixels.
// 4. Load Image straight into the editor again: the clicks are drawn scaled back onto the file.
// 5. (with `other`) Load Image switched to an image of another aspect ratio: the editor warns,
//    the run stops with the server's message, Clear and a click start afresh on that image.
// Prints one JSON line with what it saw (pytest checks the contents against the images).
import { launch, openComfy, waitForHistory, result, main, log } from "./lib.mjs";

const url = process.argv[2];
const cfg = JSON.parse(process.argv[3] || "{}");
const [W, H] = cfg.size;
const [w, h] = cfg.scaled;

function assert(cond, msg) {
  if (!cond) throw new Error("assertion failed: " + msg);
}

await main(async () => {
  const { page, consoleErrors, close } = await launch();
  const out = { ok: false };
  try {
    await openComfy(page, url);
    const ids = await page.evaluate(
      ({ image, scaled, ckpt, resolution }) => {
        const { app, LiteGraph } = window;
        app.graph.clear();
        const add = (type, pos) => {
          const n = LiteGraph.createNode(type);
          n.pos = pos;
          app.graph.add(n);
          return n;
        };
        const set = (n, name, v) => {
          const wd = n.widgets.find((x) => x.name === name);
          wd.value = v;
          wd.callback?.(v);
        };
        const load = add("LoadImage", [0, 0]);
        set(load, "image", image);
        const scale = add("ImageScale", [0, 420]);
        set(scale, "upscale_method", "nearest-exact");
        set(scale, "width", scaled[0]);
        set(scale, "height", scaled[1]);
        set(scale, "crop", "disabled");
        const editor = add("PromptMatteEditor", [560, 0]);
        const loader = add("PromptMatteModelLoader", [1000, 0]);
        set(loader, "ckpt_name", ckpt);
        const apply = add("PromptMatteApply", [1000, 200]);
        set(apply, "resolution", resolution);
        const toImage = add("MaskToImage", [1400, 200]);
        const preview = add("PreviewImage", [1600, 200]);
        const showPoints = add("PreviewAny", [1000, 600]);
        const showBox = add("PreviewAny", [1000, 800]);
        const slot = (n, name) => n.inputs.findIndex((i) => i.name === name);
        load.connect(0, scale, slot(scale, "image"));
        load.connect(0, editor, slot(editor, "image")); // step 1: the file straight into the editor
        loader.connect(0, apply, slot(apply, "model"));
        scale.connect(0, apply, slot(apply, "image")); // the matting node gets the resized image
        editor.connect(0, apply, slot(apply, "prompt"));
        apply.connect(0, toImage, slot(toImage, "mask"));
        toImage.connect(0, preview, slot(preview, "images"));
        editor.connect(1, showPoints, slot(showPoints, "source"));
        editor.connect(2, showBox, slot(showBox, "source"));
        const ds = app.canvas.ds;
        ds.scale = 1;
        ds.offset = [160 - editor.pos[0], 120 - editor.pos[1]];
        app.canvas.setDirty(true, true);
        return {
          editor: editor.id,
          scale: scale.id,
          apply: apply.id,
          points: showPoints.id,
          bbox: showBox.id,
          applyInputs: apply.inputs.filter((i) => ["model", "image", "prompt"].includes(i.name)).map((i) => [i.name, i.link != null]),
        };
      },
      { image: cfg.image, scaled: cfg.scaled, ckpt: cfg.ckpt, resolution: cfg.resolution },
    );
    assert(
      ids.applyInputs.filter(([, linked]) => linked).length === 3,
      "model, image and prompt of Matting are connected: " + JSON.stringify(ids.applyInputs),
    );
    const root = `.promptmatte-editor[data-node-id="${ids.editor}"]`;
    const canvasSel = `${root} canvas.promptmatte-canvas`;
    const state = () =>
      page.evaluate((id) => {
        const n = window.app.graph.getNodeById(id);
        return JSON.parse(n.widgets.find((x) => x.name === "editor_state").value);
      }, ids.editor);
    // What the editor draws: the stored clicks in the pixels of the image shown.
    const drawn = () => page.evaluate((id) => window.app.graph.getNodeById(id).promptMatteEditor.viewState(), ids.editor);
    // Click the centre of pixel (px, py) of an iw×ih image letterboxed in the editor's canvas.
    const click = async (px, py, iw, ih) => {
      const r = await page.locator(canvasSel).boundingBox();
      const s = Math.min(r.width / iw, r.height / ih);
      const ox = (r.width - iw * s) / 2;
      const oy = (r.height - ih * s) / 2;
      await page.mouse.click(r.x + ox + (px + 0.5) * s, r.y + oy + (py + 0.5) * s);
      await page.waitForTimeout(100);
    };
    const queue = async () => {
      const promptId = await page.evaluate(async () => {
        const p = await window.app.graphToPrompt();
        return (await window.comfyAPI.api.api.queuePrompt(0, p)).prompt_id;
      });
      const entry = await waitForHistory(url, promptId, cfg.runTimeoutMs || 300000);
      const text = (id) => JSON.parse(entry.outputs[String(id)]?.text?.[0] ?? "null");
      return { points: text(ids.points), bbox: text(ids.bbox), editor_ui: entry.outputs[String(ids.editor)] ?? null };
    };

    // 1) The file shows at once; a click is stored in its pixels, with its size.
    await page.waitForSelector(`${root}[data-image="loaded"][data-image-size="${W}x${H}"]`, { timeout: 30000 });
    out.first_source = await page.getAttribute(root, "data-image-source");
    await click(...cfg.first, W, H);
    out.first_state = await state();
    log("state after the first click:", JSON.stringify(out.first_state));

    // 2) Upscale Image goes between Load Image and the editor: the file is dropped.
    await page.evaluate(({ scale, editor }) => {
      const g = window.app.graph;
      const ed = g.getNodeById(editor);
      g.getNodeById(scale).connect(0, ed, ed.inputs.findIndex((i) => i.name === "image"));
      window.app.canvas.setDirty(true, true);
    }, ids);
    await page.waitForSelector(`${root}[data-image="none"]`, { timeout: 30000 });
    out.dropped_after_rewire = true;
    out.status_without_image = await page.textContent(`${root} .promptmatte-status`);
    out.state_after_rewire = await state();

    out.run1 = await queue();
    log("run 1:", JSON.stringify(out.run1));
    await page.waitForSelector(`${root}[data-image="loaded"][data-image-size="${w}x${h}"]`, { timeout: 30000 });
    out.run1.image_source = await page.getAttribute(root, "data-image-source");
    out.run1.clicks = await page.getAttribute(root, "data-clicks");
    out.run1.drawn = await drawn();
    out.run1.status = await page.textContent(`${root} .promptmatte-status`);

    // 3) A click on the received image: the state is rewritten in its pixels.
    await page.waitForTimeout(300);
    await click(...cfg.second, w, h);
    out.second_state = await state();
    log("state after the second click:", JSON.stringify(out.second_state));
    out.run2 = await queue();
    log("run 2:", JSON.stringify(out.run2));
    await page.waitForSelector(`${root}[data-image="loaded"][data-image-size="${w}x${h}"]`, { timeout: 30000 });
    out.run2.clicks = await page.getAttribute(root, "data-clicks");
    out.run2.drawn = await drawn();

    // 4) Load Image straight into the editor again: the file shows, and the clicks (now in the
    //    resized image's pixels) are drawn scaled back onto it, on the same content.
    await page.evaluate(({ editor }) => {
      const g = window.app.graph;
      const ed = g.getNodeById(editor);
      const load = g._nodes.find((n) => n.type === "LoadImage");
      load.connect(0, ed, ed.inputs.findIndex((i) => i.name === "image"));
      window.app.canvas.setDirty(true, true);
    }, ids);
    await page.waitForSelector(`${root}[data-image-source="load-image"][data-image-size="${W}x${H}"]`, { timeout: 30000 });
    out.back_on_file = { clicks: await page.getAttribute(root, "data-clicks"), drawn: await drawn(), state: await state() };

    // 5) Another image of another aspect ratio in Load Image: the clicks cannot be placed on it;
    //    the editor says so, the run stops with the server's message, Clear starts afresh.
    if (cfg.other) {
      const [ow, oh] = cfg.other.size;
      await page.evaluate((name) => {
        const load = window.app.graph._nodes.find((n) => n.type === "LoadImage");
        const wd = load.widgets.find((x) => x.name === "image");
        wd.value = name;
        wd.callback?.(name);
        window.app.canvas.setDirty(true, true);
      }, cfg.other.image);
      await page.waitForSelector(`${root}[data-image-size="${ow}x${oh}"][data-clicks="mismatch"]`, { timeout: 30000 });
      const mismatch = { status: await page.textContent(`${root} .promptmatte-status`), state: await state() };
      try {
        await queue();
        mismatch.run_error = null;
      } catch (err) {
        mismatch.run_error = String(err?.message || err);
      }
      // The frontend shows the error in a dialog: read it, then close it.
      const dialog = page.locator(".p-dialog").first();
      await dialog.waitFor({ state: "visible", timeout: 15000 }).catch(() => {});
      mismatch.dialog = (await dialog.isVisible().catch(() => false)) ? await dialog.innerText() : null;
      log("error dialog:", JSON.stringify(mismatch.dialog));
      for (let i = 0; i < 5 && (await page.locator(".p-dialog-mask").count()); i++) {
        await page.keyboard.press("Escape");
        await page.waitForTimeout(300);
      }
      await page.click(`${root} button.promptmatte-clear`);
      await click(Math.floor(ow / 2), Math.floor(oh / 2), ow, oh);
      mismatch.after_clear_and_click = await state();
      mismatch.clicks_after = await page.getAttribute(root, "data-clicks");
      out.mismatch = mismatch;
    }

    out.page_errors = consoleErrors.filter((e) => /promptmatte/i.test(e));
    assert(out.page_errors.length === 0, "no page errors from the extension: " + out.page_errors.join("\n"));
    out.ok = true;
  } finally {
    await close();
  }
  result(out);
});
