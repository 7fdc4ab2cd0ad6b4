// Browser test of the Matte Prompt Editor against a real ComfyUI server and frontend.
//
//   node tests/browser/editor.spec.mjs <url> '<json config>'
//
// config: {
//   workflow: path of a workflow JSON with LoadImage -> PromptMatteEditor -> ... ,
//   image: name of an image already uploaded to the server's input folder,
//   size: [W, H] of that image,
//   targets: [[x, y], ...] pixels to click (3 of them, on the subject),
//   screenshot: path to write a screenshot of the editor with the matte overlay (optional),
//   resolution: working resolution to set on PromptMatteApply nodes (optional),
//   ckpt: checkpoint name to select in Load Matting Model (the test's tiny golden model),
//   runTimeoutMs: how long the queued run may take
// }
// Prints one JSON line with what it saw; exits non-zero on failure. Assertions on the
// interaction itself are made here; pytest checks the printed results.
import fs from "node:fs";
import path from "node:path";
import { launch, openComfy, loadWorkflow, waitForHistory, result, main, log } from "./lib.mjs";

const url = process.argv[2];
const cfg = JSON.parse(process.argv[3] || "{}");
const [W, H] = cfg.size;

function assert(cond, msg) {
  if (!cond) throw new Error("assertion failed: " + msg);
}
function same(a, b) {
  return JSON.stringify(a) === JSON.stringify(b);
}

await main(async () => {
  const { page, consoleErrors, close } = await launch();
  const out = { ok: false, checks: {} };
  try {
    await openComfy(page, url);
    await loadWorkflow(page, JSON.parse(fs.readFileSync(cfg.workflow, "utf8")));

    // Point the Load Image node(s) at the uploaded test image; speed up the matting node.
    const editorId = await page.evaluate(
      ({ image, resolution, ckpt }) => {
        const g = window.app.graph;
        for (const n of g._nodes) {
          if (n.type === "LoadImage") {
            const w = n.widgets.find((x) => x.name === "image");
            w.value = image;
            w.callback?.(image);
          }
          if (n.type === "PromptMatteModelLoader" && ckpt) {
            n.widgets.find((x) => x.name === "ckpt_name").value = ckpt;
          }
          if (n.type === "PromptMatteApply" && resolution) {
            n.widgets.find((x) => x.name === "resolution").value = resolution;
          }
        }
        const ed = g._nodes.find((n) => n.type === "PromptMatteEditor");
        // Show the editor at zoom 1, top-left of the graph area.
        const ds = window.app.canvas.ds;
        ds.scale = 1;
        ds.offset = [160 - ed.pos[0], 120 - ed.pos[1]];
        window.app.canvas.setDirty(true, true);
        return ed.id;
      },
      { image: cfg.image, resolution: cfg.resolution, ckpt: cfg.ckpt },
    );
    const root = `.promptmatte-editor[data-node-id="${editorId}"]`;
    const canvasSel = `${root} canvas.promptmatte-canvas`;

    // The image comes from the upstream Load Image node, before any run.
    await page.waitForSelector(`${root}[data-image="loaded"][data-image-size="${W}x${H}"]`, {
      timeout: 30000,
    });
    out.checks.image_from_load_image = true;

    const state = () =>
      page.evaluate((id) => {
        const n = window.app.graph.getNodeById(id);
        return JSON.parse(n.widgets.find((w) => w.name === "editor_state").value);
      }, editorId);

    // Client position of the centre of image pixel (px, py), from the canvas' on-screen box
    // and the image's aspect (the editor letterboxes the image into the canvas).
    const clientOf = async (px, py) => {
      const r = await page.locator(canvasSel).boundingBox();
      const s = Math.min(r.width / W, r.height / H);
      const ox = (r.width - W * s) / 2;
      const oy = (r.height - H * s) / 2;
      return { x: r.x + ox + (px + 0.5) * s, y: r.y + oy + (py + 0.5) * s, s };
    };
    const click = async (px, py, opts = {}) => {
      const c = await clientOf(px, py);
      if (opts.shift) await page.keyboard.down("Shift");
      await page.mouse.click(c.x, c.y, { button: opts.button || "left" });
      if (opts.shift) await page.keyboard.up("Shift");
      await page.waitForTimeout(60);
    };
    const drag = async (from, to, steps = 8) => {
      const a = await clientOf(...from);
      const b = await clientOf(...to);
      await page.mouse.move(a.x, a.y);
      await page.mouse.down();
      await page.mouse.move(b.x, b.y, { steps });
      await page.mouse.up();
      await page.waitForTimeout(60);
    };

    // Start from an empty editor (the Clear button).
    await page.click(`${root} button.promptmatte-clear`);
    assert(same(await state(), { points: [], box: null }), "Clear empties the state");

    // 1) left clicks add numbered points, stored in image pixels
    const T = cfg.targets;
    for (const [x, y] of T) await click(x, y);
    let s = await state();
    assert(same(s.points, T.map(([x, y]) => ({ x, y }))), `points ${JSON.stringify(s.points)} == ${JSON.stringify(T)}`);
    out.checks.clicks_in_image_pixels = s.points;
    out.checks.stored_size = [s.width ?? null, s.height ?? null]; // the size of the image clicked on

    // 2) right click removes the nearest point, shift-click too
    await click(T[1][0] + 2, T[1][1] - 2, { button: "right" });
    s = await state();
    assert(same(s.points, [T[0], T[2]].map(([x, y]) => ({ x, y }))), "right click removed point 2: " + JSON.stringify(s.points));
    await click(T[2][0] - 3, T[2][1] + 1, { shift: true });
    s = await state();
    assert(same(s.points, [{ x: T[0][0], y: T[0][1] }]), "shift-click removed the nearest point: " + JSON.stringify(s.points));
    out.checks.remove_nearest = true;

    // 3) at most 10 points, and the canvas says so on the 11th
    const grid = [];
    for (let i = 0; grid.length < 10; i++) grid.push([Math.round(((i % 5) + 1) * (W / 7)), Math.round((Math.floor(i / 5) + 1) * (H / 4))]);
    for (const [x, y] of grid.slice(0, 9)) await click(x, y);
    assert((await state()).points.length === 10, "10 points accepted");
    await click(grid[9][0], grid[9][1] + 5);
    s = await state();
    assert(s.points.length === 10, "11th point refused");
    const msg = await page.getAttribute(root, "data-message");
    assert(/at most 10/i.test(msg || ""), "the canvas says at most 10: " + msg);
    out.checks.max_points_message = msg;
    await page.click(`${root} button.promptmatte-clear`);
    assert(same(await state(), { points: [], box: null }), "Clear after 10 points");

    // 4) drag draws a box (end-exclusive pixels), dragging inside moves it
    const A = [Math.round(W * 0.2), Math.round(H * 0.25)];
    const B = [Math.round(W * 0.6), Math.round(H * 0.7)];
    await drag(A, B);
    s = await state();
    const box = [A[0], A[1], B[0] + 1, B[1] + 1];
    assert(same(s.box, box), `box ${JSON.stringify(s.box)} == ${JSON.stringify(box)}`);
    assert(s.points.length === 0, "a drag adds no point");
    const mid = [Math.round((A[0] + B[0]) / 2), Math.round((A[1] + B[1]) / 2)];
    const d = [Math.round(W * 0.1), Math.round(H * 0.05)];
    await drag(mid, [mid[0] + d[0], mid[1] + d[1]]);
    s = await state();
    const moved = [box[0] + d[0], box[1] + d[1], box[2] + d[0], box[3] + d[1]];
    assert(same(s.box, moved), `moved box ${JSON.stringify(s.box)} == ${JSON.stringify(moved)}`);
    // dragging a corner resizes the box (the opposite corner stays)
    const C = [Math.round(W * 0.85), Math.round(H * 0.9)];
    await drag([moved[2] - 0.5, moved[3] - 0.5], C);
    s = await state();
    const resized = [moved[0], moved[1], C[0] + 1, C[1] + 1];
    assert(same(s.box, resized), `corner-resized box ${JSON.stringify(s.box)} == ${JSON.stringify(resized)}`);
    out.checks.box = s.box;
    // shift-click inside the box with no points removes the box
    await click(mid[0] + d[0], mid[1] + d[1], { shift: true });
    assert((await state()).box === null, "box removed");
    out.checks.box_corner_resize = true;

    // 5) final clicks for the run
    for (const [x, y] of T) await click(x, y);
    // dragging a point moves it
    const Q = [Math.round(W * 0.1), Math.round(H * 0.9)];
    await drag(T[0], Q);
    s = await state();
    assert(same(s.points[0], { x: Q[0], y: Q[1] }) && s.points.length === T.length, "dragged point: " + JSON.stringify(s.points));
    await drag(Q, T[0]);
    out.checks.point_drag = true;
    const finalState = await state();
    assert(finalState.points.length === T.length && finalState.box === null, "final clicks");

    // 6) state survives save/load, copy-paste and resizing the node
    const persisted = await page.evaluate(async (id) => {
      const app = window.app;
      const get = (n) => JSON.parse(n.widgets.find((w) => w.name === "editor_state").value);
      const wf = app.graph.serialize();
      await app.loadGraphData(wf, true, true, "promptmatte-reload");
      const reloaded = get(app.graph.getNodeById(id));
      const node = app.graph.getNodeById(id);
      app.canvas.copyToClipboard([node]);
      const res = app.canvas._pasteFromClipboard({ position: [node.pos[0] + 900, node.pos[1]] });
      const pasted = [...(res?.created ?? [])].find((n) => n.type === "PromptMatteEditor");
      const pastedState = pasted ? get(pasted) : null;
      if (pasted) app.graph.remove(pasted);
      node.setSize([node.size[0] + 200, node.size[1] + 150]);
      const ds = app.canvas.ds;
      ds.scale = 1;
      ds.offset = [160 - node.pos[0], 120 - node.pos[1]];
      app.canvas.setDirty(true, true);
      return { reloaded, pastedState, resized: get(node) };
    }, editorId);
    assert(same(persisted.reloaded, finalState), "state after save/load");
    assert(same(persisted.pastedState, finalState), "state of the pasted copy");
    assert(same(persisted.resized, finalState), "state after resize");
    out.checks.persistence = true;
    await page.waitForSelector(`${root}[data-image="loaded"]`, { timeout: 30000 });
    await page.waitForTimeout(400);
    // clicks still land on the right pixel in the resized node
    const extra = [Math.round(W * 0.5), Math.round(H * 0.5)];
    await click(...extra);
    s = await state();
    assert(same(s.points.at(-1), { x: extra[0], y: extra[1] }), "click after resize: " + JSON.stringify(s.points.at(-1)));
    await click(extra[0], extra[1], { button: "right" });
    assert(same(await state(), finalState), "back to the final clicks");
    out.checks.resize_mapping = true;

    // 7) queue through the frontend; the API prompt carries the clicks. The server's cache
    // is dropped first: a fully cached run sends no 'executed' event for the matting node.
    await fetch(new URL("/api/free", url), {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ unload_models: false, free_memory: true }),
    });
    await page.waitForTimeout(1000);
    const queued = await page.evaluate(async (id) => {
      const p = await window.app.graphToPrompt();
      const res = await window.comfyAPI.api.api.queuePrompt(0, p);
      return { promptId: res.prompt_id, editorInputs: p.output[String(id)]?.inputs };
    }, editorId);
    assert(queued.editorInputs && same(JSON.parse(queued.editorInputs.editor_state), finalState), "API prompt has the state");
    out.prompt_id = queued.promptId;
    const entry = await waitForHistory(url, queued.promptId, cfg.runTimeoutMs || 300000);
    out.outputs = entry.outputs;

    // 8) the matte overlay appears when the matting node returned an alpha preview
    const applyIds = await page.evaluate(() =>
      window.app.graph._nodes.filter((n) => n.type === "PromptMatteApply").map((n) => String(n.id)),
    );
    const applyOut = applyIds.map((id) => entry.outputs[id]).find(Boolean);
    out.apply_ui = applyOut || null;
    const hasAlphaUi = !!(applyOut?.promptmatte_alpha?.length || applyOut?.images?.length);
    if (hasAlphaUi) {
      await page.waitForSelector(`${root}[data-overlay="loaded"]`, { timeout: 30000 });
      out.overlay = true;
    } else {
      out.overlay = false;
    }
    out.editor_ui = entry.outputs[String(editorId)] || null;

    // 9) screenshot of the editor (with the overlay when there is one)
    if (cfg.screenshot) {
      // Move the editor clear of the other nodes and show it at zoom 1.
      await page.evaluate((id) => {
        const app = window.app;
        const n = app.graph.getNodeById(id);
        const right = Math.max(...app.graph._nodes.filter((m) => m !== n).map((m) => m.pos[0] + m.size[0]));
        n.pos = [right + 200, 0];
        n.setSize([460, 420]);
        app.canvas.deselectAll?.();
        app.canvas.ds.scale = 1;
        app.canvas.ds.offset = [160 - n.pos[0], 120 - n.pos[1]];
        app.canvas.setDirty(true, true);
      }, editorId);
      await page.waitForTimeout(500);
      const clip = await page.evaluate((id) => {
        const app = window.app;
        const n = app.graph.getNodeById(id);
        const { scale, offset } = app.canvas.ds;
        const r = app.canvas.canvas.getBoundingClientRect();
        const title = window.LiteGraph.NODE_TITLE_HEIGHT;
        const x = r.left + (n.pos[0] + offset[0]) * scale;
        const y = r.top + (n.pos[1] - title + offset[1]) * scale;
        return { x: x - 8, y: y - 8, width: n.size[0] * scale + 16, height: (n.size[1] + title) * scale + 16 };
      }, editorId);
      fs.mkdirSync(path.dirname(cfg.screenshot), { recursive: true });
      await page.screenshot({ path: cfg.screenshot, clip });
      out.screenshot = cfg.screenshot;
    }

    out.page_errors = consoleErrors.filter((e) => /promptmatte/i.test(e));
    assert(out.page_errors.length === 0, "no page errors from the extension: " + out.page_errors.join("\n"));
    out.ok = true;
  } finally {
    await close();
  }
  result(out);
});
