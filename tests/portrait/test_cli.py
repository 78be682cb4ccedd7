"""`priorfx undistort` as a user (and the GIMP plug-in) runs it: real files, exit codes."""
from __future__ import annotations

import json

import numpy as np
import pytest

from priorfx.io import read_image, read_image_info, write_image


@pytest.fixture(scope="module")
def selfie_pixels(sample_media):
    return read_image(sample_media / "single_face.jpg")


def test_undistort_writes_the_corrected_image_with_provenance_and_overlay(cli, sample, tmp_path, selfie_pixels):
    out = tmp_path / "fixed.png"
    r = cli("undistort", str(sample("single_face.jpg")), "-o", str(out), "--focal-mm", "26", "--debug-overlay",
            "--json", "--quiet")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["focal_source"] == "user" and report["focal_mm"] == 26.0
    face = report["faces"][0]
    assert len(report["faces"]) == 1 and 0.2 < face["distance_m"] < 0.6 and face["corrected"]
    assert face["distance_low_m"] < face["distance_m"] < face["distance_high_m"]
    img = read_image(out)
    assert img.shape == selfie_pixels.shape
    assert np.abs(img - selfie_pixels).max() > 0.2                # the face changed
    assert np.abs(img[:, :100] - selfie_pixels[:, :100]).max() < 2 / 255   # the background did not
    info = read_image_info(out)
    assert info.provenance["operation"] == "undistort"
    assert info.provenance["focal_source"] == "user"
    assert (tmp_path / "fixed.debug.png").is_file()


def test_without_exif_each_face_gets_a_distance_interval_and_a_far_one_is_left_alone(cli, sample, tmp_path,
                                                                                    selfie_pixels):
    out = tmp_path / "same.png"
    r = cli("undistort", str(sample("single_face.jpg")), "-o", str(out), "--quiet")
    assert r.returncode == 0, r.stderr
    line = next(ln for ln in r.stderr.splitlines() if ln.startswith("face 0: about "))
    assert "from the camera" in line and "(focal " in line and "perspective" in line
    r = cli("undistort", str(sample("single_face.jpg")), "-o", str(out), "--json", "--quiet")
    face = json.loads(r.stdout)["faces"][0]
    assert face["focal_source"] == "perspective"
    assert face["distance_low_m"] <= face["distance_m"]
    assert face["distance_high_m"] is None or face["distance_m"] <= face["distance_high_m"]
    if not face["corrected"]:
        # Nothing to correct: the picture comes back as it was, pixel for pixel.
        assert "nothing to correct" in line
        np.testing.assert_array_equal(read_image(out), selfie_pixels)


def test_no_face_exits_6_and_writes_nothing(cli, sample, tmp_path):
    out = tmp_path / "never.png"
    r = cli("undistort", str(sample("coffee.png")), "-o", str(out), "--quiet")
    assert r.returncode == 6
    assert "no face found" in r.stderr
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_focal_length_comes_from_exif(cli, tmp_path, selfie_pixels):
    src = tmp_path / "exif.jpg"
    write_image(src, selfie_pixels, metadata={"Exif:FocalLengthIn35mmFilm": 52})
    assert read_image_info(src).focal_35mm == 52
    r = cli("undistort", str(src), "-o", str(tmp_path / "a.jpg"), "--json", "--quiet")
    assert r.returncode == 0, r.stderr
    exif = json.loads(r.stdout)
    assert exif["focal_source"] == "exif" and exif["exif_focal_mm"] == 52 and exif["focal_mm"] is None
    # The EXIF value is a prior weighed with the perspective: near it, not necessarily on it.
    assert exif["faces"][0]["focal_source"] == "perspective+exif"
    assert 52 / 2 < exif["faces"][0]["focal_mm"] < 52 * 2
    users = []
    for focal in ("26", "52"):
        r = cli("undistort", str(src), "-o", str(tmp_path / "b.jpg"), "--focal-mm", focal, "--json", "--quiet")
        users.append(json.loads(r.stdout))
        assert users[-1]["focal_source"] == "user" and users[-1]["faces"][0]["focal_mm"] == pytest.approx(float(focal))
    # A given focal length is a fact: same face size in pixels, twice the focal length -> twice as far.
    ratio = users[1]["faces"][0]["distance_m"] / users[0]["faces"][0]["distance_m"]
    assert ratio == pytest.approx(2.0, rel=0.05)


def test_16_bit_rgba_png_stays_16_bit_rgba(cli, tmp_path, selfie_pixels):
    h, w = selfie_pixels.shape[:2]
    alpha = np.ones((h, w, 1), np.float32)
    alpha[:, : w // 3] = 0.25
    src = tmp_path / "deep.png"
    write_image(src, np.concatenate([selfie_pixels, alpha], axis=2), bits=16)
    out = tmp_path / "deep_out.png"
    r = cli("undistort", str(src), "-o", str(out), "--quiet")
    assert r.returncode == 0, r.stderr
    info = read_image_info(out)
    assert info.pixel_type == "uint16" and info.nchannels == 4
    back = read_image(out)
    # 16-bit precision kept: untouched background pixels round-trip to within 1/65535.
    np.testing.assert_allclose(back[:, :80, :3], selfie_pixels[:, :80], atol=2 / 65535)
    np.testing.assert_allclose(back[:, :80, 3], 0.25, atol=2 / 65535)


def test_png_compression_trades_file_size_for_speed_with_the_same_pixels(cli, sample, tmp_path):
    # The GIMP filter hands its result back with --png-compression 1: lossless, only the file is larger.
    sizes, pixels = {}, {}
    for level in (None, "1", "0"):
        out = tmp_path / f"out_{level}.png"
        extra = [] if level is None else ["--png-compression", level]
        r = cli("undistort", str(sample("single_face.jpg")), "-o", str(out), "--focal-mm", "26", "--quiet", *extra)
        assert r.returncode == 0, r.stderr
        sizes[level], pixels[level] = out.stat().st_size, read_image(out)
    assert sizes[None] < sizes["1"] < sizes["0"]
    h, w = pixels[None].shape[:2]
    assert sizes["0"] > h * w * 3                      # level 0 stores the pixels as they are
    assert np.array_equal(pixels["1"], pixels[None]) and np.array_equal(pixels["0"], pixels[None])
    jpg = tmp_path / "out.jpg"
    r = cli("undistort", str(sample("single_face.jpg")), "-o", str(jpg), "--png-compression", "1", "--quiet")
    assert r.returncode == 2 and "--png-compression is for PNG output" in r.stderr and "hint" in r.stderr
    assert not jpg.exists()


def test_undistort_starts_without_importing_the_other_commands():
    # Every GIMP Apply starts `priorfx undistort`: registering all commands imported
    # every benchmark, the shutter scenes and the matting code first (~1.3 s loaded).
    import subprocess
    import sys
    code = ("import sys; from priorfx.cli import build_parser; p = build_parser('undistort'); "
            "a = p.parse_args(['undistort', 'in.png', '-o', 'out.png', '--png-compression', '1']); "
            "print(a.png_compression, sorted(m for m in sys.modules if m.startswith(('priorfx.matting', "
            "'priorfx.scenes', 'priorfx.bench', 'priorfx.shutter'))))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split(None, 1) == ["1", "[]\n"]


@pytest.mark.parametrize("args, needle", [
    (["--strength", "2"], "strength"),
    (["--distance", "0"], "distance_m"),
    (["--focal-mm", "-5"], "focal_mm"),
])
def test_bad_options_exit_2_without_output(cli, sample, tmp_path, args, needle):
    out = tmp_path / "x.png"
    r = cli("undistort", str(sample("single_face.jpg")), "-o", str(out), "--quiet", *args)
    assert r.returncode == 2
    assert needle in r.stderr and "hint" in r.stderr
    assert not out.exists()


def test_worker_portrait_answers_each_request_like_the_command(cli, sample, tmp_path):
    """`priorfx worker portrait` (the GIMP dialog's preview process): one JSON reply
    per request line, the same pixels and faces as `priorfx undistort`, bad
    requests answered with an error naming them, and the loop goes on."""
    src = sample("single_face.jpg")
    ref = tmp_path / "ref.png"
    r = cli("undistort", str(src), "-o", str(ref), "--focal-mm", "26", "--distance", "2", "--json", "--quiet")
    assert r.returncode == 0, r.stderr
    requests = [
        {"input": str(src), "output": str(tmp_path / "w.png"), "distance": 2.0, "strength": 1.0, "focal_mm": 26},
        "not json",
        {"input": str(src), "output": str(tmp_path / "bad.png"), "distance": -3},
        {"input": str(tmp_path / "-x.png"), "output": str(tmp_path / "none.png")},
    ]
    lines = "".join((q if isinstance(q, str) else json.dumps(q)) + "\n" for q in requests)
    w = cli("worker", "portrait", input=lines)
    assert w.returncode == 0, w.stderr
    replies = [json.loads(line) for line in w.stdout.splitlines()]
    assert len(replies) == 4
    ok, garbled, bad, missing = replies
    assert ok["ok"] and ok["faces"] == json.loads(r.stdout)["faces"]
    assert ok["messages"][0].startswith("face 0: about ") and "re-rendered at 200 cm" in ok["messages"][0]
    assert np.array_equal(read_image(tmp_path / "w.png"), read_image(ref))
    assert not garbled["ok"] and garbled["error"] == "usage" and "not json" in garbled["message"]
    assert not bad["ok"] and bad["message"] == "distance_m -3.0 is outside 0.05..100" and bad["hint"]
    assert not missing["ok"] and missing["error"] == "input" and "-x.png" in missing["message"]
    assert not (tmp_path / "bad.png").exists() and not (tmp_path / "none.png").exists()
