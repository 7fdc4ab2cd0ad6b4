// The editor fed by a node other than Load Image: no image before the first run, the
// image it received (its own UI output) after it.
//
//   node tests/browser/editor_after_run.spec.mjs <url> '{"image": "<uploaded>", "size": [W, H]}'
import { launch, openComfy, waitForHistory, result, main } from "./lib.mjs";

const url = process.argv[2];
const cfg = JSON.parse(process.argv[3] || "{}");
const [W, H] = cfg.size;

await main(async () => {
  const { page, consoleErrors, close } = await launch();
  const out = { ok: false };
  try {
    await openComfy(page, url);
    const editorId = await page.evaluate((image) => {
      const { app, LiteGraph } = window;
      app.graph.clear();
      const add = (type, pos) => {
        const n = LiteGraph.createNode(type);
        n.pos = pos;
        app.graph.add(n);
        return n;
      };
      const load = add("LoadImage", [0, 0]);
      load.widgets.find((w) => w.name === "image").value = image;
      const invert = add("ImageInvert", [300, 0]);
      const editor = add("PromptMatteEditor", [560, 0]);
      const show = add("PreviewAny", [1000, 0]);
      load.connect(0, invert, 0);
      invert.connect(0, editor, 0);
      editor.connect(1, show, 0);
      const ds = app.canvas.ds;
      ds.scale = 1;
      ds.offset = [160 - editor.pos[0], 120];
      app.canvas.setDirty(true, true);
      return editor.id;
    }, cfg.image);
    const root = `.promptmatte-editor[data-node-id="${editorId}"]`;
    await page.waitForSelector(root, { timeout: 30000 });
    await page.waitForTimeout(1000);
    out.before_run = await page.getAttribute(root, "data-image");

    const promptId = await page.evaluate(async () => {
      const p = await window.app.graphToPrompt();
      return (await window.comfyAPI.api.api.queuePrompt(0, p)).prompt_id;
    });
    await waitForHistory(url, promptId, 120000);
    await page.waitForSelector(`${root}[data-image="loaded"]`, { timeout: 30000 });
    out.after_run = await page.getAttribute(root, "data-image");
    out.image_size = await page.getAttribute(root, "data-image-size");

    // A click maps to the real image's pixels.
    const r = await page.locator(`${root} canvas.promptmatte-canvas`).boundingBox();
    const s = Math.min(r.width / W, r.height / H);
    const ox = (r.width - W * s) / 2;
    const oy = (r.height - H * s) / 2;
    await page.mouse.click(r.x + ox + 40.5 * s, r.y + oy + 30.5 * s);
    await page.waitForTimeout(100);
    const st = await page.evaluate((id) => {
      const n = window.app.graph.getNodeById(id);
      return JSON.parse(n.widgets.find((w) => w.name === "editor_state").value);
    }, editorId);
    out.click = st.points[0] ?? null;
    out.page_errors = consoleErrors.filter((e) => /promptmatte/i.test(e));
    out.ok = out.page_errors.length === 0;
    if (!out.ok) out.error = out.page_errors.join("\n");
  } finally {
    await close();
  }
  result(out);
});
