"""The example workflows in workflows/ (UI format, listed by ComfyUI as the pack's templates).

Every file: valid UI-format graph, consistent links, every node type known to the real server's
/object_info (or a frontend-only node, or a node of the third-party pack its Note names), link
types matching the node definitions, a Note saying which weights it needs:
- SDMatte workflows (01-05): the loader selects a known download from 1038lab/SDMatte, the Note
  names it, its repository and models/sdmatte;
- the other families' workflows (06-09): the loader selects the family's released file name, the
  Note names that file (and its companion), the folder it goes in (models/matting, models/sams)
  and the authors' repository, and Matting gets a prompt kind the family takes.
Every workflow made only of core nodes and ours: loaded into the real frontend, turned into an
API prompt by app.graphToPrompt(), queued and run to completion with a tiny golden checkpoint
(tests/browser/run_workflows.spec.mjs): SDMatte's, or the family's (tests/tiny_families.py,
written into the server's models/matting and models/sams). The inpainting one needs an SD
inpainting checkpoint that is not available here: it is queued and must be rejected for that
checkpoint only.
"""

from __future__ import annotations

import importlib
import io
import json

import numpy as np
import pytest

import harness
import tiny_families

REPO = harness.REPO
WORKFLOW_DIR = REPO / "workflows"
WORKFLOWS = sorted(WORKFLOW_DIR.glob("*.json"))
NAMES = [p.stem for p in WORKFLOWS]

# Nodes that exist only in the frontend (never sent to the server).
FRONTEND_ONLY = {"Note", "MarkdownNote", "Reroute", "PrimitiveNode"}
# Third-party packs a workflow may use; the workflow's Note must name the pack.
THIRD_PARTY = {
    "comfyui_segment_anything": {
        "SAMModelLoader (segment anything)",
        "GroundingDinoModelLoader (segment anything)",
        "GroundingDinoSAMSegment (segment anything)",
    },
}
# The workflows of the families beside SDMatte (the rest are SDMatte's).
FAMILY_OF = {
    "06_mam_click_or_box": "mam",
    "07_semat_box": "semat",
    "08_sim_trimap_semantic_classes": "sim",
    "09_aim_automatic": "aim",
}
# What the authors released and where a user puts it: (file, folder, repository page it is linked from).
RELEASED = {
    "mam": ("mam_vitb.pth", "models/matting", "SHI-Labs/Matting-Anything"),
    "semat": ("SEMat_SAM.pth", "models/matting", "XiaRho/SEMat"),
    "sim": ("ckpt_best.pth", "models/matting", "nowsyn/SIM"),
    "aim": ("aimnet_pretrained_matting.pth", "models/matting", "JizhiziLi/AIM"),
}
COMPANIONS = {
    "mam": ("sam_vit_b_01ec64.pth", "models/sams", "facebookresearch/segment-anything"),
    "sim": ("classifier_resnet50_best.pth.tar", "models/matting", "nowsyn/SIM"),
}
# Licence terms a user must see before using the weights.
LICENCE_WORDS = {"semat": ("CC BY-NC 4.0", "non-commercial"), "sim": ("no licence file", "unknown")}
# Core-and-ours workflows that cannot run here, and why.
NOT_RUN = {
    "05_background_replacement_inpainting": "needs an SD inpainting checkpoint (models/checkpoints), not available here",
}
# Runnable workflows whose run from the frontend is tested in their own module.
RUN_ELSEWHERE = {"11_video_matting": "tests/test_video_workflow.py (a clip written with av)"}
# Input image and editor clicks for each runnable workflow (the test image is 320×240).
PAINTED = "promptmatte_wf_painted.png"
PLAIN = "promptmatte_wf_subject.png"
RUN_SETUP = {
    "01_click_matting": (PLAIN, {"points": [{"x": x, "y": y} for x, y in harness.SUBJECT_CLICKS], "box": None}),
    "02_box_matting_color_background": (PLAIN, {"points": [], "box": list(harness.SUBJECT_BOX)}),
    "03b_mask_prompt_painted_mask": (PAINTED, None),
    "04_trimap_from_rough_mask": (PAINTED, None),
    "05_background_replacement_inpainting": (PLAIN, {"points": [{"x": 170, "y": 120}], "box": None}),
    "06_mam_click_or_box": (PLAIN, {"points": [{"x": x, "y": y} for x, y in harness.SUBJECT_CLICKS], "box": None}),
    "07_semat_box": (PLAIN, {"points": [], "box": list(harness.SUBJECT_BOX)}),
    "08_sim_trimap_semantic_classes": (PAINTED, None),
    "09_aim_automatic": (PLAIN, None),
}


def load(name: str) -> dict:
    return json.loads((WORKFLOW_DIR / f"{name}.json").read_text())


def note_text(wf: dict) -> str:
    return "\n".join(
        str(v) for n in wf["nodes"] if n["type"] in ("Note", "MarkdownNote") for v in n.get("widgets_values", [])
    )


def test_there_are_workflows_for_every_use_case():
    assert {
        "01_click_matting",
        "02_box_matting_color_background",
        "03a_mask_prompt_segment_anything",
        "03b_mask_prompt_painted_mask",
        "04_trimap_from_rough_mask",
        "05_background_replacement_inpainting",
        "06_mam_click_or_box",
        "07_semat_box",
        "08_sim_trimap_semantic_classes",
        "09_aim_automatic",
    } <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_workflow_is_a_consistent_ui_graph(name):
    wf = load(name)
    for key in ("nodes", "links", "last_node_id", "last_link_id", "version"):
        assert key in wf, f"{name}: no {key!r}: not a UI-format workflow"
    nodes = {n["id"]: n for n in wf["nodes"]}
    assert len(nodes) == len(wf["nodes"]), "duplicate node ids"
    assert max(nodes) <= wf["last_node_id"]
    for n in wf["nodes"]:
        assert {"id", "type", "pos", "size", "mode"} <= n.keys()
    for link in wf["links"]:
        lid, a, aslot, b, bslot, ltype = link
        assert a in nodes and b in nodes, f"link {lid} joins missing nodes"
        assert lid in (nodes[a]["outputs"][aslot].get("links") or []), f"link {lid} not on its output"
        assert nodes[b]["inputs"][bslot]["link"] == lid, f"link {lid} not on its input"
        assert ltype == nodes[a]["outputs"][aslot]["type"]
        assert lid <= wf["last_link_id"]
    for n in wf["nodes"]:
        for inp in n.get("inputs", []):
            if inp.get("link") is not None:
                assert any(l[0] == inp["link"] and l[3] == n["id"] for l in wf["links"])


SDMATTE_NAMES = [n for n in NAMES if n not in FAMILY_OF]
FAMILY_NAMES = [n for n in NAMES if n in FAMILY_OF]


def test_every_workflow_of_another_family_is_known_here():
    """A new workflow that selects non-SDMatte weights must be listed in FAMILY_OF (so its Note and
    loader are checked against what that family's authors released)."""
    known = json.loads((REPO / "nodes" / "known_models.json").read_text())["models"]
    for name in SDMATTE_NAMES:
        for n in load(name)["nodes"]:
            if n["type"] == "PromptMatteModelLoader":
                assert n["widgets_values"][0] in known, f"{name} selects {n['widgets_values'][0]!r}: add it to FAMILY_OF"


@pytest.mark.parametrize("name", SDMATTE_NAMES)
def test_workflow_notes_say_what_weights_it_needs(name):
    text = note_text(load(name))
    assert text, f"{name} has no Note node"
    assert "models/sdmatte" in text and "SDMatte" in text
    if name.startswith("05"):
        assert "inpainting" in text.lower() and "models/checkpoints" in text


@pytest.mark.parametrize("name", SDMATTE_NAMES)
def test_workflow_loaders_pick_a_default_download_and_the_note_says_where_from(name):
    """Every Load Matting Model of the SDMatte examples selects an entry that the loader downloads on
    first use from the default source (known_models.json), and the Note names that file and repository."""
    known = json.loads((REPO / "nodes" / "known_models.json").read_text())["models"]
    wf = load(name)
    text = note_text(wf)
    loaders = [n for n in wf["nodes"] if n["type"] == "PromptMatteModelLoader"]
    assert loaders, f"{name} has no Load Matting Model"
    for n in loaders:
        ckpt = n["widgets_values"][0]
        assert ckpt in known, f"{name}: {ckpt!r} is not a known (downloadable) entry"
        assert known[ckpt]["repo_id"] == "1038lab/SDMatte" and ckpt.endswith(".safetensors"), (name, ckpt)
        assert ckpt in text and known[ckpt]["repo_id"] in text, (name, text)


@pytest.mark.parametrize("name", FAMILY_NAMES)
def test_family_workflow_selects_the_released_file_and_the_note_says_where_it_goes(name):
    """The loader selects the file name the family's authors released (what a user downloads), with
    the companion left on auto; the Note names that file, the folder it goes in and the repository
    page it is linked from (the loader cannot download these), the companion file likewise, and the
    licence terms where they restrict use."""
    family = FAMILY_OF[name]
    wf = load(name)
    text = note_text(wf)
    assert text, f"{name} has no Note node"
    loaders = [n for n in wf["nodes"] if n["type"] == "PromptMatteModelLoader"]
    assert len(loaders) == 1, f"{name}: one Load Matting Model expected"
    ckpt, _precision, companion = loaders[0]["widgets_values"]
    released, folder, repo = RELEASED[family]
    assert ckpt == released, f"{name} selects {ckpt!r}, not {family}'s released {released!r}"
    assert companion == "auto", f"{name}: the companion input should be left on auto, not {companion!r}"
    for file, where, source in [RELEASED[family], *([COMPANIONS[family]] if family in COMPANIONS else [])]:
        assert file in text, f"{name}: the Note does not name {file}"
        assert where in text, f"{name}: the Note does not say {file} goes in {where}"
        assert source in text, f"{name}: the Note does not name the repository {source}"
    for word in LICENCE_WORDS.get(family, ()):
        assert word in text, f"{name}: the Note does not state the licence ({word!r})"
    assert "models/sdmatte" not in text, f"{name}: {family} weights do not go in models/sdmatte"


def _prompt_kinds_given(wf: dict) -> set[str]:
    """The prompt kinds each Matting node of the workflow receives, as its source node makes them."""
    nodes = {n["id"]: n for n in wf["nodes"]}
    kinds = set()
    for n in wf["nodes"]:
        if n["type"] != "PromptMatteApply":
            continue
        link_id = next(i["link"] for i in n["inputs"] if i["name"] == "prompt")
        if link_id is None:
            kinds.add("auto")
            continue
        source = nodes[next(l[1] for l in wf["links"] if l[0] == link_id)]
        if source["type"] == "PromptMatteEditor":
            state = json.loads(source["widgets_values"][0])
            kinds.add("box" if state.get("box") else "point")
        else:
            kinds.add({"PromptMatteTrimap": "trimap", "PromptMatteBox": "box", "PromptMatteMask": "mask"}[source["type"]])
    return kinds


@pytest.mark.parametrize("name", FAMILY_NAMES)
def test_family_workflow_gives_matting_a_prompt_the_family_takes(name, pack):
    """As saved (the editor's stored clicks or box), the Matting node gets a kind the family accepts
    (else the first run would be refused)."""
    family = importlib.import_module(f"{pack.__name__}.models.{FAMILY_OF[name]}").FAMILY
    given = _prompt_kinds_given(load(name))
    assert given, f"{name} has no Matting node"
    assert given <= set(family.prompt_kinds), f"{name} gives {given}, {family.name} takes {family.prompt_kinds}"


@pytest.fixture(scope="module")
def object_info(comfy_client):
    return comfy_client.object_info()


def _input_spec(info: dict, name: str):
    for group in ("required", "optional"):
        spec = info["input"].get(group, {}).get(name)
        if spec is not None:
            return spec
    return None


@pytest.mark.server
@pytest.mark.parametrize("name", NAMES)
def test_workflow_node_types_exist_on_the_real_server(name, object_info):
    wf = load(name)
    text = note_text(wf)
    nodes = {n["id"]: n for n in wf["nodes"]}
    for n in wf["nodes"]:
        t = n["type"]
        if t in FRONTEND_ONLY:
            continue
        if t not in object_info:
            packs = [p for p, types in THIRD_PARTY.items() if t in types]
            assert packs, f"{name}: node type {t!r} is neither on the server nor of a known third-party pack"
            assert packs[0] in text, f"{name}: the Note must name the pack {packs[0]!r} for {t!r}"
            continue
        info = object_info[t]
        # Every connected input exists on the node and takes the linked type.
        for inp in n.get("inputs", []):
            if inp.get("link") is None:
                continue
            spec = _input_spec(info, inp["name"])
            assert spec is not None, f"{name}: {t} has no input {inp['name']!r}"
            link = next(l for l in wf["links"] if l[0] == inp["link"])
            want = spec[0]
            if isinstance(want, str) and want not in ("*",):
                assert link[5] == want or link[5] == "*", f"{name}: {t}.{inp['name']} takes {want}, linked {link[5]}"
        for slot, out in enumerate(n.get("outputs", [])):
            assert info["output"][slot] == out["type"], f"{name}: {t} output {slot} is {info['output'][slot]}"
    # Third-party nodes are linked with the types their pack declares (read from its source).
    for link in wf["links"]:
        a = nodes[link[1]]
        if a["type"] not in object_info and a["type"] not in FRONTEND_ONLY:
            assert a["outputs"][link[2]]["type"] == link[5]


@pytest.mark.server
def test_workflows_are_listed_as_templates_of_the_pack(comfy_client):
    listing = comfy_client.get_json("/workflow_templates")
    assert sorted(listing.get("PromptMatte", [])) == sorted(NAMES), listing
    for name in NAMES:
        served = comfy_client.get_json(f"/api/workflow_templates/PromptMatte/{name}.json")
        assert served == load(name)


def _runnable(object_info) -> list[str]:
    out = []
    for name in NAMES:
        types = {n["type"] for n in load(name)["nodes"]} - FRONTEND_ONLY
        if types <= set(object_info):
            out.append(name)
    return out


@pytest.fixture(scope="module")
def browser_runs(comfy_server, comfy_client, comfy_base_dir, object_info):
    """Every runnable workflow run from the frontend: SDMatte's with the golden tiny SDMatte, the
    other families' with their tiny checkpoints written into the server's models folders (listed at
    request time). A family whose fixtures are missing is not run: its test fails saying so."""
    harness.require_browser()
    if not (comfy_base_dir / "models" / "sdmatte" / "sdmatte_tiny.safetensors").exists():
        pytest.skip("the golden tiny checkpoint is not linked into the test base dir")
    tiny = tiny_families.install(comfy_base_dir / "models")
    comfy_client.upload_image(harness.png_bytes(harness.subject_image()), filename=PLAIN)
    comfy_client.upload_image(harness.png_bytes(harness.subject_image_with_painted_mask()), filename=PAINTED)
    runs = []
    for name in _runnable(object_info):
        if name in RUN_ELSEWHERE:
            continue
        image, state = RUN_SETUP[name]
        run = {
            "name": name,
            "workflow": str(WORKFLOW_DIR / f"{name}.json"),
            "image": image,
            "editor_state": state,
            "timeoutMs": 240000,
        }
        family = FAMILY_OF.get(name)
        if family is not None:
            if family not in tiny:
                continue
            run["ckpt"] = tiny[family]
        runs.append(run)
    config = {"ckpt": "sdmatte_tiny.safetensors", "resolution": 128, "runs": runs}
    result = harness.run_spec("run_workflows.spec.mjs", comfy_server.url, config, timeout=850)
    result["tiny"] = tiny
    return result


@pytest.mark.server
@pytest.mark.slow
def test_every_core_workflow_is_run_or_has_a_reason(object_info):
    runnable = _runnable(object_info)
    for name in NAMES:
        if name not in runnable:
            types = {n["type"] for n in load(name)["nodes"]} - FRONTEND_ONLY - set(object_info)
            assert all(any(t in ts for ts in THIRD_PARTY.values()) for t in types), (name, types)
    assert set(runnable) - set(NOT_RUN) >= {"01_click_matting", "02_box_matting_color_background",
                                             "03b_mask_prompt_painted_mask", "04_trimap_from_rough_mask",
                                             *FAMILY_OF}


@pytest.mark.server
@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize("name", [n for n in NAMES if n in RUN_SETUP and n not in NOT_RUN])
def test_workflow_runs_to_completion_from_the_frontend(name, browser_runs, comfy_client):
    from PIL import Image

    family = FAMILY_OF.get(name)
    if family is not None and family not in browser_runs["tiny"]:
        pytest.fail(f"{name} was not run: no tiny {family} checkpoint, because tests/tiny_families.py finds no "
                    f"{family} golden fixtures in this checkout (tests/{family}_golden.py and tests/golden/{family}/; "
                    f"available: {tiny_families.available()})", pytrace=False)
    run = browser_runs["runs"].get(name)
    assert run is not None, f"{name} was not run (a node type is missing on the server?)"
    assert "rejection" not in run, json.dumps(run.get("rejection"))[:3000]
    assert run.get("status") == "success", run.get("error")
    types = {n["class_type"] for n in run["prompt"].values()}
    assert not types & FRONTEND_ONLY, "frontend-only nodes must not reach the API prompt"
    wf_types = {n["type"] for n in load(name)["nodes"]} - FRONTEND_ONLY
    assert types == wf_types
    saved = [i for out in run["outputs"].values() for i in out.get("images", []) if i.get("type") == "output"]
    assert saved, f"{name}: nothing saved"
    for ref in saved:
        img = Image.open(io.BytesIO(comfy_client.view(ref["filename"], ref["subfolder"], "output")))
        assert img.size == harness.IMAGE_SIZE
    # Every Preview Image shows an image of the input's size.
    previews = {}
    for node_id, node in run["prompt"].items():
        if node["class_type"] != "PreviewImage":
            continue
        refs = (run["outputs"].get(node_id) or {}).get("images") or []
        assert refs, f"{name}: Preview Image {node_id} shows nothing"
        img = Image.open(io.BytesIO(comfy_client.view(refs[0]["filename"], refs[0]["subfolder"], refs[0]["type"])))
        assert img.size == harness.IMAGE_SIZE
        previews[tuple(node["inputs"]["images"])] = np.asarray(img.convert("RGB")).astype(int)
    if family == "sim":
        # semantic_classes (Matting's second output) colours the trimap's unknown band, nothing else
        apply_id = next(i for i, n in run["prompt"].items() if n["class_type"] == "PromptMatteApply")
        classes = previews.get((apply_id, 1))
        assert classes is not None, f"{name}: no Preview Image of Matting's semantic_classes"
        source = np.asarray(Image.open(io.BytesIO(comfy_client.view(PAINTED, "", "input"))).convert("RGB")).astype(int)
        moved = np.abs(classes - source).max(axis=-1) > 1
        trimap = next(p for key, p in previews.items() if key != (apply_id, 1))[..., 0]
        unknown = (trimap > 64) & (trimap < 192)
        assert unknown.any() and moved[unknown].mean() > 0.8, "the unknown band is not coloured by class"
        assert not moved[~unknown].any(), "pixels outside the unknown band changed"


@pytest.mark.server
@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize("name", sorted(NOT_RUN))
def test_workflow_not_run_here_fails_only_for_its_missing_weights(name, browser_runs):
    """Queued from the frontend, the server must reject it only for the missing checkpoint
    (stated reason in NOT_RUN); every other node validates."""
    run = browser_runs["runs"].get(name)
    assert run is not None
    rejection = run.get("rejection")
    assert rejection, f"{name} was expected to be rejected for its missing checkpoint: {run}"
    errors = rejection.get("node_errors") or {}
    assert errors, rejection
    for node_id, err in errors.items():
        assert err["class_type"] == "CheckpointLoaderSimple", (node_id, err)
        assert any(e.get("extra_info", {}).get("input_name") == "ckpt_name" for e in err["errors"]), err
