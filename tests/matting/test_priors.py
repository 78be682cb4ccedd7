"""Registered priors drive `priorfx matte --prior`: known answers of small
ONNX / TorchScript colour-key models, recurrent state, provenance, and a copy
of the built-in RVM under a new id giving the very same mattes."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from priorfx.io import read_image, read_image_info
from priorfx.matting import MattingParams, matte_clip, matte_image


def _png(path, rgb):
    cv2.imwrite(str(path), (rgb[..., ::-1] * 255).round().astype(np.uint8))
    return path


def _provenance(path) -> dict:
    import OpenImageIO as oiio
    return json.loads(oiio.ImageBuf(str(path)).spec().get_string_attribute("priorfx/provenance"))


@pytest.fixture
def key_priors(private_home, prior_models, cli, tmp_path):
    """key (ONNX, single image) and key-rec (ONNX, recurrent) registered in a private home."""
    for mid, kw in (("key", {}), ("key-rec", {"recurrent": True})):
        r = cli("models", "add", mid, str(prior_models.onnx(tmp_path / f"{mid}.onnx", **kw)),
                "--role", "person-matting")
        assert r.returncode == 0, r.stderr
    return private_home


def test_single_image_prior_gives_its_known_answer(key_priors, prior_models, key_image):
    r = matte_image(key_image, MattingParams(prior="key", refine=False))
    np.testing.assert_allclose(r.prior_alpha, prior_models.key(key_image), atol=1e-6)
    np.testing.assert_array_equal(r.alpha, r.prior_alpha)
    assert r.provenance["models"] == ["key"] and r.provenance["prior"]["id"] == "key"


def test_recurrent_prior_carries_its_state_and_drops_it_at_a_cut(key_priors, prior_models, key_image):
    second = np.ascontiguousarray(np.roll(key_image, 9, axis=1))
    other = np.full_like(key_image, 0.5)  # a different shot: a cut
    results = list(matte_clip([key_image, second, other], MattingParams(prior="key-rec", refine=False)))
    k1, k2, k3 = (prior_models.key(x) for x in (key_image, second, other))
    np.testing.assert_allclose(results[0].prior_alpha, k1 / 2, atol=1e-6)        # no history yet
    np.testing.assert_allclose(results[1].prior_alpha, (k2 + k1) / 2, atol=1e-6)  # frame 1 fed back
    assert results[2].cut
    np.testing.assert_allclose(results[2].prior_alpha, k3 / 2, atol=1e-6)         # state reset


def test_matte_cli_with_a_registered_prior_end_to_end(key_priors, prior_models, key_image, cli, tmp_path):
    img = _png(tmp_path / "plate.png", key_image)
    out = tmp_path / "matte.exr"
    r = cli("matte", str(img), "-o", str(out), "--prior", "key", "--quiet")
    assert r.returncode == 0, r.stderr
    alpha = read_image(out)[..., read_image_info(out).channel_names.index("A")]
    plate = read_image(img)
    key = prior_models.key(plate)
    # the refinement keeps a right prior: the matte is the key up to a few edge pixels
    assert np.abs(alpha - key).mean() < 0.01
    assert alpha[48, 64] == 1.0 and alpha[5, 5] == 0.0
    prov = _provenance(out)
    from priorfx.models import manifest
    assert prov["prior"]["id"] == "key" and prov["prior"]["sha256"] == manifest.entry("key").sha256
    assert prov["parameters"]["prior"] == "key"


def test_selfie_segmentation_serves_as_a_person_prior(models_home, sample):
    face = read_image(sample("single_face.jpg"))
    r = matte_image(face, MattingParams(prior="selfie-segmentation", quality="fast"))
    h, w = r.alpha.shape
    assert r.alpha[h // 2, w // 2] > 0.9 and r.provenance["prior"]["runtime"] == "litert"


def test_torchscript_priors_give_the_same_answers_as_onnx(key_priors, prior_models, key_image, cli, tmp_path):
    pytest.importorskip("torch", reason="TorchScript needs the torch extra: pip install -e '.[test,torch]'")
    r = cli("models", "add", "key-ts", str(prior_models.torchscript(tmp_path / "k.pt")), "--role", "person-matting")
    assert r.returncode == 0, r.stderr
    r = cli("models", "add", "key-ts-rec", str(prior_models.torchscript(tmp_path / "kr.pt", recurrent=True)),
            "--role", "person-matting", "--outputs", "pha,r1o")
    assert r.returncode == 0, r.stderr
    second = np.ascontiguousarray(np.roll(key_image, 9, axis=1))
    for onnx_id, ts_id in (("key", "key-ts"), ("key-rec", "key-ts-rec")):
        p = MattingParams(prior=onnx_id, refine=False)
        a = [x.prior_alpha for x in matte_clip([key_image, second], p)]
        b = [x.prior_alpha for x in matte_clip([key_image, second], MattingParams(prior=ts_id, refine=False))]
        for x, y in zip(a, b):
            np.testing.assert_allclose(x, y, atol=1e-6)
    # RVM's TorchScript form of arguments: a float ratio (fed the downsample ratio), a flag left at its default
    r = cli("models", "add", "key-ts-ratio", str(prior_models.torchscript(tmp_path / "kq.pt", recurrent="ratio")),
            "--role", "person-matting")
    assert r.returncode == 0, r.stderr
    half = matte_image(key_image, MattingParams(prior="key-ts-ratio", refine=False, downsample_ratio=0.5))
    np.testing.assert_allclose(half.prior_alpha, prior_models.key(key_image) * 0.5, atol=1e-6)
    img = _png(tmp_path / "plate.png", key_image)
    r = cli("matte", str(img), "-o", str(tmp_path / "ts.png"), "--prior", "key-ts", "--quiet")
    assert r.returncode == 0, r.stderr
    alpha = cv2.imread(str(tmp_path / "ts.png"), cv2.IMREAD_UNCHANGED)[..., 3] / 255.0
    assert np.abs(alpha - prior_models.key(read_image(img))).mean() < 0.01


def test_a_copy_of_the_builtin_rvm_under_a_new_id_gives_identical_mattes(sample_media, private_home,
                                                                          copy_model, cli, tmp_path):
    src = copy_model("rvm-mobilenetv3", private_home)
    r = cli("models", "add", "studio-rvm", str(src), "--role", "person-matting", "--input", "multiple:2")
    assert r.returncode == 0, r.stderr
    outs = {}
    for prior in ("rvm-mobilenetv3", "studio-rvm"):
        folder = tmp_path / prior
        folder.mkdir()
        r = cli("matte", str(sample_media / "carphone_pristine.mp4"), "--frames", "0-3", "-o",
                str(folder / "m_%04d.exr"), "--prior", prior, "--quality", "fast", "--quiet")
        assert r.returncode == 0, r.stderr
        outs[prior] = [read_image(p) for p in sorted(folder.iterdir())]
    assert len(outs["studio-rvm"]) == 4
    for a, b in zip(outs["rvm-mobilenetv3"], outs["studio-rvm"]):
        assert np.array_equal(a, b)
    prov = _provenance(sorted((tmp_path / "studio-rvm").iterdir())[0])
    assert prov["prior"]["id"] == "studio-rvm" and prov["prior"]["sha256"] == prov["prior"]["sha256"].lower()
    assert prov["prior"]["sha256"] == _provenance(sorted((tmp_path / "rvm-mobilenetv3").iterdir())[0])["prior"]["sha256"]


def test_bench_matting_scores_a_registered_prior(key_priors, cli, tmp_path):
    """`bench matting --prior ID --data DIR` runs its cases with the chosen prior
    (here on a small data folder of the bench's layout, in process)."""
    from argparse import Namespace

    from priorfx.bench import matting as bench

    h, w = 200, 120
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    a = np.clip((40 - np.hypot((yy - 110) / 1.6, xx - 60)) / 3, 0, 1)
    (tmp_path / "fg").mkdir()
    (tmp_path / "bg").mkdir()
    bgra = np.dstack([np.full((h, w), 30), np.full((h, w), 50), np.full((h, w), 230), a * 255])
    cv2.imwrite(str(tmp_path / "fg" / "person.png"), bgra.round().astype(np.uint8))
    for i, colour in enumerate([(200, 60, 20), (180, 90, 40)]):
        cv2.imwrite(str(tmp_path / "bg" / f"b{i}.jpg"), np.full((300, 500, 3), colour, np.uint8))
    seq = bench.temporal_runs(tmp_path, "person*", True, "key")["sequences"]
    assert {row["kind"] for row in seq} == set(bench.SEQUENCE_KINDS)
    assert all(np.isfinite(row["dtssd_ours"]) for row in seq)
    args = Namespace(data=tmp_path, people="person*", quick=True, no_speed=True, prior="nope")
    from priorfx.errors import ModelMissingError
    with pytest.raises(ModelMissingError, match="no prior 'nope'"):
        bench.run(args)
