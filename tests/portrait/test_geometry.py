"""Known-answer geometry: a face seen at two distances, the fit and the dolly zoom."""
from __future__ import annotations

import numpy as np
import pytest

from priorfx.portrait import geometry


def _project(pts_cam: np.ndarray, f: float, c: np.ndarray) -> np.ndarray:
    return f * pts_cam[:, :2] / pts_cam[:, 2:3] + c


def _posed_face(rng, d: float):
    """A face that is not the mean face (scaled axes, smooth deformation), posed at distance d."""
    model = geometry.face_model()
    shape = model.mean * np.array([1.05, 0.96, 1.08])
    shape = shape + 0.002 * np.sin(shape @ np.array([30.0, -20.0, 10.0]))[:, None]
    rot = geometry.rodrigues(np.radians([6.0, -12.0, 3.0]))
    cam = (shape - shape.mean(0)) @ rot.T + np.array([0.01, -0.02, d])
    return cam


def _landmarks(cam: np.ndarray, f: float, c: np.ndarray, d: float) -> np.ndarray:
    """What the mesh model reports: x, y in pixels, z relative depth in pixels (weak perspective)."""
    xy = _project(cam, f, c)
    z = (cam[:, 2] - cam[:, 2].mean()) * f / d
    return np.column_stack([xy, z])


@pytest.mark.parametrize("d", [0.25, 0.4])
def test_fit_recovers_distance_and_dolly_zoom_moves_points_to_the_far_view(d):
    rng = np.random.default_rng(1)
    w = h = 800
    c = np.array([w / 2, h / 2])
    f = geometry.focal_px(26.0, w, h)
    cam = _posed_face(rng, d)
    near = _landmarks(cam, f, c, d)
    fit = geometry.fit_face(near, (w, h), f)
    assert abs(fit.distance_m - d) / d < 0.10, fit.distance_m

    # The far view: camera moved back to 1.5 m, focal scaled by 1.5 / d (face keeps its size).
    far_cam = cam + np.array([0, 0, 1.5 - d])
    far = _project(far_cam, f * 1.5 / d, c)
    before, after = fit.reproject(fit.shape, 1.5)
    corrected = near[:, :2] + (after - before)
    iod = np.linalg.norm(far[33] - far[263])
    err_in = np.linalg.norm(near[:, :2] - far, axis=1).mean() / iod
    err_out = np.linalg.norm(corrected - far, axis=1).mean() / iod
    assert err_in > 0.01                      # the perspective change is real
    assert err_out < 0.35 * err_in, (err_in, err_out)


def test_reprojection_is_continuous_in_the_target_distance():
    w = h = 800
    f = geometry.focal_px(26.0, w, h)
    cam = _posed_face(np.random.default_rng(2), 0.3)
    fit = geometry.fit_face(_landmarks(cam, f, np.array([400.0, 400.0]), 0.3), (w, h), f)
    mags = []
    for target in (fit.distance_m, 0.5, 1.0, 1.5, 3.0, 10.0):
        before, after = fit.reproject(fit.shape, target)
        mags.append(np.linalg.norm(after - before, axis=1).mean())
    assert mags[0] < 1e-9                     # target = current distance: nothing moves
    assert all(a < b for a, b in zip(mags, mags[1:]))   # farther -> more change, monotonically
    assert mags[-1] - mags[-2] < mags[1]      # and it saturates (orthographic limit)


def test_35mm_equivalent_focal_uses_the_image_diagonal():
    # A 36 x 24 mm frame is 3:2; at 36 mm-equivalent 50 mm, a 3000 x 2000 image has f = 50/36*3000 px.
    assert geometry.focal_px(50.0, 3000, 2000) == pytest.approx(50 / 36 * 3000, rel=1e-3)


def test_mean_face_is_metric_and_symmetric():
    m = geometry.face_model()
    ipd = np.linalg.norm((m.mean[33] + m.mean[133]) / 2 - (m.mean[263] + m.mean[362]) / 2)
    assert ipd == pytest.approx(0.063, rel=1e-3)
    assert m.mean[1, 2] < m.mean[:, 2].mean() - 0.02          # the nose tip is nearest the camera
    np.testing.assert_allclose(m.mean[m.mirror] * [-1, 1, 1], m.mean, atol=1e-4)


def test_benchmark_heads_are_not_the_faces_the_mean_face_was_built_from():
    import json
    from importlib import resources

    from priorfx.scenes import portrait as scenes

    record = json.loads(resources.files("priorfx.portrait").joinpath("mean_face.json").read_text())
    assert record["faces"] >= 5
    assert not set(record["sources"]) & set(scenes.SOURCES)


def test_visible_depth_is_the_front_surface_and_the_outline_moves_less_than_the_vertex_behind_it():
    """A face turned 35 degrees at 25 cm: the camera sees the cheek in front of the far-side outline."""
    w = h = 800
    c = np.array([w / 2, h / 2])
    f = geometry.focal_px(26.0, w, h)
    model = geometry.face_model()
    rot = geometry.rodrigues(np.radians([0.0, 35.0, 0.0]))
    fit = geometry.FaceFit(f, c, rot, np.array([0.0, 0.0, 0.25]), model.mean, 0.0)
    cam = fit.camera_points()
    proj = fit.project(cam)
    # Visible points: the surface at their own pixel is the point itself (nose tip, eye corners).
    for i in (1, 33, 263):
        assert fit.visible_depth(proj[i:i + 1])[0] == pytest.approx(cam[i, 2], abs=1e-3)
    # Some outline vertices are folded behind the near cheek: the visible surface there is nearer.
    depth = fit.visible_depth(proj)
    assert np.all(depth <= cam[:, 2] + 1e-6)
    hidden = depth < cam[:, 2] - 0.005
    assert hidden[geometry.rim_mask()].sum() >= 3 and not hidden[[1, 33, 263, 152]].any()
    # Moving back, what lies deeper moves outwards more (away from the principal point): the visible
    # surface in front of a folded outline vertex moves out less than the vertex.
    before, after = fit.reproject(fit.shape, 1.5)
    out = (proj - c) / np.linalg.norm(proj - c, axis=1, keepdims=True)
    vertex = ((after - before) * out).sum(1)
    surface = (fit.dolly(proj, depth, 1.5) * out).sum(1)
    assert np.all(surface[hidden] < vertex[hidden])
    assert (vertex - surface)[hidden & geometry.rim_mask()].mean() > 1.0     # pixels, at 800 px
    np.testing.assert_allclose(fit.dolly(proj, cam[:, 2], 1.5), after - before, atol=1e-6)
    # Off the face, a point takes the depth of the outline next to it; far away, none.
    outside = proj[234:235] + (proj[234:235] - proj.mean(0)) * 0.1
    assert np.isfinite(fit.visible_depth(outside)[0])
    assert np.isnan(fit.visible_depth(np.array([[-5000.0, -5000.0]]))[0])
