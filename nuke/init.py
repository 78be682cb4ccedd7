"""PriorfxMatte plug-in: runs in every Nuke session, GUI or not (farm, `nuke -t`).

`priorfx install nuke` puts `nuke.pluginAddPath("<this folder>")` into
~/.nuke/init.py; Nuke then runs this file and adds the folder to sys.path,
so `import priorfx_nuke` works in render and terminal sessions too.
"""
import nuke

# Declare the layer the node writes, so scripts that use matte.* load and
# render on machines where no PriorfxMatte was created in this session.
nuke.Layer("matte", ["matte.alpha", "matte.confidence"])
nuke.Layer("fg", ["fg.red", "fg.green", "fg.blue"])
