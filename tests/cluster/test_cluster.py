"""Cluster runs on a real Dask LocalCluster on 127.0.0.1 (2 worker processes, 1 thread each)
give the same pixels as the single-machine run, survive a killed worker, and
name an unreachable scheduler."""
from __future__ import annotations

import os
import signal
import socket
import threading
from pathlib import Path

import cv2
import distributed  # the cluster extra is part of the test extra: a missing Dask fails loudly
import numpy as np
import pytest

from priorfx import io as pio
from priorfx.errors import EngineUnreachableError
from waits import EVENT_DEADLINE_S, wait_for

pytestmark = [pytest.mark.network, pytest.mark.slow]



def _write_clip(frames, folder: Path) -> str:
    folder.mkdir(parents=True)
    with pio.FrameWriter(folder / "f_%04d.png", fps=25, start=1) as w:
        for f in frames:
            w.write(f)
    return str(folder / "f_%04d.png")


def _read_all(pattern: str) -> list[np.ndarray]:
    return list(pio.read_frames(pattern))


@pytest.fixture(scope="module")
def clips(tmp_path_factory, sample_media):
    from priorfx.samples import sample_path

    root = tmp_path_factory.mktemp("clips")
    bikes = list(pio.read_frames(str(sample_path("bikes.mp4")), (60, 83)))
    small = [cv2.resize(f, (320, 136), interpolation=cv2.INTER_AREA) for f in bikes[:18]]
    face = list(pio.read_frames(str(sample_path("single_face.mp4")), (0, 7)))
    # a shot of a person, then a cut to the street: two shots in one clip
    two_shots = [cv2.resize(f, (320, 180), interpolation=cv2.INTER_AREA) for f in face] + \
                [cv2.resize(f, (320, 180), interpolation=cv2.INTER_AREA) for f in bikes[:6]]
    return {"bikes_small": _write_clip(small, root / "bikes_small"),
            "bikes_full": _write_clip(bikes, root / "bikes_full"),
            "two_shots": _write_clip(two_shots, root / "two_shots")}


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=":0", silence_logs=40) as lc:
        yield lc


def test_deshutter_on_cluster_matches_single_machine(clips, cluster, tmp_path):
    from priorfx.cluster import run_clip_on_cluster
    from priorfx.shutter import ShutterParams, correct_clip

    src = clips["bikes_small"]
    params = ShutterParams()  # readout 'auto': estimated once for the whole clip
    ref = correct_clip(_read_all(src), params)
    out = tmp_path / "out"
    out.mkdir()
    summary = run_clip_on_cluster("deshutter", src, str(out / "c_%04d.exr"), params, cluster,
                                  chunk_frames=5, bits=32)
    assert summary["chunks"] == 4 and summary["frames"] == 18
    assert summary["readout"] == round(ref.readout, 4)
    got = _read_all(str(out / "c_%04d.exr"))
    assert len(got) == 18
    for i, (a, b) in enumerate(zip(got, ref.frames)):
        assert np.array_equal(a, b), f"frame {i}: max diff {np.abs(a - b).max()}"
    assert sorted(p.name for p in out.iterdir()) == [f"c_{n:04d}.exr" for n in range(1, 19)]


def test_matte_on_cluster_matches_single_machine(clips, cluster, tmp_path):
    from priorfx.cluster import run_clip_on_cluster
    from priorfx.matting import MattingParams, matte_clip
    from priorfx.matting.outputs import matte_pixels

    src = clips["two_shots"]
    # chunks of 4 (primed on 2 frames) within each shot, as a long shot's chunks of 480
    params = MattingParams(quality="fast", chunk_frames=4, chunk_warmup=2)
    dst = tmp_path / "m_%04d.exr"
    ref = [matte_pixels(r, dst) for r in matte_clip(_read_all(src), params)]
    summary = run_clip_on_cluster("matte", src, str(dst), params, cluster, bits=32)
    assert summary["cuts"] == [9]        # the cut to the street (frames are numbered from 1)
    assert summary["chunks"] == 4        # 8 + 6 frames: [1-4] [5-8] | [9-12] [13-14]
    from priorfx.io import read_image, read_image_info
    from priorfx.matting.outputs import channel_names

    names = channel_names(dst)
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"m_{n:04d}.exr" for n in range(1, 15)]
    for n, r in enumerate(ref, start=1):
        path = tmp_path / f"m_{n:04d}.exr"
        stored = read_image_info(path).channel_names  # EXR keeps channels sorted by name
        px = read_image(path)[..., [stored.index(c) for c in names]]
        assert px.shape == r.shape
        assert np.array_equal(px, r), f"frame {n}: max diff {np.abs(px - r).max()}"
    assert 0.2 < ref[3][..., 3].mean() < 0.9  # the person shot really holds a matte


def test_killed_worker_mid_chunk_still_gives_identical_output(clips, tmp_path):
    from priorfx.cluster import connect, run_clip_on_cluster
    from priorfx.shutter import ShutterParams, correct_clip

    src = clips["bikes_full"]
    params = ShutterParams(readout=0.7)
    ref = correct_clip(_read_all(src), params)
    dst = tmp_path / "k_%04d.exr"
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=":0", silence_logs=50) as lc:
        client = connect(lc)
        pids = client.run(os.getpid)
        box: dict = {}

        def work():
            try:
                box["summary"] = run_clip_on_cluster("deshutter", src, str(dst), params, client,
                                                     chunk_frames=4, bits=32)
            except BaseException as exc:  # surfaced by the assertion below
                box["error"] = exc

        t = threading.Thread(target=work)
        t.start()
        key, pid = _kill_a_worker_mid_chunk(client, pids, tmp_path, box)
        t.join(EVENT_DEADLINE_S)
        assert not t.is_alive(), "the clip never finished after the worker was killed"
        assert "error" not in box, box.get("error")
        story = lc.scheduler.story(key)
        client.close()
    assert box["summary"]["frames"] == 24
    # the killed chunk was really run again: the scheduler sent it to a worker a second time
    starts = [t for t in story if t[0] == key and t[2] == "processing"]
    assert len(starts) >= 2, f"{key} ran {len(starts)} time(s); worker pid {pid} was killed mid-chunk"
    got = _read_all(str(dst))
    assert len(got) == 24
    for i, (a, b) in enumerate(zip(got, ref.frames)):
        assert np.array_equal(a, b), f"frame {i}: max diff {np.abs(a - b).max()}"
    # nothing half-written or left behind: only the final frames
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"k_{n:04d}.exr" for n in range(1, 25)]


def _kill_a_worker_mid_chunk(client, pids: dict, out_dir: Path, box: dict) -> tuple[str, int]:
    """SIGKILL a worker while it provably holds an unfinished chunk: the scheduler has
    the chunk processing there and the chunk's done-marker (written last, after its
    frames are in place) is still absent once the worker is dead. A chunk that
    finished in between does not count: then the next running chunk is tried."""
    while True:
        def running_chunk():
            assert "error" not in box and "summary" not in box, "the clip ended before a worker was killed"
            for worker, keys in client.processing().items():
                for k in keys:
                    if "-chunk" in str(k) and not _chunk_done(out_dir, str(k)):
                        return worker, str(k)
            return None
        worker, key = wait_for(running_chunk, "a chunk to start")
        pid = pids.get(worker) or client.run(os.getpid, workers=[worker])[worker]
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: not _alive(pid), f"worker pid {pid} to die")
        if not _chunk_done(out_dir, key):
            return key, pid
        pids.update(client.run(os.getpid))  # the nanny restarts the worker under a new pid


def _chunk_done(out_dir: Path, key: str) -> bool:
    """The cluster run's marker for chunk `key` (priorfx-OP-JOB-shotS-chunkC) exists."""
    shot, chunk = (int(part[len(name):]) for part, name in zip(key.split("-")[-2:], ("shot", "chunk")))
    return any(out_dir.glob(f".priorfx-cluster-*/shot{shot:04d}-chunk{chunk:05d}.done"))


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def test_unreachable_scheduler_names_the_address(clips, tmp_path):
    from priorfx.cluster import run_clip_on_cluster

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    address = f"tcp://127.0.0.1:{port}"
    with pytest.raises(EngineUnreachableError) as info:
        run_clip_on_cluster("deshutter", clips["bikes_small"], str(tmp_path / "x_%04d.png"), None,
                            address, timeout=2)
    assert address in str(info.value)
    assert "dask scheduler" in str(info.value)
    assert not list(tmp_path.iterdir())


def test_video_output_is_encoded_in_order_from_the_chunks(clips, cluster, tmp_path):
    from priorfx.cluster import run_clip_on_cluster
    from priorfx.shutter import ShutterParams, correct_clip

    src = clips["bikes_small"]
    params = ShutterParams(readout=0.6)
    ref = correct_clip(_read_all(src), params)
    # the clip's own rate (a sequence: 24 fps): x264's rate control depends on it
    with pio.FrameWriter(tmp_path / "single.mp4", fps=pio.read_frames(src).fps) as w:
        for f in ref.frames:
            w.write(f)
    summary = run_clip_on_cluster("deshutter", src, str(tmp_path / "cluster.mp4"), params, cluster, chunk_frames=4)
    assert summary["chunks"] == 5
    got, want = _read_all(str(tmp_path / "cluster.mp4")), _read_all(str(tmp_path / "single.mp4"))
    assert len(got) == len(want) == 18
    assert all(np.array_equal(a, b) for a, b in zip(got, want))
    assert (tmp_path / "cluster.mp4.json").is_file()  # the provenance sidecar
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cluster.mp4", "cluster.mp4.json",
                                                          "single.mp4", "single.mp4.json"]


def test_cli_cluster_flag_gives_the_same_frames_as_a_plain_run(clips, cluster, cli, tmp_path):
    """`priorfx deshutter/matte --cluster ADDRESS`: the user's command, same pixels."""
    src = clips["two_shots"]
    for cmd, extra in (("deshutter", ["--readout", "0.6"]), ("matte", ["--quality", "fast"])):
        plain, spread = tmp_path / f"{cmd}_plain", tmp_path / f"{cmd}_cluster"
        plain.mkdir()
        spread.mkdir()
        r = cli(cmd, src, "-o", str(plain / "o_%04d.exr"), *extra, "--quiet")
        assert r.returncode == 0, r.stderr
        r = cli(cmd, src, "-o", str(spread / "o_%04d.exr"), *extra, "--quiet",
                "--cluster", cluster.scheduler_address)
        assert r.returncode == 0, r.stderr
        a, b = _read_all(str(plain / "o_%04d.exr")), _read_all(str(spread / "o_%04d.exr"))
        assert len(a) == len(b) == 14
        for i, (x, y) in enumerate(zip(a, b)):
            assert np.array_equal(x, y), f"{cmd} frame {i}: max diff {np.abs(x - y).max()}"
    r = cli("matte", src, "-o", str(tmp_path / "x_%04d.exr"), "--cluster", "tcp://127.0.0.1:9")
    assert r.returncode == 7 and "127.0.0.1:9" in r.stderr


def test_cluster_with_an_acescg_plate_gives_the_same_frames_as_a_plain_run(clips, cluster, cli, tmp_path):
    """The colour space travels with the job: each worker converts as a single machine does."""
    from priorfx import colour

    plate = tmp_path / "plate"
    plate.mkdir()
    for n, f in enumerate(_read_all(clips["two_shots"])[:6], start=1):
        px = np.ascontiguousarray(f[..., :3]) * np.float32(1.2)
        colour.convert(px, colour.DEFAULT_CONFIG, "sRGB - Texture", "ACEScg")
        pio.write_image(plate / f"p_{n:04d}.exr", px, metadata={"oiio:ColorSpace": "ACEScg"})
    src = str(plate / "p_%04d.exr")
    for cmd, extra in (("deshutter", ["--readout", "0.6"]), ("matte", ["--quality", "fast"])):
        plain, spread = tmp_path / f"{cmd}_plain", tmp_path / f"{cmd}_cluster"
        plain.mkdir()
        spread.mkdir()
        assert cli(cmd, src, "-o", str(plain / "o_%04d.exr"), *extra, "--quiet").returncode == 0
        r = cli(cmd, src, "-o", str(spread / "o_%04d.exr"), *extra, "--quiet", "--cluster", cluster.scheduler_address)
        assert r.returncode == 0, r.stderr
        a, b = _read_all(str(plain / "o_%04d.exr")), _read_all(str(spread / "o_%04d.exr"))
        assert len(a) == len(b) == 6
        for i, (x, y) in enumerate(zip(a, b)):
            assert np.array_equal(x, y), f"{cmd} frame {i}: max diff {np.abs(x - y).max()}"
        info = pio.read_image_info(spread / "o_0001.exr")
        assert colour.find_space(colour.DEFAULT_CONFIG, info.colorspace) == "ACEScg"
        assert info.provenance["colour"]["input_space"] == "ACEScg"


def test_priorfx_cluster_env_sends_the_job_to_the_cluster(clips, cli, tmp_path):
    """$PRIORFX_CLUSTER (set by Nuke's farm.py --cluster) routes `priorfx matte` there."""
    r = cli("matte", clips["two_shots"], "-o", str(tmp_path / "x_%04d.exr"),
            env={"PRIORFX_CLUSTER": "tcp://127.0.0.1:9"})
    assert r.returncode == 7 and "127.0.0.1:9" in r.stderr
    assert list(tmp_path.iterdir()) == []


def test_remote_and_cluster_together_are_refused_or_explained(clips, cli, tmp_path):
    """A clip runs on one remote server or across a cluster: both on the command
    line is a usage error; a remote from the environment is not used, and the note says so."""
    out = str(tmp_path / "x_%04d.exr")
    r = cli("deshutter", clips["two_shots"], "-o", out, "--remote", "http://127.0.0.1:9",
            "--cluster", "tcp://127.0.0.1:9")
    assert r.returncode == 2 and "--remote and --cluster" in r.stderr
    r = cli("matte", clips["two_shots"], "-o", out, "--cluster", "tcp://127.0.0.1:9",
            env={"PRIORFX_REMOTE": "http://127.0.0.1:9"})
    assert r.returncode == 7 and "remote engine http://127.0.0.1:9" in r.stderr and "not used" in r.stderr
    assert list(tmp_path.iterdir()) == []
