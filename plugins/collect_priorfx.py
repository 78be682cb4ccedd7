"""pyblish collectors: the plate, then one instance per result sequence / image.

Context data set by `priorfx publish` (priorfx.publish.run.publish):
priorfxResultsDir, priorfxShotDir, priorfxPlate (or None), priorfxParams.
"""
import pyblish.api


class CollectPriorfxPlate(pyblish.api.ContextPlugin):
    """Read the plate's header (size, windows, frames, colour space) once."""

    order = pyblish.api.CollectorOrder - 0.1
    label = "Plate"

    def process(self, context):
        from priorfx.publish import collect

        plate = context.data.get("priorfxPlate")
        if plate is None:
            # a Nuke node folder brings its exported plate along
            from pathlib import Path
            job = collect.nuke_job_layout(Path(context.data["priorfxResultsDir"]))
            if job is not None and job[1] is not None and Path(job[1]).parent.is_dir():
                plate = job[1]
                context.data["priorfxPlate"] = plate
        context.data["priorfxPlateInfo"] = collect.read_plate(plate) if plate else None
        if plate:
            info = context.data["priorfxPlateInfo"]
            self.log.info("plate %s: %dx%d, %d frame(s)", plate, info.width, info.height,
                          len(info.frame_numbers))


class CollectPriorfxResults(pyblish.api.ContextPlugin):
    """Turn the results folder into instances with family, frame range, plate and provenance."""

    order = pyblish.api.CollectorOrder
    label = "Results"

    def process(self, context):
        from priorfx.publish import collect

        for item in collect.collect_items(context.data["priorfxResultsDir"]):
            inst = context.create_instance(item.name, family=item.family, families=[item.family])
            inst.data.update(
                priorfxItem=item,
                frameStart=item.frame_numbers[0], frameEnd=item.frame_numbers[-1],
                files=[str(p) for p in item.files], plate=context.data.get("priorfxPlate"),
                provenance=item.provenance)
            self.log.info("%s [%s]: %d file(s)", item.name, item.family, len(item.files))
