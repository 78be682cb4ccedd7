"""Scale out: long clips and many shots across machines on Dask distributed.

    from priorfx.cluster import ClipJob, run_clip_on_cluster, run_shots_on_cluster
    run_clip_on_cluster("deshutter", "plate/%04d.exr", "out/%04d.exr", ShutterParams(),
                        "tcp://farm-scheduler:8786", progress)

How the work is split
---------------------
* Shots are independent: every shot (one `ClipJob`) is its own set of tasks,
  and all shots go to the scheduler at once.
* deshutter: a long shot is cut into chunks. Each chunk first corrects
  `warmup` frames before its start (and reads one frame past its end, the
  next neighbour) and throws those away. The only state carried from frame to
  frame is the temporally smoothed motion, a contraction by at most
  ``smoothing`` per frame, so after the warm-up (sized from `smoothing`, 19
  frames at the default 0.3) it has forgotten the missing history below
  float32 resolution: the frames are bit-identical to a single-machine run
  (tested). An 'auto' readout is estimated once for the whole shot first
  (its band flows are computed in parallel, chunk by chunk) and the same
  value goes to every chunk.
* matte: RVM's recurrent state does *not* forget its history to float
  precision, so no warm-up could make a chunk equal an unbroken run. Instead
  the matte itself is defined in chunks (`MattingParams.chunk_frames`, 480
  by default): a shot restarts its temporal state at every cut and every
  `chunk_frames` frames after one, from a fresh state primed on the
  `chunk_warmup` (32) frames before. `matte_clip` on one machine follows
  that rule (a primer session runs beside the current one), and the cluster
  plans exactly those chunks: a cheap parallel scan finds the cuts as
  `MattingSession` does, and each chunk task starts fresh at its warm-up --
  bit-identical, however many machines.

Outputs
-------
An image-sequence output is written by the workers themselves (the paths
must be the same on every machine, as on any render farm): each chunk stages
its frames and moves them in under their final names only when the chunk is
complete (`priorfx.io.FrameWriter`), then leaves a done-marker in a job
folder beside the output, so a task that Dask runs again (a worker died after
finishing it, or a retry) finds the marker and writes nothing twice. A video
output is encoded by the client from the chunks' frames, in order.

A worker killed mid-chunk: Dask reschedules the chunk on another worker
(``distributed.scheduler.allowed-failures``, 3 by default) and a chunk that
raises is retried (`retries`). Errors of priorfx itself (bad input, missing
model) are not retried: they come back as the same PriorfxError class.

Why Dask distributed (and not Ray)
----------------------------------
Dask distributed is pure pip (``pip install 'dask[distributed]'``, a few
MB, no compiled core), starts a `LocalCluster` in one call for tests and
benchmarks, runs on plain TCP on 127.0.0.1 or a farm, and its scheduler and
worker are two commands (``dask scheduler``; ``dask worker tcp://HOST:8786``).
Ray is a far larger binary wheel with its own object store and dashboard
processes, meant for actor-heavy ML workloads; a chunked image sequence is a
plain task graph with retries, which is what Dask does. No home-made
scheduler: placement, retries and dead-worker recovery are Dask's.

Dask is an optional extra: ``pip install 'priorfx[cluster]'``. Without it the
default single-machine path works unchanged; asking for a cluster raises a
UsageError naming the install command.
"""
from priorfx.cluster.plan import Chunk, plan_chunks, shutter_warmup
from priorfx.cluster.run import ClipJob, connect, run_clip_on_cluster, run_shots_on_cluster

__all__ = ["Chunk", "ClipJob", "connect", "plan_chunks", "run_clip_on_cluster",
           "run_shots_on_cluster", "shutter_warmup"]
