"""Known answers for the face mesh's mirror averaging (priors.face.face_mesh, mirror_average=True).

The landmark model is replaced by stand-ins whose answers are known, so the
test checks the averaging itself (mirroring the crop, mirroring the mesh
back, renumbering by the topology's left-right map), not the network:
- a model that ignores the image and returns a fixed, lopsided mesh: the
  average is that mesh made symmetric about the crop's centre line;
- a model that returns a symmetric mesh: the average leaves it unchanged;
- a model that reads where the face is in the crop but adds a constant
  left-right bias: the bias cancels, the reading is kept.
"""
from __future__ import annotations

import numpy as np
import pytest

from priorfx.models import runtimes
from priorfx.portrait import geometry
from priorfx.priors import face

LM = 192                               # the landmark model's crop side
CX, CY, BOX = 200.0, 150.0, 120.0      # the detection: centre and side, image pixels


class FakeModel:
    """Stands in for the landmark runner: run(batch) -> (468*3 landmarks, presence logit)."""

    def __init__(self, mesh: np.ndarray, follow_dot: bool = False, bias_px: float = 0.0):
        self.mesh, self.follow_dot, self.bias = mesh, follow_dot, bias_px

    def run(self, batch: np.ndarray):
        pts = self.mesh.copy()
        if self.follow_dot:
            # Where the bright dot is, left-right (pixel centres at +0.5): the "face" moves with it.
            g = batch[0].sum(-1)
            pts[:, 0] += (g.sum(0) * (np.arange(LM) + 0.5)).sum() / g.sum() - LM / 2
        pts[:, 0] += self.bias
        return pts.reshape(1, -1).astype(np.float32), np.array([[3.0]], np.float32)


def _symmetric_mesh() -> np.ndarray:
    """The mean face, frontal, in crop pixels (symmetric about x = LM / 2)."""
    mean = geometry.face_model().mean
    s = 0.5 * LM / np.ptp(mean[:, 0])
    return np.column_stack([LM / 2 + s * mean[:, 0], LM / 2 + s * mean[:, 1], s * mean[:, 2]])


def _mesh(monkeypatch, model: FakeModel, rgb: np.ndarray, mirror_average: bool) -> np.ndarray:
    monkeypatch.setattr(runtimes, "load", lambda *a, **k: model)
    # Eyes level: the crop is axis-aligned, so its centre line is the image column x = CX.
    det = face.Detection(np.array([CX - BOX / 2, CY - BOX / 2, CX + BOX / 2, CY + BOX / 2], np.float32),
                         np.array([[CX - 30, CY], [CX + 30, CY]] + [[CX, CY]] * 4, np.float32), 0.9)
    return face.face_mesh(rgb, det, passes=1, mirror_average=mirror_average).points.astype(np.float64)


def _asymmetry(pts: np.ndarray) -> float:
    """Largest distance between a point and its partner mirrored about x = CX (pixels)."""
    partner = face.mirror_map()
    mirrored = pts[partner] * [-1, 1, 1] + [2 * CX, 0, 0]
    return float(np.abs(mirrored - pts).max())


def test_a_lopsided_mesh_becomes_symmetric_and_a_symmetric_one_is_unchanged(monkeypatch):
    rgb = np.zeros((300, 400, 3), np.float32)
    sym = _symmetric_mesh()
    noisy = sym + np.random.default_rng(0).normal(0, 2.0, sym.shape)     # 2 crop px of lopsided noise

    plain = _mesh(monkeypatch, FakeModel(noisy), rgb, mirror_average=False)
    averaged = _mesh(monkeypatch, FakeModel(noisy), rgb, mirror_average=True)
    assert _asymmetry(plain) > 1.0                 # the stand-in really is lopsided
    assert _asymmetry(averaged) < 1e-3
    # The average is the mesh and its mirror image, half each: each point moves by
    # half its disagreement with its partner, no more.
    step = BOX * 1.5 / LM                          # image px per crop px
    assert np.abs(averaged - plain).max() <= 0.5 * _asymmetry(plain) + 1e-3
    assert np.abs(averaged - plain).max() > 0.5 * step

    sym_plain = _mesh(monkeypatch, FakeModel(sym), rgb, mirror_average=False)
    sym_avg = _mesh(monkeypatch, FakeModel(sym), rgb, mirror_average=True)
    assert _asymmetry(sym_plain) < 1e-3
    np.testing.assert_allclose(sym_avg, sym_plain, atol=1e-3)


@pytest.mark.parametrize("dot_dx", [-25, 0, 18])
def test_a_constant_left_right_bias_cancels_and_what_the_model_reads_is_kept(monkeypatch, dot_dx):
    rgb = np.zeros((300, 400, 3), np.float32)
    rgb[145:155, int(CX) + dot_dx - 5:int(CX) + dot_dx + 5] = 1.0        # the "face", off the crop centre
    sym = _symmetric_mesh()
    truth = _mesh(monkeypatch, FakeModel(sym, follow_dot=True), rgb, mirror_average=False)
    # The unbiased stand-in follows the dot: its mesh is centred on it, in image pixels.
    assert truth[:, 0].mean() - CX == pytest.approx(dot_dx, abs=0.6)
    biased = _mesh(monkeypatch, FakeModel(sym, follow_dot=True, bias_px=4.0), rgb, mirror_average=False)
    averaged = _mesh(monkeypatch, FakeModel(sym, follow_dot=True, bias_px=4.0), rgb, mirror_average=True)
    step = BOX * 1.5 / LM
    np.testing.assert_allclose(biased[:, 0] - truth[:, 0], 4.0 * step, atol=1e-3)    # the bias shows plainly
    np.testing.assert_allclose(averaged, truth, atol=1e-3)                          # and averages away
