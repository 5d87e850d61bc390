#!/usr/bin/env python3
"""Compares our registered-file encoding with HivisionIDPhotos' way of meeting a size limit, on the same pixels.

Run:

    cargo run --release -p gradphoto-eval --example quality_compare && python3 tools/compare_quality.py

The example writes target/quality-compare/: for each shared portrait the lossless Lanczos3 reference rendering
(`<stem>-reference.png`, the 480 × 640 crop `normalise::fix` takes of a 3000 × 4000 studio original), ours
(`<stem>-ours.jpg`: `normalise::encode_within_budget`, IJG tables at a fractional quality, optimised Huffman, 4:2:0, the highest quality from 60 whose
file fits 40 960 bytes, found by binary search) and index.json. The script makes its own virtual environment under
/tmp and installs pillow, numpy and scikit-image into it with pip.

HivisionIDPhotos' way (hivision/utils.py, resize_image_to_kb): Pillow `save(format="JPEG", quality=q, dpi=(300, 300))`
with q = 95, 90, 85, ... until the file is at most the limit; Pillow's defaults otherwise (no optimize flag, so the
standard Huffman tables; 4:2:0 subsampling). Hivision then pads a smaller file with zero bytes up to the limit; the
padding changes no pixel, so the bytes reported here are before padding.

Both files are decoded with Pillow and compared with the reference PNG. The deciding measure is SSIM on the luminance
(BT.601 Y computed in floating point from the decoded RGB, skimage.metrics.structural_similarity with its defaults:
7 × 7 uniform window, data_range 255). SSIM over the three RGB channels (channel_axis=2) and PSNR over RGB are printed
beside it for the record. The winner is the higher luminance SSIM; equal values are a tie.
"""

import json
import os
import subprocess
import sys

VENV = "/tmp/gradphoto-quality-venv"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "target", "quality-compare")


def ensure_venv():
    python = os.path.join(VENV, "bin", "python")
    if not os.path.exists(python):
        subprocess.check_call([sys.executable, "-m", "venv", VENV])
    probe = subprocess.run([python, "-c", "import PIL, numpy, skimage"], capture_output=True)
    if probe.returncode != 0:
        subprocess.check_call([python, "-m", "pip", "install", "-q", "pillow", "numpy", "scikit-image"])
    return python


def hivision_way(img, limit):
    """HivisionIDPhotos' resize_image_to_kb without the zero padding: (quality, bytes)."""
    import io

    quality = 95
    while True:
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=quality, dpi=(300, 300))
        data = buf.getvalue()
        if len(data) <= limit or quality == 1:
            return quality, data
        quality = max(1, quality - 5)


def compare():
    # Runs inside the venv.
    import io

    import numpy as np
    import PIL
    import skimage
    from PIL import Image
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    index = json.load(open(os.path.join(OUT, "index.json")))
    limit = index["max_bytes"]

    def rgb(data_or_path):
        src = io.BytesIO(data_or_path) if isinstance(data_or_path, bytes) else data_or_path
        with Image.open(src) as im:
            return np.asarray(im.convert("RGB"), dtype=np.float64)

    def luma(a):
        return 0.299 * a[..., 0] + 0.587 * a[..., 1] + 0.114 * a[..., 2]

    def scores(ref, img):
        return {
            "ssim_y": structural_similarity(luma(ref), luma(img), data_range=255.0),
            "ssim_rgb": structural_similarity(ref, img, data_range=255.0, channel_axis=2),
            "psnr": peak_signal_noise_ratio(ref, img, data_range=255.0),
        }

    rows = []
    for p in index["photos"]:
        ref_path = os.path.join(OUT, p["reference"])
        ref = rgb(ref_path)
        ours_data = open(os.path.join(OUT, p["ours"]), "rb").read()
        with Image.open(ref_path) as im:
            hq, hdata = hivision_way(im.convert("RGB"), limit)
        stem = p["reference"].removesuffix("-reference.png")
        with open(os.path.join(OUT, f"{stem}-hivision.jpg"), "wb") as f:
            f.write(hdata)
        ours = {"quality": p["quality"], "bytes": len(ours_data), **scores(ref, rgb(ours_data))}
        theirs = {"quality": hq, "bytes": len(hdata), **scores(ref, rgb(hdata))}
        rows.append({"photo": p["photo"], "ours": ours, "hivision": theirs})
    versions = {"pillow": PIL.__version__, "numpy": np.__version__, "scikit-image": skimage.__version__}
    print(json.dumps({"limit": limit, "versions": versions, "rows": rows}))


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--inside":
        compare()
        return
    if not os.path.exists(os.path.join(OUT, "index.json")):
        sys.exit(f"{OUT}/index.json is missing: run `cargo run --release -p gradphoto-eval --example quality_compare`")
    python = ensure_venv()
    res = subprocess.run([python, os.path.abspath(__file__), "--inside"], capture_output=True, text=True)
    if res.returncode != 0:
        sys.exit(res.stderr)
    result = json.loads(res.stdout.strip().splitlines()[-1])
    rows = result["rows"]
    v = result["versions"]
    print(
        f"Limit {result['limit']} bytes; 480 × 640 renderings of 3000 × 4000 studio originals. SSIM on luminance "
        f"(BT.601 Y), skimage defaults; SSIM RGB (channel_axis=2) and PSNR RGB for the record. "
        f"Pillow {v['pillow']}, numpy {v['numpy']}, scikit-image {v['scikit-image']}."
    )
    print()
    print(
        "| photo | ours q | ours bytes | ours SSIM Y | ours SSIM RGB | ours PSNR dB "
        "| Hivision q | Hivision bytes | Hivision SSIM Y | Hivision SSIM RGB | Hivision PSNR dB | winner |"
    )
    print("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|")
    wins = 0
    for r in rows:
        o, h = r["ours"], r["hivision"]
        if o["ssim_y"] > h["ssim_y"]:
            winner, wins = "ours", wins + 1
        elif o["ssim_y"] < h["ssim_y"]:
            winner = "Hivision way"
        else:
            winner = "tie"
        print(
            f"| {r['photo']} | {o['quality']:.2f} | {o['bytes']} | {o['ssim_y']:.4f} | {o['ssim_rgb']:.4f} | {o['psnr']:.2f} "
            f"| {h['quality']} | {h['bytes']} | {h['ssim_y']:.4f} | {h['ssim_rgb']:.4f} | {h['psnr']:.2f} | {winner} |"
        )
    share = wins / len(rows) if rows else 0.0
    print()
    print(f"Ours has the higher luminance SSIM on {wins} of {len(rows)} photos ({share:.0%}); bar 90%.")


if __name__ == "__main__":
    main()
