// Workflow 11 (video matting) in the real frontend: loads it, selects the uploaded clip and the tiny
// checkpoint, queues it from the frontend (app.graphToPrompt + api.queuePrompt), waits; then, as a user
// would, moves the Matte Prompt Editor's frame chooser, drags the box onto the subject there and queues
// again, so the clicks go to Matting (video) with the frame chosen.
//
//   node tests/browser/video_workflow.spec.mjs <url> '<json config>'
//
// config: { workflow (path), video (uploaded input name), ckpt, resolution, box ([x1, y1, x2, y2] on
//           frame 0), frame (the frame to choose), box_on_frame (the box there), timeoutMs }
// Prints one JSON line: {ok, first: {prompt, outputs, status}, second: {...}, editor: {...}}.
import fs from "node:fs";
import { launch, openComfy, loadWorkflow, waitForHistory, result, main, log } from "./lib.mjs";

const url = process.argv[2];
const cfg = JSON.parse(process.argv[3] || "{}");

async function queue(page) {
  return await page.evaluate(async () => {
    const p = await window.app.graphToPrompt();
    const prompt = Object.fromEntries(
      Object.entries(p.output).map(([id, n]) => [id, { class_type: n.class_type, inputs: n.inputs }]),
    );
    try {
      const res = await window.comfyAPI.api.api.queuePrompt(0, p);
      return { prompt, promptId: res.prompt_id };
    } catch (err) {
      return { prompt, rejection: err.response ?? String(err) };
    }
  });
}

async function run(page, label) {
  const t0 = Date.now();
  const queued = await queue(page);
  const entry = { prompt: queued.prompt };
  if (queued.rejection) {
    entry.rejection = queued.rejection;
  } else {
    try {
      const h = await waitForHistory(url, queued.promptId, cfg.timeoutMs || 300000);
      entry.outputs = h.outputs;
      entry.status = h.status?.status_str;
    } catch (err) {
      entry.error = String(err).slice(0, 4000);
    }
  }
  entry.seconds = (Date.now() - t0) / 1000;
  log(label, entry.status || (entry.rejection ? "rejected" : "error"), `${entry.seconds}s`);
  return entry;
}

await main(async () => {
  const { page, consoleErrors, close } = await launch();
  const out = { ok: false };
  try {
    await openComfy(page, url);
    await loadWorkflow(page, JSON.parse(fs.readFileSync(cfg.workflow, "utf8")));
    await page.evaluate(
      ({ cfg }) => {
        for (const n of window.app.graph._nodes) {
          const set = (name, value) => {
            const w = n.widgets?.find((x) => x.name === name);
            if (!w) throw new Error(`${n.type} has no widget ${name}`);
            w.value = value;
          };
          if (n.type === "LoadVideo") set("file", cfg.video);
          if (n.type === "PromptMatteModelLoader") set("ckpt_name", cfg.ckpt);
          if (n.type === "PromptMatteVideo") {
            set("resolution", cfg.resolution);
            set("motion_margin", cfg.motion_margin);
          }
          if (n.type === "PromptMatteEditor") set("editor_state", JSON.stringify({ points: [], box: cfg.box }));
        }
      },
      { cfg },
    );
    out.first = await run(page, "first run");

    // The editor has received the frames: its chooser shows; choose a frame and draw the box there.
    const root = page.locator(".promptmatte-editor").first();
    await root.waitFor({ state: "attached", timeout: 30000 });
    await page.waitForFunction(() => Number(document.querySelector(".promptmatte-editor")?.dataset.frames) > 1, null, {
      timeout: 30000,
    });
    const slider = page.locator(".promptmatte-frame").first();
    out.editor = { frames: await root.getAttribute("data-frames"), visible: await slider.isVisible() };
    await slider.evaluate((el, frame) => {
      el.value = String(frame);
      el.dispatchEvent(new Event("input", { bubbles: true }));
    }, cfg.frame);
    await page.waitForFunction(
      (frame) => document.querySelector(".promptmatte-editor")?.dataset.frame === String(frame),
      cfg.frame,
      { timeout: 10000 },
    );
    out.editor.label = await page.locator(".promptmatte-frame-label").first().textContent();
    // Move the box onto the subject on that frame (the stored state keeps the frame chosen).
    out.editor.state = await page.evaluate(
      ({ box }) => {
        const n = window.app.graph._nodes.find((x) => x.type === "PromptMatteEditor");
        const editor = n.promptMatteEditor;
        editor.setState({ points: [], box });
        return n.widgets.find((w) => w.name === "editor_state").value;
      },
      { box: cfg.box_on_frame },
    );
    out.second = await run(page, "second run");
    out.page_errors = consoleErrors.filter((e) => /promptmatte/i.test(e));
    out.ok = true;
  } finally {
    await close();
  }
  result(out);
});
