// Builds the example workflows in workflows/ with the REAL frontend, so that the files are
// exactly what ComfyUI itself saves (UI format, loadable by drag and drop and listed as
// templates of the pack). Run against a server that has PromptMatte loaded:
//
//   node tests/browser/make_workflows.mjs http://127.0.0.1:8188 [out_dir] [file prefix ...]
//
// With file prefixes (e.g. 06 07), only the workflows whose file names start with one are written.
// Nodes of third-party packs (not installed on the server) are added as raw serialised
// nodes with the inputs, outputs and widget values read from that pack's source.
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { launch, openComfy, log } from "./lib.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
const url = process.argv[2];
const outDir = process.argv[3] || path.resolve(here, "../../workflows");
const only = process.argv.slice(4);
if (!url) {
  console.error("usage: node make_workflows.mjs <comfyui url> [out dir]");
  process.exit(2);
}

// Example clicks for ComfyUI's own input/example.png (768×768: a girl in a pink dress).
const EXAMPLE_POINTS = { points: [{ x: 380, y: 470 }, { x: 378, y: 262 }, { x: 560, y: 356 }], box: null };
const EXAMPLE_BOX = { points: [], box: [150, 40, 640, 768] };
const COL = 330;

const weightsNote = (extra) =>
  [
    "PromptMatte example workflow.",
    "",
    "Weights: an SDMatte checkpoint in ComfyUI/models/sdmatte/ — SDMatte.safetensors, SDMatte_plus.safetensors (SDMatte*)",
    "from 1038lab/SDMatte, or the authors' SDMatte.pth, SDMatte_plus.pth, LiteSDMatte.pth (LongfeiHuang/SDMatte, LiteSDMatte).",
    "'Load Matting Model' lists them and downloads them from Hugging Face on first use.",
    ...(extra ? ["", ...extra] : []),
  ].join("\n");

const EDITOR_HELP = [
  "Matte Prompt Editor: the image shows in the node as soon as Load Image has one (otherwise after a run).",
  "Left click = add a point (numbered, at most 10) · drag = draw / move the box · right click or",
  "shift-click = remove the nearest point · Clear = start again. With a box, matting uses the box.",
  "After a run the matte is tinted over the image: click where it is still wrong and run again.",
];

// The other families: their weights are on the authors' Google Drive (SAM on Meta's server), so the
// loader cannot fetch them; the Note says which file goes where and whose repository page links it.
const familyNote = (title, lines) =>
  [`PromptMatte example workflow: ${title}.`, "", ...lines].join("\n");
const manual = (files, host = "the authors' Google Drive") =>
  `Weights: ${files}, published on ${host}, which 'Load Matting Model' cannot download from: follow ` +
  "the links in the README of the repository named below and put each file where its arrow says.";

const WORKFLOWS = [
  {
    file: "01_click_matting.json",
    nodes: [
      { id: "load", type: "LoadImage", pos: [0, 0], widgets: { image: "example.png" } },
      { id: "model", type: "PromptMatteModelLoader", pos: [0, 420], widgets: { ckpt_name: "SDMatte.safetensors" } },
      {
        id: "editor",
        type: "PromptMatteEditor",
        pos: [COL, 0],
        size: [420, 520],
        widgets: { editor_state: JSON.stringify(EXAMPLE_POINTS) },
      },
      { id: "apply", type: "PromptMatteApply", pos: [COL + 450, 0] },
      { id: "comp", type: "PromptMatteComposite", pos: [COL + 450, 360], widgets: { background: "transparent" } },
      { id: "save", type: "SaveImage", pos: [COL + 780, 0], size: [320, 360], widgets: { filename_prefix: "PromptMatte/cutout" } },
    ],
    links: [
      ["load", "IMAGE", "editor", "image"],
      ["load", "IMAGE", "apply", "image"],
      ["model", "model", "apply", "model"],
      ["editor", "prompt", "apply", "prompt"],
      ["load", "IMAGE", "comp", "image"],
      ["apply", "alpha", "comp", "alpha"],
      ["comp", "rgba", "save", "images"],
    ],
    note: {
      pos: [0, 560],
      size: [760, 200],
      text: weightsNote([
        "Click matting: Load Image → Matte Prompt Editor → Matting → Matte Composite → Save Image",
        "(a transparent PNG cut-out from the 'rgba' output).",
        ...EDITOR_HELP,
      ]),
    },
  },
  {
    file: "02_box_matting_color_background.json",
    nodes: [
      { id: "load", type: "LoadImage", pos: [0, 0], widgets: { image: "example.png" } },
      { id: "model", type: "PromptMatteModelLoader", pos: [0, 420], widgets: { ckpt_name: "SDMatte_plus.safetensors" } },
      {
        id: "editor",
        type: "PromptMatteEditor",
        pos: [COL, 0],
        size: [420, 520],
        widgets: { editor_state: JSON.stringify(EXAMPLE_BOX) },
      },
      { id: "apply", type: "PromptMatteApply", pos: [COL + 450, 0] },
      {
        id: "comp",
        type: "PromptMatteComposite",
        pos: [COL + 450, 360],
        widgets: { background: "color", color: "#2f6bff" },
      },
      { id: "save", type: "SaveImage", pos: [COL + 780, 0], size: [320, 360], widgets: { filename_prefix: "PromptMatte/box_on_color" } },
    ],
    links: [
      ["load", "IMAGE", "editor", "image"],
      ["load", "IMAGE", "apply", "image"],
      ["model", "model", "apply", "model"],
      ["editor", "prompt", "apply", "prompt"],
      ["load", "IMAGE", "comp", "image"],
      ["apply", "alpha", "comp", "alpha"],
      ["comp", "image", "save", "images"],
    ],
    note: {
      pos: [0, 560],
      size: [760, 200],
      text: weightsNote([
        "Box matting on a coloured background: drag a box around the subject in the Matte Prompt Editor;",
        "Matte Composite puts the subject on the colour set in 'color' (background = color).",
        ...EDITOR_HELP,
      ]),
    },
  },
  {
    file: "03a_mask_prompt_segment_anything.json",
    nodes: [
      { id: "load", type: "LoadImage", pos: [0, 0], widgets: { image: "example.png" } },
      { id: "model", type: "PromptMatteModelLoader", pos: [0, 420], widgets: { ckpt_name: "SDMatte.safetensors" } },
      { id: "mask", type: "PromptMatteMask", pos: [COL + 330, 0] },
      { id: "apply", type: "PromptMatteApply", pos: [COL + 600, 0] },
      { id: "comp", type: "PromptMatteComposite", pos: [COL + 600, 360] },
      { id: "save", type: "SaveImage", pos: [COL + 930, 0], size: [320, 360], widgets: { filename_prefix: "PromptMatte/sam_mask" } },
    ],
    // storyicon/comfyui_segment_anything (facts read from its node.py): node types
    // "SAMModelLoader (segment anything)", "GroundingDinoModelLoader (segment anything)",
    // "GroundingDinoSAMSegment (segment anything)" (inputs sam_model, grounding_dino_model,
    // image, prompt, threshold; outputs IMAGE, MASK).
    external: [
      {
        id: "sam",
        type: "SAMModelLoader (segment anything)",
        pos: [COL, 0],
        size: [300, 60],
        inputs: [],
        outputs: [{ name: "SAM_MODEL", type: "SAM_MODEL" }],
        widgets_values: ["sam_vit_h (2.56GB)"],
        cnr_id: "comfyui_segment_anything",
      },
      {
        id: "dino",
        type: "GroundingDinoModelLoader (segment anything)",
        pos: [COL, 130],
        size: [300, 60],
        inputs: [],
        outputs: [{ name: "GROUNDING_DINO_MODEL", type: "GROUNDING_DINO_MODEL" }],
        widgets_values: ["GroundingDINO_SwinT_OGC (694MB)"],
        cnr_id: "comfyui_segment_anything",
      },
      {
        id: "seg",
        type: "GroundingDinoSAMSegment (segment anything)",
        pos: [COL, 270],
        size: [300, 130],
        inputs: [
          { name: "sam_model", type: "SAM_MODEL" },
          { name: "grounding_dino_model", type: "GROUNDING_DINO_MODEL" },
          { name: "image", type: "IMAGE" },
        ],
        outputs: [
          { name: "IMAGE", type: "IMAGE" },
          { name: "MASK", type: "MASK" },
        ],
        widgets_values: ["person", 0.3],
        cnr_id: "comfyui_segment_anything",
      },
    ],
    links: [
      ["sam", "SAM_MODEL", "seg", "sam_model"],
      ["dino", "GROUNDING_DINO_MODEL", "seg", "grounding_dino_model"],
      ["load", "IMAGE", "seg", "image"],
      ["seg", "MASK", "mask", "mask"],
      ["load", "IMAGE", "apply", "image"],
      ["model", "model", "apply", "model"],
      ["mask", "prompt", "apply", "prompt"],
      ["load", "IMAGE", "comp", "image"],
      ["apply", "alpha", "comp", "alpha"],
      ["comp", "rgba", "save", "images"],
    ],
    note: {
      pos: [0, 560],
      size: [760, 280],
      text: weightsNote([
        "Needs the custom-node pack 'comfyui_segment_anything' by storyicon (GroundingDINO + SAM),",
        "installed e.g. with ComfyUI-Manager. Its weights: a SAM checkpoint in models/sams (sam_vit_h 2.56 GB,",
        "or sam_vit_b / mobile_sam for less memory), GroundingDINO_SwinT_OGC in models/grounding-dino and",
        "bert-base-uncased (models/bert-base-uncased or the transformers cache); the pack downloads them.",
        "Known break: with transformers 5 (a current ComfyUI install) the pack's GroundingDINO loader fails",
        "('BertModel' object has no attribute ...); it runs with transformers 4 (pip install \"transformers<5\").",
        "The text prompt ('person') picks the subject; its rough MASK becomes the SDMatte mask prompt (several",
        "masks are joined: 'combine' on Matte Prompt: Mask); no subject found = a clear error: lower the threshold.",
      ]),
    },
  },
  {
    file: "10_sam2_click_matting.json",
    nodes: [
      { id: "load", type: "LoadImage", pos: [0, 0], widgets: { image: "example.png" } },
      { id: "model", type: "PromptMatteModelLoader", pos: [0, 420], widgets: { ckpt_name: "SDMatte.safetensors" } },
      {
        id: "editor",
        type: "PromptMatteEditor",
        pos: [COL, 0],
        size: [420, 520],
        widgets: { editor_state: JSON.stringify(EXAMPLE_POINTS) },
      },
      { id: "mask", type: "PromptMatteMask", pos: [COL + 780, 0] },
      { id: "apply", type: "PromptMatteApply", pos: [COL + 1050, 0] },
      { id: "comp", type: "PromptMatteComposite", pos: [COL + 1050, 360] },
      { id: "save", type: "SaveImage", pos: [COL + 1380, 0], size: [320, 360], widgets: { filename_prefix: "PromptMatte/sam2_click" } },
    ],
    // kijai/ComfyUI-segment-anything-2 (facts read from its nodes.py): "DownloadAndLoadSAM2Model"
    // (widgets model, segmentor, device, precision; output SAM2MODEL "sam2_model") and
    // "Sam2Segmentation" (inputs sam2_model, image, optional coordinates_positive STRING,
    // coordinates_negative, bboxes, mask; widgets keep_model_loaded, individual_objects; output MASK).
    external: [
      {
        id: "sam2",
        type: "DownloadAndLoadSAM2Model",
        pos: [COL + 450, 0],
        size: [300, 130],
        inputs: [],
        outputs: [{ name: "sam2_model", type: "SAM2MODEL" }],
        widgets_values: ["sam2.1_hiera_tiny.safetensors", "single_image", "cuda", "fp16"],
        cnr_id: "ComfyUI-segment-anything-2",
      },
      {
        id: "seg",
        type: "Sam2Segmentation",
        pos: [COL + 450, 180],
        size: [300, 170],
        inputs: [
          { name: "sam2_model", type: "SAM2MODEL" },
          { name: "image", type: "IMAGE" },
          { name: "coordinates_positive", type: "STRING" },
          { name: "coordinates_negative", type: "STRING" },
          { name: "bboxes", type: "BBOX" },
          { name: "mask", type: "MASK" },
        ],
        outputs: [{ name: "mask", type: "MASK" }],
        widgets_values: [true, false],
        cnr_id: "ComfyUI-segment-anything-2",
      },
    ],
    links: [
      ["load", "IMAGE", "editor", "image"],
      ["sam2", "sam2_model", "seg", "sam2_model"],
      ["load", "IMAGE", "seg", "image"],
      ["editor", "points", "seg", "coordinates_positive"],
      ["seg", "mask", "mask", "mask"],
      ["load", "IMAGE", "apply", "image"],
      ["model", "model", "apply", "model"],
      ["mask", "prompt", "apply", "prompt"],
      ["load", "IMAGE", "comp", "image"],
      ["apply", "alpha", "comp", "alpha"],
      ["comp", "rgba", "save", "images"],
    ],
    note: {
      pos: [0, 600],
      size: [760, 260],
      text: weightsNote([
        "Needs the custom-node pack 'ComfyUI-segment-anything-2' by kijai (SAM 2), installed e.g. with",
        "ComfyUI-Manager. Its weights: sam2.1_hiera_tiny.safetensors (or small / base_plus / large) in",
        "models/sam2; '(Down)Load SAM2Model' downloads it from Kijai/sam2-safetensors on first use.",
        "On a machine without an NVIDIA GPU set its device to cpu and precision to fp32 (SAM 2 refuses fp16 on the CPU).",
        "Click the subject in the Matte Prompt Editor: SAM 2 turns the clicks ('points') into a mask, and",
        "'Matte Prompt: Mask' hands that mask to SDMatte, which mattes hair and soft edges the mask cannot hold.",
        ...EDITOR_HELP,
      ]),
    },
  },
  {
    file: "03b_mask_prompt_painted_mask.json",
    nodes: [
      { id: "load", type: "LoadImage", pos: [0, 0], widgets: { image: "example.png" } },
      { id: "model", type: "PromptMatteModelLoader", pos: [0, 420], widgets: { ckpt_name: "SDMatte.safetensors" } },
      { id: "mask", type: "PromptMatteMask", pos: [COL, 0] },
      { id: "apply", type: "PromptMatteApply", pos: [COL + 270, 0] },
      { id: "comp", type: "PromptMatteComposite", pos: [COL + 270, 360] },
      { id: "save", type: "SaveImage", pos: [COL + 600, 0], size: [320, 360], widgets: { filename_prefix: "PromptMatte/painted_mask" } },
    ],
    links: [
      ["load", "MASK", "mask", "mask"],
      ["load", "IMAGE", "apply", "image"],
      ["model", "model", "apply", "model"],
      ["mask", "prompt", "apply", "prompt"],
      ["load", "IMAGE", "comp", "image"],
      ["apply", "alpha", "comp", "alpha"],
      ["comp", "rgba", "save", "images"],
    ],
    note: {
      pos: [0, 560],
      size: [760, 180],
      text: weightsNote([
        "Core nodes only: right-click Load Image → 'Open in MaskEditor' and paint roughly over the subject,",
        "then Save. The painted area is Load Image's MASK output; 'Matte Prompt: Mask' turns it into the",
        "SDMatte mask prompt (an empty mask gives a clear error: paint first).",
      ]),
    },
  },
  {
    file: "04_trimap_from_rough_mask.json",
    nodes: [
      { id: "load", type: "LoadImage", pos: [0, 0], widgets: { image: "example.png" } },
      { id: "model", type: "PromptMatteModelLoader", pos: [0, 420], widgets: { ckpt_name: "SDMatte.safetensors" } },
      { id: "trimap", type: "PromptMatteTrimap", pos: [COL, 0], widgets: { erode: 12, dilate: 12 } },
      { id: "tview", type: "MaskToImage", pos: [COL, 200] },
      { id: "tprev", type: "PreviewImage", pos: [COL, 290], size: [260, 300] },
      { id: "apply", type: "PromptMatteApply", pos: [COL + 290, 0] },
      { id: "comp", type: "PromptMatteComposite", pos: [COL + 290, 360] },
      { id: "save", type: "SaveImage", pos: [COL + 620, 0], size: [320, 360], widgets: { filename_prefix: "PromptMatte/trimap" } },
    ],
    links: [
      ["load", "MASK", "trimap", "mask"],
      ["trimap", "trimap", "tview", "mask"],
      ["tview", "IMAGE", "tprev", "images"],
      ["load", "IMAGE", "apply", "image"],
      ["model", "model", "apply", "model"],
      ["trimap", "prompt", "apply", "prompt"],
      ["load", "IMAGE", "comp", "image"],
      ["apply", "alpha", "comp", "alpha"],
      ["comp", "rgba", "save", "images"],
    ],
    note: {
      pos: [0, 620],
      size: [760, 180],
      text: weightsNote([
        "Trimap matting from a rough mask (core nodes only): paint the subject roughly in Load Image's",
        "MaskEditor. 'Matte Prompt: Trimap' erodes it (sure subject) and dilates it (sure background); the",
        "band between is 'unknown' for SDMatte to solve. The preview shows the trimap (white / grey / black).",
      ]),
    },
  },
  {
    file: "05_background_replacement_inpainting.json",
    nodes: [
      { id: "load", type: "LoadImage", pos: [0, 0], widgets: { image: "example.png" } },
      { id: "model", type: "PromptMatteModelLoader", pos: [0, 420], widgets: { ckpt_name: "SDMatte.safetensors" } },
      {
        id: "editor",
        type: "PromptMatteEditor",
        pos: [COL, 0],
        size: [420, 520],
        widgets: { editor_state: JSON.stringify(EXAMPLE_POINTS) },
      },
      { id: "apply", type: "PromptMatteApply", pos: [COL + 450, 0] },
      { id: "grow", type: "GrowMask", pos: [COL + 780, 0], widgets: { expand: 6, tapered_corners: true } },
      { id: "invert", type: "InvertMask", pos: [COL + 780, 120] },
      { id: "ckpt", type: "CheckpointLoaderSimple", pos: [COL + 780, 220], widgets: { ckpt_name: "sd-v1-5-inpainting.ckpt" } },
      {
        id: "pos",
        type: "CLIPTextEncode",
        pos: [COL + 1110, 0],
        size: [400, 160],
        widgets: { text: "a sunny beach with palm trees, blue sky, soft light, photo" },
      },
      {
        id: "neg",
        type: "CLIPTextEncode",
        pos: [COL + 1110, 200],
        size: [400, 120],
        widgets: { text: "person, people, text, watermark, blurry" },
      },
      { id: "encode", type: "VAEEncodeForInpaint", pos: [COL + 1110, 360], widgets: { grow_mask_by: 6 } },
      {
        id: "sampler",
        type: "KSampler",
        pos: [COL + 1540, 0],
        widgets: { seed: 42, control_after_generate: "fixed", steps: 25, cfg: 7, denoise: 1 },
      },
      { id: "decode", type: "VAEDecode", pos: [COL + 1540, 330] },
      {
        id: "comp",
        type: "PromptMatteComposite",
        pos: [COL + 1540, 430],
        widgets: { background: "image" },
      },
      { id: "save", type: "SaveImage", pos: [COL + 1870, 0], size: [360, 400], widgets: { filename_prefix: "PromptMatte/new_background" } },
    ],
    links: [
      ["load", "IMAGE", "editor", "image"],
      ["load", "IMAGE", "apply", "image"],
      ["model", "model", "apply", "model"],
      ["editor", "prompt", "apply", "prompt"],
      ["apply", "alpha", "grow", "mask"],
      ["grow", "MASK", "invert", "mask"],
      ["ckpt", "CLIP", "pos", "clip"],
      ["ckpt", "CLIP", "neg", "clip"],
      ["load", "IMAGE", "encode", "pixels"],
      ["ckpt", "VAE", "encode", "vae"],
      ["invert", "MASK", "encode", "mask"],
      ["ckpt", "MODEL", "sampler", "model"],
      ["pos", "CONDITIONING", "sampler", "positive"],
      ["neg", "CONDITIONING", "sampler", "negative"],
      ["encode", "LATENT", "sampler", "latent_image"],
      ["sampler", "LATENT", "decode", "samples"],
      ["ckpt", "VAE", "decode", "vae"],
      ["load", "IMAGE", "comp", "image"],
      ["apply", "alpha", "comp", "alpha"],
      ["decode", "IMAGE", "comp", "background_image"],
      ["comp", "image", "save", "images"],
    ],
    note: {
      pos: [0, 600],
      size: [760, 240],
      text: weightsNote([
        "Also needs an SD inpainting checkpoint in models/checkpoints, e.g. sd-v1-5-inpainting.ckpt",
        "(Stable Diffusion 1.5 inpainting) or 512-inpainting-ema.safetensors (SD 2 inpainting): pick yours in",
        "Load Checkpoint. The alpha is grown (GrowMask) and inverted (InvertMask) into the inpaint mask, so",
        "everything but the subject (plus a small margin) is repainted from the text prompt; Matte Composite",
        "then puts the matted subject back over the new background with its soft edges.",
        "Core nodes only (+ PromptMatte).",
      ]),
    },
  },
];

WORKFLOWS.push(
  {
    file: "06_mam_click_or_box.json",
    nodes: [
      { id: "load", type: "LoadImage", pos: [0, 0], widgets: { image: "example.png" } },
      {
        id: "model",
        type: "PromptMatteModelLoader",
        pos: [0, 420],
        widgets: { ckpt_name: "mam_vitb.pth", companion: "auto" },
      },
      {
        id: "editor",
        type: "PromptMatteEditor",
        pos: [COL, 0],
        size: [420, 520],
        widgets: { editor_state: JSON.stringify(EXAMPLE_POINTS) },
      },
      { id: "apply", type: "PromptMatteApply", pos: [COL + 450, 0] },
      { id: "comp", type: "PromptMatteComposite", pos: [COL + 450, 360], widgets: { background: "transparent" } },
      { id: "save", type: "SaveImage", pos: [COL + 780, 0], size: [320, 360], widgets: { filename_prefix: "PromptMatte/mam_cutout" } },
    ],
    links: [
      ["load", "IMAGE", "editor", "image"],
      ["load", "IMAGE", "apply", "image"],
      ["model", "model", "apply", "model"],
      ["editor", "prompt", "apply", "prompt"],
      ["load", "IMAGE", "comp", "image"],
      ["apply", "alpha", "comp", "alpha"],
      ["comp", "rgba", "save", "images"],
    ],
    note: {
      pos: [0, 560],
      size: [760, 320],
      text: familyNote("MAM (Matting Anything) from clicks or a box", [
        "Load Image → Matte Prompt Editor → Matting → Matte Composite → Save Image (a transparent PNG cut-out).",
        "",
        manual("two files", "the authors' Google Drive and Meta's server"),
        "• mam_vitb.pth → ComfyUI/models/matting/ — MAM's checkpoint, from SHI-Labs/Matting-Anything",
        "  (github.com/SHI-Labs/Matting-Anything).",
        "• sam_vit_b_01ec64.pth → ComfyUI/models/sams/ — Segment Anything ViT-B, which MAM runs on, from",
        "  facebookresearch/segment-anything (github.com/facebookresearch/segment-anything, Meta's download link).",
        "  'Load Matting Model' finds it with companion = auto (also in models/matting or beside mam_vitb.pth);",
        "  pick a file in 'companion' to use another one.",
        "",
        "MAM takes clicks, a box or a mask (not a trimap).",
        ...EDITOR_HELP,
      ]),
    },
  },
  {
    file: "07_semat_box.json",
    nodes: [
      { id: "load", type: "LoadImage", pos: [0, 0], widgets: { image: "example.png" } },
      { id: "model", type: "PromptMatteModelLoader", pos: [0, 420], widgets: { ckpt_name: "SEMat_SAM.pth" } },
      {
        id: "editor",
        type: "PromptMatteEditor",
        pos: [COL, 0],
        size: [420, 520],
        widgets: { editor_state: JSON.stringify(EXAMPLE_BOX) },
      },
      { id: "apply", type: "PromptMatteApply", pos: [COL + 450, 0] },
      { id: "comp", type: "PromptMatteComposite", pos: [COL + 450, 360], widgets: { background: "transparent" } },
      { id: "save", type: "SaveImage", pos: [COL + 780, 0], size: [320, 360], widgets: { filename_prefix: "PromptMatte/semat_cutout" } },
    ],
    links: [
      ["load", "IMAGE", "editor", "image"],
      ["load", "IMAGE", "apply", "image"],
      ["model", "model", "apply", "model"],
      ["editor", "prompt", "apply", "prompt"],
      ["load", "IMAGE", "comp", "image"],
      ["apply", "alpha", "comp", "alpha"],
      ["comp", "rgba", "save", "images"],
    ],
    note: {
      pos: [0, 560],
      size: [760, 280],
      text: familyNote("SEMat from a box", [
        "Load Image → Matte Prompt Editor (a box) → Matting → Matte Composite → Save Image (a transparent PNG cut-out).",
        "",
        manual("one file"),
        "• SEMat_SAM.pth → ComfyUI/models/matting/ — SEMat on Segment Anything, from XiaRho/SEMat",
        "  (github.com/XiaRho/SEMat). The SAM it builds on is inside that file.",
        "Licence: the SEMat weights are CC BY-NC 4.0 — non-commercial use only.",
        "",
        "SEMat takes a box, a mask, or no prompt at all (disconnect Matting's 'prompt'); clicks are refused,",
        "so drag a box around the subject in the editor (with a box, clicks are ignored).",
        ...EDITOR_HELP,
      ]),
    },
  },
  {
    file: "08_sim_trimap_semantic_classes.json",
    nodes: [
      { id: "load", type: "LoadImage", pos: [0, 0], widgets: { image: "example.png" } },
      { id: "model", type: "PromptMatteModelLoader", pos: [0, 420], widgets: { ckpt_name: "ckpt_best.pth", companion: "auto" } },
      { id: "trimap", type: "PromptMatteTrimap", pos: [COL, 0], widgets: { erode: 12, dilate: 12 } },
      { id: "tview", type: "MaskToImage", pos: [COL, 200] },
      { id: "tprev", type: "PreviewImage", pos: [COL, 290], size: [260, 300] },
      { id: "apply", type: "PromptMatteApply", pos: [COL + 290, 0] },
      { id: "comp", type: "PromptMatteComposite", pos: [COL + 290, 360] },
      { id: "save", type: "SaveImage", pos: [COL + 620, 0], size: [320, 360], widgets: { filename_prefix: "PromptMatte/sim_trimap" } },
      { id: "cprev", type: "PreviewImage", pos: [COL + 620, 400], size: [320, 360] },
    ],
    links: [
      ["load", "MASK", "trimap", "mask"],
      ["trimap", "trimap", "tview", "mask"],
      ["tview", "IMAGE", "tprev", "images"],
      ["load", "IMAGE", "apply", "image"],
      ["model", "model", "apply", "model"],
      ["trimap", "prompt", "apply", "prompt"],
      ["apply", "semantic_classes", "cprev", "images"],
      ["load", "IMAGE", "comp", "image"],
      ["apply", "alpha", "comp", "alpha"],
      ["comp", "rgba", "save", "images"],
    ],
    note: {
      pos: [0, 620],
      size: [760, 320],
      text: familyNote("SIM (Semantic Image Matting) from a trimap, with its semantic classes", [
        "Load Image (painted mask) → Matte Prompt: Trimap → Matting → Matte Composite → Save Image.",
        "",
        manual("two files"),
        "• ckpt_best.pth → ComfyUI/models/matting/ — the matting network, from nowsyn/SIM (github.com/nowsyn/SIM).",
        "• classifier_resnet50_best.pth.tar → beside it in ComfyUI/models/matting/ — its semantic classifier, same repository",
        "  ('Load Matting Model' finds it with companion = auto, or pick it in 'companion').",
        "Licence: the SIM repository has no licence file, so the terms of these weights are unknown —",
        "ask the authors before using them beyond research.",
        "",
        "SIM takes a trimap only. Paint the subject roughly in Load Image's MaskEditor (right-click → Open in",
        "MaskEditor, then Save). 'Matte Prompt: Trimap' erodes it (sure subject) and dilates it (sure background);",
        "SIM solves the band between. Previews: the trimap (white / grey / black) and Matting's second output",
        "'semantic_classes': every unknown pixel in the colour of the matting pattern (semantic class) SIM's",
        "classifier found there, over the image.",
      ]),
    },
  },
  {
    file: "09_aim_automatic.json",
    nodes: [
      { id: "load", type: "LoadImage", pos: [0, 0], widgets: { image: "example.png" } },
      {
        id: "model",
        type: "PromptMatteModelLoader",
        pos: [0, 420],
        widgets: { ckpt_name: "aimnet_pretrained_matting.pth" },
      },
      { id: "apply", type: "PromptMatteApply", pos: [COL, 0] },
      { id: "comp", type: "PromptMatteComposite", pos: [COL, 360] },
      { id: "save", type: "SaveImage", pos: [COL + 330, 0], size: [320, 360], widgets: { filename_prefix: "PromptMatte/aim_cutout" } },
    ],
    links: [
      ["load", "IMAGE", "apply", "image"],
      ["model", "model", "apply", "model"],
      ["load", "IMAGE", "comp", "image"],
      ["apply", "alpha", "comp", "alpha"],
      ["comp", "rgba", "save", "images"],
    ],
    note: {
      pos: [0, 560],
      size: [760, 220],
      text: familyNote("AIM (automatic image matting), no prompt", [
        "Load Image → Matting (nothing connected to 'prompt') → Matte Composite → Save Image (a transparent PNG).",
        "",
        manual("one file"),
        "• aimnet_pretrained_matting.pth → ComfyUI/models/matting/ — AIM's pretrained matting network, from",
        "  JizhiziLi/AIM (github.com/JizhiziLi/AIM).",
        "",
        "AIM takes no prompt: it finds the salient foreground (people, animals, objects) by itself. Leave",
        "Matting's 'prompt' input unconnected.",
      ]),
    },
  },
);

WORKFLOWS.push({
  file: "11_video_matting.json",
  nodes: [
    { id: "load", type: "LoadVideo", pos: [0, 0], widgets: { file: "clip.mp4" } },
    { id: "parts", type: "GetVideoComponents", pos: [0, 420] },
    { id: "model", type: "PromptMatteModelLoader", pos: [0, 560], widgets: { ckpt_name: "SDMatte.safetensors" } },
    { id: "editor", type: "PromptMatteEditor", pos: [COL, 0], size: [420, 560] },
    { id: "video", type: "PromptMatteVideo", pos: [COL + 450, 0] },
    {
      id: "comp",
      type: "PromptMatteComposite",
      pos: [COL + 780, 0],
      widgets: { background: "color", color: "#00ff00" },
    },
    { id: "create", type: "CreateVideo", pos: [COL + 780, 300] },
    { id: "save", type: "SaveVideo", pos: [COL + 1110, 0], size: [360, 420], widgets: { filename_prefix: "video/PromptMatte" } },
  ],
  links: [
    ["load", "VIDEO", "parts", "video"],
    ["parts", "images", "editor", "image"],
    ["parts", "images", "video", "frames"],
    ["model", "model", "video", "model"],
    ["editor", "prompt", "video", "prompt"],
    ["editor", "frame", "video", "prompt_frame"],
    ["parts", "images", "comp", "image"],
    ["video", "alpha", "comp", "alpha"],
    ["comp", "image", "create", "images"],
    ["parts", "fps", "create", "fps"],
    ["parts", "audio", "create", "audio"],
    ["create", "VIDEO", "save", "video"],
  ],
  note: {
    pos: [0, 760],
    size: [760, 300],
    text: weightsNote([
      "Video matting: Load Video → Get Video Components → Matte Prompt Editor / Matting (video) → Matte Composite",
      "(over green) → Create Video (the clip's own fps and audio) → Save Video. Matting (video)'s 'report' output",
      "says which frames were matted and where the subject was lost: connect core Preview Any to read it.",
      "",
      "Run once: the editor then shows the frames with a frame chooser. Pick the frame where the subject is",
      "clear, click on it (or drag a box) and run again: Matting (video) follows the subject from that frame",
      "forwards and backwards. A scene cut or the subject leaving the frame stops the following (the report",
      "says where); add keyframes (Matte Keyframe nodes, or a SAM 2 mask batch) on frames after it.",
      "Raise motion_margin for fast motion. Any family works: MAM, SEMat, SIM (a trimap) or AIM (automatic).",
    ]),
  },
});

async function build(page, wf) {
  return await page.evaluate((wf) => {
    const { app, LiteGraph } = window;
    app.graph.clear();
    const ids = {};
    const byKey = {};
    for (const spec of wf.nodes) {
      const node = LiteGraph.createNode(spec.type);
      if (!node) throw new Error("unknown node type " + spec.type);
      node.pos = spec.pos.slice();
      app.graph.add(node);
      for (const [name, value] of Object.entries(spec.widgets || {})) {
        const w = node.widgets?.find((x) => x.name === name);
        if (!w) throw new Error(`${spec.type} has no widget ${name}`);
        w.value = value;
      }
      if (spec.size) node.setSize(spec.size.slice());
      ids[spec.id] = node.id;
      byKey[spec.id] = node;
    }
    const note = LiteGraph.createNode("Note");
    note.pos = wf.note.pos.slice();
    app.graph.add(note);
    note.widgets[0].value = wf.note.text;
    note.setSize(wf.note.size.slice());
    note.title = "Read me: what this workflow needs";

    const external = new Set((wf.external || []).map((e) => e.id));
    for (const [from, out, to, inp] of wf.links) {
      if (external.has(from) || external.has(to)) continue;
      const a = byKey[from];
      const b = byKey[to];
      const oi = a.outputs.findIndex((o) => o.name === out);
      const ii = b.inputs.findIndex((i) => i.name === inp);
      if (oi < 0) throw new Error(`${a.type} has no output ${out}`);
      if (ii < 0) throw new Error(`${b.type} has no input ${inp}`);
      if (!a.connect(oi, b, ii)) throw new Error(`could not connect ${from}.${out} -> ${to}.${inp}`);
    }
    return { ids, graph: app.graph.serialize() };
  }, wf);
}

// Add nodes of packs that are not installed, as ComfyUI would save them.
function addExternal(graph, wf, ids) {
  if (!wf.external?.length) return graph;
  let nextNode = graph.last_node_id;
  let nextLink = graph.last_link_id;
  const nodes = new Map(graph.nodes.map((n) => [n.id, n]));
  for (const e of wf.external) {
    const id = ++nextNode;
    ids[e.id] = id;
    const node = {
      id,
      type: e.type,
      pos: e.pos,
      size: e.size,
      flags: {},
      order: 0,
      mode: 0,
      inputs: e.inputs.map((i) => ({ name: i.name, type: i.type, link: null })),
      outputs: e.outputs.map((o, slot) => ({ name: o.name, type: o.type, links: [], slot_index: slot })),
      properties: { "Node name for S&R": e.type, cnr_id: e.cnr_id },
      widgets_values: e.widgets_values,
    };
    graph.nodes.push(node);
    nodes.set(id, node);
  }
  const externalIds = new Set(wf.external.map((e) => e.id));
  for (const [from, out, to, inp] of wf.links) {
    if (!externalIds.has(from) && !externalIds.has(to)) continue;
    const a = nodes.get(ids[from]);
    const b = nodes.get(ids[to]);
    const oi = a.outputs.findIndex((o) => o.name === out);
    const ii = b.inputs.findIndex((i) => i.name === inp);
    if (oi < 0 || ii < 0) throw new Error(`bad external link ${from}.${out} -> ${to}.${inp}`);
    const type = a.outputs[oi].type;
    const linkId = ++nextLink;
    graph.links.push([linkId, a.id, oi, b.id, ii, type]);
    a.outputs[oi].links = [...(a.outputs[oi].links || []), linkId];
    b.inputs[ii].link = linkId;
  }
  graph.last_node_id = nextNode;
  graph.last_link_id = nextLink;
  return graph;
}

const { page, close } = await launch();
try {
  await openComfy(page, url);
  fs.mkdirSync(outDir, { recursive: true });
  for (const wf of WORKFLOWS) {
    if (only.length && !only.some((prefix) => wf.file.startsWith(prefix))) continue;
    const { ids, graph } = await build(page, wf);
    addExternal(graph, wf, ids);
    graph.extra = { ...(graph.extra || {}), ds: { scale: 0.8, offset: [80, 100] } };
    delete graph.extra.frontendVersion;
    fs.writeFileSync(path.join(outDir, wf.file), JSON.stringify(graph, null, 2) + "\n");
    log("wrote", wf.file, `${graph.nodes.length} nodes, ${graph.links.length} links`);
  }
} finally {
  await close();
}
