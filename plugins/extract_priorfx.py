"""pyblish extractor: stage the files and the manifest beside the versions."""
import pyblish.api


class ExtractPriorfxVersion(pyblish.api.InstancePlugin):
    """Copy the instance's files (sha256 on the way) and write manifest.json into a
    hidden staging folder of SHOT_DIR/<name>/; runs only after every check passed."""

    order = pyblish.api.ExtractorOrder
    families = ["priorfx.matte", "priorfx.undistort"]
    label = "Stage version"

    def process(self, instance):
        from pathlib import Path

        from priorfx.publish import integrate

        context = instance.context
        staging = integrate.stage(instance.data["priorfxItem"], Path(context.data["priorfxShotDir"]),
                                  instance.data.get("priorfxChecks", []), context.data.get("priorfxPlateInfo"),
                                  context.data.get("priorfxProgress"))
        instance.data["priorfxStaging"] = staging
        self.log.info("staged %s", staging)
