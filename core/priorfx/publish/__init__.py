"""Publishing: validate results and put them into a shot folder as versions.

The pyblish plug-ins in the project's ``plugins/`` folder (collect /
validate / extract / integrate) are thin; the logic lives here as pure
functions: `collect` (results folder -> items, plate headers), `checks` (one
function per validation), `integrate` (versions, staging, manifest with
sha256) and `run.publish` (runs the plug-ins phase by phase and reports).

    from priorfx.publish import publish
    report = publish("renders/sh010", "shots/sh010", plate="plates/sh010.%04d.exr")
    print(report.format())
"""
from priorfx.publish.checks import Check, PublishParams
from priorfx.publish.run import Report, publish

__all__ = ["Check", "PublishParams", "Report", "publish"]
