"""End to end: the adapter's job path on a real EXR sequence through the real core.

The plate is three frames of a real webcam clip (single_face.mp4) written as
half-float RGBA EXR, as Nuke's internal Write exports it. The local engine
runs the real `priorfx matte`; the remote engine the same command against a
real `priorfx serve` on 127.0.0.1.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from waits import wait_for

from priorfx_nuke import jobs, logic, node as pnode
from priorfx_nuke.logic import MatteSettings

PRIORFX = str(Path(sys.executable).with_name("priorfx"))
FIRST, LAST = 1001, 1003
SIZE = (256, 144)
LONG = 40


def _srgb_to_linear(x):
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4).astype(np.float32)


def _linear_to_srgb(x):
    x = np.clip(x, 0.0, None)
    return np.where(x <= 0.0031308, x * 12.92, 1.055 * x ** (1 / 2.4) - 0.055).astype(np.float32)


def _write_rgba(path, rgb):
    from priorfx import io as pio
    rgba = np.concatenate([rgb, np.ones_like(rgb[..., :1])], axis=2)
    pio.write_image(path, rgba, ["R", "G", "B", "A"], bits=16)


@pytest.fixture(scope="module")
def plates(sample_media, tmp_path_factory):
    """display-encoded and scene-linear versions of the same 3-frame plate."""
    import cv2

    from priorfx import io as pio
    from priorfx.samples import sample_path
    root = tmp_path_factory.mktemp("plates")
    clip = pio.read_frames(sample_path("single_face.mp4"), (1, 3))
    for i, frame in enumerate(clip):
        small = cv2.resize(frame, SIZE, interpolation=cv2.INTER_AREA)
        _write_rgba(root / "srgb.{}.exr".format(FIRST + i), small)
        _write_rgba(root / "linear.{}.exr".format(FIRST + i), _srgb_to_linear(small))
    # A longer shot (the clip's first frames, slowly panned) for cancelling mid-way.
    base = cv2.resize(clip[0], (SIZE[0] + 40, SIZE[1]), interpolation=cv2.INTER_AREA)
    for i in range(LONG):
        _write_rgba(root / "long.{}.exr".format(FIRST + i), np.ascontiguousarray(base[:, i:i + SIZE[0]]))
    return {"srgb": str(root / "srgb.%04d.exr"), "linear": str(root / "linear.%04d.exr"),
            "long": str(root / "long.%04d.exr"), "root": root}


def _read(path):
    from priorfx import io as pio
    info = pio.read_image_info(path)
    return dict(zip(info.channel_names, np.moveaxis(pio.read_image(path), 2, 0))), info


def _local(env=None):
    return jobs.make_engine("local", "", dict(env or os.environ, PRIORFX_EXE=PRIORFX))


def _check_matte(path):
    """What a compositor checks in the result: channels, a person matte, premult, provenance."""
    ch, info = _read(path)
    assert set(info.channel_names) == set(logic.EXR_CHANNELS)
    a = ch["A"]
    assert a.shape == (SIZE[1], SIZE[0]) and 0.0 <= a.min() and a.max() <= 1.0
    assert a[60:100, 110:150].mean() > 0.9       # the face / chest of the person
    assert a[:20, :20].max() < 0.05 and a[:20, -20:].max() < 0.05  # door and wall behind
    np.testing.assert_allclose(ch["matte.alpha"], a, atol=1e-3)
    np.testing.assert_allclose(ch["R"], ch["fg.R"] * a, atol=3e-3)  # R,G,B premultiplied
    assert 0.0 <= ch["matte.confidence"].min() and ch["matte.confidence"].max() <= 1.0
    prov = info.provenance
    assert prov["operation"] == "matte" and logic.MODEL_ID in prov["models"]
    return ch


def test_local_engine_on_a_real_sequence_then_the_cache(plates, tmp_path):
    layout = logic.cache_layout(str(tmp_path / "cache"), "n1")
    ticks = []
    r1 = jobs.process_range(_local(), layout, {"plate": plates["srgb"]}, FIRST, LAST,
                            MatteSettings(quality="fast"), lambda d, t, m: ticks.append((d, t)))
    assert (r1.made, r1.cached) == (3, 0) and r1.identity.engine == "local"
    import priorfx
    assert r1.identity.version == priorfx.__version__
    assert ticks[-1] == (3, 3)
    for f in range(FIRST, LAST + 1):
        ch = _check_matte(logic.frame_path(layout.out_pattern(), f))
    assert ch["matte.confidence"].min() < 1.0  # the refined band is less certain
    mtime = os.stat(logic.frame_path(layout.out_pattern(), FIRST)).st_mtime_ns
    r2 = jobs.process_range(_local(), layout, {"plate": plates["srgb"]}, FIRST, LAST,
                            MatteSettings(quality="fast"))
    assert (r2.made, r2.cached) == (0, 3)   # served by the core's --cache, no inference
    assert os.stat(logic.frame_path(layout.out_pattern(), FIRST)).st_mtime_ns == mtime
    # The same store serves a plain CLI run (a farm render, a shell) of the same frames.
    direct = tmp_path / "direct"
    direct.mkdir()
    r = subprocess.run([PRIORFX, "matte", plates["srgb"], "-o", str(direct / "m.%04d.exr"), "--frames",
                        "{}-{}".format(FIRST, LAST), "--quality", "fast", "--temporal", "0.5", "--cache",
                        layout.root, "--json", "--progress", "json"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["cached"] == 3


def test_guides_exported_as_rgba_masks_are_honoured(plates, tmp_path):
    """Holdout (always fg) in a background corner, garbage (always bg) over the face."""
    h, w = SIZE[1], SIZE[0]
    hold = np.zeros((h, w, 3), np.float32)
    hold[:20, :20] = 1.0
    garb = np.zeros((h, w, 3), np.float32)
    garb[70:90, 120:140] = 1.0
    for f in range(FIRST, LAST + 1):
        for name, m in (("holdout", hold), ("garbage", garb)):
            rgba = np.concatenate([m, m[..., :1]], axis=2)  # the mask in all four channels
            from priorfx import io as pio
            pio.write_image(tmp_path / "{}.{}.exr".format(name, f), rgba, ["R", "G", "B", "A"], bits=16)
    layout = logic.cache_layout(str(tmp_path / "cache"), "n1")
    inputs = {"plate": plates["srgb"], "holdout": str(tmp_path / "holdout.%04d.exr"),
              "garbage": str(tmp_path / "garbage.%04d.exr")}
    jobs.process_range(_local(), layout, inputs, FIRST, LAST, MatteSettings(quality="fast"))
    for f in range(FIRST, LAST + 1):
        ch, _ = _read(logic.frame_path(layout.out_pattern(), f))
        assert ch["A"][:20, :20].min() == 1.0
        assert ch["A"][70:90, 120:140].max() == 0.0


# Colour-space names as nuke-default spells them (its sRGB is a LUT file there;
# the same curve as a built-in transform here).
NUKE_DEFAULT_LIKE = """ocio_profile_version: 2
roles: {scene_linear: linear, default: linear, color_picking: sRGB, data: raw}
file_rules:
  - !<Rule> {name: Default, colorspace: linear}
displays:
  sRGB:
    - !<View> {name: Film, colorspace: sRGB}
active_displays: []
active_views: []
colorspaces:
  - !<ColorSpace> {name: linear}
  - !<ColorSpace>
    name: sRGB
    from_scene_reference: !<ExponentWithLinearTransform> {gamma: 2.4, offset: 0.055, direction: inverse}
  - !<ColorSpace> {name: raw, isdata: true}
"""


def test_node_on_a_linear_plate_through_the_real_core(plates, fnuke, tmp_path, monkeypatch):
    """PriorfxMatte in the (fake) GUI: Read of a linear EXR plate -> Process -> worker -> real core,
    which is told the plate is 'linear' in the project's OCIO config (nuke-default names)."""
    monkeypatch.delenv("OCIO", raising=False)
    config = tmp_path / "nuke-default-like.ocio"
    config.write_text(NUKE_DEFAULT_LIKE)
    fnuke.root()["OCIO_config"].setValue("custom")
    fnuke.root()["customOCIOConfigPath"].setValue(str(config))
    fnuke.root()["workingSpaceLUT"].setValue("linear")
    fnuke.root()["name"].setValue(str(tmp_path / "shot.nk"))
    read = fnuke.nodes.Read(file=plates["linear"].replace("%04d", "####"), first=FIRST, last=LAST)
    read.setSelected(True)
    node = pnode.create()
    node["quality"].setValue("fast")
    os.environ["PRIORFX_EXE"] = PRIORFX
    try:
        node["process"].execute()
        fnuke._run_until(lambda: node[pnode.ID_KNOB].value() not in pnode._RUNNING, timeout=300)
    finally:
        del os.environ["PRIORFX_EXE"]
    assert node["status"].value().startswith("done: 3 frames (3 new, 0 from cache)"), node["status"].value()
    assert fnuke._tasks[-1].progress[-1] == 100
    with node:
        out = fnuke.toNode("result")["file"].value()
    direct = tmp_path / "direct"
    direct.mkdir()
    r = subprocess.run([PRIORFX, "matte", plates["srgb"], "-o", str(direct / "m.%04d.exr"),
                        "--frames", "{}-{}".format(FIRST, LAST), "--quality", "fast", "--colorspace", "srgb_tx"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    for f in range(FIRST, LAST + 1):
        ch = _check_matte(logic.frame_path(out, f))
        ref, _ = _read(str(direct / "m.{}.exr".format(f)))
        # The linear plate went to the prior as sRGB: same matte as the sRGB plate
        # (up to half-float rounding), and its foreground is linear again.
        assert np.abs(ch["A"] - ref["A"]).mean() < 0.01
        opaque = ch["A"] >= 1.0
        plate, _ = _read(plates["linear"] % f)
        assert opaque.any() and np.array_equal(ch["fg.R"][opaque], plate["R"][opaque])


def _cancel_after_first_frame(engine, plates, tmp_path):
    """Start a long job, cancel as soon as one frame is back; returns the layout."""
    layout = logic.cache_layout(str(tmp_path / "cache"), "n1")
    seen = []
    with pytest.raises(logic.CancelledByUser):
        jobs.process_range(engine, layout, {"plate": plates["long"]}, FIRST, FIRST + LONG - 1,
                           MatteSettings(quality="best"), lambda d, t, m: seen.append(d),
                           lambda: any(d >= 1 for d in seen))
    assert max(seen) < LONG  # it really stopped mid-way
    assert os.listdir(os.path.dirname(layout.out_pattern())) == []  # nothing published, no partial frames
    assert not os.path.exists(os.path.join(layout.root, "store"))   # nothing cached
    return layout


def test_cancel_stops_the_real_core(plates, tmp_path):
    _cancel_after_first_frame(_local(), plates, tmp_path)


class _Server:
    def __init__(self, token):
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen([PRIORFX, "serve", "--port", "0", "--token", token,
                                      "--log-level", "warning"],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        line = self.proc.stdout.readline()
        m = re.search(r"listening on (http://\S+)", line)
        if not m:
            self.proc.kill()
            raise RuntimeError("priorfx serve did not start: {!r} {}".format(line, self.proc.stderr.read()))
        self.url = m.group(1)
        self.log = []  # drained so a chatty server never blocks on a full pipe
        for stream in (self.proc.stdout, self.proc.stderr):
            threading.Thread(target=lambda s=stream: self.log.extend(s), daemon=True).start()

    def stop(self):
        self.proc.terminate()
        self.proc.wait(120)


@pytest.mark.network
def test_remote_engine_on_a_real_server_matches_local(plates, models_home, tmp_path):
    token = "nuke-test-token"
    server = _Server(token)
    try:
        # The workstation has no models at all: only the server can have made the frames.
        empty_home = tmp_path / "no-models"
        empty_home.mkdir()
        env = dict(os.environ, PRIORFX_EXE=PRIORFX, PRIORFX_TOKEN=token, PRIORFX_HOME=str(empty_home))
        with pytest.raises(logic.AdapterError, match="rvm"):  # proof: locally it cannot run
            jobs.process_range(_local(env), logic.cache_layout(str(tmp_path / "c0"), "n1"),
                               {"plate": plates["srgb"]}, FIRST, LAST, MatteSettings(quality="fast"))
        remote = jobs.make_engine("remote", server.url, env)
        layout = logic.cache_layout(str(tmp_path / "remote-cache"), "n1")
        r = jobs.process_range(remote, layout, {"plate": plates["srgb"]}, FIRST, LAST,
                               MatteSettings(quality="fast"))
        assert r.identity.engine == "remote" and r.made == 3
        local_layout = logic.cache_layout(str(tmp_path / "local-cache"), "n1")
        lr = jobs.process_range(_local(), local_layout, {"plate": plates["srgb"]}, FIRST, LAST,
                                MatteSettings(quality="fast"))
        assert lr.identity.engine == "local" and lr.made == 3
        for f in range(FIRST, LAST + 1):
            rem = _check_matte(logic.frame_path(layout.out_pattern(), f))
            loc, _ = _read(logic.frame_path(local_layout.out_pattern(), f))
            for c in ("A", "R", "matte.confidence"):
                np.testing.assert_array_equal(rem[c], loc[c])
        bad = jobs.make_engine("remote", server.url, dict(env, PRIORFX_TOKEN="wrong"))
        with pytest.raises(logic.AdapterError, match="token was refused") as e:
            jobs.process_range(bad, logic.cache_layout(str(tmp_path / "c3"), "n1"),
                               {"plate": plates["srgb"]}, FIRST, LAST, MatteSettings(quality="fast"))
        assert "token" in e.value.hint
        # Cancel in Nuke cancels the job on the server too.
        _cancel_after_first_frame(remote, plates, tmp_path / "cancel")
        import json
        import urllib.request
        req = urllib.request.Request(server.url + "/v1/info", headers={"Authorization": "Bearer " + token})

        def counts_once_cancelled():
            with urllib.request.urlopen(req, timeout=30) as resp:
                counts = json.loads(resp.read().decode())["jobs"]
            return counts if counts.get("cancelled") else None

        # The adapter returns once its `priorfx matte` process is gone; the server
        # ends the job when its worker next checks for a cancel: wait for that.
        counts = wait_for(counts_once_cancelled, "the server to report the job cancelled")
        assert counts.get("cancelled") == 1 and not counts.get("running"), counts
    finally:
        server.stop()


def test_prior_knob_drives_the_real_core(plates, private_home, copy_model, tmp_path):
    """A copy of the built-in RVM registered under a studio id, chosen by the
    node's prior knob: the very same mattes, and provenance naming the copy."""
    for model in ("rvm-mobilenetv3", "selfie-segmentation", "blazeface-short-range"):  # the matte's priors
        copy_model(model, private_home)
    src = copy_model("rvm-mobilenetv3", tmp_path / "elsewhere")
    r = subprocess.run([PRIORFX, "models", "add", "studio-rvm", str(src), "--role", "person-matting",
                        "--input", "multiple:2"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    results = {}
    for prior in ("", "studio-rvm"):
        layout = logic.cache_layout(str(tmp_path / ("cache" + prior)), "n1")
        run = jobs.process_range(_local(), layout, {"plate": plates["srgb"]}, FIRST, LAST,
                                 MatteSettings(quality="fast", prior=prior))
        assert run.made == 3
        results[prior] = [_read(logic.frame_path(layout.out_pattern(), f)) for f in range(FIRST, LAST + 1)]
    for (a, _), (b, info) in zip(results[""], results["studio-rvm"]):
        assert all(np.array_equal(a[k], b[k]) for k in a)
        assert info.provenance["prior"]["id"] == "studio-rvm" and info.provenance["models"] == ["studio-rvm"]


def test_subject_point_reaches_the_real_core(sample_media, tmp_path):
    """Two people side by side (a strip of wall between them): the node's
    subject, in the core's pixels, keeps the one under the point."""
    import cv2

    def photo(name):
        img = cv2.imread(str(sample_media / name), cv2.IMREAD_COLOR)[..., ::-1].astype(np.float32) / 255.0
        return cv2.resize(img, (270, 350), interpolation=cv2.INTER_AREA)

    wall = np.zeros((350, 60, 3), np.float32) + np.float32([0.55, 0.6, 0.7])
    _write_rgba(tmp_path / "two.1001.exr", np.hstack([photo("grace_hopper.jpg"), wall, photo("astronaut.png")]))
    layout = logic.cache_layout(str(tmp_path / "cache"), "n1")
    settings = MatteSettings(quality="fast", colorspace="srgb_tx",
                             subject=logic.subject_guide("point", (460, 100), (0, 0, 0, 0), 350))
    jobs.process_range(_local(), layout, {"plate": str(tmp_path / "two.%04d.exr")}, 1001, 1001, settings)
    ch, info = _read(logic.frame_path(layout.out_pattern(), 1001))
    assert ch["A"][:, 330:].mean() > 0.2 and ch["A"][:, :300].max() < 0.05  # the astronaut alone
    assert info.provenance["parameters"]["subject"] == [460.0, 250.0]
