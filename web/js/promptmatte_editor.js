// PromptMatte: the interactive prompt editor inside the "Matte Prompt Editor" node.
//
// The node's hidden STRING widget `editor_state` is the single source of truth. It holds
//   {"points": [{"x": 12, "y": 34}, ...], "box": [x1, y1, x2, y2] | null, "width": W, "height": H}
// in IMAGE PIXELS of the W×H image the clicks were made on (points are pixel indices, the
// box is end-exclusive), so the clicks survive save/load, copy-paste and resizing the node.
// width/height are written with the clicks (an empty state has none); a state without them
// (saved before they existed) is in the pixels of whatever image the node receives. This
// module only draws that state on a canvas over the image and edits it with the mouse.
//
// The image shown is the one the node receives, as far as the browser can know it:
// - fed (through Reroutes) by a core Load Image node: its file (read through /view) at once;
// - fed by any other node (a resize, a crop, another pack's loader): the image the node
//   received in the last run (its UI output `promptmatte_image` + `promptmatte_size`, the
//   real size even when the preview is smaller); nothing before the first run, and the image
//   is dropped when the input is connected elsewhere;
// - after a run that reports another size than the Load Image file shown: the received image.
//
// Clicks made on an image of another size are drawn where the server puts them: scaled by
// W/w, H/h (nodes/editor.py does the same with matting.Prompt.scaled_to) when the aspect
// ratio matches within one pixel of resize rounding on each side; otherwise they are drawn
// stretched in orange with a warning, because the server refuses them. Any edit rewrites
// the whole state in the pixels of the image shown (what you see is what is stored).
//
// After a downstream "Matting" (PromptMatteApply) or "Matting (video)" node runs, the alpha it
// returns in its UI output (`promptmatte_alpha`, falling back to `images`) is shown as a tinted
// overlay.
//
// A batch of frames (a video): after a run the node's UI output `promptmatte_frames` lists a
// small picture of every frame; a frame chooser (slider) appears under the image, and the frame
// chosen is stored in the state as `frame` with the clicks (the node's `frame` output, for
// Matting (video)'s prompt_frame). Choosing another frame keeps the clicks (move them onto the
// subject there); the chosen frame's picture is shown at the frames' real size for clicking.

import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";

const EDITOR_TYPE = "PromptMatteEditor";
const APPLY_TYPES = new Set(["PromptMatteApply", "PromptMatteVideo"]);
const LOAD_IMAGE_TYPES = new Set(["LoadImage", "LoadImageOutput"]);
const STATE_WIDGET = "editor_state";
const CANVAS_WIDGET = "promptmatte_canvas";
const MAX_POINTS = 10;
const POINT_RADIUS = 7; // CSS pixels
const HIT_RADIUS = 11; // CSS pixels: grab a point or a box corner
const DRAG_THRESHOLD = 4; // CSS pixels before a press becomes a drag
const TINT = [255, 40, 150]; // matte overlay colour (foreground); background is dimmed
const OVERLAY_OPACITY = 0.5;
const MESSAGE_MS = 3500;
// Resize nodes round each side to whole pixels: a size within this many pixels of an exact
// proportional resize counts as the same aspect ratio (the server uses the same rule).
const RESIZE_ROUNDING_PX = 1;

// ------------------------------------------------------------------ state helpers

export function parseState(text) {
  const empty = { points: [], box: null, width: null, height: null };
  if (typeof text !== "string" || !text.trim()) return empty;
  let data;
  try {
    data = JSON.parse(text);
  } catch {
    return empty;
  }
  if (!data || typeof data !== "object") return empty;
  const points = Array.isArray(data.points)
    ? data.points
        .map((p) => (Array.isArray(p) ? { x: p[0], y: p[1] } : p))
        .filter((p) => p && Number.isFinite(p.x) && Number.isFinite(p.y))
        .map((p) => ({ x: p.x, y: p.y }))
    : [];
  let box = null;
  if (Array.isArray(data.box) && data.box.length === 4 && data.box.every(Number.isFinite)) {
    const [a, b, c, d] = data.box;
    box = [Math.min(a, c), Math.min(b, d), Math.max(a, c), Math.max(b, d)];
  }
  const side = (v) => (Number.isInteger(v) && v >= 1 ? v : null);
  let width = side(data.width);
  let height = side(data.height);
  if (width == null || height == null) width = height = null;
  const frame = Number.isInteger(data.frame) && data.frame >= 0 ? data.frame : 0;
  return { points, box, width, height, frame };
}

// The state as stored: width/height (the size of the image clicked on) only with clicks.
export function serializeState(state) {
  const out = {
    points: state.points.map((p) => ({ x: p.x, y: p.y })),
    box: state.box ? state.box.slice() : null,
  };
  if ((out.points.length || out.box) && state.width && state.height) {
    out.width = state.width;
    out.height = state.height;
  }
  if (state.frame) out.frame = state.frame; // frame 0 (the default) is not written
  return JSON.stringify(out);
}

// Is [W, H] a proportional resize of [w, h]? Some scale s must give both sides to within
// RESIZE_ROUNDING_PX pixels (as aspect_matches in nodes/editor.py).
export function aspectMatches([w, h], [W, H], tol = RESIZE_ROUNDING_PX) {
  const lo = Math.max((W - tol) / w, (H - tol) / h);
  const hi = Math.min((W + tol) / w, (H + tol) / h);
  return lo <= hi + 1e-12;
}

const round3 = (v) => Math.round(v * 1000) / 1000;

// The state in the pixels of an image of size [W, H]:
//   relation "same"     no size recorded, or the same size: coordinates as stored;
//            "scaled"   clicked on a proportional resize: x·W/w, y·H/h (as the server);
//            "mismatch" clicked on another aspect ratio: stretched the same way, but the
//                       server refuses these until they are edited or cleared.
export function stateInImage(state, [W, H]) {
  const w = state.width;
  const h = state.height;
  const hasClicks = state.points.length > 0 || !!state.box;
  if (!w || !h || (w === W && h === H) || !hasClicks) {
    return { points: state.points.map((p) => ({ ...p })), box: state.box?.slice() ?? null, relation: "same" };
  }
  const fx = W / w;
  const fy = H / h;
  return {
    points: state.points.map((p) => ({ x: round3(p.x * fx), y: round3(p.y * fy) })),
    box: state.box ? state.box.map((v, i) => round3(v * (i % 2 ? fy : fx))) : null,
    relation: aspectMatches([w, h], [W, H]) ? "scaled" : "mismatch",
  };
}

function fmt(v) {
  return Number.isInteger(v) ? String(v) : v.toFixed(1);
}

function clamp(v, lo, hi) {
  return Math.min(hi, Math.max(lo, v));
}

// "sub/dir/name.png [output]" -> {filename, subfolder, type}
function parseAnnotatedFilename(value, defaultType = "input") {
  if (typeof value !== "string" || !value) return null;
  let type = defaultType;
  let name = value.trim();
  const m = name.match(/^(.*?)\s*\[(input|output|temp)\]$/);
  if (m) {
    name = m[1];
    type = m[2];
  }
  const slash = name.lastIndexOf("/");
  const subfolder = slash >= 0 ? name.slice(0, slash) : "";
  const filename = slash >= 0 ? name.slice(slash + 1) : name;
  if (!filename) return null;
  return { filename, subfolder, type };
}

function viewURL(ref, bust) {
  const params = new URLSearchParams({
    filename: ref.filename,
    type: ref.type || "input",
    subfolder: ref.subfolder || "",
  });
  if (bust) params.set("rand", String(Math.random()).slice(2));
  return api.apiURL("/view?" + params.toString());
}

function loadImage(url) {
  return new Promise((resolve, reject) => {
    const img = new Image();
    img.onload = () => resolve(img);
    img.onerror = () => reject(new Error("could not load " + url));
    img.src = url;
  });
}

// The graph node an execution id ("12" or "7:12" inside subgraphs) refers to.
function nodeByExecutionId(executionId) {
  const parts = String(executionId).split(":");
  let graph = app.graph;
  let node = null;
  for (let i = 0; i < parts.length; i++) {
    node = graph?.getNodeById?.(Number(parts[i])) ?? graph?.getNodeById?.(parts[i]);
    if (!node) return null;
    if (i < parts.length - 1) graph = node.subgraph;
  }
  return node;
}

function nodeType(node) {
  return node?.comfyClass || node?.type;
}

// The node feeding input slot `slot`, looking through frontend-only Reroute nodes.
function upstreamNode(node, slot) {
  let current = node;
  let s = slot;
  for (let hops = 0; hops < 32; hops++) {
    const input = current.inputs?.[s];
    if (!input || input.link == null) return null;
    const link = current.graph?.links?.get
      ? current.graph.links.get(input.link)
      : current.graph?.links?.[input.link];
    if (!link) return null;
    const origin = current.graph.getNodeById(link.origin_id);
    if (!origin) return null;
    if (nodeType(origin) === "Reroute") {
      current = origin;
      s = 0;
      continue;
    }
    return origin;
  }
  return null;
}

// Editors anywhere upstream of `node` (breadth first, bounded).
function upstreamEditors(node) {
  const found = [];
  const seen = new Set([node.id]);
  const queue = [node];
  while (queue.length && seen.size < 200) {
    const n = queue.shift();
    for (let i = 0; i < (n.inputs?.length ?? 0); i++) {
      const up = upstreamNode(n, i);
      if (!up || seen.has(up.id)) continue;
      seen.add(up.id);
      if (nodeType(up) === EDITOR_TYPE) found.push(up);
      else queue.push(up);
    }
  }
  return found;
}

// ------------------------------------------------------------------ the editor

class MatteEditor {
  constructor(node) {
    this.node = node;
    this.image = null; // HTMLImageElement shown
    this.imageSize = null; // [W, H] of the real image (the preview may be smaller)
    this.imageKey = null;
    this.upstreamKey = undefined; // last upstream seen: "file:..." (Load Image), "node:<id>" or null
    this.loadToken = 0;
    this.overlay = null; // canvas holding the tinted matte
    this.overlayKey = null;
    this.showOverlay = true;
    this.drag = null;
    this.hover = null;
    this.message = null;
    this.messageTimer = null;
    this.renderedState = null;

    const root = document.createElement("div");
    root.className = "promptmatte-editor";
    root.dataset.nodeId = String(node.id);
    root.dataset.image = "none";
    root.dataset.overlay = "none";
    Object.assign(root.style, {
      display: "flex",
      flexDirection: "column",
      gap: "4px",
      width: "100%",
      height: "100%",
      boxSizing: "border-box",
      minHeight: "0",
    });

    const canvas = document.createElement("canvas");
    canvas.className = "promptmatte-canvas";
    Object.assign(canvas.style, {
      flex: "1 1 auto",
      width: "100%",
      minHeight: "0",
      display: "block",
      background: "#1b1b1b",
      borderRadius: "4px",
      cursor: "crosshair",
      touchAction: "none",
    });

    const bar = document.createElement("div");
    Object.assign(bar.style, {
      display: "flex",
      alignItems: "center",
      gap: "6px",
      flex: "0 0 auto",
      fontSize: "11px",
      color: "var(--descrip-text, #aaa)",
      fontFamily: "sans-serif",
      overflow: "hidden",
      whiteSpace: "nowrap",
    });

    const clear = document.createElement("button");
    clear.className = "promptmatte-clear";
    clear.textContent = "Clear";
    clear.title = "Remove all points and the box";
    Object.assign(clear.style, {
      fontSize: "11px",
      padding: "1px 8px",
      cursor: "pointer",
      background: "var(--comfy-input-bg, #222)",
      color: "var(--input-text, #ddd)",
      border: "1px solid var(--border-color, #555)",
      borderRadius: "4px",
    });
    clear.addEventListener("click", (e) => {
      e.preventDefault();
      e.stopPropagation();
      this.setState({ points: [], box: null });
      this.flash("Cleared: click on the subject");
    });

    const overlayLabel = document.createElement("label");
    overlayLabel.title = "Show the last matte over the image";
    Object.assign(overlayLabel.style, { display: "flex", alignItems: "center", gap: "2px", cursor: "pointer" });
    const overlayBox = document.createElement("input");
    overlayBox.type = "checkbox";
    overlayBox.className = "promptmatte-overlay-toggle";
    overlayBox.checked = true;
    overlayBox.style.margin = "0";
    overlayBox.addEventListener("change", () => {
      this.showOverlay = overlayBox.checked;
      this.render();
    });
    overlayLabel.append(overlayBox, document.createTextNode("matte"));

    const status = document.createElement("span");
    status.className = "promptmatte-status";
    Object.assign(status.style, { overflow: "hidden", textOverflow: "ellipsis", flex: "1 1 auto" });

    // The frame chooser: shown once the node has received a batch of frames.
    const frameBar = document.createElement("div");
    frameBar.className = "promptmatte-framebar";
    Object.assign(frameBar.style, {
      display: "none",
      alignItems: "center",
      gap: "6px",
      flex: "0 0 auto",
      fontSize: "11px",
      color: "var(--descrip-text, #aaa)",
      fontFamily: "sans-serif",
    });
    const frameSlider = document.createElement("input");
    frameSlider.type = "range";
    frameSlider.className = "promptmatte-frame";
    frameSlider.min = "0";
    frameSlider.step = "1";
    frameSlider.title = "The frame to click on: the clicks are stored with it (the node's frame output)";
    Object.assign(frameSlider.style, { flex: "1 1 auto", margin: "0" });
    const frameLabel = document.createElement("span");
    frameLabel.className = "promptmatte-frame-label";
    frameSlider.addEventListener("input", () => this.chooseFrame(Number(frameSlider.value)));
    for (const ev of ["pointerdown", "mousedown"]) frameSlider.addEventListener(ev, (e) => e.stopPropagation());
    frameBar.append(frameLabel, frameSlider);

    bar.append(clear, overlayLabel, status);
    root.append(canvas, frameBar, bar);
    this.root = root;
    this.canvas = canvas;
    this.status = status;
    this.frameBar = frameBar;
    this.frameSlider = frameSlider;
    this.frameLabel = frameLabel;
    this.frames = null; // {subfolder, type, files, count} of the last batch received

    this.widget = node.addDOMWidget(CANVAS_WIDGET, "promptmatte_canvas", root, {
      serialize: false,
      hideOnZoom: false,
      getValue: () => "",
      setValue: () => {},
      getMinHeight: () => 200,
      onDraw: () => this.tick(),
    });
    this.widget.serialize = false;

    this.bindEvents();
    this.resizeObserver = new ResizeObserver(() => this.render());
    this.resizeObserver.observe(canvas);
  }

  destroy() {
    this.resizeObserver?.disconnect();
    clearTimeout(this.messageTimer);
  }

  // ---- state in the hidden widget

  get stateWidget() {
    return this.node.widgets?.find((w) => w.name === STATE_WIDGET);
  }

  // The stored state (in the pixels of the image it was clicked on).
  getState() {
    return parseState(this.stateWidget?.value);
  }

  // The stored state in the pixels of the image shown (see stateInImage), plus `relation`.
  viewState() {
    const st = this.getState();
    if (!this.imageSize) return { points: st.points, box: st.box, relation: "same" };
    return stateInImage(st, this.imageSize);
  }

  // Store `state`, given in the pixels of the image shown (an edit), with that image's size.
  setState(state) {
    const w = this.stateWidget;
    if (!w) return;
    const [width, height] = this.imageSize ?? [null, null];
    const frame = state.frame ?? this.getState().frame;
    const text = serializeState({ points: state.points, box: state.box, width, height, frame });
    if (w.value !== text) {
      w.value = text;
      w.callback?.(text);
      this.node.setDirtyCanvas?.(true, true);
      this.node.graph?.change?.();
    }
    this.render();
  }

  // ---- image sources

  // Called on every draw of the node: cheap checks for a new upstream image or state.
  tick() {
    const up = this.upstreamSource();
    if (up.key !== this.upstreamKey) {
      this.upstreamKey = up.key;
      if (up.ref) this.showImage(viewURL(up.ref, false), null, up.key, true);
      else if (this.image) this.dropImage(); // no longer what this node receives
    }
    const stateText = this.stateWidget?.value;
    if (stateText !== this.renderedState) this.render();
  }

  // What feeds the image input: {key, ref}. A core Load Image node (through Reroutes) gives
  // its file (ref, shown at once: it is exactly what the node receives); any other node
  // only a key, since it may resize or crop (e.g. "Upscale Image", KJNodes' "Load & Resize
  // Image"): its image shows after a run.
  upstreamSource() {
    const idx = this.node.inputs?.findIndex((i) => i.name === "image") ?? -1;
    const up = idx < 0 ? null : upstreamNode(this.node, idx);
    if (!up) return { key: null, ref: null };
    const type = nodeType(up);
    const w = up.widgets?.find((x) => x.name === "image");
    if (LOAD_IMAGE_TYPES.has(type) && typeof w?.value === "string") {
      const ref = parseAnnotatedFilename(w.value, type === "LoadImageOutput" ? "output" : "input");
      if (ref) return { key: `file:${ref.type}/${ref.subfolder}/${ref.filename}`, ref };
    }
    return { key: `node:${up.id}`, ref: null };
  }

  dropImage() {
    this.loadToken++; // forget a load under way
    this.image = null;
    this.imageSize = null;
    this.imageKey = null;
    this.root.dataset.image = "none";
    delete this.root.dataset.imageSize;
    delete this.root.dataset.imageSource;
    this.clearOverlay();
    this.render();
  }

  async showImage(url, size, key, dropOverlay) {
    const token = ++this.loadToken;
    let img;
    try {
      img = await loadImage(url);
    } catch (err) {
      if (token === this.loadToken) this.flash("Could not load the image: run the workflow once");
      return;
    }
    if (token !== this.loadToken) return; // a newer image was asked for meanwhile
    this.image = img;
    this.imageSize = size ? [size[0], size[1]] : [img.naturalWidth, img.naturalHeight];
    this.imageKey = key;
    this.root.dataset.image = "loaded";
    this.root.dataset.imageSize = `${this.imageSize[0]}x${this.imageSize[1]}`;
    this.root.dataset.imageSource = key.startsWith("run:") ? "run" : "load-image";
    // A run's image keeps the overlay (that run's alpha may already be there); it is only
    // drawn while its aspect ratio fits the image (see render).
    if (dropOverlay) this.clearOverlay();
    this.render();
  }

  // The editor's own UI output after a run: the image it received, at its real size. The
  // Load Image file already shown is kept when it is that image (same file, same size: full
  // resolution, no reload); anything else is replaced by what the node received.
  onEditorExecuted(output) {
    const ref = output?.promptmatte_image?.[0];
    if (!ref) return;
    const raw = output?.promptmatte_size?.[0];
    const size = Array.isArray(raw) && raw.length === 2 ? [Number(raw[0]), Number(raw[1])] : null;
    this.setFrames(output?.promptmatte_frames?.[0] ?? null);
    const up = this.upstreamSource();
    this.upstreamKey = up.key; // a rewiring not seen yet (node off screen) must not drop this image later
    if (
      up.ref &&
      this.imageKey === up.key &&
      size &&
      this.imageSize?.[0] === size[0] &&
      this.imageSize?.[1] === size[1]
    ) {
      return;
    }
    const key = `run:${ref.type}/${ref.subfolder}/${ref.filename}`;
    this.showImage(viewURL(ref, true), size, key, false);
  }

  // The frames of the batch last received (or null: a single image): shows or hides the chooser.
  setFrames(frames) {
    this.frames = frames && frames.count > 1 ? frames : null;
    this.root.dataset.frames = this.frames ? String(this.frames.count) : "0";
    this.frameBar.style.display = this.frames ? "flex" : "none";
    if (!this.frames) return;
    const frame = Math.min(this.getState().frame, this.frames.count - 1);
    this.frameSlider.max = String(this.frames.count - 1);
    this.frameSlider.value = String(frame);
    this.frameLabel.textContent = `frame ${frame} / ${this.frames.count - 1}`;
    this.root.dataset.frame = String(frame);
  }

  // Show frame k of the batch and store it with the clicks (kept: move them onto the subject).
  chooseFrame(k) {
    if (!this.frames) return;
    const frame = clamp(Math.round(k), 0, this.frames.count - 1);
    this.frameSlider.value = String(frame);
    this.frameLabel.textContent = `frame ${frame} / ${this.frames.count - 1}`;
    this.root.dataset.frame = String(frame);
    const view = this.viewState();
    this.setState({ points: view.points, box: view.box, frame });
    const ref = { filename: this.frames.files[frame], subfolder: this.frames.subfolder, type: this.frames.type };
    // The picture is small; the size given is the frames' real size, so clicks stay in real pixels.
    this.showImage(viewURL(ref, false), this.imageSize, `run:frame/${this.frames.subfolder}/${frame}`, false);
  }

  // A downstream matting node's UI output: its alpha becomes the overlay.
  async onAlpha(ref) {
    const key = `${ref.type}/${ref.subfolder}/${ref.filename}`;
    let img;
    try {
      img = await loadImage(viewURL(ref, true));
    } catch {
      return;
    }
    const c = document.createElement("canvas");
    c.width = img.naturalWidth;
    c.height = img.naturalHeight;
    const ctx = c.getContext("2d", { willReadFrequently: true });
    ctx.drawImage(img, 0, 0);
    const data = ctx.getImageData(0, 0, c.width, c.height);
    const px = data.data;
    let fg = 0;
    for (let i = 0; i < px.length; i += 4) {
      // Luminance of the alpha preview (grey), or its own alpha channel if it has one.
      const a = px[i + 3] < 255 ? px[i + 3] / 255 : (px[i] * 0.299 + px[i + 1] * 0.587 + px[i + 2] * 0.114) / 255;
      fg += a;
      px[i] = TINT[0] * a;
      px[i + 1] = TINT[1] * a;
      px[i + 2] = TINT[2] * a;
      px[i + 3] = 255 * OVERLAY_OPACITY;
    }
    ctx.putImageData(data, 0, 0);
    this.overlay = c;
    this.overlaySize = [c.width, c.height];
    this.overlayKey = key;
    this.overlayCoverage = fg / (px.length / 4);
    this.root.dataset.overlay = "loaded";
    this.root.dataset.overlayKey = key;
    this.render();
  }

  clearOverlay() {
    this.overlay = null;
    this.overlaySize = null;
    this.overlayKey = null;
    this.root.dataset.overlay = "none";
    delete this.root.dataset.overlayKey;
  }

  // ---- geometry

  // Image rectangle inside the canvas, in CSS pixels of the (unscaled) canvas.
  layout() {
    const cw = this.canvas.clientWidth;
    const ch = this.canvas.clientHeight;
    if (!this.imageSize || cw <= 0 || ch <= 0) return null;
    const [W, H] = this.imageSize;
    const s = Math.min(cw / W, ch / H);
    return { cw, ch, s, ox: (cw - W * s) / 2, oy: (ch - H * s) / 2, W, H };
  }

  // Pointer event -> continuous image coordinates (may lie outside the image).
  eventToImage(e) {
    const L = this.layout();
    if (!L) return null;
    const r = this.canvas.getBoundingClientRect();
    // The DOM widget is scaled with the graph zoom: rect size != client size.
    const cx = ((e.clientX - r.left) * L.cw) / r.width;
    const cy = ((e.clientY - r.top) * L.ch) / r.height;
    return { x: (cx - L.ox) / L.s, y: (cy - L.oy) / L.s, L };
  }

  hitPoint(p, state) {
    let best = -1;
    let bestD = Infinity;
    state.points.forEach((q, i) => {
      const d = Math.hypot(q.x + 0.5 - p.x, q.y + 0.5 - p.y) * p.L.s;
      if (d < bestD) {
        bestD = d;
        best = i;
      }
    });
    return bestD <= HIT_RADIUS ? best : -1;
  }

  hitCorner(p, state) {
    if (!state.box) return -1;
    const [x1, y1, x2, y2] = state.box;
    const corners = [
      [x1, y1],
      [x2, y1],
      [x2, y2],
      [x1, y2],
    ];
    for (let i = 0; i < 4; i++) {
      if (Math.hypot(corners[i][0] - p.x, corners[i][1] - p.y) * p.L.s <= HIT_RADIUS) return i;
    }
    return -1;
  }

  insideBox(p, state) {
    if (!state.box) return false;
    const [x1, y1, x2, y2] = state.box;
    return p.x >= x1 && p.x <= x2 && p.y >= y1 && p.y <= y2;
  }

  // ---- mouse

  bindEvents() {
    const c = this.canvas;
    const swallow = (e) => {
      e.preventDefault();
      e.stopPropagation();
    };
    c.addEventListener("contextmenu", swallow);
    c.addEventListener("pointerdown", (e) => this.onPointerDown(e));
    c.addEventListener("pointermove", (e) => this.onPointerMove(e));
    c.addEventListener("pointerup", (e) => this.onPointerUp(e));
    c.addEventListener("pointercancel", () => {
      this.drag = null;
      this.render();
    });
    c.addEventListener("pointerleave", () => {
      this.hover = null;
      if (!this.drag) this.render();
    });
    // Keep the graph from panning or selecting while the user works on the canvas.
    c.addEventListener("mousedown", (e) => e.stopPropagation());
    c.addEventListener("dblclick", swallow);
  }

  onPointerDown(e) {
    e.preventDefault();
    e.stopPropagation();
    if (!this.image) {
      this.flash("No image yet: connect a Load Image node or run the workflow once");
      return;
    }
    const p = this.eventToImage(e);
    if (!p) return;
    const state = this.viewState();
    if (e.button === 2 || (e.button === 0 && e.shiftKey)) {
      this.removeNearest(p, state);
      return;
    }
    if (e.button !== 0) return;
    try {
      this.canvas.setPointerCapture(e.pointerId);
    } catch {
      /* synthetic events have no capturable pointer */
    }
    const start = { x: e.clientX, y: e.clientY, p };
    const pi = this.hitPoint(p, state);
    const ci = pi < 0 ? this.hitCorner(p, state) : -1;
    if (pi >= 0) this.drag = { mode: "point", index: pi, start, active: false };
    else if (ci >= 0) this.drag = { mode: "corner", corner: ci, start, active: false, box: state.box.slice() };
    else if (this.insideBox(p, state)) this.drag = { mode: "move-box", start, active: false, box: state.box.slice() };
    else this.drag = { mode: "new-box", start, active: false };
  }

  onPointerMove(e) {
    const p = this.eventToImage(e);
    if (!this.drag) {
      if (p && this.image) {
        const state = this.viewState();
        const over = this.hitPoint(p, state) >= 0 || this.hitCorner(p, state) >= 0;
        this.canvas.style.cursor = over ? "move" : this.insideBox(p, state) ? "grab" : "crosshair";
      }
      return;
    }
    e.preventDefault();
    e.stopPropagation();
    const d = this.drag;
    if (!d.active) {
      if (Math.hypot(e.clientX - d.start.x, e.clientY - d.start.y) < DRAG_THRESHOLD) return;
      d.active = true;
    }
    if (!p) return;
    const { W, H } = p.L;
    const state = this.viewState();
    if (d.mode === "point") {
      const q = state.points[d.index];
      if (!q) return;
      q.x = clamp(Math.floor(p.x), 0, W - 1);
      q.y = clamp(Math.floor(p.y), 0, H - 1);
      this.setState(state);
    } else if (d.mode === "new-box") {
      state.box = this.boxFrom(d.start.p, p, W, H);
      this.setState(state);
    } else if (d.mode === "move-box") {
      const [x1, y1, x2, y2] = d.box;
      const bw = x2 - x1;
      const bh = y2 - y1;
      const nx = clamp(Math.round(x1 + p.x - d.start.p.x), 0, W - bw);
      const ny = clamp(Math.round(y1 + p.y - d.start.p.y), 0, H - bh);
      state.box = [nx, ny, nx + bw, ny + bh];
      this.setState(state);
    } else if (d.mode === "corner") {
      const [x1, y1, x2, y2] = d.box;
      const fixed = [
        [x2, y2],
        [x1, y2],
        [x1, y1],
        [x2, y1],
      ][d.corner];
      state.box = this.boxFrom({ x: fixed[0], y: fixed[1] }, p, W, H);
      this.setState(state);
    }
  }

  onPointerUp(e) {
    const d = this.drag;
    this.drag = null;
    if (!d) return;
    e.preventDefault();
    e.stopPropagation();
    try {
      this.canvas.releasePointerCapture(e.pointerId);
    } catch {
      /* not captured */
    }
    if (d.active) {
      if (d.mode === "new-box" || d.mode === "corner") {
        const s = this.viewState();
        if (s.box) this.flash(`Box ${fmt(s.box[2] - s.box[0])}×${fmt(s.box[3] - s.box[1])} px: matting uses the box`);
      }
      this.render();
      return;
    }
    if (d.mode === "point") return; // a click on an existing point does nothing
    this.addPoint(d.start.p);
  }

  // Box from two corners in continuous image coordinates: integer pixels, end-exclusive.
  boxFrom(a, b, W, H) {
    let x1 = clamp(Math.floor(Math.min(a.x, b.x)), 0, W);
    let y1 = clamp(Math.floor(Math.min(a.y, b.y)), 0, H);
    let x2 = clamp(Math.ceil(Math.max(a.x, b.x)), 0, W);
    let y2 = clamp(Math.ceil(Math.max(a.y, b.y)), 0, H);
    if (x2 - x1 < 1) x2 < W ? (x2 = x1 + 1) : (x1 = x2 - 1);
    if (y2 - y1 < 1) y2 < H ? (y2 = y1 + 1) : (y1 = y2 - 1);
    return [x1, y1, x2, y2];
  }

  addPoint(p) {
    const { W, H } = p.L;
    if (p.x < 0 || p.y < 0 || p.x >= W || p.y >= H) {
      this.flash("Click inside the image");
      return;
    }
    const state = this.viewState();
    if (state.points.length >= MAX_POINTS) {
      this.flash(`At most ${MAX_POINTS} points: right-click a point to remove it`);
      return;
    }
    state.points.push({ x: clamp(Math.floor(p.x), 0, W - 1), y: clamp(Math.floor(p.y), 0, H - 1) });
    this.setState(state);
  }

  removeNearest(p, state) {
    if (state.points.length) {
      let best = 0;
      let bestD = Infinity;
      state.points.forEach((q, i) => {
        const d = Math.hypot(q.x + 0.5 - p.x, q.y + 0.5 - p.y);
        if (d < bestD) {
          bestD = d;
          best = i;
        }
      });
      state.points.splice(best, 1);
      this.setState(state);
      this.flash(`Point ${best + 1} removed`);
    } else if (state.box && this.insideBox(p, state)) {
      state.box = null;
      this.setState(state);
      this.flash("Box removed");
    }
  }

  flash(text) {
    this.message = text;
    clearTimeout(this.messageTimer);
    this.messageTimer = setTimeout(() => {
      this.message = null;
      this.render();
    }, MESSAGE_MS);
    this.root.dataset.message = text;
    this.render();
  }

  // ---- drawing

  render() {
    const c = this.canvas;
    const stateText = this.stateWidget?.value;
    this.renderedState = stateText;
    const stored = parseState(stateText);
    const state = this.viewState();
    this.root.dataset.nodeId = String(this.node.id);
    this.root.dataset.points = String(state.points.length);
    this.root.dataset.box = state.box ? state.box.join(",") : "";
    this.root.dataset.clicks = state.relation; // same | scaled | mismatch
    this.updateStatus(state, stored);

    const dpr = window.devicePixelRatio || 1;
    const cw = c.clientWidth;
    const ch = c.clientHeight;
    if (cw <= 0 || ch <= 0) return;
    const pw = Math.round(cw * dpr);
    const ph = Math.round(ch * dpr);
    if (c.width !== pw || c.height !== ph) {
      c.width = pw;
      c.height = ph;
    }
    const ctx = c.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, cw, ch);

    const L = this.layout();
    if (!this.image || !L) {
      ctx.fillStyle = "#888";
      ctx.font = "12px sans-serif";
      ctx.textAlign = "center";
      ctx.textBaseline = "middle";
      const lines = ["Connect a Load Image node,", "or run the workflow once,", "to click on the image here"];
      lines.forEach((t, i) => ctx.fillText(t, cw / 2, ch / 2 + (i - 1) * 16));
      this.drawMessage(ctx, cw);
      return;
    }
    const { s, ox, oy, W, H } = L;
    ctx.imageSmoothingEnabled = true;
    ctx.drawImage(this.image, ox, oy, W * s, H * s);
    if (this.overlay && this.showOverlay && aspectMatches(this.overlaySize, [W, H])) {
      ctx.drawImage(this.overlay, ox, oy, W * s, H * s);
    }

    // Box
    if (state.box) {
      const [x1, y1, x2, y2] = state.box;
      const rx = ox + x1 * s;
      const ry = oy + y1 * s;
      const rw = (x2 - x1) * s;
      const rh = (y2 - y1) * s;
      ctx.save();
      ctx.lineWidth = 2;
      ctx.strokeStyle = "rgba(0,0,0,0.7)";
      ctx.strokeRect(rx, ry, rw, rh);
      ctx.setLineDash([6, 4]);
      ctx.strokeStyle = state.relation === "mismatch" ? "#f08c00" : "#ffd400";
      ctx.strokeRect(rx, ry, rw, rh);
      ctx.setLineDash([]);
      ctx.fillStyle = "#ffd400";
      for (const [hx, hy] of [
        [rx, ry],
        [rx + rw, ry],
        [rx + rw, ry + rh],
        [rx, ry + rh],
      ]) {
        ctx.fillRect(hx - 3, hy - 3, 6, 6);
      }
      ctx.restore();
    }

    // Points, numbered in click order
    ctx.save();
    ctx.font = "bold 10px sans-serif";
    ctx.textAlign = "center";
    ctx.textBaseline = "middle";
    const outside = (q) => q.x < 0 || q.y < 0 || q.x >= W || q.y >= H;
    state.points.forEach((q, i) => {
      const px = clamp(ox + (q.x + 0.5) * s, 0, cw);
      const py = clamp(oy + (q.y + 0.5) * s, 0, ch);
      ctx.beginPath();
      ctx.arc(px, py, POINT_RADIUS, 0, Math.PI * 2);
      ctx.fillStyle = outside(q)
        ? "#d22"
        : state.relation === "mismatch"
          ? "#f08c00"
          : state.box
            ? "#2a7de1"
            : "#19c24a";
      ctx.fill();
      ctx.lineWidth = 1.5;
      ctx.strokeStyle = "#fff";
      ctx.stroke();
      ctx.fillStyle = "#fff";
      ctx.fillText(String(i + 1), px, py + 0.5);
    });
    ctx.restore();
    if (state.relation === "mismatch") {
      this.drawBanner(ctx, cw, ch - 28, `Clicked on a ${stored.width}×${stored.height} image: press Clear, or edit the clicks`);
    } else if (!state.points.length && !state.box && !this.message) {
      this.drawBanner(ctx, cw, ch - 28, "Click on the subject · drag for a box");
    }
    this.drawMessage(ctx, cw);
  }

  drawBanner(ctx, cw, y, text) {
    ctx.save();
    ctx.font = "12px sans-serif";
    const tw = Math.min(cw - 12, ctx.measureText(text).width + 16);
    ctx.fillStyle = "rgba(0,0,0,0.6)";
    ctx.fillRect((cw - tw) / 2, y, tw, 22);
    ctx.fillStyle = "#fff";
    ctx.textAlign = "center";
    ctx.textBaseline = "middle";
    ctx.fillText(text, cw / 2, y + 11, cw - 16);
    ctx.restore();
  }

  drawMessage(ctx, cw) {
    if (this.message) this.drawBanner(ctx, cw, 6, this.message);
  }

  updateStatus(state, stored) {
    let text;
    const clickedOn = stored.width ? `${stored.width}×${stored.height}` : null;
    if (!this.image) {
      const n = stored.points.length + (stored.box ? 1 : 0);
      text = "no image yet" + (n && clickedOn ? ` · clicks made on a ${clickedOn} image` : "");
    } else {
      const [W, H] = this.imageSize;
      const parts = [`${W}×${H}`, `${state.points.length}/${MAX_POINTS} points`];
      if (state.box) parts.push(`box ${fmt(state.box[2] - state.box[0])}×${fmt(state.box[3] - state.box[1])} (used)`);
      else if (!state.points.length) parts.push("no clicks: automatic matte");
      if (state.relation === "scaled") parts.push(`clicked on ${clickedOn}, scaled`);
      if (state.relation === "mismatch") {
        parts.unshift(`clicks made on a ${clickedOn} image, another aspect ratio: the run stops — press Clear, or edit them`);
      }
      text = parts.join(" · ");
    }
    if (this.status.textContent !== text) this.status.textContent = text;
    this.status.title =
      "Left click: add a point · drag: draw or move the box · right click or shift-click: remove the nearest point";
  }
}

// ------------------------------------------------------------------ registration

function hideStateWidget(node) {
  const w = node.widgets?.find((x) => x.name === STATE_WIDGET);
  if (!w) return;
  w.hidden = true;
  w.computeSize = () => [0, -4];
  // No socket for the state (the server declares it socketless; older frontends may add one).
  const slot = node.inputs?.findIndex((i) => i.name === STATE_WIDGET && i.widget) ?? -1;
  if (slot >= 0 && node.inputs[slot].link == null) node.removeInput(slot);
}

app.registerExtension({
  name: "PromptMatte.MattePromptEditor",

  async beforeRegisterNodeDef(nodeType, nodeData) {
    if (nodeData?.name !== EDITOR_TYPE) return;

    const onNodeCreated = nodeType.prototype.onNodeCreated;
    nodeType.prototype.onNodeCreated = function () {
      const r = onNodeCreated?.apply(this, arguments);
      hideStateWidget(this);
      this.promptMatteEditor = new MatteEditor(this);
      const [w, h] = this.size;
      this.setSize([Math.max(w, 360), Math.max(h, 420)]);
      return r;
    };

    const onConfigure = nodeType.prototype.onConfigure;
    nodeType.prototype.onConfigure = function () {
      const r = onConfigure?.apply(this, arguments);
      hideStateWidget(this);
      if (this.promptMatteEditor) {
        this.promptMatteEditor.root.dataset.nodeId = String(this.id);
        this.promptMatteEditor.render();
      }
      return r;
    };

    const onExecuted = nodeType.prototype.onExecuted;
    nodeType.prototype.onExecuted = function (output) {
      const r = onExecuted?.apply(this, arguments);
      this.promptMatteEditor?.onEditorExecuted(output);
      return r;
    };

    const onRemoved = nodeType.prototype.onRemoved;
    nodeType.prototype.onRemoved = function () {
      this.promptMatteEditor?.destroy();
      return onRemoved?.apply(this, arguments);
    };
  },

  nodeCreated(node) {
    // The id is only final once the node is in a graph.
    if (node.promptMatteEditor) node.promptMatteEditor.root.dataset.nodeId = String(node.id);
  },

  setup() {
    api.addEventListener("executed", ({ detail }) => {
      const id = detail?.display_node ?? detail?.node;
      if (id == null) return;
      const node = nodeByExecutionId(id);
      if (!node || !APPLY_TYPES.has(nodeType(node))) return;
      const out = detail.output || {};
      const ref = out.promptmatte_alpha?.[0] ?? out.images?.[0];
      if (!ref?.filename) return;
      for (const editor of upstreamEditors(node)) editor.promptMatteEditor?.onAlpha(ref);
    });
  },
});
