#!/bin/sh
# Rebuilds the test modules from their WAT sources with wabt's wat2wasm
# (Debian package wabt 1.0.32), as host/plugin/testdata/build.sh does. The
# tests read the committed .wasm files; CI checks they are fresh.
set -e
cd "$(dirname "$0")"
for f in *.wat; do
  wat2wasm "$f" -o "${f%.wat}.wasm"
done
