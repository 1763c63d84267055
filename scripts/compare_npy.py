#!/usr/bin/env python3
"""Compares every NAME.npy in DIR_A with DIR_B: max |a-b| / max(1, max|b|) <= TOL.

usage: compare_npy.py DIR_A DIR_B TOL LABEL
"""
import os
import sys

import numpy as np


def main():
    a_dir, b_dir, tol, label = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4]
    names = sorted(f for f in os.listdir(b_dir) if f.endswith(".npy"))
    if not names:
        sys.exit(f"{label}: no .npy files in {b_dir}")
    worst = 0.0
    for n in names:
        a, b = np.load(os.path.join(a_dir, n)), np.load(os.path.join(b_dir, n))
        if a.shape != b.shape or a.dtype != b.dtype:
            sys.exit(f"{label}: {n}: {a.dtype}{a.shape} vs {b.dtype}{b.shape}")
        diff = float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64)))) if a.size else 0.0
        scale = max(1.0, float(np.max(np.abs(b))) if b.size else 1.0)
        print(f"{label}: {n} max |diff| {diff:.3e} (scale {scale:.3g})")
        if diff / scale > tol:
            sys.exit(f"{label}: {n} differs: {diff} > {tol} * {scale}")
        worst = max(worst, diff)
    print(f"{label}: ok (max |diff| {worst:.3e})")


if __name__ == "__main__":
    main()
