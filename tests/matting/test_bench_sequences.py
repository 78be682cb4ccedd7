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
