"""Prompt construction, validation and the messages a user sees when a prompt is wrong."""

import importlib

import numpy as np
import pytest
import torch


@pytest.fixture(scope="module")
def M(pack):
    return importlib.import_module(pack.__name__ + ".matting")


def test_from_points_keeps_click_order_and_source_size(M):
    p = M.Prompt.from_points([(10, 20), (5, 7.5)], source_size=(100, 200))
    assert p.kind == "point"
    assert p.points == ((10.0, 20.0), (5.0, 7.5))
    assert p.source_size == (100, 200)
    assert p.bounding_box() == (5.0, 7.5, 10.0, 20.0)


def test_eleven_points_is_refused_with_how_many_to_remove(M):
    with pytest.raises(M.PromptError, match=r"at most 10 points; remove 1\b"):
        M.Prompt.from_points([(i, i) for i in range(11)])
    with pytest.raises(M.PromptError, match=r"remove 3\b"):
        M.Prompt.from_points([(i, i) for i in range(13)])
    assert len(M.Prompt.from_points([(i, i) for i in range(10)]).points) == 10


def test_no_points_is_refused(M):
    with pytest.raises(M.PromptError, match="click at least once"):
        M.Prompt.from_points([])


def test_point_outside_the_image_names_point_and_image_size(M):
    with pytest.raises(M.PromptError) as e:
        M.Prompt.from_points([(10, 10), (640, 12)], source_size=(480, 640))
    msg = str(e.value)
    assert "point 2 (640, 12)" in msg and "640×480" in msg
    p = M.Prompt.from_points([(10, 10), (700, -3)])
    with pytest.raises(M.PromptError, match=r"point 2 \(700, -3\) is outside the 640×480 image"):
        M.validate_for_image(p, 480, 640)
    M.validate_for_image(M.Prompt.from_points([(639, 479)]), 480, 640)  # last pixel is fine


def test_zero_area_box_is_refused(M):
    with pytest.raises(M.PromptError, match="zero area"):
        M.Prompt.from_box(10, 10, 10, 50)
    with pytest.raises(M.PromptError, match="zero area"):
        M.Prompt.from_box(10, 20, 30, 20)


def test_box_corners_in_any_order(M):
    p = M.Prompt.from_box(30, 40, 10, 20)
    assert p.box == (10.0, 20.0, 30.0, 40.0)
    assert p.bounding_box() == (10.0, 20.0, 30.0, 40.0)


def test_box_outside_the_image_is_refused(M):
    p = M.Prompt.from_box(700, 10, 800, 50)
    with pytest.raises(M.PromptError, match="outside the 640×480 image"):
        M.validate_for_image(p, 480, 640)


def test_empty_mask_is_refused_with_the_fix(M):
    with pytest.raises(M.PromptError, match=r"^the mask is empty: .*lower the threshold"):
        M.Prompt.from_mask(torch.zeros(32, 32))
    m = torch.zeros(32, 32)
    m[4:8, 5:9] = 0.4
    with pytest.raises(M.PromptError, match="the mask is empty"):
        M.Prompt.from_mask(m, threshold=0.5)
    p = M.Prompt.from_mask(m, threshold=0.3)
    assert p.kind == "mask" and p.source_size == (32, 32)
    assert set(p.mask.unique().tolist()) == {0.0, 1.0}
    assert p.bounding_box() == (5.0, 4.0, 9.0, 8.0)


def test_mask_accepts_numpy_and_channel_dims(M):
    a = np.zeros((1, 16, 20), np.float32)
    a[0, 2:5, 3:4] = 1
    p = M.Prompt.from_mask(a)
    assert tuple(p.mask.shape) == (16, 20)
    with pytest.raises(M.PromptError, match="one mask of shape height×width"):
        M.Prompt.from_mask(torch.ones(2, 16, 20))


def test_a_mask_of_another_size_is_resized_to_the_image_and_the_log_says_so(M, caplog):
    """SAM 2's video segmenter works at 1024²: its masks reach us at another size than the image."""
    m = torch.zeros(32, 32)
    m[8:24, 16:32] = 1  # the right half of the middle rows
    p = M.Prompt.from_mask(m)
    M.validate_for_image(p, 48, 64)  # no longer refused
    with caplog.at_level("WARNING", logger="PromptMatte"):
        q = p.scaled_to(48, 64)
    assert tuple(q.mask.shape) == (48, 64) and q.source_size == (48, 64)
    assert q.bounding_box() == (32.0, 12.0, 64.0, 36.0)
    assert set(q.mask.unique().tolist()) == {0.0, 1.0}
    assert "32×32 but the image is 64×48" in caplog.text and "stretched" in caplog.text
    t = M.Prompt.from_trimap(torch.tensor([[0.0, 0.5], [0.5, 1.0]]))
    assert set(t.scaled_to(6, 6).mask.unique().tolist()) == {0.0, 0.5, 1.0}  # trimap levels survive


def test_trimap_is_snapped_and_an_all_background_trimap_refused(M):
    t = torch.tensor([[0.1, 0.4, 0.6, 0.9]])
    p = M.Prompt.from_trimap(t)
    assert p.kind == "trimap"
    assert p.mask.tolist() == [[0.0, 0.5, 0.5, 1.0]]
    with pytest.raises(M.PromptError, match="all background"):
        M.Prompt.from_trimap(torch.zeros(8, 8))


def test_auto_prompt(M):
    p = M.Prompt.auto()
    assert p.kind == "auto" and p.bounding_box() is None


def test_parse_points_json_editor_format_and_pairs(M):
    assert M.parse_points_json('[{"x": 10, "y": 20}, {"x": 3.5, "y": 4}]') == [(10.0, 20.0), (3.5, 4.0)]
    assert M.parse_points_json("[[1, 2], [3, 4]]") == [(1.0, 2.0), (3.0, 4.0)]
    assert M.parse_points_json("") == []
    assert M.parse_points_json("  ") == []


def test_malformed_points_json_quotes_where(M):
    with pytest.raises(M.PromptError) as e:
        M.parse_points_json('[{"x": 10, "y": 20}, {"x": 5 "y": 6}]')
    msg = str(e.value)
    assert "line 1 column 30" in msg
    assert '"y": 6' in msg  # the text around the error
    with pytest.raises(M.PromptError, match=r'point 2 in the points JSON is \{"x": 1\}'):
        M.parse_points_json('[{"x": 1, "y": 1}, {"x": 1}]')
    with pytest.raises(M.PromptError, match=r'^point 1 in the points JSON has x = "a", not a number; '):
        M.parse_points_json('[{"x": "a", "y": 1}]')


def test_points_json_names_the_point_the_coordinate_and_the_fix(M):
    """Each refusal says which point, which coordinate, what it is, and what a point must be."""
    cases = [
        ('[{"x": 1, "y": 2}, {"x": 3, "y": true}]', 'point 2 in the points JSON has y = true, not a number'),
        ('[[1, 2], [3, null]]', "point 2 in the points JSON has y = null, not a number"),
        ('[{"x": NaN, "y": 1}]', "point 1 in the points JSON has x = NaN, not a finite number"),
        ('[{"x": 1, "y": -Infinity}]', "point 1 in the points JSON has y = -Infinity, not a finite number"),
        ("[[1, 2, 3]]", "point 1 in the points JSON is [1, 2, 3]"),
        ('"10, 20"', 'the points JSON is a string ("10, 20"), not a list'),
        ("12", "the points JSON is a number (12), not a list"),
    ]
    for text, words in cases:
        with pytest.raises(M.PromptError) as e:
            M.parse_points_json(text)
        msg = str(e.value)
        assert msg.startswith(words), (text, msg)
        assert '{"x": ' in msg, msg  # the message shows the expected form


def test_parse_points_json_takes_a_decoded_list_and_names_its_source(M):
    """The Matte Prompt Editor hands over the "points" list of its stored state."""
    assert M.parse_points_json([{"x": 3, "y": 4}, [5, 6.5]], what="its stored state") == [(3.0, 4.0), (5.0, 6.5)]
    assert M.parse_points_json([]) == []
    with pytest.raises(M.PromptError, match=r'^point 2 in its stored state has x = "7", not a number'):
        M.parse_points_json([{"x": 3, "y": 4}, {"x": "7", "y": 1}], what="its stored state")


def test_prompt_scaled_and_cropped(M):
    p = M.Prompt.from_points([(50, 25)], source_size=(100, 200))
    q = p.scaled_to(200, 400)
    assert q.points == ((100.0, 50.0),) and q.source_size == (200, 400)
    b = M.Prompt.from_box(10, 20, 60, 80).cropped(5, 10, 50, 70)
    assert b.box == (5.0, 10.0, 45.0, 60.0) and b.source_size == (60, 45)


def test_matting_core_imports_without_comfyui(pack, tmp_path):
    """matting/ is plain torch: importing it pulls in no ComfyUI module (and no scipy)."""
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    (tmp_path / "PromptMatte").symlink_to(repo, target_is_directory=True)
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import PromptMatte.matting as m; "
        "bad = sorted(k for k in sys.modules if k.split('.')[0] in ('comfy', 'comfy_api', 'folder_paths', "
        "'nodes', 'server', 'scipy')); print(bad); assert not bad, bad; "
        "assert {'Prompt', 'PromptError', 'parse_points_json', 'render_prompt', 'matte', "
        "'estimate_foreground', 'trimap_from_mask', 'clean_trimap'} <= set(m.__all__)"
    )
    r = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
