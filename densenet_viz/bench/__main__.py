"""Benchmarks: `python -m densenet_viz.bench [analysis|train|infer|classroom ...] [--quick] [options]` prints tables."""

from __future__ import annotations

import argparse
import importlib

# Each part lives in its own module exposing `run(quick: bool) -> str` (the printed table). A part with
# options of its own also exposes `add_arguments(parser)` and takes the parsed options: `run(quick, args)`.
PARTS = {
    "analysis": "densenet_viz.bench.analysis",
    "train": "densenet_viz.bench.train",
    "infer": "densenet_viz.bench.infer",
    "classroom": "densenet_viz.bench.classroom",
    "hostile": "densenet_viz.bench.hostile",
}


def main(argv: list[str] | None = None) -> None:
    """Run the chosen benchmark parts (all by default) and print their tables."""
    parser = argparse.ArgumentParser(prog="python -m densenet_viz.bench", description=__doc__)
    parser.add_argument("parts", nargs="*", metavar="part", help=f"any of {', '.join(PARTS)} (default: all)")
    parser.add_argument("--quick", action="store_true", help="one tiny case of each part, in seconds")
    modules = {part: importlib.import_module(name) for part, name in PARTS.items()}
    for module in modules.values():
        if hasattr(module, "add_arguments"):
            module.add_arguments(parser)
    args = parser.parse_args(argv)
    unknown = sorted(set(args.parts) - set(PARTS))
    if unknown:
        parser.error(f"unknown part(s) {', '.join(unknown)}; choose from {', '.join(PARTS)}")
    for part in args.parts or list(PARTS):
        module = modules[part]
        print(f"## {part}\n", flush=True)
        print(module.run(args.quick, args) if hasattr(module, "add_arguments") else module.run(quick=args.quick))
        print()


if __name__ == "__main__":
    main()
