"""Trimaps from masks (kornia morphology) and trimap clean-up."""

import importlib

import pytest
import torch


@pytest.fixture(scope="module")
def M(pack):
    return importlib.import_module(pack.__name__ + ".matting")


def test_trimap_bands_have_the_requested_widths(M):
    mask = torch.zeros(2, 128, 128)
    mask[:, 40:90, 30:100] = 1.0  # rows 40..89, cols 30..99
    tri = M.trimap_from_mask(mask, erode=5, dilate=10)
    assert tri.shape == (2, 128, 128)
    assert set(tri.unique().tolist()) == {0.0, 0.5, 1.0}
    row = tri[0, 65]
    # sure foreground: 5 px inside each edge; unknown: from 10 px outside to 5 px inside
    assert row[35:95].eq(1).all() and row[34] == 0.5 and row[95] == 0.5
    assert row[20:35].eq(0.5).all() and row[95:110].eq(0.5).all()
    assert row[:20].eq(0).all() and row[110:].eq(0).all()
    col = tri[1, :, 65]
    assert col[45:85].eq(1).all() and col[30:45].eq(0.5).all() and col[:30].eq(0).all()
    # corners are rounded by the disk: the dilated corner does not reach diagonally 10 px
    assert tri[0, 40 - 8, 30 - 8] == 0 and tri[0, 40 - 6, 30 - 6] == 0.5


def test_no_erode_no_dilate_gives_the_binary_mask(M):
    mask = torch.rand(1, 40, 50)
    tri = M.trimap_from_mask(mask, erode=0, dilate=0, threshold=0.5)
    assert torch.equal(tri, (mask > 0.5).float())


def test_image_border_does_not_erode_the_subject(M):
    mask = torch.zeros(64, 64)
    mask[32:, :] = 1.0  # subject cut by the bottom, left and right edges
    tri = M.trimap_from_mask(mask, erode=4, dilate=4)
    assert tri.shape == (64, 64)
    assert tri[63].eq(1).all()
    assert tri[40, 0] == 1 and tri[40, 63] == 1
    assert tri[33, 10] == 0.5 and tri[29, 10] == 0.5 and tri[27, 10] == 0


def test_clean_trimap_snaps_values(M):
    t = torch.tensor([0.0, 0.1, 0.249, 0.25, 0.5, 0.75, 0.751, 0.9, 1.0])
    assert M.clean_trimap(t).tolist() == [0, 0, 0, 0.5, 0.5, 0.5, 1, 1, 1]


def test_negative_widths_are_refused(M):
    with pytest.raises(M.PromptError, match="0 or more"):
        M.trimap_from_mask(torch.zeros(1, 8, 8), erode=-1, dilate=2)


def test_large_disks_agree_with_kornia_morphology(M):
    """Disks above the kornia radius limit take the FFT path; it must give kornia's result exactly."""
    from kornia.morphology import dilation, erosion

    trimap = importlib.import_module(M.__name__ + ".trimap")
    g = torch.Generator().manual_seed(1)
    mask = (torch.rand(2, 1, 70, 90, generator=g) > 0.8).float()
    for r in (trimap.KORNIA_MAX_RADIUS + 1, 9):
        k = trimap.disk(r)
        assert torch.equal(trimap._dilate(mask, r), dilation(mask, k))
        assert torch.equal(trimap._erode(1 - mask, r), erosion(1 - mask, k))


def test_large_radius_on_a_big_mask(M):
    mask = torch.zeros(1, 1024, 1024)
    mask[:, 200:800, 300:700] = 1
    tri = M.trimap_from_mask(mask, erode=25, dilate=25)
    assert tri[0, 500, 300 + 25] == 1 and tri[0, 500, 300 + 24] == 0.5 and tri[0, 500, 300 - 26] == 0
