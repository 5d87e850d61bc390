#!/usr/bin/env python3
"""Reference outputs of the three MediaPipe models from Google's own TFLite runtime (LiteRT).

Writes crates/gradphoto-tflite/tests/reference/: index.json (input recipes, shapes, output files)
and every output as little-endian f32 (.bin). No pixels are written: the photo stays in the shared
test data, and the Rust tests rebuild the same float inputs from it and compare against these outputs.

Run: python3 tools/tflite_reference.py   (creates a venv under /tmp with ai-edge-litert, numpy, pillow)
Models come from GRADPHOTO_MODEL_DIR (default /work/models-cache): the mediapipe==0.10.14 wheel's files.

Input recipes (the Rust side reproduces them bit for bit in f32):
- "pattern": element i (row-major) is lo + (hi - lo) * u(i) with
      h = (i * 0x9E3779B1) mod 2^32; h ^= h >> 15; h = (h * 0x85EBCA77) mod 2^32; h ^= h >> 13
      u = (h >> 8) / 2^24
  (all integer arithmetic on u32, the float arithmetic in f32).
- "photo": the shared test photo (PNG, 512x512 RGB; lossless, so every decoder gives the same pixels)
  cropped to the integer rectangle photo_crop = [left, top, right, bottom) and shrunk by an integer
  box average of photo_box x photo_box pixels, per channel in integers:
      v = (sum + n / 2) / n   with n = photo_box^2 and integer division
  (no resampler library, so Python and Rust get the same u8 pixels; index.json records their
  SHA-256 as photo_pixels_sha256), then mapped per model to lo + (hi - lo) * (v / 255) in f32:
  the detector takes [-1, 1], FaceMesh and selfie segmentation [0, 1] (as MediaPipe feeds them).
"""

import hashlib
import json
import os
import subprocess
import sys
import venv

VENV = "/tmp/gradphoto-tflite-ref-venv"
PACKAGES = ["ai-edge-litert", "numpy", "pillow"]

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT_DIR = os.path.join(ROOT, "crates", "gradphoto-tflite", "tests", "reference")
MODEL_DIR = os.environ.get("GRADPHOTO_MODEL_DIR", "/work/models-cache")
# The photo, relative to the shared test data folder (the Rust tests load the same file).
PHOTO_NAME = "portraits/astronaut_eileen_collins.png"
SHARED = os.environ.get("GRADPHOTO_SHARED", os.path.join(ROOT, "..", "shared"))
PHOTO = os.path.join(SHARED, "testdata", PHOTO_NAME)

# name, file, value range, crop of the 512x512 photo [left, top, right, bottom), box-average factor.
MODELS = [
    # The whole photo, 4x4 box average: 512 -> 128.
    ("face_detection_short_range", "face_detection_short_range.tflite", (-1.0, 1.0), (0, 0, 512, 512), 4),
    # FaceMesh expects a face crop (about 1.5x the face, which is about 100x130 pixels here): a 192x192
    # square around the astronaut's face, taken as is (box factor 1). A 384x384 crop with a 2x2 average
    # leaves the face too small: FaceMesh's face-presence logit is then negative (about -6) instead of 27.
    ("face_landmark", "face_landmark.tflite", (0.0, 1.0), (128, 16, 320, 208), 1),
    # The whole photo, 2x2 box average: 512 -> 256.
    ("selfie_segmentation", "selfie_segmentation.tflite", (0.0, 1.0), (0, 0, 512, 512), 2),
]


def ensure_venv():
    """Re-runs this script inside a venv that has the reference runtime."""
    if os.path.realpath(sys.prefix) == os.path.realpath(VENV):
        return
    py = os.path.join(VENV, "bin", "python")
    if not os.path.exists(py):
        venv.create(VENV, with_pip=True)
    try:
        subprocess.run([py, "-c", "import ai_edge_litert, numpy, PIL"], check=True, capture_output=True)
    except subprocess.CalledProcessError:
        subprocess.run([py, "-m", "pip", "install", "-q", *PACKAGES], check=True)
    os.execv(py, [py, os.path.abspath(__file__), *sys.argv[1:]])


def pattern(n, lo, hi):
    import numpy as np

    i = np.arange(n, dtype=np.uint64)
    h = (i * np.uint64(0x9E3779B1)) & np.uint64(0xFFFFFFFF)
    h ^= h >> np.uint64(15)
    h = (h * np.uint64(0x85EBCA77)) & np.uint64(0xFFFFFFFF)
    h ^= h >> np.uint64(13)
    u = (h >> np.uint64(8)).astype(np.float32) / np.float32(16777216.0)
    return np.float32(lo) + np.float32(hi - lo) * u


def crop_box(photo, crop, box):
    """RGB u8 pixels of photo[top:bottom, left:right], shrunk by a box x box integer average."""
    import numpy as np

    left, top, right, bottom = crop
    h, w = bottom - top, right - left
    assert h % box == 0 and w % box == 0, (crop, box)
    region = photo[top:bottom, left:right].astype(np.uint32)
    sums = region.reshape(h // box, box, w // box, box, 3).sum(axis=(1, 3), dtype=np.uint32)
    n = box * box
    return ((sums + n // 2) // n).astype(np.uint8)


def from_u8(pixels, lo, hi):
    import numpy as np

    return np.float32(lo) + np.float32(hi - lo) * (pixels.astype(np.float32) / np.float32(255.0))


def main():
    ensure_venv()
    import numpy as np
    from ai_edge_litert import interpreter as litert
    from importlib.metadata import version
    from PIL import Image

    os.makedirs(OUT_DIR, exist_ok=True)
    for old in os.listdir(OUT_DIR):
        if old.endswith((".u8", ".bin")):
            os.remove(os.path.join(OUT_DIR, old))
    with open(PHOTO, "rb") as f:
        png = f.read()
    image = Image.open(PHOTO)
    assert image.format == "PNG" and image.mode == "RGB" and image.size == (512, 512), image
    photo = np.asarray(image, dtype=np.uint8)
    index = {
        "runtime": f"ai-edge-litert {version('ai-edge-litert')} (XNNPACK delegate, 1 thread)",
        "numpy": version("numpy"),
        "photo": PHOTO_NAME,
        "photo_sha256": hashlib.sha256(png).hexdigest(),
        "models": [],
    }
    for name, file, (lo, hi), crop, box in MODELS:
        path = os.path.join(MODEL_DIR, file)
        data = open(path, "rb").read()
        it = litert.Interpreter(model_path=path, num_threads=1)
        it.allocate_tensors()
        (inp,) = it.get_input_details()
        shape = [int(d) for d in inp["shape"]]
        _, h, w, _ = shape
        pixels = crop_box(photo, crop, box)
        assert pixels.shape == (h, w, 3), (name, pixels.shape)
        cases = []
        for case, x in [
            ("pattern", pattern(int(np.prod(shape)), lo, hi)),
            ("photo", from_u8(pixels.reshape(-1), lo, hi)),
        ]:
            it.set_tensor(inp["index"], x.reshape(shape).astype(np.float32))
            it.invoke()
            outs = []
            for k, od in enumerate(it.get_output_details()):
                y = it.get_tensor(od["index"]).astype("<f4")
                f = f"{name}.{case}.out{k}.bin"
                y.tofile(os.path.join(OUT_DIR, f))
                outs.append(
                    {
                        "name": od["name"],
                        "shape": [int(d) for d in od["shape"]],
                        "file": f,
                        "max_abs": float(np.abs(y).max()),
                    }
                )
            cases.append({"input": case, "outputs": outs})
        index["models"].append(
            {
                "name": name,
                "file": file,
                "sha256": hashlib.sha256(data).hexdigest(),
                "input_shape": shape,
                "range": [lo, hi],
                "photo_crop": list(crop),
                "photo_box": box,
                "photo_pixels_sha256": hashlib.sha256(pixels.tobytes()).hexdigest(),
                "cases": cases,
            }
        )
        print(f"{name}: {shape} -> {[o['shape'] for o in cases[0]['outputs']]}")
    with open(os.path.join(OUT_DIR, "index.json"), "w") as f:
        json.dump(index, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
