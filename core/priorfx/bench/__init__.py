"""Benchmarks behind `priorfx bench NAME`.

Each module here (shutter, portrait, matting, server, ...) defines
`add_arguments(parser)` for its own options and `run(args) -> dict`, which
returns a JSON-able result with a `summary` dict (the keys each issue names),
plus any detail. `--quick` and `--json OUT` are common to all and handled by
the CLI. Peers are always measured in the same run as ours.
"""
