#!/usr/bin/env bash
# The published API description, checked by a standard validator: openapi-spec-validator (OpenAPI 3.1 and its JSON
# Schema dialect) from its PyPI package, every wheel pinned by version and SHA-256 (scripts/openapi-validator.txt),
# installed into a venv under target/.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="target/test-services/openapi-spec-validator-0.9.0"
if [ ! -x "$venv/bin/openapi-spec-validator" ]; then
  python3 -m venv "$venv" >/dev/null
  "$venv/bin/pip" install -q --require-hashes --only-binary=:all: -r scripts/openapi-validator.txt
fi
cargo run -q --locked -p gradphoto -- openapi > target/openapi.json
"$venv/bin/openapi-spec-validator" target/openapi.json
