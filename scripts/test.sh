#!/usr/bin/env bash
# The whole test suite: set up, start the servers the tests meet, then every test of the workspace. Needs
# ../shared beside the checkout.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ ! -d ../shared/testdata ] && [ -z "${GRADPHOTO_SHARED:-}" ]; then
  echo "gradphoto: the tests read ../shared/testdata (or GRADPHOTO_SHARED); it is missing" >&2
  exit 1
fi
# PostgreSQL and Chromium for the service's tests (installed when missing, the server started and stopped here).
source scripts/test-services.sh
cargo test --workspace --locked
