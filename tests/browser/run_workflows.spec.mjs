// Loads each example workflow into the real frontend, converts it to an API prompt with
// app.graphToPrompt() and queues it with the frontend's own api.queuePrompt, then waits for
// the run. One browser session for all workflows.
//
//   node tests/browser/run_workflows.spec.mjs <url> '<json config>'
//
// config: {
//   ckpt: checkpoint to select in every "Load Matting Model" (a run's own ckpt wins),
//   resolution: working resolution for every "Matting",
//   runs: [{ name, workflow (path), image (uploaded input name), editor_state (object),
//            ckpt (optional: this run's checkpoint, e.g. a family's tiny one), timeoutMs,
//            set (optional: [[node type, widget, value], ...] set on every node of that type, last),
//            taps (optional: [[node type, output name], ...]: a Preview Image is added on that output
//                  of every node of that type, through Convert Mask to Image for a MASK) }]
// }
// Prints one JSON line: {ok, runs: {name: {prompt (class types by id), outputs | rejection}}}.
import fs from "node:fs";
import { launch, openComfy, loadWorkflow, waitForHistory, result, main, log } from "./lib.mjs";

const url = process.argv[2];
const cfg = JSON.parse(process.argv[3] || "{}");

await main(async () => {
  const { page, consoleErrors, close } = await launch();
  const out = { ok: false, runs: {} };
  try {
    await openComfy(page, url);
    for (const run of cfg.runs) {
      const t0 = Date.now();
      await loadWorkflow(page, JSON.parse(fs.readFileSync(run.workflow, "utf8")));
      const queued = await page.evaluate(
        async ({ run, ckpt, resolution }) => {
          const { app } = window;
          for (const n of app.graph._nodes) {
            const set = (name, value) => {
              const w = n.widgets?.find((x) => x.name === name);
              if (!w) throw new Error(`${n.type} has no widget ${name}`);
              w.value = value;
            };
            if (n.type === "LoadImage" && run.image) set("image", run.image);
            if (n.type === "PromptMatteModelLoader" && ckpt) set("ckpt_name", ckpt);
            if (n.type === "PromptMatteApply" && resolution) set("resolution", resolution);
            if (n.type === "PromptMatteEditor" && run.editor_state) set("editor_state", JSON.stringify(run.editor_state));
            for (const [type, name, value] of run.set || []) if (n.type === type) set(name, value);
          }
          for (const [type, output] of run.taps || []) {
            for (const n of app.graph._nodes.filter((x) => x.type === type)) {
              const slot = n.outputs.findIndex((o) => o.name === output);
              if (slot < 0) throw new Error(`${type} has no output ${output}`);
              const preview = window.LiteGraph.createNode("PreviewImage");
              app.graph.add(preview);
              if (n.outputs[slot].type === "MASK") {
                const toImage = window.LiteGraph.createNode("MaskToImage");
                app.graph.add(toImage);
                n.connect(slot, toImage, 0);
                toImage.connect(0, preview, 0);
              } else {
                n.connect(slot, preview, 0);
              }
            }
          }
          const p = await app.graphToPrompt();
          const prompt = Object.fromEntries(
            Object.entries(p.output).map(([id, n]) => [id, { class_type: n.class_type, inputs: n.inputs }]),
          );
          try {
            const res = await window.comfyAPI.api.api.queuePrompt(0, p);
            return { prompt, promptId: res.prompt_id };
          } catch (err) {
            return { prompt, rejection: err.response ?? String(err) };
          }
        },
        { run, ckpt: run.ckpt ?? cfg.ckpt, resolution: cfg.resolution },
      );
      const entry = { prompt: queued.prompt };
      if (queued.rejection) {
        entry.rejection = queued.rejection;
      } else {
        try {
          const h = await waitForHistory(url, queued.promptId, run.timeoutMs || 300000);
          entry.outputs = h.outputs;
          entry.status = h.status?.status_str;
        } catch (err) {
          entry.error = String(err).slice(0, 4000);
        }
      }
      entry.seconds = (Date.now() - t0) / 1000;
      out.runs[run.name] = entry;
      log(run.name, entry.status || (entry.rejection ? "rejected" : "error"), `${entry.seconds}s`);
    }
    out.page_errors = consoleErrors.filter((e) => /promptmatte/i.test(e));
    out.ok = true;
  } finally {
    await close();
  }
  result(out);
});
