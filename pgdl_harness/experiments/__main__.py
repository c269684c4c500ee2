"""``python -m pgdl_harness.experiments NAME [--out DIR] [--quick]``: run one experiment."""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from pathlib import Path

NAMES = ("through_training", "double_descent", "double_descent_conv", "weight_norms", "batchnorm")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pgdl_harness.experiments",
                                     description="Reproduce one of the seed papers' observations (Mouton et al. on fragmentation, "
                                                 "Potgieter et al. on BatchNorm); "
                                                 "writes a CSV and PNG figures under OUT/NAME/.")
    parser.add_argument("name", choices=NAMES)
    parser.add_argument("--out", default="results/experiments",
                        help="folder that receives NAME/ (default: %(default)s)")
    parser.add_argument("--quick", action="store_true",
                        help="a miniature (tiny data, a few widths and epochs) that checks the code path in seconds")
    parser.add_argument("--seeds", type=int, nargs="+", metavar="K",
                        help="double_descent(_conv) only: train these seeds (finished runs are kept, so seeds run in "
                             "separate processes can be joined by a last run with all of them)")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    # Fragmentation compiles a small function per call; TensorFlow's retracing warnings about it are noise here.
    tf.get_logger().setLevel("ERROR")
    from . import batchnorm, double_descent, through_training, weight_norms

    out = Path(args.out) / args.name
    started = time.perf_counter()
    if args.name == "through_training":
        through_training.run(out, through_training.QUICK if args.quick else through_training.Settings())
    elif args.name in ("double_descent", "double_descent_conv"):
        if args.name == "double_descent":
            settings = double_descent.QUICK if args.quick else double_descent.Settings()
        else:
            settings = double_descent.CONV_QUICK if args.quick else double_descent.CONV
        if args.seeds:
            settings = dataclasses.replace(settings, seeds=tuple(args.seeds))
        double_descent.run(out, settings)
    elif args.name == "batchnorm":
        batchnorm.run(out, batchnorm.QUICK if args.quick else batchnorm.Settings())
    else:
        weight_norms.run(out, quick=args.quick)
    print(f"{args.name}: wrote {out} in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
