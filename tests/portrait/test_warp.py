"""The warp's pieces: the thin-plate spline, the weights, and the outline's motion on a real selfie."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

import priorfx.portrait as portrait
from priorfx.portrait import PortraitParams, geometry, warp


def test_thin_plate_spline_matches_scipy_with_per_point_smoothing():
    from scipy.interpolate import RBFInterpolator

    rng = np.random.default_rng(3)
    at = rng.uniform(-1, 1, (300, 2))
    val = np.column_stack([np.sin(3 * at[:, 0]) + at[:, 1], np.cos(2 * at[:, 1]) * at[:, 0]])
    smoothing = np.where(rng.uniform(size=300) < 0.2, 3e-2, 1e-3)
    pts = rng.uniform(-1.2, 1.2, (5000, 2))
    ours = warp.eval_tps(warp.fit_tps(at, val, smoothing), pts, chunk=1024)
    ref = RBFInterpolator(at, val, kernel="thin_plate_spline", smoothing=smoothing, degree=1)(pts)
    assert np.abs(ours - ref).max() < 1e-8 * np.abs(ref).max()
    # Tiny smoothing interpolates; the outline's larger smoothing approximates.
    exact = warp.eval_tps(warp.fit_tps(at, val, np.full(300, 1e-9)), at)
    assert np.abs(exact - val).max() < 1e-6


@pytest.fixture(scope="module")
def selfie_plan(sample_media):
    rgb = cv2.cvtColor(cv2.imread(str(sample_media / "single_face.jpg")), cv2.COLOR_BGR2RGB).astype(np.float32) / 255
    captured = {}
    real = warp.face_warp

    def spy(fit, landmarks, target_m):
        fw = real(fit, landmarks, target_m)
        captured.update(fit=fit, landmarks=np.asarray(landmarks, np.float64), target=target_m, warp=fw)
        return fw

    warp.face_warp = spy
    try:
        plan = portrait.plan(rgb, PortraitParams(distance_m=1.5, focal_mm=26.0))   # a phone front camera
    finally:
        warp.face_warp = real
    return rgb, plan, captured


def test_outline_moves_with_the_fitted_head(selfie_plan):
    """The face outline moves out as far as the 3D fit says, not cut short by the weights' fade."""
    _, plan, cap = selfie_plan
    before, after = cap["fit"].reproject(cap["fit"].shape, cap["target"])
    model = after - before                          # the fit's own motion of each landmark
    obs = cap["landmarks"][:, :2]
    moved = plan.forward(obs) - obs                 # where the warp really sends them
    rim = geometry.rim_mask()
    size = np.linalg.norm(model[rim], axis=1)
    assert size.mean() > 1.0                        # the outline does move at an arm's length
    along = (moved[rim] * model[rim]).sum(1) / size
    assert along.mean() > 0.85 * size.mean()
    inner = np.linalg.norm(moved[~rim] - model[~rim], axis=1)
    assert inner.mean() < 0.25                      # inside the face the spline interpolates (pixels)


def test_weights_cover_the_face_before_and_after_the_warp():
    """A very close face re-rendered from far: its outline moves out well past the input hull,
    and the head and person weights must still be 1 there (or the outline's motion is cut)."""
    w = h = 800
    f = geometry.focal_px(26.0, w, h)
    d = 0.2
    shape = geometry.face_model().mean * np.array([1.04, 0.97, 1.1])
    cam = (shape - shape.mean(0)) @ geometry.rodrigues(np.radians([4.0, -8.0, 2.0])).T + np.array([0.0, 0.0, d])
    lm = np.column_stack([f * cam[:, :2] / cam[:, 2:3] + w / 2, (cam[:, 2] - cam[:, 2].mean()) * f / d])
    fit = geometry.fit_face(lm, (w, h), f)
    fw = warp.face_warp(fit, lm, 5.0)
    n = len(lm)
    out = fw.at[:n]
    # The outline really moves beyond the 10 % growth the weights give the input hull.
    c = lm[:, :2].mean(0)
    grow = np.linalg.norm(out - c, axis=1) / np.linalg.norm(lm[:, :2] - c, axis=1)
    assert grow[geometry.rim_mask()].max() > 1.1
    heads = warp.head_weights((h, w), [fw])[0]
    person = warp.person_weight(np.zeros((h, w), np.float32), [fw])     # even with no person found
    for pts in (lm[:, :2], out):                                         # input and output positions
        assert warp.sample_bilinear(heads, pts).min() > 0.99
        assert warp.sample_bilinear(person, pts).min() > 0.99


def test_weights_built_small_give_the_same_box_and_field(selfie_plan, monkeypatch):
    rgb, plan, _ = selfie_plan
    monkeypatch.setattr(portrait, "WEIGHT_MAX_SIDE", 4096)      # full analysis resolution
    full = portrait.plan(rgb, PortraitParams(distance_m=1.5, focal_mm=26.0))
    assert np.abs(np.subtract(plan.box, full.box)).max() <= 6
    ys, xs = np.mgrid[200:400:10, 200:380:10]
    pts = np.column_stack([xs.ravel(), ys.ravel()]).astype(np.float64)
    assert np.abs(plan.backward(pts) - full.backward(pts)).max() < 0.5
