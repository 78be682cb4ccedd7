"""Run the pyblish plug-ins in plugins/ over a results folder and report.

pyblish does not raise when a validator fails: it records the error in the
result and carries on. So the phases run one at a time here (collect,
validate, extract, integrate) and each phase's results are checked before
the next starts: a failed validation stops the publish before anything is
written to the shot folder.
"""
from __future__ import annotations

import contextlib
import io
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from priorfx.errors import CancelledError, PriorfxError, UsageError
from priorfx.progress import Progress
from priorfx.publish import checks as _checks
from priorfx.publish import integrate as _integrate
from priorfx.publish.checks import FAILED, PASSED, SKIPPED, WARNING, Check, PublishParams

# Plug-ins a publish cannot do without: a missing one (a file that failed to
# import, which pyblish only logs) would silently skip its checks.
REQUIRED_PLUGINS = (
    "CollectPriorfxPlate", "CollectPriorfxResults",
    "ValidateFramesComplete", "ValidatePlateFormat", "ValidateAlphaRange", "ValidateFinite",
    "ValidatePremultiplication", "ValidateChannels", "ValidateColorspace", "ValidateProvenance",
    "ValidateMatteNotEmpty", "ValidateFlicker",
    "ExtractPriorfxVersion", "IntegratePriorfxVersion",
)

CHECKS_KEY = "priorfxChecks"
_REPORT_ORDER = {n: i for i, n in enumerate((
    "frames", "plate", "channels", "colorspace", "provenance", "finite", "alpha_range",
    "premultiplication", "matte_not_empty", "flicker"))}


class ValidationFailed(Exception):
    """Raised by a validator plug-in; pyblish records it as the plug-in's error."""


def plugin_paths() -> list[Path]:
    """Folders holding the pyblish plug-ins: $PRIORFX_PUBLISH_PLUGINS, else the ones shipped
    in the package (priorfx.publish.plugins, the repository's plugins/ folder)."""
    env = os.environ.get("PRIORFX_PUBLISH_PLUGINS")
    if env:
        return [Path(p) for p in env.split(os.pathsep) if p]
    from priorfx.hosts import host_dir
    return [host_dir("publish-plugins")]


def discover_plugins(paths: list[Path] | None = None) -> list[type]:
    """The priorfx pyblish plug-ins, checked to be complete."""
    import pyblish.api

    paths = paths or plugin_paths()
    missing_dirs = [p for p in paths if not p.is_dir()]
    if missing_dirs:
        raise UsageError(f"pyblish plug-in folder {missing_dirs[0]} does not exist",
                         "set PRIORFX_PUBLISH_PLUGINS to the project's plugins/ folder")
    found = pyblish.api.discover(paths=[str(p) for p in paths])
    names = {p.__name__ for p in found}
    lacking = [n for n in REQUIRED_PLUGINS if n not in names]
    if lacking:
        raise UsageError(f"pyblish plug-ins missing or failing to load: {', '.join(lacking)}",
                         f"check the files in {', '.join(map(str, paths))}")
    return found


def record(log: logging.Logger, data: dict, check: Check) -> Check:
    """What a validator plug-in does with a Check: keep it, log it, raise on failure."""
    data.setdefault(CHECKS_KEY, []).append(check)
    if check.status == FAILED:
        raise ValidationFailed(f"{check.message} ({check.hint})" if check.hint else check.message)
    if check.status == WARNING:
        log.warning(check.message)
    else:
        log.info(check.message)
    return check


# --------------------------------------------------------------------------- report

@dataclass
class ItemReport:
    name: str
    family: str
    frames: list[int]
    files: int
    checks: list[Check] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)   # plug-in errors that are not checks
    version_dir: str | None = None

    @property
    def ok(self) -> bool:
        return not self.errors and all(c.ok for c in self.checks)


@dataclass
class Report:
    results_dir: str
    shot_dir: str
    plate: str | None
    items: list[ItemReport]
    stage: str            # how far it got: "validate", "extract", "integrate", "done", "dry-run"
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors and all(i.ok for i in self.items)

    @property
    def published(self) -> list[str]:
        return [i.version_dir for i in self.items if i.version_dir]

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "stage": self.stage, "results_dir": self.results_dir, "shot_dir": self.shot_dir,
                "plate": self.plate, "errors": self.errors, "published": self.published,
                "items": [{"name": i.name, "family": i.family, "ok": i.ok,
                           "frame_range": [i.frames[0], i.frames[-1]] if i.frames else None,
                           "files": i.files, "version_dir": i.version_dir, "errors": i.errors,
                           "checks": [c.to_json() for c in i.checks]} for i in self.items]}

    def format(self) -> str:
        """A report for people: one line per check, what to do under each failure."""
        marks = {PASSED: "ok  ", FAILED: "FAIL", WARNING: "warn", SKIPPED: "skip"}
        lines = [f"publish {self.results_dir} -> {self.shot_dir}" + (f" (plate {self.plate})" if self.plate else "")]
        for it in self.items:
            rng = _checks.format_frames(it.frames) if it.frames else "-"
            lines.append(f"\n{it.name} [{it.family}] frames {rng} ({it.files} file(s))")
            for c in it.checks:
                lines.append(f"  {marks.get(c.status, c.status)}  {c.label}: {c.message}")
                if c.status in (FAILED, WARNING) and c.hint:
                    lines.append(f"        -> {c.hint}")
            for e in it.errors:
                lines.append(f"  FAIL  {e}")
            if it.version_dir:
                lines.append(f"  published {it.version_dir}")
        for e in self.errors:
            lines.append(f"error: {e}")
        nfail = sum(1 for i in self.items for c in i.checks if c.status == FAILED) + \
            sum(len(i.errors) for i in self.items) + len(self.errors)
        nwarn = sum(1 for i in self.items for c in i.checks if c.status == WARNING)
        if self.ok:
            verdict = ("validated, nothing written (dry run)" if self.stage == "dry-run"
                       else f"published {len(self.published)} item(s)")
        else:
            verdict = f"NOT published: {nfail} problem(s); nothing was written to {self.shot_dir}" \
                if self.stage == "validate" else f"NOT published: {nfail} problem(s) during {self.stage}"
        lines.append(f"\n{verdict}" + (f", {nwarn} warning(s)" if nwarn else ""))
        return "\n".join(lines)


# --------------------------------------------------------------------------- run

@contextlib.contextmanager
def _quiet_pyblish():
    """pyblish prints errors to stdout and logs tracebacks; the report says it better."""
    logger = logging.getLogger("pyblish")
    handler = logging.NullHandler()
    old = logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        logger.removeHandler(handler)
        logger.propagate = old


def _phase(name: str, context, plugins) -> list[dict]:
    import pyblish.util

    before = len(context.data.get("results", []))
    fn = {"collect": pyblish.util.collect, "validate": pyblish.util.validate,
          "extract": pyblish.util.extract, "integrate": pyblish.util.integrate}[name]
    with _quiet_pyblish():
        fn(context, plugins)
    return [r for r in context.data.get("results", [])[before:] if r["error"] is not None]


def _discard_all(by_instance: dict) -> None:
    """Remove staged folders that did not become versions."""
    for inst, _ in by_instance.values():
        staging = inst.data.pop("priorfxStaging", None)
        if staging is not None and Path(staging).exists():
            _integrate.discard(staging)


def publish(results_dir: str | os.PathLike, shot_dir: str | os.PathLike, plate: str | os.PathLike | None = None,
            params: PublishParams = PublishParams(), dry_run: bool = False,
            progress: Progress | None = None, plugin_dirs: list[Path] | None = None) -> Report:
    """Validate the results and, when every check passes, publish a new version.

    Parameters
    ----------
    results_dir : path-like
        Folder of results (or a Nuke node folder).
    shot_dir : path-like
        Shot folder; versions go to ``shot_dir/<item>/vNNN``.
    plate : path-like, optional
        The source footage to compare against (sequence pattern, folder, image, video).
    params : PublishParams
        Validation thresholds.
    dry_run : bool
        Validate only.

    Returns
    -------
    Report
        ``report.ok`` is False when a check failed; then nothing was written.

    Raises
    ------
    PriorfxError
        The results folder, plate or shot folder cannot be used at all.
    """
    import pyblish.api

    plugins = discover_plugins(plugin_dirs)
    shot = Path(shot_dir)
    if not dry_run and not shot.is_dir():
        raise UsageError(f"shot folder {shot} does not exist", "create it first, or check --to")
    context = pyblish.api.Context()
    context.data.update(priorfxResultsDir=str(results_dir), priorfxShotDir=str(shot),
                        priorfxPlate=str(plate) if plate is not None else None,
                        priorfxParams=params, priorfxProgress=progress)
    report = Report(str(results_dir), str(shot), context.data["priorfxPlate"], [], "validate")

    failed = _phase("collect", context, plugins)
    for r in failed:  # nothing to validate without the results: say why, as the CLI would
        if isinstance(r["error"], PriorfxError):
            raise r["error"]
        raise UsageError(f"collecting the results failed: {r['error']}")
    report.plate = context.data.get("priorfxPlate")  # a Nuke node folder brings its own
    by_instance = {}
    for inst in context:
        item = inst.data["priorfxItem"]
        rep = ItemReport(item.name, item.family, list(item.frame_numbers), len(item.files))
        by_instance[id(inst)] = (inst, rep)
        report.items.append(rep)
    if not report.items:
        raise UsageError(f"nothing to publish in {results_dir}")

    def absorb(errors: list[dict]) -> None:
        for r in errors:
            if isinstance(r["error"], CancelledError):
                _discard_all(by_instance)
                raise r["error"]
        # one unreadable frame fails every validator that reads pixels: say it once
        grouped: dict[tuple[int | None, str], list[str]] = {}
        for r in errors:
            inst = r["instance"]
            if isinstance(r["error"], ValidationFailed):
                continue  # already in the item's checks
            key = (id(inst) if inst is not None and id(inst) in by_instance else None, str(r["error"]))
            grouped.setdefault(key, []).append(r["plugin"].__name__)
        for (inst_id, msg), plugins_ in grouped.items():
            line = f"{msg} (in {', '.join(plugins_)})"
            (by_instance[inst_id][1].errors if inst_id is not None else report.errors).append(line)

    absorb(_phase("validate", context, plugins))
    for inst, rep in by_instance.values():
        rep.checks = sorted(inst.data.get(CHECKS_KEY, []), key=lambda c: _REPORT_ORDER.get(c.name, 99))
    if not report.ok:
        return report
    if dry_run:
        report.stage = "dry-run"
        return report

    report.stage = "extract"
    absorb(_phase("extract", context, plugins))
    if not report.ok:
        _discard_all(by_instance)
        return report
    report.stage = "integrate"
    absorb(_phase("integrate", context, plugins))
    for inst, rep in by_instance.values():
        target = inst.data.get("priorfxVersionDir")
        rep.version_dir = str(target) if target else None
    _discard_all(by_instance)
    if report.ok:
        report.stage = "done"
    return report
