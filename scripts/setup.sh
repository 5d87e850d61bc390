#!/usr/bin/env bash
# Installs what the build needs beyond Rust: nasm, so that libjpeg-turbo (inside mozjpeg-sys) gets its SIMD code.
# Without nasm the build still works but silently decodes and encodes two to three times slower.
set -euo pipefail
if ! command -v nasm >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nasm >/dev/null
  else
    echo "gradphoto: please install nasm (Debian: apt-get install nasm); building without SIMD" >&2
  fi
fi
# The face models are fetched with pip on first use (pinned by version and SHA-256).
if ! python3 -m pip --version >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-pip >/dev/null
  else
    echo "gradphoto: please install pip for python3: the face models are fetched with it" >&2
  fi
fi
