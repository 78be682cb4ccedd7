"""What runs on a Dask worker: read a chunk's frames, process them, write or return them.

Every function here is a plain top-level function of picklable arguments, so
any worker with priorfx installed can run it. PriorfxErrors are returned as
JSON (``{"error": ...}``) rather than raised: they are deterministic (a bad
frame stays bad), so Dask must not retry them, and the client re-raises the
same class with its hint.
"""
from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from priorfx.cluster.plan import Chunk
from priorfx.colour import Boundary
from priorfx.config import load_settings
from priorfx.engines import LocalEngine
from priorfx.errors import PriorfxError


def _threads() -> int:
    """Threads this task may use: its worker's thread count (1 on a worker per core)."""
    try:
        from distributed import get_worker
        n = int(get_worker().state.nthreads)
    except Exception:  # not on a worker (called directly), or an older Dask
        n = 0
    return n


def _set_threads(n: int) -> None:
    """OpenCV and the EXR/PNG codecs use the worker's threads, no more."""
    import cv2

    from priorfx.io import set_threads
    cv2.setNumThreads(n if n > 0 else -1)
    set_threads(n)
    _tune_malloc()


_MALLOC_TUNED = False
MMAP_THRESHOLD = 32 << 20
"""Allocations below this come from the heap, not from fresh mmap'd pages."""


def _tune_malloc() -> None:
    """Undo the allocator setting Dask's nanny gives its workers.

    The nanny starts workers with ``MALLOC_TRIM_THRESHOLD_=65536`` so that
    they hand memory back to the OS; setting it switches off glibc's dynamic
    mmap threshold, so every frame-sized temporary (> 128 kB) is a fresh
    mmap that page-faults on first touch. Measured: a deshutter chunk ran
    1.7x slower on a worker than in a plain process. The thresholds below are
    what glibc's dynamic mode settles at for such work.
    """
    global _MALLOC_TUNED
    if _MALLOC_TUNED or not os.environ.get("MALLOC_TRIM_THRESHOLD_"):
        return
    _MALLOC_TUNED = True
    try:
        import ctypes
        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3
        libc.mallopt(m_mmap_threshold, MMAP_THRESHOLD)
        libc.mallopt(m_trim_threshold, 2 * MMAP_THRESHOLD)
    except (OSError, AttributeError):  # not glibc (macOS, musl): nothing to undo
        pass


def _read(job, first: int, stop: int) -> list[np.ndarray]:
    """Frames at shot positions first .. stop-1, read from the shared source."""
    from priorfx import io as pio

    numbers = job.numbers[first:stop]
    clip = pio.read_frames(job.src, (numbers[0], numbers[-1]), fps=job.fps)
    frames = list(clip)
    if len(frames) != len(numbers):
        raise PriorfxError(f"{job.src}: frames {numbers[0]}-{numbers[-1]} gave {len(frames)} frames "
                           f"on this worker, expected {len(numbers)}",
                           "every worker must see the same input files (shared storage)")
    return frames


def _guarded(fn, *args) -> Any:
    try:
        return fn(*args)
    except PriorfxError as err:
        return {"error": err.to_json()}


# ----------------------------------------------------------------- scans
def scan(job, chunk: Chunk) -> Any:
    """deshutter: band flows of the frame pairs in the chunk (for the readout
    estimate); matte: cut scores of the frames after the first. Returned as
    ``{"items": [...], "cpu_s": worker CPU seconds}``."""
    import time

    cpu0 = time.process_time()
    items = _guarded(_scan, job, chunk)
    if isinstance(items, dict):  # an error
        return items
    return {"items": items, "cpu_s": round(time.process_time() - cpu0, 3)}


def _scan(job, chunk: Chunk) -> list:
    _set_threads(_threads())
    boundary = Boundary(job.colour)  # scan what the single-machine run sees: the working encoding
    frames = [boundary.into(f) for f in _read(job, chunk.read_first, chunk.read_stop)]
    if job.op == "matte":
        from priorfx.matting import cut_scores
        return cut_scores(frames)
    # the readout scan of priorfx.shutter.correct_clip, on this part of the shot
    from priorfx.shutter import readout_evidence
    return readout_evidence(frames, job.params)


def estimate_readout(params, height: int, *band_lists) -> Any:
    """The readout of a whole shot from the chunks' band flows, in order."""
    from priorfx.shutter import fit_readout

    for b in band_lists:
        if "error" in b:
            return b
    bands = [b for part in band_lists for b in part["items"]]
    est = fit_readout(bands, height, params)
    return {"readout": est.g, "confidence": est.confidence, "interval": [est.low, est.high],
            "scan_cpu_s": round(sum(part["cpu_s"] for part in band_lists), 3)}


# ----------------------------------------------------------------- chunks
def run_chunk(job, chunk: Chunk, extra: Any, marker_dir: str | None) -> Any:
    """Process one chunk. Sequence output: write it, return a summary.
    Video output: return the frames' pixels (the client encodes them)."""
    if isinstance(extra, dict) and "error" in extra:
        return extra
    marker = Path(marker_dir) / f"shot{chunk.shot:04d}-chunk{chunk.index:05d}.done" if marker_dir else None
    if marker is not None and marker.exists():
        # Dask ran this task again (its result was lost with a worker, or a
        # retry): the frames are already in place under their final names.
        import json
        return {**json.loads(marker.read_text()), "skipped": True}
    return _guarded(_run_chunk, job, chunk, extra, marker)


def _check_prior(job) -> None:
    """The worker mattes with its own registered prior: refuse a missing one,
    or one whose file differs from the one the client named (sha256)."""
    import socket

    from priorfx.errors import ModelChecksumError, ModelMissingError
    from priorfx.priors.person import prior_entry

    wanted = (job.provenance or {}).get("prior") or {}
    try:
        e = prior_entry(job.params.prior)
    except ModelMissingError as err:
        raise ModelMissingError(f"cluster worker {socket.gethostname()} (pid {os.getpid()}): {err.message}",
                                f"register the prior on every worker machine with `priorfx models add "
                                f"{job.params.prior} FILE --role ...` (same file, same id)") from None
    if wanted.get("sha256") and wanted["sha256"] != e.sha256:
        raise ModelChecksumError(
            f"cluster worker {socket.gethostname()} has a different file under prior id {e.id!r} "
            f"(sha256 {e.sha256[:12]}..., the client's is {wanted['sha256'][:12]}...)",
            "register the same model file under that id on every worker and the client")


def _run_chunk(job, chunk: Chunk, extra: Any, marker: Path | None) -> dict:
    import time

    cpu0, wall0 = time.process_time(), time.perf_counter()  # process CPU: one task per worker, I/O threads counted
    threads = _threads()
    _set_threads(threads)
    frames = _read(job, chunk.read_first, chunk.read_stop)
    keep = slice(chunk.first - chunk.read_first, chunk.stop - chunk.read_first)
    summary: dict[str, Any] = {"shot": chunk.shot, "chunk": chunk.index, "frames": chunk.frames,
                               "worker_pid": os.getpid()}
    engine = LocalEngine(load_settings())  # the worker's own settings (device)
    if job.op == "deshutter":
        params = replace(job.params, readout=extra["readout"])
        result = engine.run("deshutter", frames, params, colour=job.colour, keep=range(keep.start, keep.stop))
        pixels = result.frames
        summary["mean_motion_px"] = result.mean_motion_px
        cuts: list[int] = []
    else:
        from priorfx.matting import matte_pixels

        _check_prior(job)
        guides = _shift_guides(job.guides, chunk.read_first)
        pixels, cuts = [], []
        # the plan made this chunk's restart; no second restart inside it
        params = replace(job.params, chunk_frames=0)
        for r in engine.run("matte", frames, params, colour=job.colour, guides=guides, threads=threads):
            if r.index < keep.start:
                continue
            pos = chunk.read_first + r.index
            pixels.append(matte_pixels(r, job.dst, job.unpremult))
            if pos in (extra or ()):  # a cut found by the scan (a chunk's first frame cannot see it)
                cuts.append(job.numbers[pos])
    summary["cuts"] = cuts
    numbers = job.numbers[chunk.first:chunk.stop]
    if job.kind != "video":
        _write_frames(job, numbers, pixels, marker)
    summary["cpu_s"] = round(time.process_time() - cpu0, 3)
    summary["wall_s"] = round(time.perf_counter() - wall0, 3)
    if job.kind == "video":
        return {**summary, "pixels": pixels}
    if marker is not None:
        import json

        from priorfx.atomic import write_bytes_atomic
        write_bytes_atomic(marker, json.dumps(summary).encode())
    return summary


def _write_frames(job, numbers: list[int], pixels: list[np.ndarray], marker: Path | None) -> None:
    """Write the chunk's frames, moving them in under their final names only once all are written.

    The frames are staged inside the job folder (beside the output, so the
    moves are renames on one file system): a worker killed mid-chunk leaves
    its half-written files there, and the client removes that folder at the
    end; the output folder only ever sees complete frames.
    """
    import shutil
    import uuid

    from priorfx import io as pio

    final_dir = Path(job.dst).parent
    stage = None if marker is None else marker.parent / f"{marker.stem}.{uuid.uuid4().hex[:8]}"
    if stage is not None:
        stage.mkdir()
    try:
        target = job.dst if stage is None else str(stage / Path(job.dst).name)
        header = job.colour.header(job.dst) if job.colour is not None else None
        with pio.FrameWriter(target, fps=job.out_fps, start=numbers[0], provenance=job.provenance,
                             channel_names=job.channel_names, bits=job.bits, metadata=header) as writer:
            for n, px in zip(numbers, pixels):
                writer.write(px, number=n)
        if stage is not None:
            for path in writer.written:
                os.replace(path, final_dir / path.name)
    finally:
        if stage is not None:
            shutil.rmtree(stage, ignore_errors=True)


def _shift_guides(guides: dict | None, offset: int) -> dict | None:
    """Guides indexed by shot position -> indexed by chunk position."""
    if not guides or offset == 0:
        return guides
    out = {}
    for name, value in guides.items():
        if callable(value):
            out[name] = (lambda f, o: (lambda i: f(i + o)))(value, offset)
        elif isinstance(value, (list, tuple)) and value and isinstance(value[0], np.ndarray):
            out[name] = value[offset:]
        else:
            out[name] = value
    return out
