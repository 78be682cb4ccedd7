"""`priorfx matte --cache DIR`: the per-frame store the Nuke node, farm renders and the CLI share."""
from __future__ import annotations

import json

import numpy as np

from priorfx import io as pio


def _plate(folder, photo, frames=(1, 2, 3)):
    folder.mkdir(parents=True, exist_ok=True)
    for k in frames:
        pio.write_image(folder / f"plate.{k:04d}.exr", np.ascontiguousarray(np.roll(photo, 3 * k, axis=1)))
    return str(folder / "plate.%04d.exr")


def _matte(cli, plate, out, cache, env=None):
    proc = cli("matte", plate, "-o", out, "--quality", "fast", "--cache", str(cache), "--json",
               "--progress", "none", env=env)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_a_second_run_comes_from_the_cache_without_inference(cli, sample_media, tmp_path):
    photo = pio.read_image(sample_media / "grace_hopper.jpg")[::5, ::5, :3]
    plate = _plate(tmp_path / "plate", photo)
    cache = tmp_path / "cache"
    (tmp_path / "a").mkdir()
    first = _matte(cli, plate, str(tmp_path / "a" / "m.%04d.exr"), cache)
    assert (first["frames"], first["cached"]) == (3, 0)
    assert len(list((cache / "store").rglob("*.exr"))) == 3
    # An empty model store: any inference would fail, so the answer must come from the cache.
    (tmp_path / "b").mkdir()
    second = _matte(cli, plate, str(tmp_path / "b" / "m.%04d.exr"), cache,
                    env={"PRIORFX_HOME": str(tmp_path / "no-models")})
    assert (second["frames"], second["cached"]) == (3, 3)
    for k in (1, 2, 3):
        assert (tmp_path / "b" / f"m.{k:04d}.exr").read_bytes() == (tmp_path / "a" / f"m.{k:04d}.exr").read_bytes()
    assert [p.name for p in (tmp_path / "b").iterdir() if p.name.startswith(".")] == []  # no staging left


def test_a_changed_frame_or_setting_is_computed_again(cli, sample_media, tmp_path):
    photo = pio.read_image(sample_media / "grace_hopper.jpg")[::5, ::5, :3]
    plate = _plate(tmp_path / "plate", photo)
    cache = tmp_path / "cache"
    (tmp_path / "a").mkdir()
    _matte(cli, plate, str(tmp_path / "a" / "m.%04d.exr"), cache)
    pio.write_image(tmp_path / "plate" / "plate.0002.exr", np.ascontiguousarray(photo[::-1]))  # a new frame 2
    again = _matte(cli, plate, str(tmp_path / "a" / "m.%04d.exr"), cache)
    assert again["cached"] == 0   # frame 2 changed: 2 and 3 are new, and the range is computed again
    assert len(list((cache / "store").rglob("*.exr"))) == 5   # frame 1's key is unchanged
    proc = cli("matte", plate, "-o", str(tmp_path / "a" / "m.%04d.exr"), "--quality", "best", "--cache",
               str(cache), "--json", "--progress", "none")
    assert proc.returncode == 0 and json.loads(proc.stdout)["cached"] == 0


def test_cache_with_a_video_output_is_a_usage_error(cli, sample_media, tmp_path):
    proc = cli("matte", str(sample_media / "grace_hopper.jpg"), "-o", str(tmp_path / "m.mp4"),
               "--cache", str(tmp_path / "cache"))
    assert proc.returncode == 2 and "--cache" in proc.stderr and "image sequence" in proc.stderr
    assert not (tmp_path / "m.mp4").exists()
