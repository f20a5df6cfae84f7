#!/bin/sh
# Rebuilds the test modules from their WAT sources with wabt's wat2wasm
# (Debian package wabt 1.0.32), names included. CI runs this and fails if the
# .wasm differ.
set -e
cd "$(dirname "$0")"
for f in *.wat; do
  wat2wasm --debug-names "$f" -o "${f%.wat}.wasm"
done
