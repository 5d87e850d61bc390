#!/usr/bin/env python3
"""Times Python MediaPipe 0.10.14 on the photos our face benchmark wrote, and prints our time over its time.

Run `cargo bench -p gradphoto-core --bench face_check` first (it writes target/bench-faces/: the photos and
rust.json with our medians), then `python3 tools/compare_mediapipe.py`. The script makes its own virtual environment
under /tmp and installs mediapipe==0.10.14 into it with pip.

What MediaPipe runs per photo, on one thread: decode (OpenCV), FaceMesh in static-image mode (which runs its own
face detector, so the detector is counted once), and SelfieSegmentation — the same three models we run. Our time
also covers the file rules and the person measures, so the comparison leans in MediaPipe's favour.

`--venv` prints the virtual environment's python (making it first); `--folder DIR`, run with that python, goes once
through the .jpg files of DIR in name order as above and prints {"files": N, "loop_ms": T}, T being the loop alone
(imports and model loading not counted). `cargo bench -p gradphoto --bench folder` uses both (issue 13 item 4).
"""

import json
import os
import statistics
import subprocess
import sys
import time

VENV = "/tmp/gradphoto-mediapipe-venv"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "target", "bench-faces")


def ensure_venv():
    python = os.path.join(VENV, "bin", "python")
    if not os.path.exists(python):
        subprocess.check_call([sys.executable, "-m", "venv", VENV])
    probe = subprocess.run([python, "-c", "import mediapipe, cv2"], capture_output=True)
    if probe.returncode != 0:
        subprocess.check_call([python, "-m", "pip", "install", "-q", "mediapipe==0.10.14"])
    return python


def measure():
    # Runs inside the venv: one thread, models loaded once, median per photo size.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import cv2
    import mediapipe as mp

    cv2.setNumThreads(1)
    mesh = mp.solutions.face_mesh.FaceMesh(static_image_mode=True, max_num_faces=2, refine_landmarks=False)
    seg = mp.solutions.selfie_segmentation.SelfieSegmentation(model_selection=0)
    out = {}
    for size in ["480x640", "3000x4000"]:
        files = sorted(f for f in os.listdir(BENCH) if f.endswith(f"-{size}.jpg"))
        times = []
        for _ in range(5):
            for f in files:
                t = time.perf_counter()
                img = cv2.imread(os.path.join(BENCH, f))
                rgb = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
                mesh.process(rgb)
                seg.process(rgb)
                times.append(time.perf_counter() - t)
        out[size] = statistics.median(times) * 1e3
    print(json.dumps(out))


def folder(path):
    # Runs inside the venv: one pass over the folder, one thread, models loaded before the clock starts.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import cv2
    import mediapipe as mp

    cv2.setNumThreads(1)
    mesh = mp.solutions.face_mesh.FaceMesh(static_image_mode=True, max_num_faces=2, refine_landmarks=False)
    seg = mp.solutions.selfie_segmentation.SelfieSegmentation(model_selection=0)
    files = sorted(f for f in os.listdir(path) if f.lower().endswith((".jpg", ".jpeg")))
    t = time.perf_counter()
    for f in files:
        img = cv2.imread(os.path.join(path, f))
        rgb = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
        mesh.process(rgb)
        seg.process(rgb)
    print(json.dumps({"files": len(files), "loop_ms": (time.perf_counter() - t) * 1e3}))


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--inside":
        measure()
        return
    if len(sys.argv) > 1 and sys.argv[1] == "--venv":
        print(ensure_venv())
        return
    if len(sys.argv) > 2 and sys.argv[1] == "--folder":
        folder(sys.argv[2])
        return
    rust = json.load(open(os.path.join(BENCH, "rust.json")))
    python = ensure_venv()
    res = subprocess.run(
        [python, os.path.abspath(__file__), "--inside"], capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}
    )
    if res.returncode != 0:
        sys.exit(res.stderr)
    mp_times = json.loads(res.stdout.strip().splitlines()[-1])
    for size, ours_key in [("480x640", "small_ms"), ("3000x4000", "large_ms")]:
        ours, theirs = rust[ours_key], mp_times[size]
        print(f"{size}: gradphoto {ours:.2f} ms, MediaPipe 0.10.14 {theirs:.2f} ms, ours / theirs = {ours / theirs:.2f}")


if __name__ == "__main__":
    main()
