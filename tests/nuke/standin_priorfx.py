"""A stand-in `priorfx` executable for testing the adapter's process handling
(progress lines, errors, SIGINT on cancel) without waiting for real inference.

Behaviour is chosen by $STANDIN_MODE: ok | stepped | fail. Every call's argv is
appended to $STANDIN_LOG. Frames are staged in a hidden folder and moved in at
the end, as priorfx.io.FrameWriter does.

stepped: after staging its n-th frame the stand-in waits until the file
$STANDIN_GATE/n exists; the test creates it when the adapter has reported n
frames done. So each frame's progress is seen, and a cancel lands mid-job, on
a machine of any speed and load.
"""
import json
import os
import shutil
import signal
import sys
import time

args = sys.argv[1:]
with open(os.environ["STANDIN_LOG"], "a") as log:
    log.write(json.dumps(args) + "\n")
if args[:2] == ["info", "--json"]:
    if "--remote" in args:
        print("priorfx: error: cannot reach the priorfx server at " + args[-1], file=sys.stderr)
        print("priorfx: hint: check the URL and that `priorfx serve` runs there", file=sys.stderr)
        sys.exit(7)
    print(json.dumps({"priorfx_version": "7.7.7", "commands": {"matte": ["--frames", "--progress"]}}))
    sys.exit(0)
mode = os.environ.get("STANDIN_MODE", "ok")
if mode == "fail":
    print("priorfx: error: guide is 10x10, the plate is 20x20", file=sys.stderr)
    print("priorfx: hint: render the guide at the plate's size", file=sys.stderr)
    sys.exit(3)
plate, out = args[1], args[3]
first, last = map(int, args[args.index("--frames") + 1].split("-"))
stage = os.path.join(os.path.dirname(out), ".stage")
os.makedirs(stage)


def interrupted(signum, frame):
    with open(os.environ["STANDIN_LOG"], "a") as log:
        log.write('"interrupted"\n')
    shutil.rmtree(stage)
    sys.exit(130)


signal.signal(signal.SIGINT, interrupted)
total = last - first + 1
for f in range(first, last + 1):
    with open(plate % f, "rb") as src, open(os.path.join(stage, os.path.basename(out % f)), "wb") as dst:
        dst.write(b"standin:" + src.read())
    progress = {"progress": {"done": f - first + 1, "total": total, "message": "frame %d" % f}}
    print(json.dumps(progress), file=sys.stderr, flush=True)
    if mode == "stepped":   # the next frame waits until the test has seen this one's progress
        gate = os.path.join(os.environ["STANDIN_GATE"], str(f - first + 1))
        deadline = time.monotonic() + 300
        while not os.path.exists(gate):
            if time.monotonic() > deadline:
                print("stand-in: nobody opened " + gate, file=sys.stderr)
                sys.exit(9)
            time.sleep(0.01)
for name in os.listdir(stage):
    os.replace(os.path.join(stage, name), os.path.join(os.path.dirname(out), name))
os.rmdir(stage)
if "--json" in args:
    print(json.dumps({"output": out, "frames": total, "cached": 0}))
