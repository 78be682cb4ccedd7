"""Video files through PyAV (FFmpeg): an index, frame-accurate decoding, and a
writer that keeps what the source carried.

PyAV's wheels bundle FFmpeg with libx264, libx265, ProRes, FFV1 and AAC, so
H.264 output and stream copies need no system FFmpeg. `priorfx.io.video`
(clips, sequences, `FrameWriter`) is the public face; this module holds the
FFmpeg details.

Frame numbers are positions in presentation order, counted from 0. They are
found from the packets' timestamps (demuxing only, no decoding), so a
variable-frame-rate clip is numbered by its real frames and `--frames A-B`
seeks to the timestamp of frame A, then decodes forward to it.

Rotation: phones store the sensor's picture and a display-matrix flag. Frames
are returned as stored unless asked to be turned upright (`orient=True`); the
writer then writes them upright with no flag. Frames read as stored are
written as stored with the source's flag, so a rolling-shutter fix works on
sensor rows and the result still plays upright.
"""
from __future__ import annotations

import dataclasses
import os
import re
from fractions import Fraction
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import av
import cv2
import numpy as np

from priorfx.errors import InputError, OutputError, UsageError

CODECS = ("h264", "hevc", "prores", "ffv1", "vp9", "mjpeg")
DEFAULT_CODEC = {".mp4": "h264", ".m4v": "h264", ".mov": "h264", ".mkv": "ffv1", ".avi": "mjpeg",
                 ".webm": "vp9"}
H264_CRF, HEVC_CRF = 18, 20
# x264/x265 speed preset. CRF sets the picture quality; the preset trades file
# size for encoding time. At 1080p on 2 cores (bench video, same run):
# ultrafast ~65-100 ms/frame, veryfast ~125-190, fast ~420; files 360 / 217 /
# 214 KiB for 12 frames. ultrafast keeps writing within 15% of a deshutter run.
PRESET = "ultrafast"
PROVENANCE_KEY = "priorfx_provenance"
STREAM_KINDS = ("audio", "subtitle", "data", "video")  # the other streams a source may carry
_UNSPECIFIED = 2  # FFmpeg's AVCOL_*_UNSPECIFIED for primaries, transfer and matrix
_BT709 = 1
_TIMECODE = re.compile(r"^(\d+):(\d\d):(\d\d)([:;.])(\d\d)$")
_INDEX_CACHE: dict[tuple, "VideoInfo"] = {}
FFmpegError = av.error.FFmpegError

# PyAV's logging off (its default): a level routes FFmpeg's log lines through a
# Python callback that needs the GIL from FFmpeg's decoder threads, and with
# thread_type AUTO that deadlocked a whole test run (PyAV issues 751 and 909).
# Errors still raise av.error.FFmpegError with FFmpeg's message.
av.logging.set_level(None)


@dataclasses.dataclass
class VideoInfo:
    """What the writer copies from a source video, and the decoder's index."""

    path: str
    pts: list[int]                # presentation timestamps, in order (frame n -> pts[n])
    end_pts: int                  # where the last frame ends
    time_base: Fraction
    fps: float                    # average rate
    width: int                    # as stored (before rotation)
    height: int
    rotation: int                 # display flag, degrees counter-clockwise: 0, 90, 180, 270
    bits: int                     # bits per component of the decoded pictures
    codec: str
    colour: dict[str, int]        # primaries, transfer, matrix, range (FFmpeg enum values)
    timecode: str | None
    streams: list[tuple[int, str, str | None]]  # the other streams (a 2nd video too): (index, kind, codec)
    audio_rate: int | None = None  # sample rate of the first sound stream

    def seconds(self, pts: int) -> float:
        return float((pts - self.pts[0]) * self.time_base)


def _av_error(src: str, exc: Exception) -> InputError:
    text = str(exc).split(": '")[0]  # FFmpeg's message, without the repeated path
    return InputError(f"{src}: cannot read the video ({text})",
                      "the file may be truncated or not a video; re-encode it or give an image sequence")


def probe(src: str) -> VideoInfo:
    """Index a video file: frame timestamps (by demuxing), size, tags, other streams."""
    st = os.stat(src)
    key = (os.path.abspath(src), st.st_size, st.st_mtime_ns)
    if key not in _INDEX_CACHE:
        if len(_INDEX_CACHE) > 16:
            _INDEX_CACHE.clear()
        _INDEX_CACHE[key] = _probe(src)
    return _INDEX_CACHE[key]


def forget_indexes() -> None:
    """Drop the cached indexes (benchmarks time the indexing too)."""
    _INDEX_CACHE.clear()


def _probe(src: str) -> VideoInfo:
    try:
        container = av.open(src)
    except (av.error.FFmpegError, UnicodeDecodeError) as exc:
        raise InputError(f"{src}: cannot open the video (not a video, corrupt, or an unsupported codec)",
                         "MP4/MOV/AVI/MKV/WebM that FFmpeg decodes work; or give an image sequence") from exc
    with container:
        if not container.streams.video:
            kinds = ", ".join(sorted({s.type for s in container.streams})) or "nothing"
            raise InputError(f"{src}: the file holds no video stream (only {kinds})",
                             "give a video file or an image sequence")
        vs = container.streams.video[0]
        if vs.codec_context is None:
            raise InputError(f"{src}: the video's codec is unknown to FFmpeg and cannot be decoded here",
                             "re-encode it (e.g. to H.264 or ProRes) or give an image sequence")
        stamps: list[tuple[int, int]] = []
        try:
            for pkt in container.demux(vs):
                if pkt.size == 0:
                    continue
                t = pkt.pts if pkt.pts is not None else pkt.dts
                stamps.append((t if t is not None else len(stamps), pkt.duration or 0))
        except av.error.FFmpegError as exc:
            if not stamps:
                raise _av_error(src, exc) from None
        if not stamps:
            raise InputError(f"{src}: the video holds no decodable frames", "check the file or re-encode it")
        stamps.sort()
        pts = [p for p, _ in stamps]
        tb = vs.time_base or Fraction(1, 90000)
        rate = vs.average_rate or vs.guessed_rate
        step = stamps[-1][1] or (round(1 / (rate * tb)) if rate else 1)
        cc = vs.codec_context
        fmt = cc.format
        bits = max((c.bits for c in fmt.components), default=8) if fmt is not None else 8
        timecode = (vs.metadata.get("timecode") or container.metadata.get("timecode")
                    or next((s.metadata["timecode"] for s in container.streams if "timecode" in s.metadata),
                            None))
        rotation = _stream_rotation(container, vs)
        others = [(s.index, s.type, _codec_name(s))
                  for s in container.streams if s.index != vs.index and not _is_timecode_track(s)
                  and s.type in STREAM_KINDS]
        return VideoInfo(src, pts, pts[-1] + step, tb, float(rate) if rate else 0.0, cc.width, cc.height,
                         rotation, bits, _codec_name(vs),
                         {"primaries": cc.color_primaries, "transfer": cc.color_trc,
                          "matrix": cc.colorspace, "range": cc.color_range},
                         timecode, others,
                         next((s.codec_context.sample_rate for s in container.streams.audio
                               if s.codec_context is not None), None))


def _codec_name(stream) -> str | None:
    """The codec's name as containers list them ('mp3', not the decoder's 'mp3float')."""
    cc = stream.codec_context
    return cc.codec.canonical_name if cc is not None else None


def _stream_rotation(container, vs) -> int:
    """The display flag, read from the first decoded frame (where FFmpeg puts it)."""
    try:
        container.seek(0)
        for frame in container.decode(vs):
            return int(round(frame.rotation / 90.0)) % 4 * 90
    except av.error.FFmpegError:
        pass
    return 0


def _is_timecode_track(stream) -> bool:
    """A MOV/MP4 'tmcd' track: the writer rebuilds it from the timecode tag."""
    return stream.type == "data" and (stream.metadata.get("handler_name", "").startswith("TimeCode")
                                      or getattr(stream, "codec_tag", None) == "tmcd")


# --------------------------------------------------------------------------- decoding

def decode(info: VideoInfo, numbers: Sequence[int], orient: bool = False) -> Iterator[np.ndarray]:
    """Frames `numbers` (consecutive, ascending) as float32 RGB in [0, 1].

    10/12-bit sources are converted through 16-bit RGB, so their extra bits
    survive into the floats.
    """
    want = [info.pts[n] for n in numbers]
    try:
        container = av.open(info.path)
    except av.error.FFmpegError as exc:
        raise _av_error(info.path, exc) from None
    k = (info.rotation // 90) if orient else 0
    fmt, scale = ("rgb48le", np.float32(1 / 65535)) if info.bits > 8 else ("rgb24", np.float32(1 / 255))
    got = 0
    with container:
        vs = container.streams.video[0]
        vs.thread_type = "AUTO"
        try:
            if numbers[0] > 0:
                container.seek(want[0], stream=vs, backward=True)
            for frame in container.decode(vs):
                p = frame.pts
                if p is None or p < want[got]:
                    continue
                if p > want[got]:
                    break  # a frame the index promised is missing
                rgb = frame.to_ndarray(format=fmt)
                if k:
                    rgb = np.rot90(rgb, k)
                out = rgb.astype(np.float32)  # cast, then scale in place: 5x faster than one
                out *= scale                  # casting multiply at 1080p
                yield out
                got += 1
                if got == len(want):
                    return
        except av.error.FFmpegError:
            pass
    n = numbers[got] if got < len(numbers) else numbers[-1]
    raise InputError(f"{info.path}: cannot decode frame {n} (the video ends early or is corrupt)",
                     f"the container promised frames up to {numbers[-1]}; "
                     "re-encode the video or give a shorter --frames range")


# --------------------------------------------------------------------------- writing

def codec_for(dst: str, codec: str | None, source: VideoInfo | None, alpha: bool = False) -> str:
    """The codec a video output gets: the option, else ProRes for a ProRes
    source or an alpha matte in .mov, else the container's default."""
    suffix = Path(dst).suffix.lower()
    if codec is not None:
        if codec not in CODECS:
            raise UsageError(f"unknown codec {codec!r}", f"use one of {', '.join(CODECS)}")
        chosen = codec
    elif suffix == ".mov" and (alpha or (source is not None and source.codec == "prores")):
        chosen = "prores"
    else:
        chosen = DEFAULT_CODEC[suffix]
    fmt = av.format.ContainerFormat(_format_name(suffix), "w")
    if _ENCODERS[chosen] not in _supported(fmt) and chosen not in _supported(fmt):
        raise UsageError(f"{suffix} files cannot hold {chosen} video",
                         "choose another --codec or another container (.mov and .mkv hold all of them)")
    if alpha and chosen not in ("prores", "ffv1", "vp9"):
        raise UsageError(f"{chosen} video has no alpha channel",
                         "write the matte with alpha as .mov (ProRes 4444) or .mkv (FFV1)")
    return chosen


_ENCODERS = {"h264": "libx264", "hevc": "libx265", "prores": "prores_ks", "ffv1": "ffv1",
             "vp9": "libvpx-vp9", "mjpeg": "mjpeg"}


def _format_name(suffix: str) -> str:
    return {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".avi": "avi",
            ".webm": "webm"}[suffix]


_SUPPORTED: dict[str, set[str]] = {}


def _supported(fmt) -> set[str]:
    """Codecs a container format can hold (asked of FFmpeg, once per format)."""
    if fmt.name not in _SUPPORTED:
        with av.open(os.devnull, "w", format=fmt.name) as probe_out:
            _SUPPORTED[fmt.name] = set(probe_out.supported_codecs)
    return _SUPPORTED[fmt.name]


def streams_to_copy(source: VideoInfo | None, dst: str, drop: Sequence[str] = ()) -> list[int]:
    """The source's non-picture streams that go into `dst` (stream indices).

    A stream the container cannot hold is an error that names the flag which
    drops it: nothing is left out without the user saying so.
    """
    if source is None:
        return []
    suffix = Path(dst).suffix.lower()
    supported = _supported(av.format.ContainerFormat(_format_name(suffix), "w"))
    keep = []
    for index, kind, codec in source.streams:
        if kind in drop:
            continue
        if codec is None or codec not in supported:
            flag = "--drop-audio" if kind == "audio" else "--drop-streams"
            raise UsageError(f"{source.path}: its {kind} stream #{index} ({codec or 'unknown codec'}) "
                             f"cannot go into a {suffix} file",
                             f"write .mkv or .mov, or leave it out with {flag}")
        keep.append(index)
    return keep


def add_timecode(tc: str, frames: int, fps: float) -> str:
    """SMPTE timecode `tc` moved on by `frames` (drop-frame ';' at 29.97/59.94 too)."""
    m = _TIMECODE.match(tc or "")
    if m is None or frames == 0 or fps <= 0:
        return tc
    h, mi, s, sep, f = m.groups()
    nominal = int(round(fps))
    drop = sep in ";." and nominal in (30, 60)
    skip = 2 * nominal // 30 if drop else 0  # frame labels skipped each minute but every tenth
    minutes = int(h) * 60 + int(mi)
    total = (minutes * 60 + int(s)) * nominal + int(f)
    if drop:
        total -= skip * (minutes - minutes // 10)
    total += frames
    if drop:  # real frame count -> labels
        per10 = nominal * 600 - skip * 9
        per1 = nominal * 60 - skip
        d, r = divmod(total, per10)
        total += skip * 9 * d + (skip * ((r - skip) // per1) if r > skip else 0)
    f2 = total % nominal
    s2 = total // nominal
    return f"{s2 // 3600 % 24:02d}:{s2 // 60 % 60:02d}:{s2 % 60:02d}{sep}{f2:02d}"


class VideoFileWriter:
    """Encode frames into a video file, copying the source's other streams.

    Parameters
    ----------
    path : the (temporary) file to write; its suffix picks the container
    codec : one of CODECS (see `codec_for`)
    fps : frame rate when there is no source to take timestamps from
    source : the source's VideoInfo, and `numbers` the frames taken from it:
        their timestamps, colour tags, timecode, rotation and other streams
        (trimmed to those frames) are carried over
    baked : the frames were turned upright (no rotation flag is written)
    copy : stream indices of the source to copy (`streams_to_copy`)
    metadata : container tags (provenance)
    """

    def __init__(self, path: str, codec: str, fps: float, *, source: VideoInfo | None = None,
                 numbers: Sequence[int] = (), baked: bool = False, copy: Sequence[int] = (),
                 metadata: Mapping[str, str] | None = None):
        self.path, self.codec, self.fps = path, codec, fps
        self.source, self.numbers, self.baked, self.copy = source, list(numbers), baked, list(copy)
        self.metadata = dict(metadata or {})
        self.count = 0
        self._out = None
        self._stream = None
        self._copier: _StreamCopier | None = None

    # -- setup at the first frame, when the size and channels are known
    def _open(self, width: int, height: int, alpha: bool) -> None:
        suffix = Path(self.path).suffix.lower()
        options = {}
        if suffix in (".mp4", ".m4v", ".mov"):
            options["movflags"] = "use_metadata_tags+faststart"
            if self.copy and self.source.audio_rate:
                # edit lists (where a trimmed sound starts) are counted in the movie's
                # timescale, 1/1000 s by default: count them in samples instead
                options["movie_timescale"] = str(self.source.audio_rate)
        try:
            self._out = av.open(self.path, "w", format=_format_name(suffix), options=options)
        except av.error.FFmpegError as exc:
            raise OutputError(f"cannot write {self.path}: {exc}", "check the output path") from None
        src = self.source
        tenbit = src is not None and src.bits > 8
        enc, pix_fmt, opts = _encoder_settings(self.codec, width, height, alpha, tenbit)
        if src is not None and src.pts and self.numbers:
            self._tb = src.time_base
            self._pts = {n: src.pts[n] - src.pts[self.numbers[0]] for n in self.numbers}
            rate = Fraction(src.fps).limit_denominator(100000) if src.fps else None
        else:
            rate = Fraction(self.fps).limit_denominator(100000)
            self._tb = 1 / rate
            self._pts = {}
        vs = self._out.add_stream(enc, rate=rate or Fraction(self.fps).limit_denominator(100000),
                                  options=opts)
        vs.width, vs.height, vs.pix_fmt = width, height, pix_fmt
        vs.codec_context.time_base = self._tb
        vs.time_base = self._tb
        if self.codec == "hevc" and suffix in (".mp4", ".m4v", ".mov"):
            vs.codec_tag = "hvc1"  # what Apple's players look for
        self._colour = _output_colour(src)
        cc = vs.codec_context
        cc.color_primaries, cc.color_trc = self._colour["primaries"], self._colour["transfer"]
        cc.colorspace, cc.color_range = self._colour["matrix"], self._colour["range"]
        if src is not None and src.rotation and not self.baked:
            vs.set_display_rotation(src.rotation)
        for k, v in self.metadata.items():
            self._out.metadata[k] = v
        if src is not None and src.timecode and self.numbers:
            self._out.metadata["timecode"] = add_timecode(src.timecode, self.numbers[0], src.fps or self.fps)
        self._stream = vs
        self._pix_fmt = pix_fmt
        if src is not None and self.copy and self.numbers:
            self._copier = _StreamCopier(self._out, src, self.copy, self.numbers)

    def write(self, rgb: np.ndarray, number: int | None = None) -> None:
        """One frame: H x W x 3 (RGB) or 4 (RGBA), uint8, uint16 or float in [0, 1]."""
        h, w = rgb.shape[:2]
        alpha = rgb.shape[2] == 4
        if self._out is None:
            self._open(w, h, alpha)
        if rgb.dtype == np.uint8 or rgb.dtype == np.uint16:
            pixels = rgb
        elif self._pix_fmt.endswith(("10le", "16le")):
            pixels = (np.clip(rgb, 0.0, 1.0) * 65535.0 + 0.5).astype(np.uint16)
        else:  # OpenCV rounds and saturates in one pass (5x numpy's clip-scale-cast at 1080p);
            # it would take negatives' absolute value, so those (rare) are zeroed first
            rgb = np.asarray(rgb, np.float32)
            pixels = cv2.convertScaleAbs(rgb if rgb.min() >= 0 else np.maximum(rgb, 0.0), alpha=255.0)
        fmt = {(np.uint8, False): "rgb24", (np.uint8, True): "rgba",
               (np.uint16, False): "rgb48le", (np.uint16, True): "rgba64le"}[(pixels.dtype.type, alpha)]
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(pixels), format=fmt)
        c = self._colour
        frame = frame.reformat(format=self._pix_fmt, dst_colorspace=_matrix_for_swscale(c["matrix"]),
                               dst_color_range=c["range"] or 1)
        frame.pts = self._frame_pts(number)
        self._out.mux(self._stream.encode(frame))
        self.count += 1
        if self._copier is not None:
            self._copier.pump(float(frame.pts * self._tb))

    def _frame_pts(self, number: int | None) -> int:
        if number is None and self.count < len(self.numbers):
            number = self.numbers[self.count]
        if number in self._pts:
            return self._pts[number]
        last = max(self._pts.values(), default=-1)
        step = max(1, round(1 / (self.fps * self._tb)))
        return max(last + step, self.count * step) if self._pts else self.count * step

    def close(self) -> None:
        """Flush the encoder and the copied streams; finish the file."""
        if self._out is None:
            return
        self._out.mux(self._stream.encode(None))
        if self._copier is not None:
            self._copier.pump(None)
        self._out.close()

    def abort(self) -> None:
        if self._copier is not None:
            self._copier.close()
        if self._out is not None:
            try:
                self._out.close()
            except Exception:  # the file is being thrown away; its state does not matter
                pass

    def describe(self) -> dict[str, Any]:
        """What was written, for the sidecar."""
        d = {"codec": self.codec, "pix_fmt": getattr(self, "_pix_fmt", None),
             "colour": getattr(self, "_colour", None)}
        if self.source is not None:
            d["rotation"] = 0 if self.baked else self.source.rotation
            d["copied_streams"] = self.copy
            if self.source.timecode and self.numbers:
                d["timecode"] = add_timecode(self.source.timecode, self.numbers[0],
                                             self.source.fps or self.fps)
        return d


def _encoder_settings(codec: str, width: int, height: int, alpha: bool, tenbit: bool):
    """(encoder, pixel format, options) for a codec."""
    odd = width % 2 or height % 2
    if codec == "h264":  # 8-bit 4:2:0 plays everywhere; odd sizes need 4:4:4
        return "libx264", "yuv444p" if odd else "yuv420p", {"crf": str(H264_CRF), "preset": PRESET}
    if codec == "hevc":
        fmt = ("yuv444p" if odd else "yuv420p") + ("10le" if tenbit else "")
        return "libx265", fmt, {"crf": str(HEVC_CRF), "preset": PRESET,
                                   "x265-params": "log-level=error"}
    if codec == "prores":
        return "prores_ks", "yuva444p10le" if alpha else "yuv422p10le", \
            {"profile": "4" if alpha else "3", "vendor": "apl0"}  # 4444 / 422 HQ
    if codec == "ffv1":  # lossless RGB
        if tenbit:
            return "ffv1", "yuva444p10le" if alpha else "gbrp10le", {"level": "3"}
        return "ffv1", "bgra" if alpha else "bgr0", {"level": "3"}
    if codec == "vp9":
        return "libvpx-vp9", "yuva420p" if alpha else "yuv420p", {"crf": "30", "b": "0"}
    return "mjpeg", "yuvj444p" if odd else "yuvj420p", {"q:v": "3"}


def _output_colour(src: VideoInfo | None) -> dict[str, int]:
    """The source's tags; for frames with no source (sequences): sRGB-ish BT.709, limited range."""
    if src is not None:
        return dict(src.colour)
    return {"primaries": _BT709, "transfer": _BT709, "matrix": _BT709, "range": 1}


def _matrix_for_swscale(matrix: int) -> int | None:
    """The RGB<->YUV matrix to convert with: the tagged one (as the decoder used it)."""
    return None if matrix in (0, _UNSPECIFIED) else matrix


class _StreamCopier:
    """Copies a source's other streams packet by packet, trimmed to the frames
    taken and shifted with them, interleaved with the picture as it is written."""

    def __init__(self, out, src: VideoInfo, indices: Sequence[int], numbers: Sequence[int]):
        self._in = av.open(src.path)
        streams = [self._in.streams[i] for i in indices]
        self._map = {s.index: out.add_stream_from_template(s) for s in streams}
        self._t0 = float(src.pts[numbers[0]] * src.time_base)
        nxt = numbers[-1] + 1
        self._t1 = float((src.pts[nxt] if nxt < len(src.pts) else src.end_pts) * src.time_base)
        self._from_start = numbers[0] == 0
        if not self._from_start:
            self._in.seek(max(0, int((self._t0 - 1.0) / av.time_base)), backward=True)
        self._packets = self._in.demux(*streams)
        self._pending = None
        self._done: set[int] = set()
        self._all = set(self._map)
        self._out = out
        self._closed = False

    def pump(self, until: float | None) -> None:
        """Mux the packets that start before `until` seconds (output time); None: all in range."""
        while self._done != self._all:
            if self._pending is None:
                self._pending = next(self._packets, None)
                if self._pending is None:
                    break
            pkt = self._pending
            if pkt.size == 0 or (pkt.pts is None and pkt.dts is None):
                self._pending = None
                continue
            t = float((pkt.pts if pkt.pts is not None else pkt.dts) * pkt.time_base)
            if t >= self._t1:
                self._done.add(pkt.stream.index)
                self._pending = None
                continue
            if until is not None and t - self._t0 > until:
                return
            self._pending = None
            if t < self._t0 - 1e-9 and not self._from_start:
                continue
            shift = int(round(self._t0 / pkt.time_base))
            if pkt.pts is not None:
                pkt.pts -= shift
            if pkt.dts is not None:
                pkt.dts -= shift
            pkt.stream = self._map[pkt.stream.index]
            self._out.mux(pkt)
        self.close()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._done = self._all
            self._in.close()
