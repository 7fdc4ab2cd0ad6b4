// Shared helpers of the browser specs: Debian's Chromium driven by playwright-core
// against a real ComfyUI server serving the real frontend package.
import { chromium } from "playwright-core";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

export const CHROMIUM = process.env.PROMPTMATTE_CHROMIUM || "/usr/bin/chromium";

export function log(...args) {
  process.stderr.write("[spec] " + args.map(String).join(" ") + "\n");
}

// Settings that keep first-run dialogs (templates, tours) out of the way.
const SETTINGS = {
  "Comfy.TutorialCompleted": true,
  "Comfy.Validation.Workflows": true,
  "Comfy.Workflow.ShowMissingModelsWarning": false,
  "Comfy.Workflow.ShowMissingNodesWarning": false,
  "Comfy.Workflow.ConfirmDelete": false,
  "Comfy.PromptFilename": false,
  "Comfy.Graph.CanvasInfo": false,
};

export async function prepareSettings(url) {
  const res = await fetch(new URL("/api/settings", url), {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(SETTINGS),
  });
  if (!res.ok) throw new Error(`POST /api/settings: ${res.status}`);
}

export async function launch({ width = 1400, height = 900 } = {}) {
  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), "promptmatte-chromium-"));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width, height },
    deviceScaleFactor: 1,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--no-first-run",
      "--disable-dev-shm-usage",
    ],
  });
  const page = context.pages()[0] ?? (await context.newPage());
  const consoleErrors = [];
  page.on("console", (m) => {
    if (m.type() === "error") consoleErrors.push(m.text());
  });
  page.on("pageerror", (e) => consoleErrors.push("pageerror: " + (e.stack || e.message)));
  page.on("response", (r) => {
    if (r.status() >= 400) consoleErrors.push(`HTTP ${r.status()} ${r.url()}`);
  });
  const close = async () => {
    await context.close().catch(() => {});
    fs.rmSync(userDataDir, { recursive: true, force: true });
  };
  return { context, page, consoleErrors, close };
}

// Open the ComfyUI page and wait for the app, the node definitions and our extension.
export async function openComfy(page, url) {
  await prepareSettings(url);
  await page.goto(url, { waitUntil: "domcontentloaded", timeout: 120000 });
  await page.waitForFunction(
    () =>
      window.app?.graph &&
      window.app?.canvas &&
      window.LiteGraph?.registered_node_types?.PromptMatteEditor &&
      window.app.extensions?.some?.((e) => e.name === "PromptMatte.MattePromptEditor"),
    null,
    { timeout: 120000, polling: 250 },
  );
  // Let the initial default graph settle, then close any dialog that opened.
  await page.waitForTimeout(500);
  await page.keyboard.press("Escape").catch(() => {});
}

export async function loadWorkflow(page, workflow) {
  await page.evaluate(async (wf) => {
    await window.app.loadGraphData(wf, true, true, "promptmatte-test");
  }, workflow);
  await page.waitForTimeout(300);
}

// Queue the current graph through the frontend (graphToPrompt + POST /prompt) and
// return the prompt id.
export async function queueFromFrontend(page) {
  return await page.evaluate(async () => {
    const p = await window.app.graphToPrompt();
    const res = await window.comfyAPI.api.api.queuePrompt(0, p);
    return res.prompt_id;
  });
}

export async function waitForHistory(url, promptId, timeoutMs = 300000) {
  const t0 = Date.now();
  while (Date.now() - t0 < timeoutMs) {
    const res = await fetch(new URL(`/api/history/${promptId}`, url));
    const h = await res.json();
    const entry = h[promptId];
    if (entry?.status?.completed !== undefined && entry.status.status_str) {
      if (entry.status.status_str === "error") {
        const err = (entry.status.messages || []).find((m) => m[0] === "execution_error");
        throw new Error("execution error: " + JSON.stringify(err?.[1] ?? entry.status).slice(0, 3000));
      }
      return entry;
    }
    await new Promise((r) => setTimeout(r, 300));
  }
  throw new Error(`prompt ${promptId} did not finish within ${timeoutMs} ms`);
}

export function result(obj) {
  process.stdout.write(JSON.stringify(obj) + "\n");
}

export async function main(fn) {
  try {
    await fn();
  } catch (err) {
    log("FAILED:", err?.stack || err);
    result({ ok: false, error: String(err?.stack || err) });
    process.exit(1);
  }
}
