"""Vision benchmark, the reference side: the same pipeline as Fanout's vision module
(decode, BlazeFace full-range, MTCNN O-Net landmarks, five-point alignment, FaceRes
descriptors) on the same ONNX files, driven from Python with onnxruntime (the
manifest's wheel), numpy and Pillow, one thread. Prints one JSON line like
workers/examples/vision_bench.rs.

Usage: python vision.py MODELS_DIR ROUNDS IMAGE...
"""

import io
import json
import resource
import sys
import time

import numpy as np
import onnxruntime as ort
from PIL import Image

TEMPLATE = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    np.float32,
)
GRID = 48
CENTRES = np.stack(np.meshgrid((np.arange(GRID) + 0.5) / GRID, (np.arange(GRID) + 0.5) / GRID), -1).reshape(-1, 2)


def session(path):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def iou(a, b):
    left, top = max(a[0], b[0]), max(a[1], b[1])
    right, bottom = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, right - left) * max(0.0, bottom - top)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def detect(net, image, min_score=0.5):
    height, width = image.shape[:2]
    scale = 192 / max(width, height)
    w, h = max(1, round(width * scale)), max(1, round(height * scale))
    resized = np.asarray(Image.fromarray(image).resize((w, h), Image.BILINEAR), np.float32)
    square = np.full((192, 192, 3), 0.0, np.float32)
    dx, dy = (192 - w) // 2, (192 - h) // 2
    square[dy : dy + h, dx : dx + w] = resized
    tensor = (square / 127.5 - 1.0).transpose(2, 0, 1)[None]
    outputs = net.run(None, {net.get_inputs()[0].name: tensor})
    regressors = next(o for o in outputs if o.shape[-1] == 16)[0]
    logits = next(o for o in outputs if o.shape[-1] == 1)[0, :, 0]
    scores = 1 / (1 + np.exp(-np.clip(logits, -100, 100)))
    keep = np.nonzero(scores >= min_score)[0]
    candidates = []
    for i in keep:
        r = regressors[i]
        cx, cy = CENTRES[i] * 192 + r[:2]
        box = np.array([cx - r[2] / 2, cy - r[3] / 2, cx + r[2] / 2, cy + r[3] / 2])
        box = (box - [dx, dy, dx, dy]) / scale
        candidates.append((scores[i], box))
    candidates.sort(key=lambda c: -c[0])
    merged, taken = [], [False] * len(candidates)
    for i, (score, box) in enumerate(candidates):
        if taken[i]:
            continue
        group = [j for j in range(i, len(candidates)) if not taken[j] and (j == i or iou(box, candidates[j][1]) > 0.3)]
        weights = np.array([candidates[j][0] for j in group])
        boxes = np.stack([candidates[j][1] for j in group])
        for j in group:
            taken[j] = True
        merged.append((score, (weights[:, None] * boxes).sum(0) / weights.sum()))
    return merged


def landmarks(net, image, faces):
    batch, squares = [], []
    pil = Image.fromarray(image)
    for _, (x0, y0, x1, y1) in faces:
        side = max(x1 - x0, y1 - y0, 1.0)
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        sx, sy = cx - side / 2, cy - side / 2
        crop = pil.transform((48, 48), Image.AFFINE, (side / 48, 0, sx, 0, side / 48, sy), Image.BILINEAR)
        batch.append(((np.asarray(crop, np.float32) - 127.5) / 128).transpose(1, 0, 2))
        squares.append((sx, sy, side))
    out = net.run(None, {net.get_inputs()[0].name: np.stack(batch)})
    points = next(o for o in out if o.shape[-1] == 10)
    return [
        np.stack([sx + p[:5] * side, sy + p[5:] * side], -1) for p, (sx, sy, side) in zip(points, squares)
    ]


def similarity(src, dst):
    sm, dm = src.mean(0), dst.mean(0)
    u, v = src - sm, dst - dm
    var = (u * u).sum()
    a = (u * v).sum() / var
    b = (u[:, 0] * v[:, 1] - u[:, 1] * v[:, 0]).sum() / var
    tx = dm[0] - (a * sm[0] - b * sm[1])
    ty = dm[1] - (b * sm[0] + a * sm[1])
    return a, b, tx, ty


def aligned(image, five, size=224, margin=1.3):
    scale = size / (112 * margin)
    offset = (size - 112 * scale) / 2
    a, b, tx, ty = similarity(five, TEMPLATE * scale + offset)
    # Pillow's AFFINE maps output pixels to input pixels: the inverse transform.
    norm = a * a + b * b
    ia, ib = a / norm, -b / norm
    itx, ity = -(ia * tx - ib * ty), -(ib * tx + ia * ty)
    crop = Image.fromarray(image).transform((size, size), Image.AFFINE, (ia, -ib, itx, ib, ia, ity), Image.BILINEAR)
    return np.asarray(crop, np.float32)


def main():
    models, rounds, files = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    detector = session(f"{models}/blazeface-full-range.onnx")
    onet = session(f"{models}/mtcnn-onet.onnx")
    faceres = session(f"{models}/faceres.onnx")
    blobs = [open(f, "rb").read() for f in files]

    def run(blob):
        image = np.asarray(Image.open(io.BytesIO(blob)).convert("RGB"))
        faces = detect(detector, image)
        if not faces:
            return 0
        fives = landmarks(onet, image, faces)
        batch = np.stack([aligned(image, five) for five in fives])
        out = faceres.run(None, {faceres.get_inputs()[0].name: batch})
        descriptors = next(o for o in out if o.shape[-1] == 1024)
        descriptors = descriptors / np.linalg.norm(descriptors, axis=1, keepdims=True)
        return len(descriptors)

    for blob in blobs:
        run(blob)
    started = time.perf_counter()
    found = 0
    for _ in range(rounds):
        for blob in blobs:
            found += run(blob)
    seconds = time.perf_counter() - started
    count = rounds * len(blobs)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    print(json.dumps({
        "pipeline": "python-onnxruntime",
        "images": count,
        "faces": found,
        "seconds": round(seconds, 3),
        "images_per_s": round(count / seconds, 2),
        "peak_rss_mib": peak,
    }))


if __name__ == "__main__":
    main()
