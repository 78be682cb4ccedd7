"""The face prior's mesh: mirror averaging makes it consistent under a left-right flip of the photo."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from priorfx.priors import face


@pytest.mark.parametrize("name", ["single_face.jpg", "astronaut.png"])
def test_mirrored_photo_gives_the_mirrored_mesh(sample_media, name):
    rgb = cv2.cvtColor(cv2.imread(str(sample_media / name)), cv2.COLOR_BGR2RGB).astype(np.float32) / 255
    flipped = np.ascontiguousarray(rgb[:, ::-1])
    w = rgb.shape[1]
    partner = face.mirror_map()
    assert np.array_equal(partner[partner], np.arange(468))
    assert partner[face.RIGHT_EYE_OUTER] == face.LEFT_EYE_OUTER and partner[face.NOSE_TIP] == face.NOSE_TIP

    def disagreement(mirror_average):
        a = face.find_faces(rgb, mirror_average=mirror_average)[0].points
        b = face.find_faces(flipped, mirror_average=mirror_average)[0].points[partner]
        b[:, 0] = w - b[:, 0]          # landmark x runs over [0, w] (pixel centres at +0.5)
        iod = np.linalg.norm(a[33, :2] - a[263, :2])
        return np.linalg.norm(a[:, :2] - b[:, :2], axis=1).mean() / iod

    plain, averaged = disagreement(False), disagreement(True)
    assert averaged < 0.01, averaged             # < 1 % of the eye distance
    assert averaged < 0.6 * plain, (plain, averaged)
