"""The ``liveness`` command: a thin layer over functions the tests call directly.

Each sub-command lives in its own module, which provides ``add_arguments(parser)`` and
``run(args) -> int``. Only the module of the command being run is imported, so
``liveness --help`` stays instant. A :class:`~liveness.errors.UserError` becomes a one-line
message on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from liveness import __version__
from liveness.errors import UserError

# command -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "quickstart": ("liveness.quickstart", "synthetic data -> gather -> train -> evaluate -> demo"),
    "synth": ("liveness.synthetic", "write a synthetic liveness set (images and/or videos)"),
    "gather": ("liveness.gather", "extract face crops from videos, images or a camera"),
    "augment-preview": ("liveness.augment", "write a grid PNG of augmented samples"),
    "train": ("liveness.train", "train LivenessNet on a dataset folder"),
    "evaluate": ("liveness.evaluate", "evaluate a model: per-class report and ISO 30107-3 metrics"),
    "calibrate": ("liveness.calibrate", "adapt a model to a new camera from a few labelled crops"),
    "export": ("liveness.export", "write a trained model as ONNX, for inference engines"),
    "demo": ("liveness.demo", "label faces real/fake live on a camera or a video"),
    "explain": ("liveness.explain", "show what the network sees: feature maps and saliency"),
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The top-level parser; only ``command``'s module is imported to add its options."""
    parser = argparse.ArgumentParser(
        prog="liveness", description="Face liveness detection (real face vs photo/screen replay)."
    )
    parser.add_argument("--version", action="version", version=f"liveness {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == command:
            importlib.import_module(module).add_arguments(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    command = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(command if command in COMMANDS else None)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    module = importlib.import_module(COMMANDS[args.command][0])
    try:
        return int(module.run(args) or 0)
    except UserError as e:
        print(f"liveness {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"liveness {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
