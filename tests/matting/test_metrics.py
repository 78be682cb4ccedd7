"""Matting metrics against values worked out by hand."""
import numpy as np
import pytest

from priorfx.matting import metrics


def test_sad_mse_mad_by_hand():
    gt = np.array([[0.0, 1.0], [0.5, 0.25]])
    pred = np.array([[0.5, 1.0], [0.0, 0.25]])
    # |diff| = 0.5, 0, 0.5, 0 -> sum 1.0, mean 0.25; diff^2 mean = 0.5 / 4
    assert metrics.sad(pred, gt) == pytest.approx(1.0 / 1000)
    assert metrics.mad(pred, gt) == pytest.approx(0.25)
    assert metrics.mse(pred, gt) == pytest.approx(0.125)


def test_grad_ignores_a_constant_offset_and_sees_a_missing_edge():
    gt = np.zeros((20, 20))
    gt[:, 10:] = 1.0
    assert metrics.grad(gt, gt) == 0.0
    assert metrics.grad(np.clip(gt * 0.8 + 0.1, 0, 1), gt) == pytest.approx(
        metrics.grad(gt * 0.8, gt))  # an offset has no gradient
    flat = np.full_like(gt, 0.5)
    # all of gt's edge energy is missing: sum |grad gt|^2 / 1000
    from scipy import ndimage
    gx = ndimage.gaussian_filter(gt, 1.4, order=(0, 1), mode="nearest")
    gy = ndimage.gaussian_filter(gt, 1.4, order=(1, 0), mode="nearest")
    assert metrics.grad(flat, gt) == pytest.approx(float((gx ** 2 + gy ** 2).sum() / 1000))


def test_conn_by_hand():
    gt = np.ones((3, 3))
    pred = gt.copy()
    pred[1, 1] = 0.5
    # pred's centre leaves the common component at t = 0.6, so its level is 0.5:
    # d_pred = 0 -> phi 1; d_gt = 1 - 0.5 = 0.5 >= 0.15 -> phi 0.5; elsewhere equal.
    assert metrics.conn(pred, gt) == pytest.approx(0.5 / 1000)
    assert metrics.conn(gt, gt) == 0.0


def test_dtssd_by_hand():
    gts = [np.zeros((1, 2)), np.zeros((1, 2)), np.zeros((1, 2))]
    preds = [np.zeros((1, 2)), np.ones((1, 2)), np.ones((1, 2))]
    # pair 1: diff 1 everywhere -> rms 1; pair 2: 0 -> mean 0.5, x100
    assert metrics.dtssd(preds, gts) == pytest.approx(50.0)
    # the same motion in prediction and ground truth is not flicker
    assert metrics.dtssd(preds, preds) == 0.0


def test_dtssd_consistent_removes_flicker_and_keeps_moving_error():
    # a still subject whose matte flickers: the consistent version is still
    gts = [np.zeros((1, 2))] * 3
    preds = [np.full((1, 2), v) for v in (0.0, 0.3, 0.6)]
    assert metrics.dtssd(preds, gts) == pytest.approx(30.0)
    assert metrics.dtssd_consistent(preds, gts, [(0, 0)] * 3) == pytest.approx(0.0)
    # a one-pixel subject moving right by 1 px, matted at 0.8 in both frames,
    # with +-0.1 of flicker: per pair (dp - dg) is -0.2 at two of six pixels
    # -> sqrt(2 * 0.04 / 6) * 100 = 11.547 once the flicker is gone
    gts = [np.array([[0, 1, 0, 0, 0, 0.0]]), np.array([[0, 0, 1, 0, 0, 0.0]])]
    preds = [g * 0.8 + g * f for g, f in zip(gts, (0.1, -0.1))]
    assert metrics.dtssd_consistent(preds, gts, [(1, 0), (2, 0)]) == pytest.approx(11.547, abs=1e-3)
    assert metrics.dtssd([g * 0.8 for g in gts], gts) == pytest.approx(11.547, abs=1e-3)
    assert metrics.dtssd(preds, gts) > 12.0
    with pytest.raises(ValueError):
        metrics.dtssd_consistent(preds, gts, [(0, 0)])


def test_shift_moves_by_whole_pixels_and_fills_zero():
    x = np.arange(12, dtype=float).reshape(3, 4) + 1
    moved = metrics.shift(x, 1, -1)
    assert moved[0, 1:].tolist() == x[1, :3].tolist()
    assert moved[:, 0].tolist() == [0, 0, 0] and moved[2].tolist() == [0, 0, 0, 0]
    assert np.array_equal(metrics.shift(moved, -1, 1)[1:, :3], x[1:, :3])


def test_metrics_refuse_mismatched_shapes():
    with pytest.raises(ValueError):
        metrics.sad(np.zeros((2, 2)), np.zeros((2, 3)))
    with pytest.raises(ValueError):
        metrics.dtssd([np.zeros((2, 2))], [np.zeros((2, 2))])
