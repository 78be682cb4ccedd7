"""A long shot restarts its temporal state in fixed chunks (MattingParams.chunk_frames),
so one machine and a cluster give the same matte; the rule, checked on one machine."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from priorfx import io as pio
from priorfx.errors import UsageError
from priorfx.matting import MattingParams, matte_clip


@pytest.fixture(scope="module")
def two_shots(sample_media):
    from priorfx.samples import sample_path

    face = list(pio.read_frames(str(sample_path("single_face.mp4")), (0, 9)))
    street = list(pio.read_frames(str(sample_path("bikes.mp4")), (60, 66)))
    return [cv2.resize(f, (256, 144), interpolation=cv2.INTER_AREA) for f in face + street]


def _alphas(frames, **kw):
    return [r.alpha for r in matte_clip(frames, MattingParams(quality="fast", **kw))]


def test_chunks_restart_after_a_warmup_and_at_every_cut(two_shots):
    """10 frames of a face, a cut, 7 of a street; chunks of 4 primed on 2 frames:
    [0-3] [4-7] [8-9] | [10-13] [14-16], each as a fresh run from 2 frames before it."""
    chunked = _alphas(two_shots, chunk_frames=4, chunk_warmup=2)
    assert len(chunked) == 17
    for first, stop in ((0, 4), (4, 8), (8, 10), (10, 14), (14, 17)):
        read = first if first in (0, 10) else first - 2  # no warm-up across the cut at 10
        fresh = _alphas(two_shots[read:stop], chunk_frames=0)[first - read:]
        for k, (a, b) in enumerate(zip(chunked[first:stop], fresh)):
            assert np.array_equal(a, b), f"frame {first + k}"
    # the restarts are real: an unbroken run carries its state through them
    unbroken = _alphas(two_shots, chunk_frames=0)
    assert any(not np.array_equal(a, b) for a, b in zip(chunked[4:10], unbroken[4:10]))


@pytest.mark.parametrize("kw", [{"chunk_frames": 4, "chunk_warmup": 4}, {"chunk_frames": -1},
                                {"chunk_warmup": 0}, {"chunk_frames": 2.5}])
def test_bad_chunk_settings_are_usage_errors(kw):
    with pytest.raises(UsageError):
        MattingParams(**kw).validate()
