"""The benchmark's sequences: the positions they report are where the person is."""
import numpy as np
import pytest

from priorfx.scenes.matting import SEQUENCE_KINDS, make_sequence
from priorfx.matting import metrics


@pytest.mark.parametrize("kind", SEQUENCE_KINDS)
def test_sequence_positions_are_the_ground_truths_motion(kind):
    rng = np.random.default_rng(0)
    alpha = np.zeros((120, 60), np.float32)
    alpha[20:110, 15:45] = 1.0
    alpha[10:20, 25:35] = 0.5  # a soft part, so the motion of edges shows
    fg = rng.random((120, 60, 3), dtype=np.float32)
    bg = rng.random((200, 300, 3), dtype=np.float32)
    frames, gts, positions = make_sequence(fg, alpha, bg, (960, 540), 6, kind)  # the benchmark size
    assert len(frames) == len(gts) == len(positions) == 6
    moved = [p != positions[0] for p in positions[1:]]
    assert any(moved)
    for gt, (x, y) in zip(gts, positions):
        dx, dy = x - positions[0][0], y - positions[0][1]
        np.testing.assert_array_equal(metrics.shift(gts[0], dx, dy), gt)


def test_a_trimap_case_without_known_foreground_is_skipped_not_crashed():
    """Thin fire under a wide trimap leaves no pixel known as foreground:
    closed-form and KNN cannot run, so the case is listed as skipped."""
    from priorfx.bench.matting import _trimap_case
    from priorfx.matting import MattingParams

    yy, xx = np.mgrid[0:80, 0:100]
    gt = np.clip(0.6 - np.hypot(yy - 40, xx - 50) / 60, 0, 1).astype(np.float32)  # never opaque
    img = np.dstack([gt, gt * 0.5, np.zeros_like(gt)]).astype(np.float32)
    row = _trimap_case(img, gt, 4, MattingParams(), "fire/x/plain/4px", "transparent")
    assert "no known foreground" in row["skipped"] and "sad_ours" not in row


def test_quick_subset_is_rule_chosen_and_holds_every_background_person_and_variant():
    """The quick run's automatic cases: one per background, and every person
    and every variant (plain / strands) among them; each trimap subject on a
    background of its own in turn, so every background appears there too."""
    from priorfx.bench.matting import quick_picks, quick_trimap_background

    picks = quick_picks(2, 4, 2)
    assert len(picks) == 4
    assert {b for _, b, _ in picks} == {0, 1, 2, 3}
    assert {p for p, _, _ in picks} == {0, 1} and {v for _, _, v in picks} == {0, 1}
    assert {(p, v) for p, _, v in picks} == {(0, 0), (1, 0), (0, 1), (1, 1)}
    assert {quick_trimap_background(s, 4) for s in range(5)} == {0, 1, 2, 3}
