"""priorfx.cache: the keys and the store behind `priorfx matte --cache` (pure tests;
tests/matting/test_cache.py runs the command)."""
from __future__ import annotations

import os

import numpy as np
import pytest

from priorfx import cache


def _digests(frames, changed=None):
    return [{"plate": "edited" if f == changed else "p%d" % f} for f in frames]


RECIPE = cache.recipe("matte", {"quality": "best"}, ["m"], "1.0", ".exr")


def test_keys_are_deterministic_and_distinct():
    k1 = cache.frame_keys(RECIPE, _digests(range(1, 6)))
    assert k1 == cache.frame_keys(RECIPE, _digests(range(1, 6)))
    assert len(set(k1)) == 5 and all(len(k) == 64 for k in k1)


def test_chained_keys_renew_the_changed_frame_and_everything_after():
    base = cache.frame_keys(RECIPE, _digests(range(1001, 1011)))
    edit = cache.frame_keys(RECIPE, _digests(range(1001, 1011), changed=1005))
    assert [b == e for b, e in zip(base, edit)] == [True] * 4 + [False] * 6
    unchained = cache.frame_keys(RECIPE, _digests(range(1, 11)), chained=False)
    unchained_edit = cache.frame_keys(RECIPE, _digests(range(1, 11), changed=5), chained=False)
    assert [i for i, (a, b) in enumerate(zip(unchained, unchained_edit)) if a != b] == [4]


def test_a_later_range_start_starts_a_new_chain():
    """Frame 5 matted from frame 1 differs from frame 5 matted from frame 5 (recurrent state)."""
    full = cache.frame_keys(RECIPE, _digests(range(1, 11)))
    tail = cache.frame_keys(RECIPE, _digests(range(5, 11)))
    assert not set(full[4:]) & set(tail)


@pytest.mark.parametrize("change", [
    {"params": {"quality": "fast"}}, {"models": ["other"]}, {"version": "2.0"}, {"output_suffix": ".png"},
    {"unpremult": False}])
def test_any_setting_model_version_or_format_change_renews_every_frame(change):
    args = {"params": {"quality": "best"}, "models": ["m"], "version": "1.0", "output_suffix": ".exr"}
    extra = {k: v for k, v in change.items() if k not in args}
    other = cache.recipe("matte", change.get("params", args["params"]), change.get("models", args["models"]),
                         change.get("version", args["version"]), change.get("output_suffix", args["output_suffix"]),
                         **extra)
    base = cache.frame_keys(RECIPE, _digests(range(3)))
    assert not set(base) & set(cache.frame_keys(other, _digests(range(3))))


def test_guides_are_part_of_the_key():
    plain = cache.frame_keys(RECIPE, [{"plate": "p"}])
    assert cache.frame_keys(RECIPE, [{"plate": "p", "holdout": "h"}]) != plain


def test_digests_follow_bytes_and_pixels(tmp_path):
    a, b = tmp_path / "a.exr", tmp_path / "b.exr"
    a.write_bytes(b"\x76\x2f\x31\x01" + bytes(100))
    b.write_bytes(b"\x76\x2f\x31\x01" + bytes(100))
    assert cache.file_digest(a) == cache.file_digest(b)
    b.write_bytes(b"\x76\x2f\x31\x01" + bytes(99) + b"\x01")
    assert cache.file_digest(a) != cache.file_digest(b)
    px = np.zeros((4, 6, 3), np.float32)
    assert cache.pixels_digest(px) == cache.pixels_digest(px.copy())
    assert cache.pixels_digest(px) != cache.pixels_digest(px.reshape(6, 4, 3))   # same bytes, other shape
    px2 = px.copy()
    px2[1, 1, 1] = 1e-7
    assert cache.pixels_digest(px) != cache.pixels_digest(px2)


def test_store_links_in_and_out_and_leaves_no_temporaries(tmp_path):
    store = cache.FrameCache(tmp_path / "c")
    src = tmp_path / "m.0001.exr"
    src.write_bytes(b"frame one")
    key = cache.frame_keys(RECIPE, [{"plate": "p"}])[0]
    assert not store.has_all([key], ".exr")
    store.put(key, src)
    assert store.has_all([key], ".exr") and store.path(key, ".exr").parent.name == key[:2]
    dst = tmp_path / "out" / "m.0001.exr"
    dst.parent.mkdir()
    store.get(key, dst)
    assert dst.read_bytes() == b"frame one"
    assert os.stat(dst).st_ino == os.stat(src).st_ino   # a link: a 4K EXR is not copied
    assert [p.name for p in store.path(key, ".exr").parent.iterdir()] == [f"{key}.exr"]
    assert not store.has_all([], ".exr")
