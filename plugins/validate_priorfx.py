"""pyblish validators for priorfx results: one small plug-in per check.

Each calls a pure function of priorfx.publish.checks and hands the Check to
priorfx.publish.run.record, which keeps it for the report and raises when it
failed (flicker only ever warns).
"""
import pyblish.api

BOTH = ["priorfx.matte", "priorfx.undistort"]
MATTE = ["priorfx.matte"]


def _params(instance):
    from priorfx.publish.checks import PublishParams
    return instance.context.data.get("priorfxParams") or PublishParams()


def _stats(instance):
    from priorfx.publish import checks
    return checks.analyse(instance.data["priorfxItem"], _params(instance),
                          instance.context.data.get("priorfxProgress"))


def _record(plugin, instance, check):
    from priorfx.publish.run import record
    record(plugin.log, instance.data, check)


class ValidateFramesComplete(pyblish.api.InstancePlugin):
    """Frames complete and contiguous, and the plate's range when a plate is given."""

    order = pyblish.api.ValidatorOrder
    families = BOTH
    label = "Frames complete"

    def process(self, instance):
        from priorfx.publish import checks
        _record(self, instance, checks.check_frames(instance.data["priorfxItem"],
                                                    instance.context.data.get("priorfxPlateInfo")))


class ValidatePlateFormat(pyblish.api.InstancePlugin):
    """Resolution, pixel aspect, data and display window match the plate."""

    order = pyblish.api.ValidatorOrder
    families = BOTH
    label = "Format matches plate"

    def process(self, instance):
        from priorfx.publish import checks
        _record(self, instance, checks.check_plate_match(instance.data["priorfxItem"],
                                                         instance.context.data.get("priorfxPlateInfo")))


class ValidateAlphaRange(pyblish.api.InstancePlugin):
    """Alpha within [0, 1]."""

    order = pyblish.api.ValidatorOrder
    families = MATTE
    label = "Alpha in [0, 1]"

    def process(self, instance):
        from priorfx.publish import checks
        _record(self, instance, checks.check_alpha_range(_stats(instance), _params(instance)))


class ValidateFinite(pyblish.api.InstancePlugin):
    """No NaN or Inf in any channel."""

    order = pyblish.api.ValidatorOrder
    families = BOTH
    label = "No NaN / Inf"

    def process(self, instance):
        from priorfx.publish import checks
        _record(self, instance, checks.check_finite(_stats(instance)))


class ValidatePremultiplication(pyblish.api.InstancePlugin):
    """Premultiplication state of the pixels matches the header."""

    order = pyblish.api.ValidatorOrder
    families = MATTE
    label = "Premultiplication"

    def process(self, instance):
        from priorfx.publish import checks
        _record(self, instance, checks.check_premultiplication(instance.data["priorfxItem"], _stats(instance),
                                                               _params(instance)))


class ValidateChannels(pyblish.api.InstancePlugin):
    """Expected channels present, half float for EXR mattes."""

    order = pyblish.api.ValidatorOrder
    families = BOTH
    label = "Channels"

    def process(self, instance):
        from priorfx.publish import checks
        _record(self, instance, checks.check_channels(instance.data["priorfxItem"]))


class ValidateColorspace(pyblish.api.InstancePlugin):
    """Colour-space metadata present, consistent, and the plate's."""

    order = pyblish.api.ValidatorOrder
    families = BOTH
    label = "Colour space"

    def process(self, instance):
        from priorfx.publish import checks
        _record(self, instance, checks.check_colorspace(instance.data["priorfxItem"],
                                                        instance.context.data.get("priorfxPlateInfo")))


class ValidateProvenance(pyblish.api.InstancePlugin):
    """priorfx provenance present on every file."""

    order = pyblish.api.ValidatorOrder
    families = BOTH
    label = "Provenance"

    def process(self, instance):
        from priorfx.publish import checks
        _record(self, instance, checks.check_provenance(instance.data["priorfxItem"]))


class ValidateMatteNotEmpty(pyblish.api.InstancePlugin):
    """The matte holds something on every frame."""

    order = pyblish.api.ValidatorOrder
    families = MATTE
    label = "Matte not empty"

    def process(self, instance):
        from priorfx.publish import checks
        _record(self, instance, checks.check_matte_not_empty(_stats(instance), _params(instance)))


class ValidateFlicker(pyblish.api.InstancePlugin):
    """Temporal flicker of the matte: a warning, never an error."""

    order = pyblish.api.ValidatorOrder + 0.1
    families = MATTE
    label = "Temporal flicker"

    def process(self, instance):
        from priorfx.publish import checks
        _record(self, instance, checks.check_flicker(_stats(instance), _params(instance)))
