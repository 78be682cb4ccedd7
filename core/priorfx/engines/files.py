"""File-level pipelines: read the input, run an operation on an engine, write the outputs.

`deshutter_files`, `matte_files` and `undistort_file` are what `priorfx
deshutter / matte / undistort` run once their options are read, and what a
script calls: the operation runs on the engine given (LocalEngine or
RemoteEngine) with a Progress (ticks and cancel), and the outputs are written
atomically -- an image under a temporary name renamed at the end, a clip's
frames staged and moved in only when all are written, so Ctrl-C or an error
leaves nothing -- carrying the provenance record every output carries.

The cluster (priorfx.cluster) splits a clip across machines and builds its
outputs from the same pieces: `output_provenance` (the record) and
`open_clip_writer` (the writer of a clip's frames).
"""
from __future__ import annotations

import itertools
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Sequence

import numpy as np

from priorfx.engines.operations import operation
from priorfx.errors import InputError, UsageError
from priorfx.progress import Progress
from priorfx.provenance import provenance

if TYPE_CHECKING:
    from priorfx.colour import ColourSpec
    from priorfx.engines import Engine
    from priorfx.io import FrameWriter, Frames

Note = Callable[[str], None]
"""Hears what the user should know about an output (e.g. it holds no sound)."""


# ---------------------------------------------------------------- shared pieces

def output_provenance(name: str, params: Any, src: Any, colour: "ColourSpec | None" = None, **extra: Any) -> dict:
    """The record an output of operation `name` carries: the operation, its
    parameters, the models it uses (the registry's), the input and the plate's
    colour space, plus `extra`."""
    if colour is not None:
        extra["colour"] = colour.provenance()
    return provenance(name, params, operation(name).models(params), input=str(src), **extra)


def streams_left_out(clip: "Frames", output: str, drop: Iterable[str] = ()) -> str | None:
    """What an image-sequence output will not hold of the source (its sound...), or None."""
    from priorfx.io.video import VIDEO_SUFFIXES

    info = getattr(clip, "video", None)
    if info is None or Path(output).suffix.lower() in VIDEO_SUFFIXES:
        return None
    left = sorted({kind for _, kind, _ in info.streams if kind not in drop})
    if not left:
        return None
    return (f"note: {output} is an image sequence and holds no {' or '.join(left)}; "
            f"the {' and '.join(left)} of {clip.source} is not in it")


def open_clip_writer(clip: "Frames", output: str, *, codec: str | None = None, drop: Sequence[str] = (),
                     note: Note | None = None, **options: Any) -> "FrameWriter":
    """The writer of a clip's results into `output` (a video or a sequence
    pattern), at the clip's rate, copying its other streams. Made before the
    work, so a codec or a stream the output cannot hold fails first; `note`
    hears what the output will lack. `options`: more FrameWriter arguments."""
    from priorfx import io as pio

    writer = pio.FrameWriter(output, fps=clip.fps, source=clip, codec=codec, drop=drop, **options)
    message = streams_left_out(clip, output, drop)
    if message and note is not None:
        note(message)
    return writer


def _engine(engine: "Engine | None") -> "Engine":
    if engine is not None:
        return engine
    from priorfx.engines import get_engine
    return get_engine()


# ---------------------------------------------------------------- deshutter

def deshutter_files(src: str, output: str, params: Any = None, engine: "Engine | None" = None, *,
                    clip: "Frames | None" = None, frame_range: tuple[int, int] | None = None,
                    fps: float | None = None, colour: "ColourSpec | None" = None,
                    progress: Progress | None = None, codec: str | None = None, drop: Sequence[str] = (),
                    note: Note | None = None) -> tuple[dict, Any]:
    """Correct the rolling shutter of the clip `src` into `output`.

    Parameters
    ----------
    src, output : a video, an image-sequence pattern or a folder; a video or a pattern
    params : ShutterParams (default: ShutterParams())
    engine : where it runs (default: `get_engine()`)
    clip : `src` already opened (priorfx.io.read_frames); else opened here
        with `frame_range` and `fps`
    colour : the plate's ColourSpec; the frames stay in it
    codec, drop, note : see `open_clip_writer`

    Returns
    -------
    (summary, ShutterResult) : the summary the CLI prints (readout used, its
        interval and confidence, mean motion) and the engine's result
    """
    from priorfx import io as pio
    from priorfx.shutter import ShutterParams

    params = params or ShutterParams()
    clip = clip if clip is not None else pio.read_frames(src, frame_range, fps=fps)
    # frames as stored: a phone's rotation flag is written back, so the sensor's
    # rows (the rolling shutter's scan lines) stay rows while the result plays upright
    numbers = list(getattr(clip, "frame_numbers", range(len(clip))))
    # the writer checks codec and streams now, before the work, not after it
    writer = open_clip_writer(clip, output, start=numbers[0], codec=codec, drop=drop, note=note,
                              metadata=colour.header(output) if colour is not None else None)
    frames = list(clip)
    if len(frames) < 2:
        raise InputError(f"{src} holds {len(frames)} frame(s)",
                         "rolling-shutter correction needs motion between at least 2 frames")
    engine = _engine(engine)
    result = engine.deshutter(frames, params, progress=progress, colour=colour)
    writer.provenance = output_provenance("deshutter", params, src, colour, readout_used=result.readout,
                                          readout_estimated=result.readout_estimated, engine=engine.name)
    with writer:
        for n, frame in zip(numbers, result.frames):
            writer.write(frame, number=n)
    summary = {"output": str(output), "frames": len(result.frames), "readout": round(result.readout, 4),
               "readout_estimated": result.readout_estimated,
               "readout_confidence": round(result.readout_confidence, 3),
               "readout_interval": [round(float(x), 4) for x in getattr(result, "readout_interval", ())],
               "mean_motion_px": round(result.mean_motion_px, 2), "mode": params.mode, "scan": params.scan}
    return summary, result


# ---------------------------------------------------------------- undistort

_BITS_BY_TYPE = {"uint8": 8, "uint16": 16, "half": 16, "float": 32}
_BITS_BY_SUFFIX = {".png": (8, 16), ".jpg": (8,), ".jpeg": (8,), ".tif": (8, 16, 32), ".tiff": (8, 16, 32),
                   ".exr": (16, 32)}


def output_bits(pixel_type: str, output: Path) -> int | None:
    """The input's bit depth when the output format can store it (16-bit stays 16-bit)."""
    bits = _BITS_BY_TYPE.get(pixel_type)
    return bits if bits in _BITS_BY_SUFFIX.get(Path(output).suffix.lower(), ()) else None


def as_rgb(image: np.ndarray) -> np.ndarray:
    """Greyscale (Y) or greyscale + alpha (YA) -> RGB / RGBA; others unchanged."""
    if image.shape[2] == 1:
        return np.repeat(image, 3, axis=2)
    if image.shape[2] == 2:
        return np.concatenate([np.repeat(image[..., :1], 3, axis=2), image[..., 1:]], axis=2)
    return image


def undistort_file(src: str | Path, output: str | Path, params: Any = None, engine: "Engine | None" = None, *,
                   colour: "ColourSpec | None" = None, progress: Progress | None = None, info: Any = None,
                   compression: str | None = None, **extra: Any) -> Any:
    """Undistort the portrait in the image `src` into `output`.

    The output keeps the input's bit depth where its format can (16-bit PNG
    stays 16-bit) and its colour space (`colour`); `info` is the input's
    priorfx.io image info when already read; `compression` as for
    priorfx.io.write_image (a short-lived preview is written uncompressed);
    `extra` goes into the output's provenance beside the result's own. Returns the PortraitResult (its faces,
    and the debug overlay when `params.debug_overlay`).
    """
    from priorfx import io as pio
    from priorfx.portrait import PortraitParams

    params = params or PortraitParams()
    info = info if info is not None else pio.read_image_info(src)
    image = as_rgb(pio.read_image(src))
    result = _engine(engine).undistort(image, params, progress=progress, colour=colour)
    prov = {**result.provenance, **extra, "input": str(src)}
    if colour is not None:
        prov["colour"] = colour.provenance()
    pio.write_image(output, result.image, provenance=prov,
                    metadata=colour.header(output) if colour is not None else None,
                    bits=output_bits(info.pixel_type, Path(output)), compression=compression)
    return result


# ---------------------------------------------------------------- matte

def is_clip_output(output: str) -> bool:
    from priorfx.io.video import VIDEO_SUFFIXES, is_sequence_pattern
    return is_sequence_pattern(output) or Path(output).suffix.lower() in VIDEO_SUFFIXES


def check_matte_output(src: str, n_frames: int, output: str) -> None:
    """What a matte output must be, checked before any work: a clip for a clip, and alpha-capable."""
    if n_frames > 1 and not is_clip_output(output):
        raise UsageError(f"{src} has {n_frames} frames but {output} is a single image",
                         "write a sequence (e.g. out/matte_%04d.exr) or a video file")
    if Path(output).suffix.lower() in (".jpg", ".jpeg"):
        raise UsageError("JPEG cannot store alpha", "write the matte as .exr or .png")


def open_matte_writer(frames: "Frames", output: str, video_alpha: str = "grey", **options: Any) -> "FrameWriter":
    """`open_clip_writer` for a matte clip (a video with alpha when `video_alpha` is "alpha")."""
    return open_clip_writer(frames, output, start=frames.frame_numbers[0] if len(frames) else 1,
                            alpha=video_alpha == "alpha", **options)


def matte_files(src: str, output: str, params: Any = None, engine: "Engine | None" = None, *,
                frames: "Frames | None" = None, frame_range: tuple[int, int] | None = None,
                fps: float | None = None, guides: dict | None = None, colour: "ColourSpec | None" = None,
                progress: Progress | None = None, unpremult: bool = True, video_alpha: str = "grey",
                codec: str | None = None, drop: Sequence[str] = (), note: Note | None = None,
                writer: "FrameWriter | None" = None) -> dict:
    """Matte the image or clip `src` into `output` (see `priorfx matte --help` for the layouts).

    Parameters
    ----------
    frames : `src` already opened (priorfx.io.read_frames, turned upright);
        else opened here with `frame_range` and `fps`
    guides : as for `matte_clip` (arrays, per-frame lists or callables)
    unpremult : EXR: add the fg.R/G/B layer; video_alpha: what a video holds
    codec, drop, note : see `open_clip_writer`; `writer`: one it made already

    Returns
    -------
    dict : output, frames written, cuts (frame numbers), parameters, and
        files (the paths written, for a cache to keep)
    """
    from priorfx import io as pio
    from priorfx.matting import MattingParams, channel_names, matte_pixels, write_matte

    params = (params or MattingParams()).validate()
    frames = frames if frames is not None else pio.read_frames(src, frame_range, fps=fps, orient=True)
    check_matte_output(src, len(frames), output)
    clip_out = is_clip_output(output)
    if clip_out and writer is None:
        writer = open_matte_writer(frames, output, video_alpha, codec=codec, drop=drop, note=note)
    numbers = list(getattr(frames, "frame_numbers", range(len(frames))))
    header = colour.header(output) if colour is not None else None
    results = _engine(engine).matte(frames, params, guides=guides or None, progress=progress, colour=colour)
    cuts: list[int] = []
    if not clip_out:
        r = next(iter(results))
        write_matte(output, r, unpremult=unpremult, provenance={**r.provenance, "input": str(src)},
                    metadata=header)
        return {"output": output, "frames": 1, "cuts": cuts, "parameters": params.to_json(),
                "files": [Path(output)]}
    # the first result says which prior file made the clip (a remote
    # server's own copy of the id); every frame comes from the same
    results = iter(results)
    first = next(results)
    prov = output_provenance("matte", params, src, colour, prior=first.provenance.get("prior"))
    if numbers:
        prov["frame_range"] = [numbers[0], numbers[-1]]
    written = 0
    # The writer stages frames in a hidden folder and moves them in only
    # when the block ends cleanly: Ctrl-C or an error leaves nothing.
    writer.provenance, writer.channel_names, writer.metadata = prov, channel_names(output, unpremult), header
    with writer:
        for r in itertools.chain([first], results):
            writer.write(matte_pixels(r, output, unpremult, video_alpha), numbers[r.index] if numbers else None)
            if r.cut:
                cuts.append(numbers[r.index])
            written += 1
    files = [p for p in writer.written if p.suffix.lower() != ".json"]
    return {"output": output, "frames": written, "cuts": cuts, "parameters": params.to_json(), "files": files}
