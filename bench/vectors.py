#!/usr/bin/env python3
"""Vector kernel benchmark: Fanout's Rust kernels against faiss, NumPy+SciPy and
scikit-learn on the same random data, one core each. Run through bench/vectors.sh, which
makes the venv and builds the Rust side (shared/examples/vectors_bench.rs).

Each section writes its data to a temporary directory as raw little-endian files plus a
meta.json, runs the Rust example on it in a fresh process (so its peak memory is its own),
times the Python reference in this process, and checks that both agree. The last line
printed is one JSON object with every number; the exit code is 1 when a check failed.
"""

import os

# One thread for every BLAS and OpenMP pool, before numpy or faiss load them: the
# comparison is per core.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import pathlib  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

FIXTURE = pathlib.Path(__file__).resolve().parent.parent / "shared/tests/fixtures/roc_sklearn.json"


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bin", required=True, help="the built vectors_bench example")
    p.add_argument("--refs", type=int, default=20_000, help="cross match references")
    p.add_argument("--cands", type=int, default=20_000, help="cross match candidates")
    p.add_argument("--dim", type=int, default=512, help="descriptor length")
    p.add_argument("--k", type=int, default=10, help="cross match top-k")
    p.add_argument("--cluster", type=int, default=50_000, help="objects to cluster")
    p.add_argument("--threshold", type=float, default=0.5, help="clustering threshold")
    p.add_argument("--roc-pairs", type=int, default=5_000_000, help="scored ROC pairs")
    p.add_argument("--seed", type=int, default=20260501)
    p.add_argument(
        "--only",
        nargs="+",
        choices=["peak", "crossmatch", "cluster", "roc", "fixture"],
        help="run only these sections (default: all)",
    )
    p.add_argument("--tile-sweep", nargs="*", metavar="RxC", help="also time top-k per tile shape")
    p.add_argument("--fixture", type=pathlib.Path, default=FIXTURE, help="where the ROC fixture goes")
    return p.parse_args()


def unit(x):
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def identities(rng, n, dim, people, noise):
    """n descriptors of `people` identities: a random centre each plus noise, so a pair of
    one identity has cosine about 1 / (1 + noise^2) and other pairs about 0 ± 1/sqrt(dim)."""
    centres = unit(rng.standard_normal((people, dim), dtype=np.float32))
    labels = rng.integers(0, people, n)
    x = centres[labels] + (noise / np.sqrt(dim)) * rng.standard_normal((n, dim), dtype=np.float32)
    return unit(x), labels


def run_rust(binary, command, directory, *extra):
    done = subprocess.run(
        [binary, command, str(directory), *extra], check=True, capture_output=True, text=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def write_meta(directory, **meta):
    (directory / "meta.json").write_text(json.dumps(meta))


# --- sections ---------------------------------------------------------------------------


def section_peak(args, _tmp):
    out = subprocess.run([args.bin, "peak"], check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def section_crossmatch(args, tmp, rng, peak):
    import faiss

    faiss.omp_set_num_threads(1)
    people = max(1, (args.refs + args.cands) // 8)
    refs, _ = identities(rng, args.refs, args.dim, people, 0.6)
    cands, _ = identities(rng, args.cands, args.dim, people, 0.6)
    d = tmp / "crossmatch"
    d.mkdir()
    refs.tofile(d / "refs.f32")
    cands.tofile(d / "cands.f32")
    write_meta(d, dim=args.dim, k=args.k)

    rust = run_rust(args.bin, "crossmatch", d)
    index = faiss.IndexFlatIP(args.dim)
    index.add(cands)
    start = time.perf_counter()
    fs, fi = index.search(refs, args.k)
    faiss_seconds = time.perf_counter() - start

    ids = np.fromfile(d / "fanout_ids.i32", dtype="<i4").reshape(args.refs, args.k)
    sims = np.fromfile(d / "fanout_sims.f32", dtype="<f4").reshape(args.refs, args.k)
    same = np.array([set(a) == set(b) for a, b in zip(ids, fi)])
    # A differing set is a tie when each id only one side kept is within 1e-4 of the
    # k-th similarity: rounding decided the order, not the kernel.
    ties = 0
    for i in np.flatnonzero(~same):
        odd = list(set(ids[i]) ^ set(fi[i]))
        exact = refs[i].astype(np.float64) @ cands[odd].astype(np.float64).T
        if np.all(np.abs(exact - min(sims[i, -1], fs[i, -1])) <= 1e-4):
            ties += 1
    sim_diff = float(np.max(np.abs(np.clip(fs, 0, 1) - sims)))
    pairs = args.refs * args.cands
    agree = float(same.mean())
    out = {
        "refs": args.refs,
        "cands": args.cands,
        "dim": args.dim,
        "k": args.k,
        "fanout_seconds": rust["seconds"],
        "fanout_pairs_per_s": rust["pairs_per_s"],
        "fanout_gflops": rust["gflops"],
        "faiss_seconds": faiss_seconds,
        "faiss_pairs_per_s": pairs / faiss_seconds,
        "faiss_gflops": 2 * args.dim * pairs / faiss_seconds / 1e9,
        "same_ids": agree,
        "differing_not_ties": int((~same).sum()) - ties,
        "max_sim_diff": sim_diff,
        "ok": agree >= 0.999 and sim_diff <= 1e-4 and int((~same).sum()) == ties,
        "memory": {
            "blocks_mb": rust["blocks_kb"] / 1024,
            "rss_before_mb": rust["rss_before_kb"] / 1024,
            "peak_mb": rust["hwm_kb"] / 1024,
            "peak_is_kernel_only": rust["hwm_reset"],
        },
    }
    if peak:
        out["fraction_of_peak"] = rust["gflops"] / peak["peak_gflops"]
        out["fraction_of_sgemm_tile"] = rust["gflops"] / peak["sgemm_tile_gflops"]
    if args.tile_sweep:
        out["tile_sweep_pairs_per_s"] = run_rust(args.bin, "tiles", d, *args.tile_sweep)
    return out


def section_cluster(args, tmp, rng):
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    # About five samples per identity, noise 0.5: same-identity pairs near 0.8, others
    # near 0 ± 0.05, so nothing sits close enough to the threshold for rounding to matter.
    x, _ = identities(rng, args.cluster, args.dim, max(1, args.cluster // 5), 0.5)
    d = tmp / "cluster"
    d.mkdir()
    x.tofile(d / "cluster.f32")
    write_meta(d, dim=args.dim, threshold=args.threshold)
    rust = run_rust(args.bin, "cluster", d)

    start = time.perf_counter()
    n, chunk = len(x), 1024
    rows, cols = [], []
    for i0 in range(0, n, chunk):
        # Only the upper triangle: columns from i0 on, pairs with column > row.
        s = x[i0 : i0 + chunk] @ x[i0:].T
        r, c = np.nonzero(s >= args.threshold)
        keep = c > r
        rows.append(r[keep] + i0)
        cols.append(c[keep] + i0)
    rows, cols = np.concatenate(rows), np.concatenate(cols)
    graph = coo_matrix((np.ones(len(rows), dtype=np.int8), (rows, cols)), shape=(n, n)).tocsr()
    count, labels = connected_components(graph, directed=False)
    scipy_seconds = time.perf_counter() - start

    fanout = np.fromfile(d / "fanout_labels.u32", dtype="<u4")
    same = np.array_equal(canonical(fanout), canonical(labels))
    pairs = n * (n - 1) // 2
    return {
        "objects": n,
        "threshold": args.threshold,
        "fanout_seconds": rust["seconds"],
        "fanout_pairs_per_s": rust["pairs_per_s"],
        "scipy_seconds": scipy_seconds,
        "scipy_pairs_per_s": pairs / scipy_seconds,
        "edges": rust["edges"],
        "scipy_edges": int(len(rows)),
        "components": rust["components"],
        "scipy_components": int(count),
        "largest": rust["largest"],
        "same_partition": bool(same),
        "ok": bool(same) and rust["edges"] == len(rows),
    }


def canonical(labels):
    """Each object's label replaced by the smallest index in its component."""
    n = len(labels)
    first = np.full(labels.max() + 1, n)
    np.minimum.at(first, labels, np.arange(n))
    return first[labels]


def scored_pairs(rng, n):
    positive = rng.random(n) < 0.1
    sims = np.where(positive, rng.normal(0.7, 0.12, n), rng.normal(0.25, 0.12, n))
    return np.clip(sims, 0, 1).astype(np.float32), positive


def curve_with_unscored(sims, positive, extra_pos, extra_neg):
    """scikit-learn's view: never-scored pairs enter with score -1."""
    scores = np.concatenate([sims.astype(np.float64), np.full(extra_pos + extra_neg, -1.0)])
    labels = np.concatenate([positive, np.ones(extra_pos, bool), np.zeros(extra_neg, bool)])
    return scores, labels


def eer_of(fpr, tpr, thr):
    """Where fpr = 1 - tpr, linear on the crossing segment: Fanout's definition."""
    g = fpr + tpr - 1
    k = int(np.argmax(g >= 0))
    if k == 0 or g[k] == 0:
        return [fpr[k], tpr[k], thr[k]]
    t = -g[k - 1] / (g[k] - g[k - 1])
    return [float(a + t * (b - a)) for a, b in ((fpr[k - 1], fpr[k]), (tpr[k - 1], tpr[k]), (thr[k - 1], thr[k]))]


def at_fpr(fpr, tpr, thr, key):
    last = int(np.searchsorted(fpr, key, side="right")) - 1
    if last + 1 < len(fpr) and fpr[last] < key:
        t = (key - fpr[last]) / (fpr[last + 1] - fpr[last])
        return [key, float(tpr[last] + t * (tpr[last + 1] - tpr[last])), float(thr[last])]
    return [key, float(tpr[last]), float(thr[last])]


def sklearn_roc(sims, positive, extra_pos, extra_neg, keys):
    from sklearn.metrics import roc_auc_score, roc_curve

    scores, labels = curve_with_unscored(sims, positive, extra_pos, extra_neg)
    start = time.perf_counter()
    fpr, tpr, thr = roc_curve(labels, scores, drop_intermediate=False)
    auc = roc_auc_score(labels, scores)
    seconds = time.perf_counter() - start
    # scikit-learn >= 1.3 starts at +inf; Fanout at 1 + the best score (JSON-safe).
    thr = thr.copy()
    thr[0] = 1.0 + float(sims.max()) if len(sims) else 1.0
    return {
        "seconds": seconds,
        "auc": float(auc),
        "fpr": fpr,
        "tpr": tpr,
        "thr": thr,
        "eer": eer_of(fpr, tpr, thr),
        "key_points": [at_fpr(fpr, tpr, thr, k) for k in keys],
    }


KEYS = [0.0, 1e-4, 1e-3, 1e-2, 0.1, 0.5]


def section_roc(args, tmp, rng):
    sims, positive = scored_pairs(rng, args.roc_pairs)
    extra_pos, extra_neg = args.roc_pairs // 100, args.roc_pairs // 10
    d = tmp / "roc"
    d.mkdir()
    sims.tofile(d / "roc_sims.f32")
    positive.astype(np.uint8).tofile(d / "roc_labels.u8")
    pos, neg = int(positive.sum()) + extra_pos, int((~positive).sum()) + extra_neg
    write_meta(d, positives=pos, negatives=neg, key_fprs=KEYS)
    rust = run_rust(args.bin, "roc", d)
    ref = sklearn_roc(sims, positive, extra_pos, extra_neg, KEYS)
    eer_diff = abs(rust["eer"]["fpr"] - ref["eer"][0])
    key_diff = max(abs(a["tpr"] - b[1]) for a, b in zip(rust["key_points"], ref["key_points"]))
    auc_diff = abs(rust["auc"] - ref["auc"])
    return {
        "pairs": args.roc_pairs,
        "unscored_pairs": extra_pos + extra_neg,
        "fanout_seconds": rust["seconds"],
        "sklearn_seconds": ref["seconds"],
        "fanout_points": rust["points"],
        "sklearn_points": len(ref["fpr"]),
        "auc": rust["auc"],
        "auc_diff": auc_diff,
        "eer": rust["eer"]["fpr"],
        "eer_diff": eer_diff,
        "key_tpr_max_diff": key_diff,
        "ok": auc_diff <= 1e-6 and eer_diff <= 1e-6 and key_diff <= 1e-6 and rust["points"] == len(ref["fpr"]),
    }


def section_fixture(args, rng):
    """~2,000 pairs with many ties and some never-scored pairs, with scikit-learn's answers,
    for the unit test in shared/src/vectors/roc.rs."""
    import sklearn

    n = 2000
    positive = rng.random(n) < 0.3
    sims = np.where(positive, rng.normal(0.65, 0.15, n), rng.normal(0.35, 0.15, n))
    # Two decimals: ties; float32 values written as their exact doubles.
    sims = np.clip(np.round(sims, 2), 0, 1).astype(np.float32)
    extra_pos, extra_neg = 37, 150
    keys = [0.0, 0.001, 0.01, 0.1, 0.5, 1.0]
    ref = sklearn_roc(sims, positive, extra_pos, extra_neg, keys)
    points = [[float(f), float(t), float(h)] for f, t, h in zip(ref["fpr"], ref["tpr"], ref["thr"])]
    fixture = {
        "note": "written by bench/vectors.py (section fixture); checked by roc.rs tests",
        "sklearn": sklearn.__version__,
        "pairs": [[float(s), int(p)] for s, p in zip(sims, positive)],
        "positives": int(positive.sum()) + extra_pos,
        "negatives": int((~positive).sum()) + extra_neg,
        "key_fprs": keys,
        "auc": ref["auc"],
        "eer": ref["eer"],
        "points": points,
        "key_points": ref["key_points"],
    }
    args.fixture.parent.mkdir(parents=True, exist_ok=True)
    args.fixture.write_text(json.dumps(fixture, separators=(",", ":")) + "\n")
    return {"path": str(args.fixture), "pairs": n, "points": len(points), "auc": ref["auc"]}


# --- report -----------------------------------------------------------------------------


def table(results):
    lines = []
    peak = results.get("peak")
    if peak:
        widths = ", ".join(f"{k} {v:.1f}" for k, v in peak["fma_gflops"].items())
        lines.append(f"f32 FMA peak per core (GFLOP/s, independent FMA chains): {widths}")
        lines.append(f"sgemm (matrixmultiply) on one {peak['sgemm_tile']} tile, repeated: {peak['sgemm_tile_gflops']:.1f} GFLOP/s")
    x = results.get("crossmatch")
    if x:
        lines.append(f"\ncross match top-{x['k']}, {x['refs']} x {x['cands']} x {x['dim']}, 1 thread each")
        lines.append(f"  {'':<22}{'seconds':>10}{'Mpairs/s':>12}{'GFLOP/s':>10}")
        lines.append(f"  {'Fanout top_k':<22}{x['fanout_seconds']:>10.2f}{x['fanout_pairs_per_s'] / 1e6:>12.1f}{x['fanout_gflops']:>10.1f}")
        lines.append(f"  {'faiss IndexFlatIP':<22}{x['faiss_seconds']:>10.2f}{x['faiss_pairs_per_s'] / 1e6:>12.1f}{x['faiss_gflops']:>10.1f}")
        if "fraction_of_peak" in x:
            lines.append(
                f"  Fanout reaches {100 * x['fraction_of_peak']:.0f}% of the FMA peak, "
                f"{100 * x['fraction_of_sgemm_tile']:.0f}% of bare sgemm"
            )
        lines.append(
            f"  agreement: same top-{x['k']} ids for {100 * x['same_ids']:.3f}% of references, "
            f"{x['differing_not_ties']} differ beyond ties, max similarity diff {x['max_sim_diff']:.2e}"
            f"  [{'OK' if x['ok'] else 'FAIL'}]"
        )
        m = x["memory"]
        scope = "during top_k (VmHWM reset before it)" if m["peak_is_kernel_only"] else "whole process"
        lines.append(
            f"  memory: blocks {m['blocks_mb']:.1f} MB, RSS before {m['rss_before_mb']:.1f} MB, "
            f"peak {m['peak_mb']:.1f} MB {scope}"
        )
        for shape, rate in (x.get("tile_sweep_pairs_per_s") or {}).items():
            lines.append(f"  tile {shape:>10}: {rate / 1e6:.1f} Mpairs/s (4096 refs)")
    c = results.get("cluster")
    if c:
        lines.append(f"\nclustering {c['objects']} x {results['args']['dim']} at threshold {c['threshold']}, 1 thread each")
        lines.append(f"  {'Fanout edges+union':<22}{c['fanout_seconds']:>10.2f} s {c['fanout_pairs_per_s'] / 1e6:>8.1f} Mpairs/s")
        lines.append(f"  {'NumPy+SciPy':<22}{c['scipy_seconds']:>10.2f} s {c['scipy_pairs_per_s'] / 1e6:>8.1f} Mpairs/s")
        lines.append(
            f"  {c['edges']} edges ({c['scipy_edges']} SciPy), {c['components']} components "
            f"({c['scipy_components']} SciPy), largest {c['largest']}, same partition: {c['same_partition']}"
            f"  [{'OK' if c['ok'] else 'FAIL'}]"
        )
    r = results.get("roc")
    if r:
        lines.append(f"\nROC of {r['pairs']} scored pairs (+{r['unscored_pairs']} never scored)")
        lines.append(f"  {'Fanout roc()':<34}{r['fanout_seconds']:>8.2f} s, {r['fanout_points']} points")
        lines.append(f"  {'sklearn roc_curve+roc_auc_score':<34}{r['sklearn_seconds']:>8.2f} s, {r['sklearn_points']} points")
        lines.append(
            f"  AUC {r['auc']:.9f} (diff {r['auc_diff']:.1e}), EER {r['eer']:.6f} (diff {r['eer_diff']:.1e}), "
            f"key-point TPR diff {r['key_tpr_max_diff']:.1e}  [{'OK' if r['ok'] else 'FAIL'}]"
        )
    f = results.get("fixture")
    if f:
        lines.append(f"\nfixture: {f['path']} ({f['pairs']} pairs, {f['points']} points, AUC {f['auc']:.6f})")
    return "\n".join(lines)


def main():
    args = parse_args()
    only = set(args.only or ["peak", "crossmatch", "cluster", "roc", "fixture"])
    rng = np.random.default_rng(args.seed)
    results = {"args": {k: v for k, v in vars(args).items() if k not in ("bin", "fixture")}}
    with tempfile.TemporaryDirectory(prefix="fanout-vectors-") as name:
        tmp = pathlib.Path(name)
        if "peak" in only:
            results["peak"] = section_peak(args, tmp)
        if "crossmatch" in only:
            results["crossmatch"] = section_crossmatch(args, tmp, rng, results.get("peak"))
        if "cluster" in only:
            results["cluster"] = section_cluster(args, tmp, rng)
        if "roc" in only:
            results["roc"] = section_roc(args, tmp, rng)
        if "fixture" in only:
            results["fixture"] = section_fixture(args, np.random.default_rng(args.seed + 1))
    print(table(results))
    print(json.dumps(results, default=float))
    failed = [k for k, v in results.items() if isinstance(v, dict) and v.get("ok") is False]
    if failed:
        print(f"checks failed: {', '.join(failed)}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
