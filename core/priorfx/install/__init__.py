"""Host installers behind `priorfx install HOST` (gimp, obs, nuke).

Each module defines `add_arguments(parser)` and `run(args) -> int`.
"""
