"""Clips in and out: video files and image sequences.

Video files go through PyAV (FFmpeg, bundled in its wheel; details in
`priorfx.io.videofile`): frame-accurate ranges by timestamp, 10-bit sources
into float32 without losing bits, and a writer that keeps what the source
carried -- sound and other streams copied packet for packet over the frames
taken, timestamps (variable frame rate too), rotation flag, colour tags and
timecode. The codec follows the output name or ``codec=``: .mp4/.m4v/.mov
H.264 (yuv420p, CRF 18), .mov ProRes for a ProRes source or alpha, .mkv FFV1
(lossless), .webm VP9, .avi Motion JPEG; ``--codec h264|hevc|prores|ffv1``.

Image sequences go through OpenImageIO (`priorfx.io.images`):
``dir/frame_%04d.exr`` (or ``dir/frame_####.exr``) patterns and folders of
images. Frame numbers of sequences come from the file names; a video's frames
are numbered from 0 in presentation order, as FFmpeg counts them.

Frames are float32 H x W x 3 RGB in [0, 1] (display-encoded for video and
PNG/JPEG; EXR values as stored, the first three channels).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import uuid
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np

from priorfx.atomic import atomic_path, write_bytes_atomic
from priorfx.errors import InputError, OutputError, UsageError
from priorfx.io import images, videofile

VIDEO_SUFFIXES = (".mp4", ".mov", ".m4v", ".avi", ".mkv", ".webm")
IMAGE_SUFFIXES = (".exr", ".png", ".jpg", ".jpeg", ".tif", ".tiff")
DEFAULT_SEQUENCE_FPS = 24.0

_HASHES = re.compile(r"#+")
_PRINTF = re.compile(r"%0?(\d*)d")
_TRAILING_NUMBER = re.compile(r"(\d+)(?=\.[^.]+$)")


def _to_printf(pattern: str) -> str:
    """'frame_####.exr' -> 'frame_%04d.exr' (Nuke's padding notation)."""
    return _HASHES.sub(lambda m: f"%0{len(m.group())}d", pattern)


def is_sequence_pattern(path: str | os.PathLike) -> bool:
    """True for 'dir/frame_%04d.png' or 'dir/frame_####.png'."""
    return bool(_PRINTF.search(str(path)) or _HASHES.search(Path(path).name))


def frame_file(pattern: str | os.PathLike, number: int) -> Path:
    """The file of frame `number` of a sequence pattern (%04d or ####)."""
    return Path(_to_printf(str(pattern)) % int(number))


def _pattern_regex(printf_pattern: str) -> re.Pattern:
    name = Path(printf_pattern).name
    m = _PRINTF.search(name)
    if m is None or len(_PRINTF.findall(name)) != 1:
        raise UsageError(f"image sequence pattern {printf_pattern!r} must contain one %d / %04d / ####",
                         "e.g. shots/frame_%04d.exr")
    pad = m.group(1)
    digits = rf"(-?\d{{{int(pad)},}})" if pad else r"(-?\d+)"
    return re.compile(re.escape(name[:m.start()]) + digits + re.escape(name[m.end():]) + r"$")


def _to_rgb3(pixels: np.ndarray) -> np.ndarray:
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    c = pixels.shape[2]
    if c >= 3:
        return np.ascontiguousarray(pixels[..., :3], dtype=np.float32)
    return np.ascontiguousarray(np.repeat(pixels[..., :1], 3, axis=2), dtype=np.float32)


class Frames:
    """A clip: `len()`, iteration (re-startable), indexing, `.fps`, `.size`, `.frame_numbers`."""

    def __init__(self, source: str, kind: str, frame_numbers: list[int], fps: float,
                 size: tuple[int, int], paths: list[Path] | None = None,
                 max_pixels: int | None = None, video: "videofile.VideoInfo | None" = None,
                 oriented: bool = False):
        self.source = source
        self.video = video                    # a video file's index and tags (None for sequences)
        self.oriented = oriented              # a rotated video's frames were turned upright
        self.kind = kind                      # "video" or "sequence"
        self.frame_numbers = frame_numbers
        self.fps = fps
        self.size = size                      # (width, height)
        self.paths = paths or []              # per-frame files of a sequence
        self._max_pixels = max_pixels

    def __len__(self) -> int:
        return len(self.frame_numbers)

    def __repr__(self) -> str:
        first, last = (self.frame_numbers[0], self.frame_numbers[-1]) if self.frame_numbers else (None, None)
        return (f"Frames({self.source!r}, {len(self)} frames {first}-{last}, "
                f"{self.size[0]}x{self.size[1]}, {self.fps:g} fps)")

    def __iter__(self) -> Iterator[np.ndarray]:
        if self.kind == "sequence":
            for p in self.paths:
                yield self._read_still(p)
            return
        yield from videofile.decode(self.video, self.frame_numbers, self.oriented)

    def __getitem__(self, index: int) -> np.ndarray:
        """Frame at `index` (0..len-1). Seeking a video is slow; iterate for whole clips."""
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"frame index {index} out of range for {n} frames")
        index %= n
        if self.kind == "sequence":
            return self._read_still(self.paths[index])
        return next(iter(videofile.decode(self.video, [self.frame_numbers[index]], self.oriented)))

    def _read_still(self, path: Path) -> np.ndarray:
        rgb = _to_rgb3(images.read_image(path, max_pixels=self._max_pixels))
        if (rgb.shape[1], rgb.shape[0]) != self.size:
            raise InputError(f"{path}: frame is {rgb.shape[1]}x{rgb.shape[0]}, the sequence is "
                             f"{self.size[0]}x{self.size[1]}", "all frames of a sequence must have one size")
        return rgb


def _select(numbers: list[int], frames: tuple[int, int] | None, src: str) -> list[int]:
    if frames is None:
        return numbers
    first, last = frames
    if last < first:
        raise UsageError(f"frame range {first}-{last} is empty", "give the first frame, then the last")
    chosen = [n for n in numbers if first <= n <= last]
    if not chosen:
        have = f"{numbers[0]}-{numbers[-1]}" if numbers else "none"
        raise InputError(f"{src}: no frames in the range {first}-{last} (the clip has frames {have})",
                         "choose a range inside the clip")
    return chosen


def _missing(numbers: Sequence[int]) -> list[int]:
    have = set(numbers)
    return [n for n in range(min(numbers), max(numbers) + 1) if n not in have]


def _missing_error(src: str, missing: list[int]) -> InputError:
    shown = ", ".join(map(str, missing[:10])) + (" ..." if len(missing) > 10 else "")
    return InputError(f"{src}: {len(missing)} frame(s) missing from the sequence: {shown}",
                      "render the missing frames or choose a range without them")


def read_frames(src: str | os.PathLike, frames: tuple[int, int] | None = None, *,
                fps: float | None = None, max_pixels: int | None = None, orient: bool = False) -> Frames:
    """Open a clip for reading.

    Parameters
    ----------
    src : path-like
        A video file (``.mp4``, ``.mov``, ...), an image sequence pattern
        (``dir/frame_%04d.exr`` or ``dir/frame_####.exr``), or a folder of images
        (name order; frame numbers from the trailing digits of the names).
    frames : (first, last), optional
        Inclusive frame-number range (a video's frames count from 0).
    fps : float, optional
        Frame rate of a sequence (sequences carry none; default 24), or an
        override for a video whose container reports none.
    max_pixels : int, optional
        Size guard per frame (see priorfx.io.images).
    orient : bool
        Turn a video with a rotation flag (phones) upright. Default: frames as
        stored (sensor rows stay rows); a FrameWriter given this clip as its
        ``source`` writes the flag back either way, so results display as the
        input did.

    Returns
    -------
    Frames
        Iterable of float32 RGB frames with ``len()``, ``.fps``, ``.size`` (w, h)
        and ``.frame_numbers``. Nothing is decoded until iterated.

    Raises
    ------
    InputError
        Missing or unreadable file, no frames in range, frames missing from a sequence.
    """
    src_s = str(src)
    path = Path(src_s)
    if is_sequence_pattern(src_s):
        return _read_pattern(src_s, frames, fps, max_pixels)
    if path.is_dir():
        return _read_folder(path, frames, fps, max_pixels)
    if not path.exists():
        raise InputError(f"{src_s}: no such file or folder", "check the path")
    if path.suffix.lower() in IMAGE_SUFFIXES:
        info = images.read_image_info(path)
        return Frames(src_s, "sequence", _select([0], frames, src_s), fps or DEFAULT_SEQUENCE_FPS,
                      (info.width, info.height), [path], max_pixels)
    info = videofile.probe(src_s)
    turned = orient and info.rotation in (90, 270)
    size = (info.height, info.width) if turned else (info.width, info.height)
    images._check_pixels(src_s, size[0], size[1], max_pixels)
    numbers = _select(list(range(len(info.pts))), frames, src_s)
    return Frames(src_s, "video", numbers, fps or info.fps or 30.0, size, None, max_pixels, video=info,
                  oriented=orient and info.rotation != 0)


def _read_pattern(pattern: str, frames, fps, max_pixels) -> Frames:
    printf = _to_printf(pattern)
    folder = Path(printf).parent
    if not folder.is_dir():
        raise InputError(f"{pattern}: folder {folder} does not exist", "check the path")
    rx = _pattern_regex(printf)
    found: dict[int, Path] = {}
    for p in folder.iterdir():
        m = rx.match(p.name)
        if m and p.is_file():
            found.setdefault(int(m.group(1)), p)
    if frames is not None:
        wanted = list(range(frames[0], frames[1] + 1))
        if not wanted:
            raise UsageError(f"frame range {frames[0]}-{frames[1]} is empty",
                             "give the first frame, then the last")
        missing = [n for n in wanted if n not in found]
        if len(missing) == len(wanted):
            have = f"{min(found)}-{max(found)}" if found else "none"
            raise InputError(f"{pattern}: no frames in the range {frames[0]}-{frames[1]} (found {have})",
                             "check the pattern and the frame range")
        if missing:
            raise _missing_error(pattern, missing)
        numbers = wanted
    else:
        if not found:
            raise InputError(f"{pattern}: no files match the pattern", "check the pattern and the folder")
        numbers = sorted(found)
        missing = _missing(numbers)
        if missing:
            raise _missing_error(pattern, missing)
    paths = [found[n] for n in numbers]
    info = images.read_image_info(paths[0])
    return Frames(pattern, "sequence", numbers, fps or DEFAULT_SEQUENCE_FPS, (info.width, info.height),
                  paths, max_pixels)


def _read_folder(folder: Path, frames, fps, max_pixels) -> Frames:
    files = sorted(p for p in folder.iterdir()
                   if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))
    if not files:
        raise InputError(f"{folder}: no images in the folder",
                         f"expected {', '.join(IMAGE_SUFFIXES)} files")
    nums = [_TRAILING_NUMBER.search(p.name) for p in files]
    if all(nums):
        numbers = [int(m.group(1)) for m in nums]
        if len(set(numbers)) != len(numbers):
            raise InputError(f"{folder}: several images share a frame number",
                             "keep one sequence per folder, or give a pattern like dir/frame_%04d.exr")
        order = sorted(range(len(files)), key=lambda i: numbers[i])
        files, numbers = [files[i] for i in order], [numbers[i] for i in order]
        missing = _missing(numbers)
        if missing:
            raise _missing_error(str(folder), missing)
    else:
        numbers = list(range(len(files)))
    chosen = _select(numbers, frames, str(folder))
    by_number = dict(zip(numbers, files))
    paths = [by_number[n] for n in chosen]
    info = images.read_image_info(paths[0])
    return Frames(str(folder), "sequence", chosen, fps or DEFAULT_SEQUENCE_FPS, (info.width, info.height),
                  paths, max_pixels)


# --------------------------------------------------------------------------- writing

def sidecar_path(video: str | os.PathLike) -> Path:
    """Provenance sidecar of a video file: ``clip.mp4`` -> ``clip.mp4.json``."""
    return Path(f"{video}.json")


class FrameWriter:
    """Write a clip atomically: a video file or an image sequence.

    >>> with FrameWriter("out/clip.mp4", fps=30, provenance=rec) as w:   # doctest: +SKIP
    ...     for frame in frames:
    ...         w.write(frame)

    Nothing appears under the final name(s) until the ``with`` block ends
    without an exception; on an exception (or a cancel, Ctrl-C included) every
    temporary file is removed. Videos carry provenance in their container
    metadata (``priorfx_provenance``) and a sidecar ``clip.mp4.json``;
    sequence frames carry it in their headers.

    Parameters
    ----------
    dst : path-like
        ``clip.mp4`` / ``.mov`` / ``.avi`` / ``.mkv`` / ``.webm``, or a pattern
        ``dir/frame_%04d.exr`` (``.png``, ``.jpg``, ``.tif``; ``####`` works too).
    fps : float
        Frame rate of a video (recorded in the sidecar for sequences too).
    start : int
        First frame number of a sequence (default 1; `write` takes explicit ones too).
    provenance : mapping, optional
        Provenance record (priorfx.provenance.provenance).
    codec : str, optional
        Video codec: h264, hevc, prores, ffv1 (vp9, mjpeg); default from the
        output name (see module docstring).
    source : Frames, optional
        The clip the frames came from. A video source passes on its frames'
        timestamps, rotation flag (unless read with ``orient=True``, then the
        frames are written upright), colour tags, timecode (moved to the first
        frame taken), and its sound and other streams, copied packet for packet
        over the frames taken.
    drop : kinds of source streams to leave out: "audio", "subtitle", "data", "video"
        (a second picture stream, copied untouched otherwise).
        A stream the output cannot hold is otherwise an error naming the flag.
    alpha : bool
        Write 4-channel frames as RGBA video (ProRes 4444 in .mov, FFV1 in .mkv).
    channel_names, metadata, bits : optional
        Passed to priorfx.io.images.write_image for sequence frames.
    """

    def __init__(self, dst: str | os.PathLike, fps: float = 30.0, *, start: int = 1,
                 provenance: Mapping[str, Any] | None = None, codec: str | None = None,
                 source: Frames | None = None, drop: Sequence[str] = (), alpha: bool = False,
                 channel_names: Sequence[str] | None = None, metadata: Mapping[str, Any] | None = None,
                 bits: int | str | None = None, quality: int = 95):
        self.dst = str(dst)
        self.fps = float(fps)
        if not self.fps > 0:
            raise UsageError(f"frame rate {fps} must be positive", "e.g. fps=30")
        self.provenance = dict(provenance) if provenance is not None else None
        self.channel_names, self.metadata, self.bits, self.quality = channel_names, metadata, bits, quality
        self.next_number = int(start)
        self.count = 0
        self.written: list[Path] = []
        suffix = Path(self.dst).suffix.lower()
        if is_sequence_pattern(self.dst):
            if suffix not in images.WRITE_FORMATS:
                raise UsageError(f"cannot write an image sequence as {suffix or '(no suffix)'}",
                                 "use .exr, .png, .jpg or .tif")
            self.kind = "sequence"
            self._printf = _to_printf(self.dst)
            _pattern_regex(self._printf)  # validates the pattern
        elif suffix in VIDEO_SUFFIXES:
            self.kind = "video"
            self.source = source
            self._info = source.video if source is not None else None
            self.alpha = alpha
            self.codec = videofile.codec_for(self.dst, codec, self._info, alpha)
            self.copy = videofile.streams_to_copy(self._info, self.dst, drop)
        else:
            raise UsageError(f"cannot write {self.dst}: not a video file or an image sequence pattern",
                             f"use one of {', '.join(VIDEO_SUFFIXES)} or a pattern like dir/frame_%04d.exr")
        self._entered = False

    # -- context
    def __enter__(self) -> "FrameWriter":
        target_dir = Path(self.dst).parent
        if not target_dir.is_dir():
            raise OutputError(f"output folder {target_dir} does not exist",
                              "create it first or choose another output path")
        if not os.access(target_dir, os.W_OK):
            raise OutputError(f"output folder {target_dir} is not writable",
                              "choose a folder you can write to")
        if self.kind == "video":
            self._atomic = atomic_path(self.dst)
            self._tmp = self._atomic.__enter__()
            self._size = None
            meta = {videofile.PROVENANCE_KEY: json.dumps(self.provenance, sort_keys=True, default=str)} \
                if self.provenance is not None else {}
            src = self.source
            self._writer = videofile.VideoFileWriter(
                str(self._tmp), self.codec, self.fps, source=self._info,
                numbers=src.frame_numbers if src is not None else (),
                baked=bool(src is not None and src.oriented), copy=self.copy, metadata=meta)
        else:
            # Stage frames in a hidden folder beside the target ones; move them in
            # only at the end, so a failed render never mixes with earlier frames.
            self._stage = target_dir / f".priorfx-partial-{uuid.uuid4().hex[:8]}"
            self._stage.mkdir()
            self._staged: list[tuple[Path, Path]] = []
        self._entered = True
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if self.kind == "video":
            if exc_type is None and self.count:
                try:
                    self._writer.close()
                except BaseException as err:
                    self._writer.abort()
                    self._atomic.__exit__(type(err), err, None)
                    if isinstance(err, videofile.FFmpegError):
                        raise OutputError(f"cannot finish {self.dst}: {err}",
                                          "check the free disk space and the output path") from None
                    raise
            else:
                self._writer.abort()
            if exc_type is None and self.count == 0:
                err = OutputError(f"no frames were written to {self.dst}")
                self._atomic.__exit__(OutputError, err, None)  # removes the temporary file
                raise err
            # on an exception this removes the temporary file; on success it renames
            try:
                self._atomic.__exit__(exc_type, exc, tb)
            except OSError as err:  # e.g. the target name is a folder
                raise OutputError(f"cannot write {self.dst}: {err.strerror or err}",
                                  "check that the path is a writable file location") from None
            if exc_type is None:
                self._write_sidecar()
                self.written = [Path(self.dst), sidecar_path(self.dst)]
            return False
        # sequence
        try:
            if exc_type is None:
                if not self._staged:
                    raise OutputError(f"no frames were written to {self.dst}")
                try:
                    for tmp, final in self._staged:
                        os.replace(tmp, final)
                except OSError as err:
                    raise OutputError(f"cannot write {final}: {err.strerror or err}",
                                      "check that the path is a writable file location") from None
                self.written = [final for _, final in self._staged]
        finally:
            shutil.rmtree(self._stage, ignore_errors=True)
        return False

    def _write_sidecar(self) -> None:
        record = {"file": Path(self.dst).name, "frames": self.count, "fps": self.fps,
                  "size": list(self._size), **self._writer.describe(),
                  "provenance": self.provenance}
        write_bytes_atomic(sidecar_path(self.dst), json.dumps(record, indent=2, sort_keys=True,
                                                              default=str).encode())

    # -- frames
    def write(self, frame: np.ndarray, number: int | None = None) -> None:
        """Append one frame (float in [0, 1] or uint8; RGB, or more channels for EXR)."""
        if not self._entered:
            raise UsageError("FrameWriter.write called outside its `with` block", "use `with FrameWriter(...) as w:`")
        frame = np.asarray(frame)
        if frame.ndim not in (2, 3):
            raise InputError(f"frame has shape {frame.shape}", "expected H x W x C")
        if self.kind == "video":
            self._write_video(frame, number)
        else:
            n = self.next_number if number is None else int(number)
            final = Path(self._printf % n)
            tmp = self._stage / final.name
            images.write_image(tmp, frame, self.channel_names, self.metadata, self.provenance,
                               self.bits, quality=self.quality)
            self._staged.append((tmp, final))
            self.next_number = n + 1
        self.count += 1

    def _write_video(self, frame: np.ndarray, number: int | None) -> None:
        if frame.ndim == 2:
            frame = frame[..., None]
        c = frame.shape[2]
        if self.alpha and c == 4:
            pixels = frame if frame.dtype == np.uint8 else np.asarray(frame, np.float32)
        elif frame.dtype == np.uint8:
            pixels = frame[..., :3] if c >= 3 else np.repeat(frame[..., :1], 3, axis=2)
        else:
            pixels = _to_rgb3(frame)
        h, w = pixels.shape[:2]
        if self._size is None:
            self._size = (w, h)
        elif (w, h) != self._size:
            raise InputError(f"frame {self.count} is {w}x{h}, the video is {self._size[0]}x{self._size[1]}",
                             "all frames of a video must have one size")
        try:
            self._writer.write(np.ascontiguousarray(pixels), number)
        except videofile.FFmpegError as err:
            raise OutputError(f"cannot write {self.dst} with codec {self.codec} at {w}x{h}: {err}",
                              "try another --codec or container (.mp4, .mov, .mkv) or an image sequence") from None
