"""The `priorfx` command.

Each subcommand lives in its own module in this package with a
`register(subparsers)` function; main() maps the PriorfxError family to exit
codes and prints one line (plus a hint) instead of a traceback.
"""
from __future__ import annotations

import argparse
import signal
import sys
import threading

import priorfx
from priorfx.cli.common import present_modules
from priorfx.errors import PriorfxError

# Order here is the order in `priorfx --help`.
COMMANDS = ["demo", "deshutter", "readout", "undistort", "matte", "info", "models", "samples",
            "serve", "worker", "bench", "install", "publish"]

EPILOG = """exit codes: 0 ok, 1 internal error, 2 usage, 3 bad input, 4 model missing,
5 model checksum mismatch, 6 no face found, 7 engine/index unreachable, 8 auth,
9 over a limit, 10 version mismatch, 11 output not writable, 12 not found,
130 cancelled"""


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The command's parser; `only`: register just that subcommand (what main()
    does when the command line names one: registering every command imports
    every benchmark, their scenes and the matting code, over a second of a host's
    Apply on a loaded machine)."""
    parser = argparse.ArgumentParser(
        prog="priorfx", epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Fix what the camera got wrong: rolling shutter, selfie perspective, "
                    "background (matting).")
    parser.add_argument("--version", action="version", version=f"priorfx {priorfx.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for _name, module in present_modules("priorfx.cli", [only] if only in COMMANDS else COMMANDS):
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    if threading.current_thread() is threading.main_thread():
        # Cancel is SIGINT (Ctrl-C, or a host's Cancel through the host kit). A process
        # started with SIGINT ignored (a script's background job, some farm and host
        # launchers) inherits that, and Python then leaves it ignored: the run could not
        # be cancelled cleanly. So the command always takes SIGINT as KeyboardInterrupt.
        signal.signal(signal.SIGINT, signal.default_int_handler)
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(argv[0] if argv else None)
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except PriorfxError as err:
        print(f"priorfx: error: {err.message}", file=sys.stderr)
        if err.hint:
            print(f"priorfx: hint: {err.hint}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("priorfx: cancelled (no partial output was kept)", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 1


if __name__ == "__main__":
    sys.exit(main())
