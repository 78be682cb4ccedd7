"""The "Undistort Selfie" filter in real GIMP 3 (headless gimp-console, trixie chroot).

One GIMP batch run (module fixture) calls the plug-in's PDB procedure for every
case, as a batch script would; the tests then check what a user checks: the
status, the message, the layers, their offsets and alpha, and the pixels
against `priorfx undistort` run on the host on the same input with the same
parameters.

Tolerances (8-bit levels, 0..255):
- same input pixels (the batch exports the layer and the CLI reads that file):
  max difference <= 1 level (PNG encode/decode only);
- the same JPEG decoded by GIMP (libjpeg-turbo in trixie) and by the core
  (OpenImageIO's): the decoders differ by up to a few levels on some pixels,
  so mean <= 0.25 level and 99.9th percentile <= 6 levels.
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import gimp_chroot  # noqa: E402
import gimp_harness  # noqa: E402

from priorfx import io as pio  # noqa: E402

pytestmark = [pytest.mark.host, pytest.mark.slow]

PROC = "plug-in-priorfx-undistort-selfie"
MANUAL = {"distance": 1.2, "focal-mode": "manual", "focal-mm": 30.0, "strength": 0.8}
MANUAL_CLI = ["--distance", "1.2", "--focal-mm", "30", "--strength", "0.8"]
SAME_INPUT_MAX = 1.0 / 255 + 1e-6
DECODER_MEAN, DECODER_P999 = 0.25 / 255, 6.0 / 255


@pytest.fixture(scope="module")
def gimp_root() -> Path:
    try:
        return gimp_chroot.build()
    except gimp_chroot.ChrootUnavailable as exc:
        pytest.fail(f"GIMP 3 (Debian trixie chroot) is not available, so the GIMP plug-in "
                    f"was NOT tested: {exc}", pytrace=False)


def _rgba_selfie(src: Path, dst: Path) -> None:
    """The selfie with a soft elliptical alpha (a cut-out person layer)."""
    rgb = pio.read_image(src)[..., :3]
    h, w = rgb.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w]
    r = np.hypot((xx - w / 2) / (0.48 * w), (yy - h / 2) / (0.55 * h))
    alpha = np.clip((1.0 - r) * 4.0, 0.0, 1.0).astype(np.float32)[..., None]
    pio.write_image(dst, np.concatenate([rgb, alpha], axis=2), bits=8)


def _exif_selfie(src: Path, dst: Path, focal_35mm: int) -> None:
    """The selfie as a JPEG whose EXIF says FocalLengthIn35mmFilm."""
    import OpenImageIO as oiio
    buf = oiio.ImageBuf(str(src))
    buf.specmod().attribute("Exif:FocalLengthIn35mmFilm", focal_35mm)
    buf.specmod().attribute("compression", "jpeg:98")
    assert buf.write(str(dst)), buf.geterror()


def run_cli(*args: str) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("priorfx")
    return subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=600)


class _Server:
    """`priorfx serve` on 127.0.0.1 (the chroot shares the host's network)."""

    def __init__(self):
        exe = Path(sys.executable).with_name("priorfx")
        env = {k: v for k, v in os.environ.items() if k != "PRIORFX_TOKEN"}
        self.proc = subprocess.Popen([str(exe), "serve", "--port", "0"], stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, text=True, env=env)
        line = self.proc.stdout.readline()
        m = re.search(r"listening on (http://\S+)", line)
        if not m:
            self.stop()
            raise RuntimeError(f"priorfx serve did not start: {line!r}")
        self.url = m.group(1)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture(scope="module")
def gimp(gimp_root, sample_media, tmp_path_factory):
    """Install the plug-in with the real installer, run every case in one GIMP session."""
    work = gimp_harness.GimpWork(tmp_path_factory.mktemp("gimp")).make()
    d = work.root
    inst = run_cli("install", "gimp", "--plugins-dir", str(work.plugins_dir))
    assert inst.returncode == 0, inst.stderr
    selfie = sample_media / "single_face.jpg"
    _rgba_selfie(selfie, d / "rgba.png")
    _exif_selfie(selfie, d / "exif50.jpg", 50)

    server = _Server()
    try:
        remote_dir = d / "remote-install"
        rem = run_cli("install", "gimp", "--plugins-dir", str(remote_dir), "--remote", server.url)
        assert rem.returncode == 0, rem.stderr
        cases = [
            {"name": "selfie", "input": str(selfie), "params": {**MANUAL},
             "output": str(d / "selfie_out.png")},
            {"name": "noface", "input": str(sample_media / "coffee.png"), "params": {**MANUAL}},
            {"name": "rgba_offsets", "input": str(d / "rgba.png"), "canvas": [700, 650],
             "offsets": [37, 21], "params": {**MANUAL, "output": "in-place"},
             "input_export": str(d / "rgba_in.png"), "output": str(d / "rgba_out.png")},
            {"name": "exif_auto", "input": str(d / "exif50.jpg"),
             "params": {"distance": 1.2, "focal-mode": "auto", "strength": 0.8},
             "output": str(d / "exif_out.png")},
            {"name": "u16", "input": str(selfie), "precision": "U16_NON_LINEAR", "params": {**MANUAL},
             "format": "rgb16", "input_export": str(d / "u16_in.png"), "output": str(d / "u16_out.png")},
            {"name": "linear", "input": str(selfie), "precision": "FLOAT_LINEAR", "params": {**MANUAL},
             "format": "rgb16", "output": str(d / "linear_out.png")},
            {"name": "linear8", "input": str(selfie), "precision": "U8_LINEAR", "params": {**MANUAL},
             "output": str(d / "linear8_out.png")},
            {"name": "remote", "input": str(selfie), "params": {**MANUAL},
             "core_config": str(remote_dir / "priorfx-undistort" / "priorfx_host.json"),
             "output": str(d / "remote_out.png")},
        ]
        spec = {"results": str(d / "results.json"), "cases": cases,
                "plugin_config": str(work.plugins_dir / "priorfx-undistort" / "priorfx_host.json")}
        (d / "spec.json").write_text(json.dumps(spec))
        proc = gimp_harness.run_batch(gimp_root, work, (HERE / "gimp_batch_cases.py").read_text(),
                                      {"PRIORFX_GIMP_SPEC": str(d / "spec.json")})
        server_log = None
    finally:
        server.stop()
    results = gimp_harness.read_results(d / "results.json", proc)
    return SimpleNamespace(dir=d, results=results, proc=proc, selfie=selfie, server_log=server_log)


def _case(gimp, name: str) -> dict:
    res = gimp.results[name]
    assert "exception" not in res, res["exception"]
    return res


def _cli_output(cli, src: Path, dst: Path, *args: str) -> np.ndarray:
    proc = cli("undistort", str(src), "-o", str(dst), "--quiet", *args)
    assert proc.returncode == 0, proc.stderr
    return pio.read_image(dst)


def _diff(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    assert a.shape == b.shape, (a.shape, b.shape)
    return np.abs(a.astype(np.float64) - b.astype(np.float64))


def test_filter_is_registered_in_the_distorts_menu_with_the_dialog_parameters(gimp):
    r = gimp.results
    assert r["procedure_registered"], gimp.proc.stderr[-3000:]
    assert r["menu_paths"] == ["<Image>/Filters/Distorts"]
    assert r["menu_label"].replace("_", "") == "Undistort Selfie..."
    assert r["arguments"][3:] == ["distance", "focal-mode", "focal-mm", "strength", "output"]


def test_selfie_gives_a_new_layer_equal_to_the_cli_output(gimp, cli):
    res = _case(gimp, "selfie")
    assert res["status"] == "success", res.get("error")
    layers = res["after"]["layers"]
    assert [l["name"] for l in layers] == ["Background (undistorted)", "Background"]
    assert res["result_layer"]["name"] == "Background (undistorted)"
    assert res["after"]["digest"] == res["before"]["digest"], "the source layer was modified"
    ours = pio.read_image(gimp.dir / "selfie_out.png")
    ref = _cli_output(cli, gimp.selfie, gimp.dir / "selfie_cli.png", *MANUAL_CLI)
    d = _diff(ours, ref)
    assert d.mean() <= DECODER_MEAN and np.percentile(d, 99.9) <= DECODER_P999, \
        (d.mean() * 255, np.percentile(d, 99.9) * 255)
    # and it really is the correction, not the input passed through
    moved = _diff(pio.read_image(gimp.selfie), ref)
    assert moved.max() > 20 / 255 and np.percentile(moved, 99) > 8 * np.percentile(d, 99)


def test_no_face_leaves_the_image_unchanged_and_returns_an_error(gimp):
    res = _case(gimp, "noface")
    assert res["status"] == "execution-error"
    assert "no face" in res["error"].lower() and "not changed" in res["error"]
    assert res["after"]["layers"] == res["before"]["layers"]
    assert res["after"]["digest"] == res["before"]["digest"]


def test_rgba_layer_with_offsets_is_corrected_in_place(gimp, cli):
    res = _case(gimp, "rgba_offsets")
    assert res["status"] == "success", res.get("error")
    assert res["before"]["layers"][0]["alpha"] and res["before"]["layers"][0]["offsets"] == [37, 21]
    assert len(res["after"]["layers"]) == 1  # in place: no new layer
    layer = res["after"]["layers"][0]
    assert layer["offsets"] == [37, 21] and layer["alpha"] and layer["size"] == [572, 562]
    assert res["after"]["digest"] != res["before"]["digest"]
    ours = pio.read_image(gimp.dir / "rgba_out.png")
    ref = _cli_output(cli, gimp.dir / "rgba_in.png", gimp.dir / "rgba_cli.png", *MANUAL_CLI)
    assert ours.shape[2] == 4 and ref.shape[2] == 4
    d = _diff(ours, ref)
    assert d.max() <= SAME_INPUT_MAX, d.max() * 255
    assert _diff(pio.read_image(gimp.dir / "rgba_in.png"), ref).max() > 20 / 255


def test_auto_focal_length_comes_from_the_photos_exif(gimp, cli):
    res = _case(gimp, "exif_auto")
    assert res["status"] == "success", res.get("error")
    src = gimp.dir / "exif50.jpg"
    ours = pio.read_image(gimp.dir / "exif_out.png")
    ref = _cli_output(cli, src, gimp.dir / "exif_cli.png", "--distance", "1.2", "--strength", "0.8")
    other = _cli_output(cli, src, gimp.dir / "exif_cli26.png", "--distance", "1.2", "--strength", "0.8",
                        "--focal-mm", "26")
    d = _diff(ours, ref)
    assert d.mean() <= DECODER_MEAN and np.percentile(d, 99.9) <= DECODER_P999
    # 50 mm from EXIF gives a visibly different result from the 26 mm default
    assert _diff(ours, other).mean() > 4 * d.mean()


def test_16_bit_image_keeps_its_precision(gimp, cli):
    res = _case(gimp, "u16")
    assert res["status"] == "success", res.get("error")
    assert res["after"]["precision"] == "u16-non-linear"
    ours = pio.read_image(gimp.dir / "u16_out.png")
    ref = _cli_output(cli, gimp.dir / "u16_in.png", gimp.dir / "u16_cli.png", *MANUAL_CLI)
    assert pio.read_image_info(gimp.dir / "u16_cli.png").pixel_type == "uint16", \
        "the core wrote 8 bits for a 16-bit PNG (priorfx undistort should keep 16-bit input 16-bit)"
    assert _diff(ours, ref).max() <= 2 / 65535
    # interpolated values between the 8-bit levels survive the round trip
    levels = np.round(ours * 65535) / 257
    assert np.mean(np.abs(levels - np.round(levels)) > 0.01) > 0.2


def test_linear_light_image_gives_the_same_picture_as_the_srgb_one(gimp):
    """A 32-bit linear-light image goes to the core as a 16-bit perceptual PNG
    (GIMP converts), so the core, which reads PNG as sRGB, sees the same
    picture as for the 8-bit photo; the result returns to linear light."""
    res = _case(gimp, "linear")
    assert res["status"] == "success", res.get("error")
    assert res["after"]["precision"] == "float-linear"
    ours = pio.read_image(gimp.dir / "linear_out.png")[..., :3]
    ref = pio.read_image(gimp.dir / "selfie_out.png")[..., :3]
    assert _diff(ours, ref).mean() * 255 < 1.0
    # 8-bit linear light too
    res = _case(gimp, "linear8")
    assert res["status"] == "success" and res["after"]["precision"] == "u8-linear"
    ours = pio.read_image(gimp.dir / "linear8_out.png")[..., :3]
    assert _diff(ours, ref).mean() * 255 < 2.0  # 8-bit linear loses dark levels


@pytest.mark.network
def test_remote_mode_runs_on_a_priorfx_server(gimp, cli):
    res = _case(gimp, "remote")
    assert res["status"] == "success", res.get("error")
    ours = pio.read_image(gimp.dir / "remote_out.png")
    local = pio.read_image(gimp.dir / "selfie_out.png")
    assert _diff(ours, local).max() <= SAME_INPUT_MAX
    assert res["core_config"]["remote"].startswith("http://127.0.0.1:")


@pytest.mark.slow
def test_the_filter_installed_from_the_wheel_runs_in_gimp(gimp_root, wheel_install, sample_media, cli,
                                                          tmp_path_factory):
    """`pip install priorfx` + `priorfx install gimp`, with no checkout anywhere: same picture."""
    work = gimp_harness.GimpWork(tmp_path_factory.mktemp("gimp-wheel")).make()
    d = work.root
    inst = wheel_install.run("install", "gimp", "--plugins-dir", str(work.plugins_dir))
    assert inst.returncode == 0, inst.stderr
    selfie = sample_media / "single_face.jpg"
    spec = {"results": str(d / "results.json"),
            "cases": [{"name": "selfie", "input": str(selfie), "params": {**MANUAL},
                       "output": str(d / "selfie_out.png")}]}
    (d / "spec.json").write_text(json.dumps(spec))
    proc = gimp_harness.run_batch(gimp_root, work, (HERE / "gimp_batch_cases.py").read_text(),
                                  {"PRIORFX_GIMP_SPEC": str(d / "spec.json")},
                                  binds=[wheel_install.venv.resolve()])
    res = gimp_harness.read_results(d / "results.json", proc)["selfie"]
    assert "exception" not in res, res["exception"]
    assert res["status"] == "success", res.get("error")
    ours = pio.read_image(d / "selfie_out.png")
    ref = _cli_output(cli, selfie, d / "selfie_cli.png", *MANUAL_CLI)
    diff = _diff(ours, ref)
    assert diff.mean() <= DECODER_MEAN and np.percentile(diff, 99.9) <= DECODER_P999
