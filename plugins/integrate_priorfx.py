"""pyblish integrator: turn the staged folder into the next version, atomically."""
import pyblish.api


class IntegratePriorfxVersion(pyblish.api.InstancePlugin):
    """Rename the staged folder to SHOT_DIR/<name>/vNNN (the next free number)."""

    order = pyblish.api.IntegratorOrder
    families = ["priorfx.matte", "priorfx.undistort"]
    label = "Publish version"

    def process(self, instance):
        from priorfx.publish import integrate

        target = integrate.commit(instance.data.pop("priorfxStaging"))
        instance.data["priorfxVersionDir"] = target
        self.log.info("published %s", target)
