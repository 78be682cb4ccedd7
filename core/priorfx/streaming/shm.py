"""Shared-memory frame slots between a host (OBS) and a `priorfx worker`.

Standard library only: the OBS script loads this very file by path inside
OBS's own Python (`priorfx install obs` copies it beside the script as
`priorfx_shm.py`), and the worker imports it from the core. One file, one
protocol, both sides.

Layout of the mapped file (little endian)::

    [control 512 B][in slot 0]...[in slot N-1][out slot 0]...[out slot M-1]
    slot = [slot header 128 B][plane bytes, capacity rounded up to 64]

The host writes frames into the input slots round-robin and wakes the worker
with one byte on the worker's stdin; the worker writes results into the output
slots round-robin. Each slot is guarded by a sequence lock: the writer stores
`seq_begin`, then the planes, then `seq_end`; a reader copies the planes and
accepts them only when `seq_begin == seq_end` afterwards, so a slot rewritten
during the copy is dropped instead of tearing a frame. Neither side ever waits
for the other.

The mapping is a file in /dev/shm (RAM; the temp dir elsewhere) opened with
`mmap`, not `multiprocessing.shared_memory`: on POSIX (Python < 3.13) that
module registers every block with a resource-tracker process it starts from
`sys.executable`, and inside OBS that is not OBS's Python (on this machine it
was whichever `python3` came first on PATH). The host unlinks the file once the worker has mapped it, so
nothing is left behind even if both processes die.

Planes are kept exactly as the host delivered them (same line size, rows per
plane from `plane_rows`), concatenated, so the worker sees one buffer plus
strides and the host can copy a result back with one memmove per plane.
"""
from __future__ import annotations

import mmap
import os
import stat
import struct
import tempfile
from dataclasses import dataclass

MAGIC = b"PFXSHM01"
VERSION = 3   # 2: calibration fields in the control block; 3: readout prior and readout in use
CONTROL_SIZE = 512
SLOT_HEADER_SIZE = 128
ALIGN = 64
MAX_PLANES = 4
MAX_SLOTS = 64
MAX_SIDE = 1 << 15  # pixels along a frame side

# libobs `enum video_format` values (stable since OBS 26) -> name.
OBS_FORMATS = {1: "I420", 2: "NV12", 3: "YVYU", 4: "YUY2", 5: "UYVY", 6: "RGBA",
               7: "BGRA", 8: "BGRX", 9: "Y800", 10: "I444", 11: "BGR3", 12: "I422"}
FORMAT_IDS = {name: num for num, name in OBS_FORMATS.items()}
# What the correction accepts (priorfx.io.camera converts these to RGB and back).
SUPPORTED = ("NV12", "I420", "I422", "YUY2", "BGRA", "RGBA")

# Worker states (control block).
STARTING, READY, FAILED, EXITED = 0, 1, 2, 3
STATE_NAMES = {STARTING: "starting", READY: "ready", FAILED: "failed", EXITED: "exited"}

MODES = ("rs", "rsgr")   # priorfx.shutter.ShutterParams.mode

# Calibration states (priorfx.shutter.calibrate's numbers).
CALIB_IDLE, CALIB_RUNNING, CALIB_DONE, CALIB_FAILED, CALIB_CANCELLED = 0, 1, 2, 3, 4
CALIB_STATE_NAMES = {CALIB_IDLE: "idle", CALIB_RUNNING: "running", CALIB_DONE: "done",
                     CALIB_FAILED: "failed", CALIB_CANCELLED: "cancelled"}
# Where the readout in use comes from (the worker's session).
READOUT_SOURCES = ("none", "given", "default", "calibrated", "estimated")

# The control block: (name, struct code) in order.
_CONTROL_FIELDS = [("magic", "8s"), ("version", "I"), ("n_in", "I"), ("n_out", "I"),
                   ("capacity", "Q"), ("state", "I"), ("worker_pid", "I"), ("heartbeat", "Q"),
                   ("params_seq", "I"), ("readout", "d"), ("auto_readout", "I"), ("mode", "I"),
                   ("strength", "d"), ("lookahead", "I"), ("in_latest", "Q"), ("out_latest", "Q"),
                   # calibration: the host asks (request seq, seconds of live video, cancel = the
                   # request seq to stop), the worker answers about request `calib_seq`
                   ("calib_request", "I"), ("calib_cancel", "I"), ("calib_seconds", "d"),
                   ("calib_seq", "I"), ("calib_state", "I"), ("calib_progress", "d"), ("calib_g", "d"),
                   ("calib_low", "d"), ("calib_high", "d"), ("calib_informative", "I"), ("calib_pairs", "I"),
                   # the host's calibrated interval around `readout` (0, 0: none), and the
                   # worker's readout in use with its 95 % interval and where it came from
                   ("prior_low", "d"), ("prior_high", "d"),
                   ("use_g", "d"), ("use_low", "d"), ("use_high", "d"), ("use_pairs", "I"),
                   ("use_source", "I"), ("use_seq", "I")]
_CONTROL = struct.Struct("<" + "".join(code for _, code in _CONTROL_FIELDS))
_FIELD = {name: (struct.calcsize("<" + "".join(c for _, c in _CONTROL_FIELDS[:i])), "<" + code)
          for i, (name, code) in enumerate(_CONTROL_FIELDS)}
_ERROR_OFFSET = 256          # worker error text, utf-8, NUL padded
assert _CONTROL.size <= _ERROR_OFFSET
_ERROR_SIZE = CONTROL_SIZE - _ERROR_OFFSET
# slot: seq_begin, seq_end, source_seq, timestamp, format, width, height, n_planes,
# linesize[4], size ... (seq_end is rewritten last; see module doc)
_SLOT = struct.Struct("<QQQQIIII4II")
_SEQ_END_OFFSET = 8


def plane_rows(fmt: str, height: int) -> list[int]:
    """Rows in each plane of a frame of `fmt` (OBS layout; chroma rounds up)."""
    half = (height + 1) // 2
    if fmt == "I420":
        return [height, half, half]
    if fmt == "NV12":
        return [height, half]
    if fmt in ("I422", "I444"):
        return [height, height, height]
    if fmt in ("YUY2", "YVYU", "UYVY", "RGBA", "BGRA", "BGRX", "Y800", "BGR3"):
        return [height]
    raise ValueError(f"unknown frame format {fmt!r}")


def frame_size(fmt: str, height: int, linesizes) -> int:
    """Bytes the planes of a frame take when concatenated."""
    return sum(r * ls for r, ls in zip(plane_rows(fmt, height), linesizes))


def _round_up(n: int, to: int = ALIGN) -> int:
    return (n + to - 1) // to * to


def default_dir() -> str:
    """Where slot files live: /dev/shm (RAM) when there is one, else the temp dir."""
    return "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else tempfile.gettempdir()


def private_dir(base: str | None = None) -> str:
    """`<temp>/priorfx-<uid>`: a folder only this user can enter (mode 0700).

    Made on first use; if the name is taken by another user, a symlink or a
    folder others can write to, a fresh private folder (mkdtemp) is used instead,
    so nothing priorfx writes lands where another user can swap it.
    """
    base = base or tempfile.gettempdir()
    if not hasattr(os, "getuid"):  # Windows: the temp folder is the user's own
        return base
    uid = os.getuid()
    path = os.path.join(base, f"priorfx-{uid}")
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != uid or st.st_mode & 0o077:
        return tempfile.mkdtemp(prefix=f"priorfx-{uid}-", dir=base)
    return path


def open_private(path: str) -> int:
    """A new file at `path` for writing, mode 0600: never follows a symlink, never
    reuses a file it did not just create (O_EXCL after removing an old one)."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)


@dataclass
class SlotHeader:
    """What a slot holds. `source_seq` is the input frame a result belongs to."""

    seq: int
    source_seq: int
    timestamp: int
    fmt: str
    width: int
    height: int
    linesizes: tuple
    size: int


@dataclass
class Params:
    """Filter settings as the worker sees them (mirrors the OBS properties)."""

    readout: float = 0.6          # fraction of the frame time (ShutterParams.readout)
    auto_readout: bool = True
    mode: str = "rs"
    strength: float = 1.0
    lookahead: bool = False
    prior_low: float = 0.0        # auto readout after a calibration: its 95 % interval
    prior_high: float = 0.0       # around `readout` (0, 0: no calibration)


class Channel:
    """A mapped slot file. `Channel.create` on the host, `Channel.attach` in the worker."""

    def __init__(self, path: str, mm: mmap.mmap, n_in: int, n_out: int, capacity: int, owner: bool):
        self.path = path
        self.mm = mm
        self.n_in, self.n_out, self.capacity = n_in, n_out, capacity
        self.slot_stride = SLOT_HEADER_SIZE + _round_up(capacity)
        self.owner = owner
        self._closed = False

    # -- construction -----------------------------------------------------
    @classmethod
    def create(cls, capacity: int, n_in: int = 3, n_out: int = 3, directory: str | None = None,
               prefix: str = "priorfx-obs-") -> "Channel":
        """Make a new slot file big enough for frames of `capacity` bytes."""
        capacity = _round_up(max(int(capacity), ALIGN))
        total = CONTROL_SIZE + (n_in + n_out) * (SLOT_HEADER_SIZE + capacity)
        fd, path = tempfile.mkstemp(prefix=prefix, suffix=".shm", dir=directory or default_dir())
        try:
            os.ftruncate(fd, total)
            mm = mmap.mmap(fd, total)
        finally:
            os.close(fd)
        ch = cls(path, mm, n_in, n_out, capacity, owner=True)
        _CONTROL.pack_into(mm, 0, MAGIC, VERSION, n_in, n_out, capacity, STARTING, 0, 0,
                           0, 0.6, 1, 0, 1.0, 0, 0, 0, 0, 0, 0.0, 0, 0, 0.0, 0.0, 0.0, 0.0, 0, 0,
                           0.0, 0.0, 0.0, 0.0, 0.0, 0, 0, 0)
        return ch

    @classmethod
    def attach(cls, path: str) -> "Channel":
        """Map an existing slot file (the worker side)."""
        fd = os.open(path, os.O_RDWR)
        try:
            size = os.fstat(fd).st_size
            if size < CONTROL_SIZE:
                raise ValueError(f"{path} is too small to be a priorfx slot file")
            mm = mmap.mmap(fd, size)
        finally:
            os.close(fd)
        magic, version, n_in, n_out, capacity = _CONTROL.unpack_from(mm, 0)[:5]
        if magic != MAGIC:
            mm.close()
            raise ValueError(f"{path} is not a priorfx slot file")
        if version != VERSION:
            # The OBS side is a copy installed beside OBS: after an upgrade of priorfx
            # the worker is new and the copy old until `priorfx install obs` runs again.
            mm.close()
            raise ValueError(f"{path} is a priorfx slot file of version {version}, this worker speaks "
                             f"version {VERSION}: the OBS script and priorfx differ; run "
                             "`priorfx install obs` again and restart OBS")
        # The control block is data from another process: its slots must lie in the file.
        if (not (1 <= n_in <= MAX_SLOTS and 1 <= n_out <= MAX_SLOTS) or capacity < 1
                or CONTROL_SIZE + (n_in + n_out) * (SLOT_HEADER_SIZE + _round_up(capacity)) > size):
            mm.close()
            raise ValueError(f"{path}: {n_in}+{n_out} slots of {capacity} bytes do not fit its {size} bytes")
        return cls(path, mm, n_in, n_out, capacity, owner=False)

    def close(self, unlink: bool | None = None) -> None:
        """Unmap; the creator also removes the file (unless already unlinked)."""
        if self._closed:
            return
        self._closed = True
        try:
            self.mm.close()
        except BufferError:
            pass  # a ctypes view is still alive; the mapping goes with the process
        if self.owner if unlink is None else unlink:
            self.unlink()

    def unlink(self) -> None:
        """Remove the file name; the mapping stays valid in both processes."""
        try:
            os.unlink(self.path)
        except OSError:
            pass

    # -- control block ----------------------------------------------------
    def _get(self, name: str):
        offset, code = _FIELD[name]
        return struct.unpack_from(code, self.mm, offset)[0]

    def _set(self, name: str, value) -> None:
        offset, code = _FIELD[name]
        struct.pack_into(code, self.mm, offset, value)

    @property
    def state(self) -> int:
        return self._get("state")

    @property
    def worker_pid(self) -> int:
        return self._get("worker_pid")

    @property
    def heartbeat(self) -> int:
        return self._get("heartbeat")

    @property
    def in_latest(self) -> int:
        return self._get("in_latest")

    @property
    def out_latest(self) -> int:
        """seq of the newest input frame that has a finished result (0 = none)."""
        return self._get("out_latest")

    def set_state(self, state: int, pid: int | None = None, error: str | None = None) -> None:
        if error is not None:
            data = error.encode("utf-8", "replace")[:_ERROR_SIZE - 1]
            self.mm[_ERROR_OFFSET:_ERROR_OFFSET + _ERROR_SIZE] = data.ljust(_ERROR_SIZE, b"\0")
        if pid is not None:
            self._set("worker_pid", pid)
        self._set("state", state)

    @property
    def error(self) -> str:
        raw = bytes(self.mm[_ERROR_OFFSET:_ERROR_OFFSET + _ERROR_SIZE])
        return raw.split(b"\0", 1)[0].decode("utf-8", "replace")

    def beat(self) -> None:
        self._set("heartbeat", (self.heartbeat + 1) & 0xFFFFFFFFFFFFFFFF)

    def set_params(self, p: Params) -> None:
        """Host side: publish new settings; the worker rebuilds its session."""
        self._set("readout", float(p.readout))
        self._set("auto_readout", int(bool(p.auto_readout)))
        self._set("mode", MODES.index(p.mode) if p.mode in MODES else 0)
        self._set("strength", float(p.strength))
        self._set("lookahead", int(bool(p.lookahead)))
        self._set("prior_low", float(p.prior_low))
        self._set("prior_high", float(p.prior_high))
        # bumped last: the worker rereads the values when it sees a new seq
        self._set("params_seq", (self._get("params_seq") + 1) & 0xFFFFFFFF)

    def params(self) -> tuple[int, Params]:
        seq = self._get("params_seq")
        mode = self._get("mode")
        return seq, Params(readout=self._get("readout"), auto_readout=bool(self._get("auto_readout")),
                           mode=MODES[mode] if mode < len(MODES) else MODES[0],
                           strength=self._get("strength"), lookahead=bool(self._get("lookahead")),
                           prior_low=self._get("prior_low"), prior_high=self._get("prior_high"))

    # -- the readout in use ---------------------------------------------------
    def set_readout_in_use(self, g: float, low: float, high: float, source: str, pairs: int = 0) -> None:
        """Worker side: the readout the correction uses now (use_seq bumped last)."""
        for name, value in (("use_g", float(g)), ("use_low", float(low)), ("use_high", float(high)),
                            ("use_pairs", int(pairs)),
                            ("use_source", READOUT_SOURCES.index(source) if source in READOUT_SOURCES else 0)):
            self._set(name, value)
        self._set("use_seq", (self._get("use_seq") + 1) & 0xFFFFFFFF)

    def readout_in_use(self) -> dict:
        """Host side: what the worker said last (source 'none': nothing yet)."""
        src = self._get("use_source")
        return {"seq": self._get("use_seq"), "readout": self._get("use_g"), "low": self._get("use_low"),
                "high": self._get("use_high"), "pairs": self._get("use_pairs"),
                "source": READOUT_SOURCES[src] if src < len(READOUT_SOURCES) else "none"}

    # -- calibration ------------------------------------------------------
    def request_calibration(self, seconds: float) -> int:
        """Host side: ask for a calibration over `seconds` of live video; returns its seq."""
        self._set("calib_seconds", float(seconds))
        seq = (self._get("calib_request") + 1) & 0xFFFFFFFF
        self._set("calib_request", seq)
        return seq

    def cancel_calibration(self) -> None:
        """Host side: stop the calibration asked for last."""
        self._set("calib_cancel", self._get("calib_request"))

    def calibration_request(self) -> tuple[int, float, bool]:
        """Worker side: (request seq, seconds, cancelled)."""
        req = self._get("calib_request")
        return req, self._get("calib_seconds"), req != 0 and self._get("calib_cancel") == req

    def set_calibration(self, seq: int, state: int, progress: float = 0.0, g: float = 0.0, low: float = 0.0,
                        high: float = 0.0, informative: bool = False, pairs: int = 0) -> None:
        """Worker side: the state of calibration `seq` (written last, so a reader that
        sees `calib_seq` == its request reads values of that request)."""
        for name, value in (("calib_progress", float(progress)), ("calib_g", float(g)), ("calib_low", float(low)),
                            ("calib_high", float(high)), ("calib_informative", int(bool(informative))),
                            ("calib_pairs", int(pairs)), ("calib_state", int(state))):
            self._set(name, value)
        self._set("calib_seq", int(seq))

    def calibration(self) -> dict:
        """Host side: what the worker last said about a calibration."""
        state = self._get("calib_state")
        return {"seq": self._get("calib_seq"), "state": CALIB_STATE_NAMES.get(state, "idle"),
                "progress": self._get("calib_progress"), "readout": self._get("calib_g"),
                "low": self._get("calib_low"), "high": self._get("calib_high"),
                "informative": bool(self._get("calib_informative")), "pairs": self._get("calib_pairs")}

    # -- slots ------------------------------------------------------------
    def slot_offset(self, kind: str, index: int) -> int:
        """Byte offset of slot `index` of kind 'in' or 'out' (its header)."""
        base = index if kind == "in" else self.n_in + index
        return CONTROL_SIZE + base * self.slot_stride

    def data_offset(self, kind: str, index: int) -> int:
        return self.slot_offset(kind, index) + SLOT_HEADER_SIZE

    def begin_write(self, kind: str, index: int, h: SlotHeader) -> int:
        """Mark a slot as being written; returns the offset where planes go."""
        if h.size > self.capacity:
            raise ValueError(f"frame of {h.size} bytes does not fit slots of {self.capacity}")
        off = self.slot_offset(kind, index)
        ls = (tuple(h.linesizes) + (0,) * MAX_PLANES)[:MAX_PLANES]
        # seq_end = 0 while writing, so a reader never accepts a half-written slot
        _SLOT.pack_into(self.mm, off, h.seq, 0, h.source_seq, h.timestamp, FORMAT_IDS[h.fmt],
                        h.width, h.height, len(plane_rows(h.fmt, h.height)), *ls, h.size)
        return off + SLOT_HEADER_SIZE

    def end_write(self, kind: str, index: int, seq: int) -> None:
        struct.pack_into("<Q", self.mm, self.slot_offset(kind, index) + _SEQ_END_OFFSET, seq)

    def read_header(self, kind: str, index: int) -> SlotHeader | None:
        """The slot's header when it holds a complete, consistent frame, else None.

        The other process wrote it: a size past the slot's capacity, an unknown
        format or planes that do not add up to the size would make the reader
        copy outside the slot, so such a slot counts as empty."""
        v = _SLOT.unpack_from(self.mm, self.slot_offset(kind, index))
        seq_begin, seq_end = v[0], v[1]
        if seq_begin == 0 or seq_begin != seq_end:
            return None
        fmt, n_planes, size = OBS_FORMATS.get(v[4]), v[7], v[12]
        if fmt is None or size > self.capacity or not 0 < v[5] <= MAX_SIDE or not 0 < v[6] <= MAX_SIDE:
            return None
        rows = plane_rows(fmt, v[6])
        linesizes = tuple(v[8:8 + n_planes])
        if n_planes != len(rows) or 0 in linesizes or frame_size(fmt, v[6], linesizes) != size:
            return None
        return SlotHeader(seq=seq_begin, source_seq=v[2], timestamp=v[3], fmt=fmt, width=v[5],
                          height=v[6], linesizes=linesizes, size=size)

    def still_valid(self, kind: str, index: int, seq: int) -> bool:
        """After copying a slot: True when nobody started rewriting it meanwhile."""
        b, e = struct.unpack_from("<QQ", self.mm, self.slot_offset(kind, index))
        return b == e == seq

    def write(self, kind: str, index: int, h: SlotHeader, data) -> None:
        """Copy a whole buffer (bytes-like, planes concatenated) into a slot."""
        off = self.begin_write(kind, index, h)
        self.mm[off:off + h.size] = memoryview(data).cast("B")[:h.size]
        self.end_write(kind, index, h.seq)

    def read(self, kind: str, index: int) -> tuple[SlotHeader, bytes] | None:
        """(header, a copy of the planes) or None when empty or torn."""
        h = self.read_header(kind, index)
        if h is None:
            return None
        off = self.data_offset(kind, index)
        data = bytes(self.mm[off:off + h.size])
        return (h, data) if self.still_valid(kind, index, h.seq) else None

    def newest(self, kind: str) -> tuple[int, SlotHeader] | None:
        """(slot index, header) of the complete slot with the highest seq."""
        best = None
        for i in range(self.n_in if kind == "in" else self.n_out):
            h = self.read_header(kind, i)
            if h is not None and (best is None or h.seq > best[1].seq):
                best = (i, h)
        return best

    def publish_input(self, seq: int) -> None:
        self._set("in_latest", seq)

    def publish_output(self, source_seq: int) -> None:
        self._set("out_latest", source_seq)

