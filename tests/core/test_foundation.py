"""Atomic writes, settings, error mapping, samples, CLI basics, demo."""
from __future__ import annotations

import json
import re

import pytest

from priorfx import samples
from priorfx.atomic import atomic_dir, atomic_path, write_bytes_atomic
from priorfx.config import load_settings
from priorfx.errors import (CancelledError, InputError, NoFaceError, OutputError, PriorfxError,
                            UsageError)
from priorfx.progress import Progress


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.png"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("crash while writing")
    assert list(tmp_path.iterdir()) == []


def test_atomic_path_replaces_only_when_complete(tmp_path):
    target = tmp_path / "out.exr"
    target.write_bytes(b"old")
    with atomic_path(target) as tmp:
        assert tmp.suffix == ".exr" and tmp != target
        tmp.write_bytes(b"new")
        assert target.read_bytes() == b"old"
    assert target.read_bytes() == b"new"
    assert [p.name for p in tmp_path.iterdir()] == ["out.exr"]


def test_atomic_dir_keeps_old_sequence_until_new_is_complete(tmp_path):
    target = tmp_path / "frames"
    target.mkdir()
    (target / "0001.png").write_bytes(b"old")
    with pytest.raises(KeyboardInterrupt):
        with atomic_dir(target) as tmp:
            (tmp / "0001.png").write_bytes(b"new")
            raise KeyboardInterrupt
    assert (target / "0001.png").read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["frames"]
    with atomic_dir(target) as tmp:
        (tmp / "0001.png").write_bytes(b"new")
    assert (target / "0001.png").read_bytes() == b"new"


def test_missing_output_folder_is_clear(tmp_path):
    with pytest.raises(OutputError, match="does not exist"):
        write_bytes_atomic(tmp_path / "nope" / "x.png", b"x")


def test_settings_precedence(tmp_path, monkeypatch):
    cfg = tmp_path / "config.toml"
    cfg.write_text('remote = "http://from-file:1"\nthreads = 3\n')
    monkeypatch.setenv("PRIORFX_CONFIG", str(cfg))
    monkeypatch.delenv("PRIORFX_REMOTE", raising=False)
    assert load_settings().remote == "http://from-file:1"
    assert load_settings().threads == 3
    monkeypatch.setenv("PRIORFX_REMOTE", "http://from-env:2")
    assert load_settings().remote == "http://from-env:2"
    assert load_settings(remote="http://from-flag:3").remote == "http://from-flag:3"
    with pytest.raises(UsageError, match="must start with http"):
        load_settings(remote="ftp://x")
    cfg.write_text("remote = [unclosed")
    monkeypatch.delenv("PRIORFX_REMOTE")
    with pytest.raises(UsageError, match="not valid TOML"):
        load_settings()


def test_errors_round_trip_as_json():
    err = NoFaceError("no face found in selfie.jpg", "use a photo with a visible face")
    back = PriorfxError.from_json(json.loads(json.dumps(err.to_json())))
    assert type(back) is NoFaceError and str(back) == str(err)
    assert back.exit_code == 6 and back.http_status == 422


def test_progress_cancel():
    seen = []
    p = Progress(lambda d, t, m: seen.append((d, t)))
    p.update(1, 10)
    p.cancel()
    with pytest.raises(CancelledError):
        p.update(2, 10)
    assert seen == [(1, 10), (2, 10)]


def test_samples_are_real_and_verified(sample_media):
    for name, meta in samples.catalogue().items():
        path = samples.sample_path(name)
        assert path.stat().st_size > 10_000
        from priorfx.models.store import sha256_file
        assert sha256_file(path) == meta["sha256"]


def test_sample_not_fetched_names_the_command(private_home):
    with pytest.raises(InputError, match="priorfx samples fetch"):
        samples.sample_path("bikes.mp4")


def test_cli_help_and_usage_errors(cli):
    r = cli("--help")
    assert r.returncode == 0 and "exit codes" in r.stdout
    for cmd in ("models", "samples", "demo", "bench"):
        assert re.search(rf"^\s+{cmd}\s", r.stdout, re.M), cmd
    r = cli("models", "frobnicate")
    assert r.returncode == 2
    r = cli()
    assert r.returncode == 2


@pytest.mark.slow
def test_demo_writes_report(models_home, sample_media, cli, tmp_path):
    out = tmp_path / "demo"
    r = cli("demo", "--out", str(out), timeout=1800)  # a deadline: minutes on an idle machine
    assert r.returncode == 0, r.stderr[-2000:]
    page = (out / "index.html").read_text()
    assert "rvm-mobilenetv3" in page and "single_face.jpg" in page
    for img in re.findall(r"src='([^']+)'", page):
        assert (out / img).is_file(), img
    assert "class=error" not in page, "a demo section failed"


def test_atomic_path_onto_a_folder_is_output_error(tmp_path):
    (tmp_path / "taken").mkdir()
    with pytest.raises(OutputError, match="cannot write"):
        write_bytes_atomic(tmp_path / "taken", b"x")
    assert [p.name for p in tmp_path.iterdir()] == ["taken"]
