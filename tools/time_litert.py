#!/usr/bin/env python3
"""Times Google's own TFLite runtime (LiteRT 2.3.0, its XNNPACK CPU delegate, one thread) on the three models, to
set beside `cargo bench -p gradphoto-tflite --bench models` (our interpreter, one thread) in the same session.

Run: python3 tools/time_litert.py   (makes a venv under /tmp with ai-edge-litert==2.3.0 and numpy on first use)
Models come from GRADPHOTO_MODEL_DIR (default: target/models-data/models/mediapipe-0.10.14, where the tests and
benchmarks fetch them). Input values do not change the time of these float models; they are uniform in [0, 1).
"""

import os
import statistics
import subprocess
import sys
import time
import venv

VENV = "/tmp/gradphoto-litert-time-venv"
PACKAGES = ["ai-edge-litert==2.3.0", "numpy"]
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL_DIR = os.environ.get(
    "GRADPHOTO_MODEL_DIR", os.path.join(ROOT, "target", "models-data", "models", "mediapipe-0.10.14")
)
MODELS = ["face_detection_short_range.tflite", "face_landmark.tflite", "selfie_segmentation.tflite"]
RUNS = 200


def ensure_venv():
    py = os.path.join(VENV, "bin", "python")
    if not os.path.exists(py):
        venv.create(VENV, with_pip=True)
    if subprocess.run([py, "-c", "import ai_edge_litert, numpy"], capture_output=True).returncode != 0:
        subprocess.check_call([py, "-m", "pip", "install", "-q", *PACKAGES])
    return py


def measure():
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter

    rng = np.random.default_rng(1)
    for name in MODELS:
        it = Interpreter(model_path=os.path.join(MODEL_DIR, name), num_threads=1)
        it.allocate_tensors()
        inp = it.get_input_details()[0]
        it.set_tensor(inp["index"], rng.random(inp["shape"], dtype=np.float32))
        it.invoke()
        times = []
        for _ in range(RUNS):
            t = time.perf_counter()
            it.invoke()
            times.append(time.perf_counter() - t)
        print(f"{name:36} LiteRT 2.3.0 (XNNPACK, 1 thread) median {statistics.median(times) * 1e3:6.3f} ms (min {min(times) * 1e3:.3f})")


def main():
    if sys.prefix != VENV:
        py = ensure_venv()
        os.execv(py, [py, os.path.abspath(__file__), *sys.argv[1:]])
    measure()


if __name__ == "__main__":
    main()
