"""The real `priorfx matte` output of a real clip passes `priorfx publish`."""
from __future__ import annotations

import json

from priorfx import io as pio


def test_matte_sequence_publishes(cli, sample, tmp_path):
    plate = tmp_path / "plate"
    plate.mkdir()
    frames = pio.read_frames(str(sample("single_face.mp4")), (0, 2))
    for number, frame in zip(range(1001, 1004), frames):
        pio.write_image(plate / f"plate.{number:04d}.exr", frame[::4, ::4],
                        metadata={"oiio:ColorSpace": "sRGB"})
    results = tmp_path / "results"
    results.mkdir()
    r = cli("matte", str(plate / "plate.%04d.exr"), "-o", str(results / "matte.%04d.exr"),
            "--frames", "1002-1003", "--quiet")
    assert r.returncode == 0, r.stderr
    info = pio.read_image_info(results / "matte.1002.exr")
    assert info.colorspace and info.provenance["frame_range"] == [1002, 1003]
    shot = tmp_path / "shot"
    shot.mkdir()
    r = cli("publish", str(results), "--to", str(shot), "--plate", str(plate / "plate.%04d.exr"))
    assert r.returncode == 0, r.stdout + r.stderr
    manifest = json.loads((shot / "matte" / "v001" / "manifest.json").read_text())
    assert [f["frame"] for f in manifest["files"]] == [1002, 1003]
    for f in manifest["files"]:
        assert (shot / "matte" / "v001" / f["name"]).is_file()
