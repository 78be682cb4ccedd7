"""Which parts of the person prior's matte are a person: holes, fragments and
the chosen subject, decided before the band solve.

The recurrent prior (RVM) misses in two ways that the band solve then keeps:
it leaves holes inside a person (a name badge, a logo) and it keeps stray
fragments beside one (a flagpole, a lamp). Two other priors from the store
see a person differently and cheaply: selfie segmentation (a person
probability over the whole frame, 6-7 ms) and face detection. A fragment of
the prior that neither explains is dropped; a hole that is enclosed by a
person and that segmentation calls person is filled. A point or box from the
user ("this person") keeps only the parts of the matte it touches.

Both checks run only when the prior's matte has more than one part or a
hole, so a clean single person costs nothing extra.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import cv2
import numpy as np

from priorfx.errors import InputError
from priorfx.matting.sampling import colour_posterior

# A part of the prior counts as a person's when segmentation's mean person
# probability over it is at least EXPLAINED, or a detected face lies on it.
EXPLAINED = 0.35
# A hole is filled when segmentation's mean probability over it is at least
# HOLE_PERSON and it is smaller than HOLE_MAX_SHARE of the person around it
# (the space between an arm and the body is background and larger).
HOLE_PERSON = 0.5
# ... and its colours are more the person's than the background's (mean
# colour posterior, priorfx.matting.sampling.colour_posterior).
HOLE_COLOUR = 0.5
HOLE_MAX_SHARE = 0.08
# A small hole (at most HOLE_SMALL_SHARE of the person) that segmentation
# calls person with at least HOLE_SURE and that lies deep inside the person
# (at least HOLE_DEEP x the long side from the background outside) is
# filled whatever its colours: a badge or a logo may share the background's
# colours (the astronaut's navy name badge and the flag behind her:
# segmentation 0.78, colour posterior 0.39, 0.2 % of the person, 0.12 deep),
# while the gaps among hair strands and curls lie at the person's edge (on
# the benchmark's composites every such hole was within 0.03 of it) and keep
# the colour test.
HOLE_SMALL_SHARE = 0.005
HOLE_SURE = 0.75
HOLE_DEEP = 0.05
# The prior's soft rim around such a hole that is set to 1 with it (share
# of the long side), so that the band solve does not reopen the badge from
# its soft edge.
FILL_RIM = 0.01
# An unexplained part is dropped only when it lies at least FAR x the
# frame's long side from every explained part (the largest part counts as
# explained). Dropping nearer parts cut hoses and hands off the benchmark's
# firemen (automatic SAD 1.03 -> 1.30 x closed-form's).
FAR = 0.03
# Where the prior hesitates (alpha between PRIOR_SOFT and 0.5) but
# segmentation is sure of a person (>= SEG_SURE), on a region that touches
# the person, the prior is completed to 1 (a helmet held against the body,
# a bag): the band solve then finds its real edge.
PRIOR_SOFT = 0.03
SEG_SURE = 0.9
# ... and only regions of at least COMPLETE_MIN of the frame: completing thin
# soft slivers along an edge cost SAD on the benchmark's firemen.
COMPLETE_MIN = 0.002
# Half-width of the rim of a completed region that keeps segmentation's soft
# probability (share of the long side; segmentation runs at 256 px).
RIM = 0.006
# How far from its seeds (share of the long side) a completed region reaches.
REACH = 0.2
# Parts smaller than this share of the frame are noise, not fragments worth a
# segmentation run (the band solve handles them).
MIN_PART = 2e-4
# The soft fringe dropped with a part, and the zone kept around a chosen
# subject, as a share of the frame's long side.
FRINGE = 0.02
# Long side of the grid the parts are analysed on.
GRID_SIDE = 1024
# A point guide picks the part under it, or the nearest within this share
# of the frame's long side.
POINT_REACH = 0.05


@dataclass
class Cleanup:
    """What `clean_prior` did (reported in the provenance)."""

    dropped: int = 0
    filled: int = 0
    completed: int = 0
    kept_by_subject: int | None = None
    checked: bool = False
    notes: list = field(default_factory=list)

    def to_json(self) -> dict:
        return {"dropped": self.dropped, "filled": self.filled, "completed": self.completed,
                "checked": self.checked,
                "kept_by_subject": self.kept_by_subject}


def check_subject(subject, shape: tuple[int, int]) -> tuple[float, ...] | None:
    """A subject guide as (x, y) or (x0, y0, x1, y1) in pixels, checked."""
    if subject is None:
        return None
    vals = tuple(float(v) for v in subject)
    h, w = shape
    if len(vals) == 4:
        x0, y0, x1, y1 = vals
        if not (x0 < x1 and y0 < y1):
            raise InputError(f"the subject box {list(vals)} is empty",
                             "give x0,y0,x1,y1 with x0 < x1 and y0 < y1 (pixels, top-left origin)")
        if x1 <= 0 or y1 <= 0 or x0 >= w or y0 >= h:
            raise InputError(f"the subject box {list(vals)} lies outside the {w}x{h} frame")
    elif len(vals) == 2:
        if not (0 <= vals[0] < w and 0 <= vals[1] < h):
            raise InputError(f"the subject point {list(vals)} lies outside the {w}x{h} frame",
                             "give x,y in pixels from the top-left corner")
    else:
        raise InputError(f"the subject has {len(vals)} numbers", "give x,y (a point) or x0,y0,x1,y1 (a box)")
    return vals


def _parts(prior: np.ndarray) -> tuple[int, np.ndarray, np.ndarray]:
    """Connected parts of the prior's soft support (8-connected)."""
    return cv2.connectedComponentsWithStats((prior > 0.5).astype(np.uint8), connectivity=8)[:3]


def _holes(prior: np.ndarray) -> tuple[int, np.ndarray, np.ndarray]:
    """Connected background regions (4-connected); the ones not touching the
    frame's border are holes."""
    return cv2.connectedComponentsWithStats((prior <= 0.5).astype(np.uint8), connectivity=4)[:3]


def _enclosed(stats: np.ndarray, h: int, w: int, i: int) -> bool:
    x, y, bw, bh = stats[i, :4]
    return x > 0 and y > 0 and x + bw < w and y + bh < h


def grid_step(shape: tuple[int, int]) -> int:
    """The whole-number step of the grid the parts are analysed on: the long
    side at most GRID_SIDE (connected components of a 4K frame cost ~0.5 s on
    a busy core; the prior itself is computed at under 1000 px anyway)."""
    return max(1, -(-max(shape) // GRID_SIDE))


def on_grid(x: np.ndarray, step: int) -> np.ndarray:
    """x averaged over step x step cells (exact block means; step 1: x)."""
    if step == 1:
        return x
    h, w = x.shape[:2]
    return cv2.resize(x, (max(1, w // step), max(1, h // step)), interpolation=cv2.INTER_AREA)


class GridPrior(NamedTuple):
    """The prior on the analysis grid (`grid_step`), its connected parts
    (`_parts`) and, once asked for, its background regions (`holes()`),
    made once per frame for `needs_check` and `clean_prior` (labelling a
    1024 px grid costs ~18 ms on a busy core)."""

    step: int
    small: np.ndarray
    parts: tuple[int, np.ndarray, np.ndarray]
    cache: dict

    def holes(self) -> tuple[int, np.ndarray, np.ndarray]:
        """`_holes(small)`, computed on first use."""
        if "holes" not in self.cache:
            self.cache["holes"] = _holes(self.small)
        return self.cache["holes"]


def grid_prior(prior: np.ndarray) -> GridPrior:
    step = grid_step(prior.shape)
    small = on_grid(prior, step)
    return GridPrior(step, small, _parts(small), {})


def needs_check(prior: np.ndarray | GridPrior) -> str | None:
    """'parts' when the prior has more than one sizeable part, else 'hole'
    when it has a hole, else None (nothing to check)."""
    grid = prior if isinstance(prior, GridPrior) else grid_prior(prior)
    h, w = grid.small.shape
    stats = grid.parts[2]
    big = int((stats[1:, cv2.CC_STAT_AREA] >= MIN_PART * h * w).sum())
    if big > 1:
        return "parts"
    n_bg, _, bstats = grid.holes()
    return "hole" if any(_enclosed(bstats, h, w, i) for i in range(1, n_bg)) else None


def person_evidence(image: np.ndarray, faces: bool = True) -> tuple[np.ndarray, list[np.ndarray], np.ndarray]:
    """Selfie segmentation's person probability (on the analysis grid,
    `grid_step`), the face boxes (in image pixels; only with `faces`: they
    only matter when there are several parts, and detection over the tiles
    of a large frame costs several segmentations) and the image on the grid."""
    from priorfx.priors.face import detect_faces
    from priorfx.priors.segmentation import person_probability

    h, w = image.shape[:2]
    step = grid_step((h, w))
    # Both models see far fewer pixels than the grid has: they read the
    # grid's image, not the full frame (a 4K resize costs more than they do).
    small = cv2.resize(np.ascontiguousarray(image[..., :3], np.float32), (max(1, w // step), max(1, h // step)),
                       interpolation=cv2.INTER_AREA) if step > 1 else np.ascontiguousarray(image[..., :3], np.float32)
    prob = person_probability(small)
    boxes = [d.box * step for d in detect_faces(small)] if faces else []
    return prob, boxes, small


def clean_prior(prior: np.ndarray, evidence: tuple[np.ndarray, list[np.ndarray]] | None,
                subject: tuple[float, ...] | None = None, grid: GridPrior | None = None
                ) -> tuple[np.ndarray, Cleanup]:
    """The prior with unexplained fragments dropped, person holes filled and,
    with a subject guide, only the subject's parts kept (a copy).

    evidence : (person probability, face boxes) from `person_evidence`, or
        None to skip the fragment and hole checks.
    grid : `grid_prior(prior)` if already made (by `needs_check`'s caller).

    The decisions are taken on the analysis grid (`grid_step`) and applied
    to the full-resolution prior cell by cell: a cell the cleanup zeroed
    held only dropped pixels, a cell it set to 1 is filled; the band solve
    then finds the exact edge.
    """
    grid = grid or grid_prior(prior)
    step, small = grid.step, grid.small
    if step == 1:
        return _clean(prior, evidence, subject, 1, grid)
    if subject is not None:
        subject = tuple(v / step for v in subject)
    cleaned, info = _clean(small, evidence, subject, step, grid)
    h, w = prior.shape
    sh, sw = small.shape

    def up(mask: np.ndarray) -> np.ndarray:
        full = np.zeros((h, w), bool)
        full[:sh * step, :sw * step] = cv2.resize(mask.view(np.uint8), (sw * step, sh * step),
                                                  interpolation=cv2.INTER_NEAREST) > 0
        return full

    out = np.array(prior, np.float32, copy=True)
    out[up((cleaned == 0.0) & (small > 0.0))] = 0.0
    out[up((cleaned == 1.0) & (small < 1.0))] = 1.0
    return out, info


def _clean(prior: np.ndarray, evidence: tuple[np.ndarray, list[np.ndarray]] | None,
           subject: tuple[float, ...] | None, scale: int, grid: GridPrior
           ) -> tuple[np.ndarray, Cleanup]:
    """`clean_prior` on the analysis grid (`prior` is `grid.small`), `scale`
    image pixels per cell (face boxes are in image pixels)."""
    out = np.array(prior, np.float32, copy=True)
    info = Cleanup()
    h, w = prior.shape
    n, labels, stats = grid.parts
    if evidence is not None:
        info.checked = True
        prob, faces, colours = evidence
        face_parts = set()
        for box in faces:
            cx, cy = int((box[0] + box[2]) / 2 / scale), int((box[1] + box[3]) / 2 / scale)
            if 0 <= cx < w and 0 <= cy < h and labels[cy, cx] > 0:
                face_parts.add(int(labels[cy, cx]))
        if n > 2:  # background + more than one part
            means = np.bincount(labels.ravel(), weights=prob.ravel(), minlength=n) / np.maximum(
                stats[:, cv2.CC_STAT_AREA], 1)
            largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
            explained = [i for i in range(1, n) if i in face_parts or means[i] >= EXPLAINED or i == largest]
            # Only fragments away from every explained part go: a hose, a
            # hand or a foot the prior cut off stays (selfie segmentation
            # knows little of small full-length figures).
            away = cv2.distanceTransform((~np.isin(labels, explained)).astype(np.uint8), cv2.DIST_L2,
                                         cv2.DIST_MASK_5)
            near = set(np.unique(labels[away < FAR * max(h, w)]).tolist())
            for i in range(1, n):
                if i in explained or i in near:
                    continue
                _drop(out, labels == i)
                info.dropped += 1
        info.completed = _complete(out, prob)
        # nothing dropped or completed: the prior's own holes
        n_bg, blabels, bstats = _holes(out) if info.dropped or info.completed else grid.holes()
        person_area = float((out > 0.5).sum())
        candidates, depth = [], None
        for i in range(1, n_bg):
            area = bstats[i, cv2.CC_STAT_AREA]
            if not _enclosed(bstats, h, w, i) or area > HOLE_MAX_SHARE * person_area:
                continue
            x, y, bw, bh = bstats[i, :4]
            sub = blabels[y:y + bh, x:x + bw] == i
            seg = prob[y:y + bh, x:x + bw][sub].mean()
            if seg >= HOLE_SURE and area <= HOLE_SMALL_SHARE * person_area:
                if depth is None:
                    depth = _depth_inside(blabels, bstats, n_bg)
                if depth[y:y + bh, x:x + bw][sub].min() >= HOLE_DEEP * max(h, w):
                    _fill(out, blabels == i)
                    info.filled += 1
                    continue
            if seg >= HOLE_PERSON:
                candidates.append(i)
        if candidates:
            # A gap between the legs shows the background's colours, a badge
            # does not: colour histograms of the whole sure person and sure
            # background, one pass for every candidate hole (a histogram of
            # the hole's surroundings only did worse on the benchmark).
            holes = np.isin(blabels, candidates)
            q = colour_posterior(colours, out >= 1.0 - PRIOR_SOFT, (out <= PRIOR_SOFT) & ~holes,
                                 np.ones_like(holes), holes)
            at = blabels[holes]
            mean_q = np.bincount(at, weights=q, minlength=n_bg) / np.maximum(np.bincount(at, minlength=n_bg), 1)
            for i in candidates:
                if mean_q[i] >= HOLE_COLOUR:
                    out[blabels == i] = 1.0
                    info.filled += 1
    if subject is not None:
        n, labels, stats = _parts(out)
        keep = _subject_parts(labels, n, subject)
        info.kept_by_subject = len(keep)
        # everything away from the kept parts goes, soft pixels included
        # (the band solve would otherwise grow them back)
        kept = np.isin(labels, list(keep)) if keep else np.zeros((h, w), bool)
        zone = cv2.dilate(kept.astype(np.uint8), _disk(max(3, int(FRINGE * max(h, w))))) > 0
        out[~zone] = 0.0
        for i in range(1, n):
            if i not in keep:
                _drop(out, labels == i)
    return out, info


def _complete(alpha: np.ndarray, prob: np.ndarray) -> int:
    """Complete what segmentation is sure belongs to the person where the
    prior only hesitates (in place); returns the number of regions.

    A seed is a region where the prior hesitates (alpha between PRIOR_SOFT
    and 0.5) and segmentation is sure of a person (>= SEG_SURE), touching
    the person, of at least COMPLETE_MIN of the frame. Its whole region of
    sure segmentation is completed, also where the prior saw nothing: a
    black helmet held against the body is a few grey blotches in the prior
    (astronaut.png) and a round person region in segmentation. Inside, alpha
    becomes 1; on its rim (RIM of the long side) it becomes segmentation's
    own soft probability, so the band solve looks for the real edge there.
    Slivers thinner than the rim along the person's edge are not completed.
    """
    person = alpha > 0.5
    sure = ~person & (prob >= SEG_SURE)
    unsure = sure & (alpha > PRIOR_SOFT)
    if not unsure.any() or not person.any():
        return 0
    touch = cv2.dilate(person.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    n, labels, stats = cv2.connectedComponentsWithStats(unsure.astype(np.uint8), connectivity=8)[:3]
    seeds = [i for i in np.unique(labels[touch]) if i and stats[i, cv2.CC_STAT_AREA] >= COMPLETE_MIN * alpha.size]
    if not seeds:
        return 0
    rim = max(1, int(round(RIM * max(alpha.shape))))
    reach = max(1, int(round(REACH * max(alpha.shape))))
    seeded = np.isin(labels, seeds)
    # Segmentation's sure region without slivers thinner than the rim (person
    # included, so the prior's blotches do not cut it up), as far as it
    # reaches from the seeds: the object the seeds are parts of.
    body = cv2.morphologyEx((prob >= SEG_SURE).astype(np.uint8), cv2.MORPH_OPEN, _disk(rim)) > 0
    near = cv2.dilate(seeded.astype(np.uint8), _disk(reach)) > 0
    whole = seeded | (body & near)
    m, regions = cv2.connectedComponents(whole.astype(np.uint8), connectivity=8)[:2]
    whole &= np.isin(regions, np.unique(regions[seeded]))
    inner = cv2.erode(whole.astype(np.uint8), _disk(rim)) > 0
    edge = (cv2.dilate(whole.astype(np.uint8), _disk(rim)) > 0) & ~inner & ~person
    alpha[edge] = np.maximum(alpha[edge], prob[edge])
    alpha[inner | seeded] = 1.0
    return len(seeds)


def _disk(radius: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))


def _depth_inside(labels: np.ndarray, stats: np.ndarray, n: int) -> np.ndarray:
    """Distance of every pixel from the background outside the person (the
    background regions of `_holes` that touch the frame's border)."""
    h, w = labels.shape
    outside = np.isin(labels, [i for i in range(1, n) if not _enclosed(stats, h, w, i)])
    return cv2.distanceTransform((~outside).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_5)


def _fill(alpha: np.ndarray, hole: np.ndarray) -> None:
    """Set a hole and the prior's soft rim around it (within FILL_RIM of the
    long side, where alpha > 0.5: inside the person) to 1, so that the band
    solve does not reopen a filled badge from its soft edge."""
    h, w = alpha.shape
    grown = cv2.dilate(hole.astype(np.uint8), _disk(max(1, int(round(FILL_RIM * max(h, w)))))) > 0
    alpha[hole | (grown & (alpha > 0.5))] = 1.0


def _drop(alpha: np.ndarray, part: np.ndarray) -> None:
    """Zero a part and the soft fringe around it (within FRINGE of the long
    side, where alpha <= 0.5)."""
    h, w = alpha.shape
    grown = cv2.dilate(part.astype(np.uint8), _disk(max(3, int(FRINGE * max(h, w))))) > 0
    alpha[part | (grown & (alpha <= 0.5))] = 0.0


def _subject_parts(labels: np.ndarray, n: int, subject: tuple[float, ...]) -> set[int]:
    """Parts a point (under it, else the nearest within POINT_REACH) or a box
    (at least half of the part inside it, else the part most inside) picks."""
    h, w = labels.shape
    if n <= 1:
        return set()
    if len(subject) == 2:
        x, y = int(subject[0]), int(subject[1])
        if labels[y, x] > 0:
            return {int(labels[y, x])}
        dist, nearest = cv2.distanceTransformWithLabels((labels == 0).astype(np.uint8), cv2.DIST_L2,
                                                        cv2.DIST_MASK_5, labelType=cv2.DIST_LABEL_PIXEL)
        if dist[y, x] > POINT_REACH * max(h, w):
            return set()
        # the nearest part pixel: the one whose Voronoi label this pixel has
        zero = labels > 0
        ys, xs = np.nonzero(zero)
        pick = nearest[y, x]
        owner = nearest[ys, xs] == pick
        return {int(labels[ys[owner][0], xs[owner][0]])} if owner.any() else set()
    x0, y0, x1, y1 = (int(round(v)) for v in subject)
    x0, y0, x1, y1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
    inside = np.bincount(labels[y0:y1, x0:x1].ravel(), minlength=n)[:n].astype(np.float64)
    total = np.bincount(labels.ravel(), minlength=n)[:n].astype(np.float64)
    share = inside / np.maximum(total, 1)
    share[0] = 0
    keep = {i for i in range(1, n) if share[i] >= 0.5}
    return keep or ({int(np.argmax(share))} if share.max() > 0 else set())
