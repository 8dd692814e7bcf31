"""The `gdoi` command: one entry point, one subcommand module per job.

Each module listed in COMMAND_MODULES defines `register(commands, show_commands)`,
which adds its subparsers (with `set_defaults(func=...)`) to the top-level
`commands` group or to the `gdoi show ...` group. Modules keep heavy imports
(Scapy, cffi) inside their command functions so `gdoi --help` stays fast.
"""
import argparse
import importlib
import sys

COMMAND_MODULES = (
    "scapy_gdoi.analyze",  # gdoi analyze CAPTURE
    "d3p_fast.cli",  # gdoi d3p enforce|stamp, gdoi show gm replay
)


def build_parser():
    parser = argparse.ArgumentParser(
        prog="gdoi", description="GDOI / GET VPN interoperability tools (scapy-gdoi)")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True
    show = commands.add_parser("show", help="IOS-style reports")
    show_commands = show.add_subparsers(dest="show_command", metavar="WHAT")
    show_commands.required = True
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ImportError as exc:
            # A missing optional part must not take the other commands down.
            if exc.name != name:
                raise
            continue
        module.register(commands, show_commands)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args) or 0
    except BrokenPipeError:
        # `gdoi analyze big.pcap | head` is normal use, not an error.
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
