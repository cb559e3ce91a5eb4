"""Check every file of .fanout/models with onnxruntime (from the manifest's wheel): each
model loads and gives sensible answers on the packages' test images. One line per model;
exits non-zero on any failed check. Runs in .venv-models-check (requirements-check.txt).

usage: python verify.py .fanout/models
"""

import ctypes
import os
import sys

import numpy as np
import onnxruntime as ort
from PIL import Image

# insightface's t1.jpg (1280x886): the six faces' centres left to right, x in pixels, and
# who they are (looked at by hand). BlazeFace full-range finds 5 of them.
T1_FACES = [(100, "female"), (340, "female"), (520, "male"), (820, "male"), (990, "male"), (1200, "female")]
EMOTIONS = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]

failures = []


def check(condition, what):
    if not condition:
        failures.append(what)
    return condition


def say(name, text):
    print(f"  {name:<21} {text}", flush=True)


def session(models, name):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(os.path.join(models, name), options, providers=["CPUExecutionProvider"])


def load_rgb(path):
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.float32)


def resize(image, width, height):
    pixels = Image.fromarray(np.clip(image, 0, 255).astype(np.uint8))
    return np.asarray(pixels.resize((width, height), Image.BILINEAR), dtype=np.float32)


# --- BlazeFace full-range: 48x48 anchors of stride 4 on a 192x192 letterboxed image -------

def blazeface(sess, image, min_score=0.5, iou=0.3):
    """Faces as (score, x0, y0, x1, y1, keypoints[6,2]) in image pixels."""
    height, width = image.shape[:2]
    side = max(width, height)
    square = np.zeros((side, side, 3), np.float32)
    top, left = (side - height) // 2, (side - width) // 2
    square[top:top + height, left:left + width] = image
    tensor = resize(square, 192, 192) / 127.5 - 1.0
    tensor = tensor.transpose(2, 0, 1)[None]
    boxes, logits = sess.run(None, {sess.get_inputs()[0].name: tensor})
    scores = 1 / (1 + np.exp(-np.clip(logits[0, :, 0], -100, 100)))
    grid = (np.arange(48) + 0.5) / 48
    anchor_y, anchor_x = np.meshgrid(grid, grid, indexing="ij")
    anchors = np.stack([anchor_x.ravel(), anchor_y.ravel()], 1)
    raw = boxes[0] / 192.0
    centre = anchors + raw[:, 0:2]
    size = raw[:, 2:4]
    keypoints = anchors[:, None, :] + raw[:, 4:16].reshape(-1, 6, 2)
    found = []
    for i in np.argsort(-scores):
        if scores[i] < min_score:
            break
        box = np.concatenate([centre[i] - size[i] / 2, centre[i] + size[i] / 2])
        if any(overlap(box, other[1]) > iou for other in found):
            continue
        found.append((scores[i], box, keypoints[i]))
    faces = []
    for score, box, points in found:
        to_image = lambda xy: xy * side - np.array([left, top])
        (x0, y0), (x1, y1) = to_image(box[:2]), to_image(box[2:])
        faces.append((float(score), x0, y0, x1, y1, to_image(points)))
    return sorted(faces, key=lambda face: face[1])


def overlap(a, b):
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def crop(image, face, scale, size):
    """A square crop around a face box, scale times its larger side, resized to size."""
    _, x0, y0, x1, y1, _ = face
    side = max(x1 - x0, y1 - y0) * scale
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    box = tuple(int(round(v)) for v in (cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2))
    pixels = Image.fromarray(image.astype(np.uint8)).crop(box)
    return np.asarray(pixels.resize((size, size), Image.BILINEAR), dtype=np.float32)


def truth(face):
    centre = (face[1] + face[3]) / 2
    return min(T1_FACES, key=lambda known: abs(known[0] - centre))[1]


def main():
    models = sys.argv[1]
    images = os.path.join(models, "images")
    t1 = load_rgb(os.path.join(images, "t1.jpg"))
    print(f"models: verify with onnxruntime {ort.__version__}", flush=True)

    # The shared library the Rust side loads: its C API answers with its version.
    lib = ctypes.CDLL(os.path.join(models, "libonnxruntime.so.1.32.0"))

    class ApiBase(ctypes.Structure):
        _fields_ = [("GetApi", ctypes.c_void_p), ("GetVersionString", ctypes.CFUNCTYPE(ctypes.c_char_p))]

    lib.OrtGetApiBase.restype = ctypes.POINTER(ApiBase)
    version = lib.OrtGetApiBase().contents.GetVersionString().decode()
    check(version == "1.32.0", f"libonnxruntime reports {version}")
    say("libonnxruntime", f"OrtGetApiBase -> version {version}")

    detector = session(models, "blazeface-full-range.onnx")
    counts = {}
    for name in ("t1.jpg", "zidane.jpg", "bus.jpg"):
        counts[name] = blazeface(detector, load_rgb(os.path.join(images, name)))
    faces = counts["t1.jpg"]
    check(len(faces) >= 5, f"BlazeFace found {len(faces)} faces on t1.jpg, expected 5 of 6")
    check(len(counts["zidane.jpg"]) >= 1, "BlazeFace found no face on zidane.jpg")
    say("blazeface-full-range", f"faces: t1 {len(faces)}/6, zidane {len(counts['zidane.jpg'])}, bus {len(counts['bus.jpg'])}; "
        f"t1 scores {' '.join(f'{f[0]:.2f}' for f in faces)}")

    # MTCNN: P-Net over the whole image at one scale; O-Net (and R-Net) on the detected faces.
    pnet = session(models, "mtcnn-pnet.onnx")
    small = resize(t1, 320, 222)
    prob = pnet.run(None, {pnet.get_inputs()[0].name: ((small - 127.5) / 128).transpose(1, 0, 2)[None]})[1]
    proposals = int((prob[0, :, :, 1] > 0.6).sum())
    check(proposals > 0, "MTCNN P-Net proposed nothing on t1.jpg")
    rnet, onet = session(models, "mtcnn-rnet.onnx"), session(models, "mtcnn-onet.onnx")
    batch24 = np.stack([((crop(t1, f, 1.0, 24) - 127.5) / 128).transpose(1, 0, 2) for f in faces])
    batch48 = np.stack([((crop(t1, f, 1.0, 48) - 127.5) / 128).transpose(1, 0, 2) for f in faces])
    r_prob = rnet.run(None, {rnet.get_inputs()[0].name: batch24})[1][:, 1]
    _, landmarks, o_prob = onet.run(None, {onet.get_inputs()[0].name: batch48})
    o_prob = o_prob[:, 1]
    inside = int(((landmarks >= 0) & (landmarks <= 1)).all(axis=1).sum())
    check((o_prob > 0.7).sum() >= len(faces) - 1, f"MTCNN O-Net face probabilities {o_prob}")
    say("mtcnn-pnet", f"{proposals} windows > 0.6 on t1 at 320x222")
    say("mtcnn-rnet", f"face probability on the {len(faces)} faces: {' '.join(f'{p:.2f}' for p in r_prob)}")
    say("mtcnn-onet", f"face probability {' '.join(f'{p:.2f}' for p in o_prob)}; 5 landmarks inside the box for {inside}/{len(faces)}")

    # FaceRes: 224x224 RGB 0..255; 1024-D descriptor, gender, age.
    faceres = session(models, "faceres.onnx")
    batch = np.stack([crop(t1, f, 1.3, 224) for f in faces])
    names = [o.name for o in faceres.get_outputs()]
    out = dict(zip(names, faceres.run(None, {faceres.get_inputs()[0].name: batch})))
    descriptors = out["global_pooling/Mean"]
    genders = ["male" if g > 0.5 else "female" for g in out["gender_pred/Sigmoid:0"][:, 0]]
    right = sum(g == truth(f) for g, f in zip(genders, faces))
    ages = out["age_pred/Softmax:0"].argmax(1)
    check(descriptors.shape == (len(faces), 1024) and np.isfinite(descriptors).all(), f"FaceRes descriptors {descriptors.shape}")
    check(right >= len(faces) - 1, f"FaceRes gender right on {right}/{len(faces)}")
    unit = descriptors / np.linalg.norm(descriptors, axis=1, keepdims=True)
    cosine = unit @ unit.T
    off_diagonal = cosine[~np.eye(len(faces), dtype=bool)]
    say("faceres", f"descriptor {descriptors.shape[1]}-D; gender right {right}/{len(faces)}; age bins {' '.join(map(str, ages))}; "
        f"cos between different people max {off_diagonal.max():.2f}")

    # FaceNet: 160x160 prewhitened, batch 1; 512-D L2-normalised.
    facenet = session(models, "facenet.onnx")
    embeddings = []
    for face in faces:
        x = crop(t1, face, 1.3, 160)
        x = (x - x.mean()) / max(x.std(), 1 / np.sqrt(x.size))
        embeddings.append(facenet.run(None, {facenet.get_inputs()[0].name: x[None]})[0][0])
    embeddings = np.stack(embeddings)
    norms = np.linalg.norm(embeddings, axis=1)
    check(embeddings.shape[1] == 512 and np.allclose(norms, 1, atol=1e-3), f"FaceNet embeddings {embeddings.shape}, norms {norms}")
    cosine = embeddings @ embeddings.T
    say("facenet", f"embedding {embeddings.shape[1]}-D, norm {norms.mean():.3f}; "
        f"cos between different people max {cosine[~np.eye(len(faces), dtype=bool)].max():.2f}")

    # GEAR: 198x198 RGB 0..1; gender (male, female), age bins, race.
    gear = session(models, "gear.onnx")
    names = [o.name for o in gear.get_outputs()]
    out = dict(zip(names, gear.run(None, {gear.get_inputs()[0].name: np.stack([crop(t1, f, 1.3, 198) / 255 for f in faces])})))
    genders = ["male" if g[0] > g[1] else "female" for g in out["gender_output"]]
    right = sum(g == truth(f) for g, f in zip(genders, faces))
    check(out["age_output"].shape == (len(faces), 7) and out["race_output"].shape == (len(faces), 5), "GEAR output shapes")
    check(right >= len(faces) - 2, f"GEAR gender right on {right}/{len(faces)}")
    say("gear", f"gender right {right}/{len(faces)}; age bins {' '.join(map(str, out['age_output'].argmax(1)))}")

    # Emotion: 64x64 grey in -1..1; seven classes.
    emotion = session(models, "emotion.onnx")
    grey = [(crop(t1, f, 1.1, 64) / 255) @ np.array([0.2989, 0.5870, 0.1140], np.float32) for f in faces]
    scores = emotion.run(None, {emotion.get_inputs()[0].name: (np.stack(grey)[..., None] - 0.5) * 2})[0]
    check(scores.shape == (len(faces), 7) and np.allclose(scores.sum(1), 1, atol=1e-3), f"emotion scores {scores.shape}")
    say("emotion", "top: " + " ".join(EMOTIONS[i] for i in scores.argmax(1)))

    # Mask: 224x224 RGB scaled to -1..1; (mask, no mask). Nobody on t1 wears one.
    mask = session(models, "mask.onnx")
    scores = mask.run(None, {mask.get_inputs()[0].name: np.stack([crop(t1, f, 1.2, 224) / 127.5 - 1 for f in faces])})[0]
    bare = int((scores[:, 1] > scores[:, 0]).sum())
    check(bare >= len(faces) - 1, f"mask model says {len(faces) - bare} of t1's faces wear a mask")
    say("mask", f"no mask on {bare}/{len(faces)} faces of t1")

    if failures:
        for failure in failures:
            print(f"models: check FAILED: {failure}", file=sys.stderr)
        sys.exit(1)
    print("models: every model checked", flush=True)


if __name__ == "__main__":
    main()
