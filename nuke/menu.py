"""PriorfxMatte plug-in: GUI sessions only. Adds Nodes > priorfx > PriorfxMatte."""
import nuke

_menu = nuke.menu("Nodes").addMenu("priorfx")
_menu.addCommand("PriorfxMatte", "import priorfx_nuke.node; priorfx_nuke.node.create()",
                 tooltip="Human matte (alpha + clean foreground) from a learned person prior")
