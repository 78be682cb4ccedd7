"""The cluster mattes with the prior each worker has registered under the id
the client names: the same pixels as one machine, and clear errors when a
worker lacks the prior or holds a different file under its id."""
from __future__ import annotations

import json

import distributed
import numpy as np
import pytest

from priorfx import io as pio
from priorfx.errors import ModelChecksumError, ModelMissingError
from priorfx.matting import MattingParams, matte_clip


def _cluster(n: int = 2):
    # worker processes inherit PRIORFX_HOME from the environment at start
    return distributed.LocalCluster(n_workers=n, threads_per_worker=1, processes=True, host="127.0.0.1",
                                    dashboard_address=":0", silence_logs=40)


def _clip(key_image, folder, n=8):
    folder.mkdir()
    with pio.FrameWriter(folder / "f_%04d.png", fps=25, start=1) as w:
        for t in range(n):
            w.write(np.ascontiguousarray(np.roll(key_image, 4 * t, axis=1)))
    return str(folder / "f_%04d.png")


def _register(cli, prior_models, tmp_path, mid, **kw):
    r = cli("models", "add", mid, str(prior_models.onnx(tmp_path / f"{mid}-{len(kw)}.onnx", **kw)),
            "--role", "person-matting")
    assert r.returncode == 0, r.stderr


def test_registered_prior_on_the_cluster_matches_one_machine(private_home, prior_models, cli, key_image,
                                                              tmp_path):
    from priorfx.cluster import run_clip_on_cluster
    from priorfx.matting.outputs import channel_names, matte_pixels
    from priorfx.models import manifest

    _register(cli, prior_models, tmp_path, "key-rec", recurrent=True)
    src = _clip(key_image, tmp_path / "clip")
    params = MattingParams(prior="key-rec", quality="fast", chunk_frames=4, chunk_warmup=2)
    dst = tmp_path / "out" / "m_%04d.exr"
    dst.parent.mkdir()
    ref = [matte_pixels(r, dst) for r in matte_clip(list(pio.read_frames(src)), params)]
    with _cluster() as lc:
        summary = run_clip_on_cluster("matte", src, str(dst), params, lc, bits=32)
    assert summary["chunks"] == 2
    names = channel_names(dst)
    for n, r in enumerate(ref, start=1):
        path = dst.parent / f"m_{n:04d}.exr"
        stored = pio.read_image_info(path).channel_names
        assert np.array_equal(pio.read_image(path)[..., [stored.index(c) for c in names]], r), n
    import OpenImageIO as oiio
    prov = json.loads(oiio.ImageBuf(str(dst.parent / "m_0001.exr")).spec()
                      .get_string_attribute("priorfx/provenance"))
    assert prov["prior"] == {"id": "key-rec", "sha256": manifest.entry("key-rec").sha256}


def test_workers_without_the_prior_or_with_another_file_are_refused(private_home, prior_models, cli,
                                                                     key_image, tmp_path, monkeypatch):
    from priorfx.cluster import run_clip_on_cluster

    worker_home = tmp_path / "worker-home"
    worker_home.mkdir()
    monkeypatch.setenv("PRIORFX_HOME", str(worker_home))
    _register(cli, prior_models, tmp_path, "key", recurrent=True)  # the workers' "key" is another model
    with _cluster(1) as lc:
        monkeypatch.setenv("PRIORFX_HOME", str(private_home))    # the client's store
        _register(cli, prior_models, tmp_path, "key")
        _register(cli, prior_models, tmp_path, "key-only-here")
        src = _clip(key_image, tmp_path / "clip", n=3)
        (tmp_path / "out").mkdir()
        dst = str(tmp_path / "out" / "m_%04d.png")
        with pytest.raises(ModelChecksumError) as err:
            run_clip_on_cluster("matte", src, dst, MattingParams(prior="key", quality="fast"), lc)
        assert "has a different file under prior id 'key'" in err.value.message
        with pytest.raises(ModelMissingError) as err:
            run_clip_on_cluster("matte", src, dst, MattingParams(prior="key-only-here", quality="fast"), lc)
        assert "cluster worker" in err.value.message and "no prior 'key-only-here'" in err.value.message
        assert "register the prior on every worker" in err.value.hint
    assert list((tmp_path / "out").iterdir()) == []  # nothing half-written
