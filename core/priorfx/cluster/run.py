"""Client side: plan the shots, hand the tasks to a Dask scheduler, collect.

`run_clip_on_cluster` is what ``priorfx deshutter/matte --cluster ADDRESS``
call; `run_shots_on_cluster` takes many shots at once (a show, a Nuke farm
submission). Dask is imported only here, only when a cluster is asked for.
"""
from __future__ import annotations

import contextlib
import shutil
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from priorfx.cluster import tasks
from priorfx.cluster.plan import WARMUP_COST, Chunk, auto_chunk_frames, plan_chunks, shutter_warmup
from priorfx.engines.files import open_clip_writer, output_provenance
from priorfx.engines.operations import OPERATIONS, operation
from priorfx.errors import (CancelledError, EngineUnreachableError, InputError, OutputError,
                            PriorfxError, UsageError)
from priorfx.progress import Progress, tick

OPS = tuple(name for name, op in OPERATIONS.items() if op.on_cluster)
INSTALL_HINT = "pip install 'priorfx[cluster]'"
SCAN_FRAMES = 200
"""Frames per scan task (cut scores / readout band flows): cheap, so coarse."""


@dataclass
class ClipJob:
    """One shot to process on the cluster.

    Parameters
    ----------
    op : 'deshutter' or 'matte'
    src, dst : input and output, as for the CLI (video, ``dir/%04d.exr`` pattern,
        folder). Workers read `src` and write a sequence `dst` themselves, so
        both must be at the same path on every machine (shared storage).
    params : ShutterParams / MattingParams (defaults if None)
    frame_range : (first, last) inclusive frame numbers, optional
    fps : frame rate of a sequence input
    guides : matte guides as for `matte_clip` (arrays, per-frame lists, or a
        callable(index) that can be pickled)
    unpremult, bits : matte EXR layers / output bit depth (as the CLI writes)
    provenance : record written into the outputs (default: built here)
    colour : the input's priorfx.colour.ColourSpec (None: display-encoded as
        is); each worker converts its frames as LocalEngine does
    chunk_frames : deshutter frames per chunk (default: one chunk per worker
        thread, at least 2x the warm-up). A matte is chunked by its params
        (`MattingParams.chunk_frames`), the rule a single-machine run follows too.
    """

    op: str
    src: str
    dst: str
    params: Any = None
    frame_range: tuple[int, int] | None = None
    fps: float | None = None
    guides: dict | None = None
    unpremult: bool = True
    bits: int | str | None = None
    provenance: dict | None = None
    colour: Any = None
    chunk_frames: int | None = None
    codec: str | None = None              # video output: codec and source streams left out
    drop: tuple = ()
    # filled in by the client before the job is sent
    numbers: list = field(default_factory=list)
    out_fps: float = 24.0
    kind: str = "sequence"
    channel_names: list | None = None


def _require_dask():
    try:
        import distributed
    except ImportError:
        raise UsageError("running on a cluster needs Dask distributed, which is not installed",
                         INSTALL_HINT) from None
    return distributed


def connect(address: Any, timeout: float = 10.0):
    """A `distributed.Client` for `address` ('tcp://host:8786', 'host:8786', a
    Client or a LocalCluster). EngineUnreachableError names the address when
    no scheduler answers within `timeout` seconds."""
    distributed = _require_dask()
    if isinstance(address, distributed.Client):
        return address
    if hasattr(address, "scheduler_address"):
        address = address.scheduler_address
    text = str(address)
    url = text if "://" in text else f"tcp://{text}"
    try:
        return distributed.Client(url, timeout=timeout, set_as_default=False)
    except (OSError, TimeoutError) as exc:
        raise EngineUnreachableError(
            f"cannot reach the Dask scheduler at {text} ({type(exc).__name__}: {exc})",
            "start one there (`dask scheduler`, then `dask worker tcp://HOST:8786` on each "
            "machine), or check the address, port and firewall") from None


def run_clip_on_cluster(op: str, src: str, dst: str, params: Any = None, address: Any = None,
                        progress: Progress | None = None, **options: Any) -> dict:
    """Deshutter or matte one clip on a Dask cluster; the same pixels as a single-machine run.

    Parameters
    ----------
    op : 'deshutter' or 'matte'
    src, dst : input / output paths as for the CLI
    params : ShutterParams or MattingParams
    address : scheduler address ('tcp://host:8786'), a Client or a LocalCluster
    progress : ticked per finished chunk; cancelling cancels the tasks
    **options : more `ClipJob` fields (frame_range, fps, guides, chunk_frames,
        ...) and `retries`, `timeout` for `run_shots_on_cluster`

    Returns
    -------
    dict : a summary as the CLI prints (output, frames, readout / cuts, chunks, workers)
    """
    run_opts = {k: options.pop(k) for k in ("retries", "timeout") if k in options}
    job = ClipJob(op, str(src), str(dst), params, **options)
    return run_shots_on_cluster([job], address, progress, **run_opts)[0]


def run_shots_on_cluster(jobs: Sequence[ClipJob], address: Any, progress: Progress | None = None,
                         retries: int = 2, timeout: float = 10.0) -> list[dict]:
    """Process many shots at once; returns one summary per job, in order."""
    distributed = _require_dask()
    jobs = [_prepare(j) for j in jobs]
    client = connect(address, timeout)
    own_client = client is not address
    job_id = uuid.uuid4().hex[:10]
    markers: list[Path] = []
    futures: dict[Any, tuple[int, Chunk]] = {}
    try:
        workers = client.scheduler_info().get("workers", {})
        slots = sum(int(w.get("nthreads", 1)) for w in workers.values()) or 1
        extras, scan_cpu = _scan(client, jobs, slots, job_id)
        plans: list[list[Chunk]] = []
        for s, job in enumerate(jobs):
            plans.append(_plan(job, s, slots, extras[s]))
            marker = None
            if job.kind == "sequence":
                marker = Path(job.dst).parent / f".priorfx-cluster-{job_id}-{s}"
                try:
                    marker.mkdir()
                except OSError as exc:
                    raise OutputError(f"cannot write into {marker.parent}: {exc.strerror or exc}",
                                      "choose an output folder you can write to") from None
                markers.append(marker)
            for c in plans[-1]:
                fut = client.submit(tasks.run_chunk, job, c, extras[s], str(marker) if marker else None,
                                    retries=retries, pure=False,
                                    key=f"priorfx-{job.op}-{job_id}-shot{s}-chunk{c.index}")
                futures[fut] = (s, c)
        return _collect(distributed, client, jobs, plans, extras, scan_cpu, futures, progress, len(workers))
    except BaseException:
        with contextlib.suppress(Exception):
            client.cancel(list(futures))
        raise
    finally:
        for m in markers:
            shutil.rmtree(m, ignore_errors=True)
        if own_client:
            with contextlib.suppress(Exception):
                client.close()


# ----------------------------------------------------------------- steps
def _prepare(job: ClipJob) -> ClipJob:
    """Check the job here (fail before any task is sent) and fill in the frame list."""
    from priorfx import io as pio

    if job.op not in OPS:
        raise UsageError(f"cluster operation {job.op!r} is not one of {', '.join(OPS)}")
    op = operation(job.op)
    job.params = job.params or op.params_class()()
    if job.op == "matte":
        from priorfx.matting import channel_names
        job.params = job.params.validate()
        job.channel_names = channel_names(job.dst, job.unpremult)
    out_dir = Path(job.dst).parent
    if not out_dir.is_dir():
        raise OutputError(f"output folder {out_dir} does not exist", "create it first or choose another output path")
    clip = pio.read_frames(job.src, job.frame_range, fps=job.fps)
    # checks the output kind, codec and the streams to copy, without writing
    open_clip_writer(clip, job.dst, codec=job.codec, drop=job.drop)
    job.numbers = list(clip.frame_numbers)
    job.out_fps = clip.fps
    job.kind = "video" if Path(job.dst).suffix.lower() in pio.video.VIDEO_SUFFIXES else "sequence"
    if job.op == "deshutter" and len(job.numbers) < 2:
        raise InputError(f"{job.src} holds {len(job.numbers)} frame(s)",
                         "rolling-shutter correction needs motion between at least 2 frames")
    if job.provenance is None:
        prior = None
        for prior_id in op.priors(job.params):
            from priorfx.models import manifest
            # the workers resolve the id in their own stores; the client's
            # sha256, where it has the model, is what they must match
            known = manifest.entries().get(prior_id)
            prior = {"id": prior_id, "sha256": known.sha256 if known else None}
        job.provenance = output_provenance(job.op, job.params, job.src, job.colour, engine="cluster",
                                           **({"prior": prior} if prior else {}))
    return job


def _scan(client, jobs: list[ClipJob], slots: int, job_id: str) -> tuple[list[Any], list[float]]:
    """Per job, what its chunks need from the whole shot: deshutter the readout
    (a future, estimated on the cluster), matte the positions of its cuts;
    and the matte scans' worker CPU seconds (a readout result carries its own)."""
    scans: dict[int, list] = {}
    extras: list[Any] = [None] * len(jobs)
    scan_cpu = [0.0] * len(jobs)
    for s, job in enumerate(jobs):
        n = len(job.numbers)
        if job.op == "deshutter" and job.params.readout is not None:
            extras[s] = {"readout": float(job.params.readout), "confidence": 1.0, "estimated": False}
            continue
        size = max(8, min(SCAN_FRAMES, -(-n // slots)))
        scans[s] = [client.submit(tasks.scan, job, c, pure=False, retries=2,
                                  key=f"priorfx-scan-{job_id}-shot{s}-{c.index}")
                    for c in plan_chunks(n, size, 0, 1, s)]
        if job.op == "deshutter":
            height = _frame_height(job)
            extras[s] = client.submit(tasks.estimate_readout, job.params, height, *scans[s], pure=False,
                                      key=f"priorfx-readout-{job_id}-shot{s}")
    for s, futs in scans.items():
        if jobs[s].op != "matte":
            continue
        scores: list[float] = []
        for part in client.gather(futs):
            _raise_if_error(part)
            scores.extend(part["items"])
            scan_cpu[s] += part["cpu_s"]
        threshold = jobs[s].params.cut_threshold
        extras[s] = sorted(i + 1 for i, v in enumerate(scores) if v > threshold)
    return extras, scan_cpu


def _frame_height(job: ClipJob) -> int:
    from priorfx import io as pio
    return int(pio.read_frames(job.src, job.frame_range, fps=job.fps).size[1])


def _plan(job: ClipJob, shot: int, slots: int, extra: Any) -> list[Chunk]:
    n = len(job.numbers)
    if job.op == "deshutter":
        warm = shutter_warmup(job.params.smoothing)
        if job.chunk_frames:
            return plan_chunks(n, job.chunk_frames, warm, 1, shot)
        extra = round(warm * WARMUP_COST)  # the first chunk has no warm-up: give it more frames
        return plan_chunks(n, auto_chunk_frames(n, slots, warm, extra), warm, 1, shot, first_extra=extra)
    # matte: chunks start at cuts and every chunk_frames after one, primed on
    # chunk_warmup frames -- the restarts matte_clip makes on one machine too
    p = job.params
    return plan_chunks(n, p.chunk_frames or n, p.chunk_warmup, 0, shot, bounds=extra)


def _raise_if_error(result: Any) -> None:
    if isinstance(result, dict) and "error" in result:
        raise PriorfxError.from_json(result["error"])


def _collect(distributed, client, jobs, plans, extras, scan_cpu, futures, progress, n_workers) -> list[dict]:
    """Wait for the chunks; encode video outputs in order; build the summaries."""
    from priorfx import io as pio

    total = sum(len(j.numbers) for j in jobs)
    done = 0
    tick(progress, 0, total, f"{len(futures)} chunks on {n_workers} worker(s)")
    results: dict[tuple[int, int], dict] = {}
    next_chunk = [0] * len(jobs)
    with contextlib.ExitStack() as stack:
        writers = {s: stack.enter_context(open_clip_writer(
                       pio.read_frames(j.src, j.frame_range, fps=j.fps), j.dst, codec=j.codec, drop=j.drop,
                       provenance=j.provenance, channel_names=j.channel_names, bits=j.bits))
                   for s, j in enumerate(jobs) if j.kind == "video"}
        ready = distributed.as_completed(list(futures), loop=client.loop)
        while not ready.is_empty():
            if progress is not None and progress.cancelled:
                raise CancelledError("cancelled by the user")
            finished = ready.next_batch(block=False)
            if not finished:
                time.sleep(0.05)  # poll, so a cancel is seen while chunks run
                continue
            for fut in finished:
                s, chunk = futures[fut]
                try:
                    res = fut.result()
                except Exception as exc:  # retries and dead-worker reschedules are spent
                    raise PriorfxError(f"chunk {chunk.index} of {jobs[s].src} failed on the cluster: "
                                       f"{type(exc).__name__}: {exc}",
                                       "check the workers' logs; a worker that keeps dying may be "
                                       "short of memory") from None
                _raise_if_error(res)
                results[(s, chunk.index)] = res
                done += chunk.frames
                tick(progress, done, total, f"shot {s + 1}/{len(jobs)} chunk {chunk.index + 1}/{len(plans[s])}")
            for s, w in writers.items():  # a video takes the chunks in order
                while (s, next_chunk[s]) in results and "pixels" in results[(s, next_chunk[s])]:
                    for px in results[(s, next_chunk[s])].pop("pixels"):
                        w.write(px)
                    next_chunk[s] += 1
    summaries = []
    for s, job in enumerate(jobs):
        chunk_res = [results[(s, c.index)] for c in plans[s]]
        out = {"output": job.dst, "frames": sum(r["frames"] for r in chunk_res), "chunks": len(plans[s]),
               "workers": n_workers, "op": job.op,
               "chunk_cpu_s": [r.get("cpu_s") for r in chunk_res],  # worker CPU time of each chunk
               "chunk_wall_s": [r.get("wall_s") for r in chunk_res]}
        if job.op == "deshutter":
            est = extras[s] if isinstance(extras[s], dict) else extras[s].result()
            _raise_if_error(est)
            # frame-weighted mean of the chunks' means (warm-up frames included): approximate
            motion = sum(r["mean_motion_px"] * r["frames"] for r in chunk_res) / max(1, out["frames"])
            scan_cpu[s] = est.get("scan_cpu_s", 0.0)
            out.update(readout=round(est["readout"], 4), readout_estimated=job.params.readout is None,
                       readout_confidence=round(est["confidence"], 3), mean_motion_px=round(motion, 2),
                       mode=job.params.mode, scan=job.params.scan)
        else:
            out.update(cuts=sorted(n for r in chunk_res for n in r["cuts"]),
                       parameters=job.params.to_json())
        out["scan_cpu_s"] = round(scan_cpu[s], 3)
        summaries.append(out)
    return summaries
