"""Benchmarks: `python -m densenet_viz.bench [analysis|train|infer ...] [--quick]` prints tables."""

from __future__ import annotations

import argparse
import importlib

# Each part lives in its own module exposing `run(quick: bool) -> str` (the printed table).
PARTS = {
    "analysis": "densenet_viz.bench.analysis",
    "train": "densenet_viz.bench.train",
    "infer": "densenet_viz.bench.infer",
}


def main(argv: list[str] | None = None) -> None:
    """Run the chosen benchmark parts (all by default) and print their tables."""
    parser = argparse.ArgumentParser(prog="python -m densenet_viz.bench", description=__doc__)
    parser.add_argument("parts", nargs="*", metavar="part", help=f"any of {', '.join(PARTS)} (default: all)")
    parser.add_argument("--quick", action="store_true", help="one tiny case of each part, in seconds")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.parts) - set(PARTS))
    if unknown:
        parser.error(f"unknown part(s) {', '.join(unknown)}; choose from {', '.join(PARTS)}")
    for part in args.parts or list(PARTS):
        module = importlib.import_module(PARTS[part])
        print(f"## {part}\n")
        print(module.run(quick=args.quick))
        print()


if __name__ == "__main__":
    main()
