"""Careless-user and local-attacker cases outside the server: output paths,
secrets on disk, the sdist fetch, /tmp names."""
from __future__ import annotations

import hashlib
import io
import os
import shutil
import tarfile
import time
from pathlib import Path

import pytest

from priorfx import config
from priorfx.atomic import write_bytes_atomic
from priorfx.errors import ModelChecksumError, UsageError

# ---------------------------------------------------------------- output paths


@pytest.fixture
def clip(sample, tmp_path) -> Path:
    p = tmp_path / "clip.mp4"
    shutil.copyfile(sample("bikes.mp4"), p)
    return p


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("output", ["clip.mp4", "./clip.mp4", "link.mp4"])
def test_output_equal_to_the_input_is_refused_before_any_work(cli, clip, output):
    (clip.parent / "link.mp4").symlink_to(clip)
    before = _digest(clip)
    t0 = time.monotonic()
    r = cli("deshutter", str(clip), "-o", output, "--frames", "1-4", cwd=clip.parent)
    assert r.returncode == 2, r.stderr
    assert "would destroy the source" in r.stderr and "Traceback" not in r.stderr
    assert _digest(clip) == before  # the 72-frame clip is still whole
    assert time.monotonic() - t0 < 30  # refused up front, no correction ran


def test_a_sequence_written_over_its_own_frames_is_refused(cli, tmp_path, sample):
    frames = tmp_path / "plate"
    frames.mkdir()
    for n in (1, 2):
        shutil.copyfile(sample("coffee.png"), frames / f"f_{n:04d}.png")
    for src, out in ((frames / "f_%04d.png", frames / "f_####.png"), (frames, frames / "f_%04d.png")):
        r = cli("deshutter", str(src), "-o", str(out))
        assert r.returncode == 2 and "would destroy the source" in r.stderr, r.stderr
    r = cli("matte", str(frames / "f_0001.png"), "-o", str(frames / "f_%04d.png"))
    assert r.returncode == 2 and "would destroy the source" in r.stderr, r.stderr


@pytest.mark.parametrize("command, output, code, words", [
    ("deshutter", "missing/out.mp4", 11, "output folder missing does not exist"),
    ("deshutter", "out.xyz", 2, ".xyz is not a format this command writes"),
    ("deshutter", "out.png", 2, "not a format this command writes"),  # one image is not a clip
    ("undistort", "out.mp4", 2, "not a format this command writes"),
    ("matte", "out.txt", 2, ".txt is not a format"),
])
def test_output_path_errors_come_before_inference(cli, clip, sample, command, output, code, words):
    src = str(clip) if command == "deshutter" else str(sample("single_face.jpg"))
    t0 = time.monotonic()
    r = cli(command, src, "-o", output, cwd=clip.parent)
    assert r.returncode == code, r.stderr
    assert words in r.stderr and "Traceback" not in r.stderr
    assert time.monotonic() - t0 < 30


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_an_unwritable_output_folder_is_refused_before_inference(cli, clip, tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir(mode=0o555)
    r = cli("deshutter", str(clip), "-o", str(ro / "out.mp4"))
    assert r.returncode == 11 and "not writable" in r.stderr


# ---------------------------------------------------------------- secrets on disk

def test_write_bytes_atomic_with_a_mode_never_exposes_the_file(tmp_path):
    target = tmp_path / "secret.json"
    old = os.umask(0o022)
    try:
        write_bytes_atomic(target, b'{"token": "t"}', mode=0o600)
    finally:
        os.umask(old)
    assert target.stat().st_mode & 0o777 == 0o600 and target.read_bytes() == b'{"token": "t"}'


def test_gimp_install_keeps_the_token_record_private(tmp_path, monkeypatch):
    from priorfx.hosts.priorfx_hostkit import RECORD_NAME
    from priorfx.install import gimp

    monkeypatch.setenv("PRIORFX_TOKEN", "studio-secret")
    gimp.install(tmp_path / "plug-ins", ["/usr/bin/priorfx"])
    record = tmp_path / "plug-ins" / gimp.PLUGIN / RECORD_NAME
    assert "studio-secret" in record.read_text()
    assert record.stat().st_mode & 0o777 == 0o600  # was 0644: readable by every local user


def test_a_config_file_with_a_token_readable_by_others_is_warned_about(tmp_path, monkeypatch, capsys):
    cfg = tmp_path / "config.toml"
    cfg.write_text('remote = "http://gpu:8765"\ntoken = "abc"\n')
    cfg.chmod(0o644)
    monkeypatch.setenv("PRIORFX_CONFIG", str(cfg))
    monkeypatch.delenv("PRIORFX_TOKEN", raising=False)
    monkeypatch.setattr(config, "_warned", set())
    assert config.load_settings().token == "abc"
    err = capsys.readouterr().err
    assert "other users can read it" in err and f"chmod 600 {cfg}" in err
    cfg.chmod(0o600)
    monkeypatch.setattr(config, "_warned", set())
    config.load_settings()
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("value", ["abc", "2.5", "-1"])
def test_bad_thread_counts_are_usage_errors(monkeypatch, value):
    monkeypatch.setenv("PRIORFX_THREADS", value)
    with pytest.raises(UsageError, match="PRIORFX_THREADS|thread count"):
        config.load_settings()


# ---------------------------------------------------------------- fetching an sdist without building it

def _sdist(tmp: Path, marker: Path) -> bytes:
    """An sdist whose setup.py would leave `marker` behind if anyone ran it."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, data in (("trap_pkg-1.0/setup.py",
                            f"open({str(marker)!r}, 'w').write('ran')\nfrom setuptools import setup\n"
                            "setup(name='trap-pkg', version='1.0')\n".encode()),
                           ("trap_pkg-1.0/PKG-INFO", b"Metadata-Version: 2.1\nName: trap-pkg\nVersion: 1.0\n"),
                           ("trap_pkg-1.0/data/face.jpg", b"\xff\xd8 not really a jpeg")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_sdists_are_fetched_by_hash_and_never_built(tmp_path, monkeypatch):
    from priorfx.models.store import pip_download

    marker = tmp_path / "setup-code-ran"
    data = _sdist(tmp_path, marker)
    index = tmp_path / "index" / "trap-pkg"
    index.mkdir(parents=True)
    (index / "trap_pkg-1.0.tar.gz").write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()
    (index / "index.html").write_text(
        f'<html><body><a href="trap_pkg-1.0.tar.gz#sha256={digest}">trap_pkg-1.0.tar.gz</a></body></html>')
    monkeypatch.setenv("PIP_INDEX_URL", (tmp_path / "index").as_uri())
    monkeypatch.setenv("PIP_EXTRA_INDEX_URL", "")
    dest = tmp_path / "dl"
    dest.mkdir()
    got = pip_download("trap-pkg", "1.0", None, dest, sdist=True)
    assert got.read_bytes() == data and not marker.exists()
    with tarfile.open(got) as tf:
        assert tf.extractfile("trap_pkg-1.0/data/face.jpg").read().startswith(b"\xff\xd8")
    # The index publishes the archive's hash: a swapped file is refused.
    (index / "index.html").write_text(
        f'<a href="trap_pkg-1.0.tar.gz#sha256={"0" * 64}">trap_pkg-1.0.tar.gz</a>')
    got.unlink()
    with pytest.raises(ModelChecksumError, match="does not match the sha256"):
        pip_download("trap-pkg", "1.0", None, dest, sdist=True)
    assert not marker.exists()


# ---------------------------------------------------------------- private temp files

def test_private_dir_is_per_user_and_refuses_a_planted_one(tmp_path):
    from priorfx.streaming import shm

    own = Path(shm.private_dir(str(tmp_path)))
    assert own.name == f"priorfx-{os.getuid()}" and own.stat().st_mode & 0o777 == 0o700
    shutil.rmtree(own)
    (tmp_path / "elsewhere").mkdir()
    own.symlink_to(tmp_path / "elsewhere")  # planted by someone else
    other = Path(shm.private_dir(str(tmp_path)))
    assert other != own and not other.is_symlink() and other.stat().st_mode & 0o777 == 0o700


def test_open_private_never_follows_a_symlink(tmp_path):
    from priorfx.streaming import shm

    victim = tmp_path / "victim"
    victim.write_text("precious")
    log = tmp_path / "worker.log"
    log.symlink_to(victim)
    fd = shm.open_private(str(log))  # the planted link is removed, a new file made
    os.write(fd, b"log line")
    os.close(fd)
    assert victim.read_text() == "precious" and not log.is_symlink()
    assert log.stat().st_mode & 0o777 == 0o600
