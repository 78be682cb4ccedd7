"""Process PriorfxMatte nodes without a GUI (render farm, terminal).

    nuke -t /path/to/nuke/priorfx_nuke/farm.py shot.nk [--node NAME ...] [--save] [--cluster ADDR]

Runs each node's Process synchronously (the cache makes already-processed
frames free), then optionally saves the script so the Read paths are kept.
Run it once per shot before the render job: the recurrent prior needs the
whole range in one go, so do not split this step into frame chunks: with
`--cluster tcp://SCHED:8786` the core itself spreads each shot over a Dask
cluster (in the matte's own chunks: at cuts and every 480 frames, same
pixels), which needs the cache folder on storage every worker sees.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import List, Optional

if __package__ in (None, ""):  # run as a file by `nuke -t`
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import nuke  # noqa: E402

from priorfx_nuke import logic, node  # noqa: E402


def process_all(names: Optional[List[str]] = None) -> List[str]:
    """Process the named PriorfxMatte nodes (default: all); returns status lines."""
    found = node.all_nodes()
    if names:
        by_name = {n.fullName(): n for n in found}
        missing = [x for x in names if x not in by_name]
        if missing:
            raise logic.AdapterError("no PriorfxMatte named " + ", ".join(missing),
                                     "nodes in this script: " + (", ".join(sorted(by_name)) or "none"))
        found = [by_name[x] for x in names]
    lines = []
    for n in found:
        node.process(n)
        lines.append("{}: {}".format(n.fullName(), n["status"].value()))
    return lines


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="farm.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("script", help="the .nk script")
    parser.add_argument("--node", action="append", help="process only this node (repeatable)")
    parser.add_argument("--save", action="store_true", help="save the script afterwards")
    parser.add_argument("--cluster", metavar="ADDRESS",
                        help="run the core jobs on a Dask cluster (priorfx[cluster] on every machine)")
    args = parser.parse_args(argv)
    if args.cluster:
        os.environ["PRIORFX_CLUSTER"] = args.cluster  # inherited by every `priorfx matte` started
    if nuke.GUI:
        parser.error("run this with `nuke -t`, not inside the GUI")
    nuke.scriptOpen(args.script)
    try:
        for line in process_all(args.node):
            print(line)
    except logic.AdapterError as err:
        print("PriorfxMatte: error: {}".format(err), file=sys.stderr)
        return 1
    if args.save:
        nuke.scriptSave()
    return 0


if __name__ == "__main__":
    sys.exit(main())
