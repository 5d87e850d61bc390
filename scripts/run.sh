#!/usr/bin/env bash
# The main job: set up, build optimised, run gradphoto with the given arguments.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo build --release --locked -q -p gradphoto
exec ./target/release/gradphoto "$@"
