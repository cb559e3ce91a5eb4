#!/usr/bin/env python3
"""Write scikit-learn's bundled digits as data items for the orchestrator's example problem.

Usage: make_data.py <out_dir> [--train-items N] [--test-items M] [--test-samples K]

The 1797 samples are shuffled with a fixed seed (0); the last K (default 360) become the
M test items, the rest the N training items (near-equal sizes, np.array_split). Each item
is one file, train_<i>.npz / test_<i>.npz: npz content (a zip of .npy arrays, no pickle)
holding X (n x 64 float64, pixel values 0..16) and y (n int64, the digit). The zip entries
carry a fixed timestamp, so the bytes are the same run to run. out_dir/manifest.json lists
{"train": [names], "test": [names], "samples": {name: n}}. No network: the digits ship
inside the scikit-learn package.
"""
import argparse
import io
import json
import os
import zipfile

import numpy as np
from sklearn.datasets import load_digits

SEED = 0
FIXED_TIME = (1980, 1, 1, 0, 0, 0)


def save_npz(path, **arrays):
    """np.savez, but with fixed zip timestamps so equal arrays give equal bytes."""
    tmp = path + ".tmp"
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as zf:
        for name in sorted(arrays):
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.asarray(arrays[name]), allow_pickle=False)
            info = zipfile.ZipInfo(name + ".npy", date_time=FIXED_TIME)
            info.external_attr = 0o644 << 16
            zf.writestr(info, buf.getvalue())
    os.replace(tmp, path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out_dir")
    ap.add_argument("--train-items", type=int, default=6)
    ap.add_argument("--test-items", type=int, default=2)
    ap.add_argument("--test-samples", type=int, default=360)
    args = ap.parse_args()

    digits = load_digits()
    X = np.ascontiguousarray(digits.data, dtype=np.float64)
    y = np.ascontiguousarray(digits.target, dtype=np.int64)
    n = len(y)
    if not (args.train_items >= 1 and args.test_items >= 1 and 0 < args.test_samples < n):
        ap.error("need --train-items >= 1, --test-items >= 1, 0 < --test-samples < %d" % n)
    order = np.random.default_rng(SEED).permutation(n)
    X, y = X[order], y[order]
    cut = n - args.test_samples

    os.makedirs(args.out_dir, exist_ok=True)
    manifest = {"train": [], "test": [], "samples": {}}
    for kind, lo, hi, parts in (("train", 0, cut, args.train_items),
                                ("test", cut, n, args.test_items)):
        for i, idx in enumerate(np.array_split(np.arange(lo, hi), parts)):
            name = "%s_%d.npz" % (kind, i)
            save_npz(os.path.join(args.out_dir, name), X=X[idx], y=y[idx])
            manifest[kind].append(name)
            manifest["samples"][name] = int(len(idx))
    with open(os.path.join(args.out_dir, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")


if __name__ == "__main__":
    main()
