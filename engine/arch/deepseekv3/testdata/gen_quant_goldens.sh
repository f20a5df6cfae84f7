#!/bin/sh
# Regenerates the k-quant test data in this folder. Run from anywhere:
#   sh engine/arch/deepseekv3/testdata/gen_quant_goldens.sh
#
# It writes the seeded tiny-quant model in f32 (`ulan model testgen --preset
# tiny-quant --type f32 --seed 1`; its sha256 goes to models.sha256), has llama.cpp's
# own quantizer (`llama-quantize`, no importance matrix) make the Q4_K_M, Q5_K_M and
# Q6_K mixes of it, and records llama.cpp's logits on the f32 file
# (tiny-quant-f32.golden.json) and, for each mix:
#   - NAME.tensors.json: every tensor's ggml type and the sha256 of its bytes
#     (testdata/tensorsums), which the Go test requires its own quantizers to
#     reproduce, so that no 50 MB file has to be committed;
#   - NAME.golden.json: llama.cpp's logits on that file, as gen_goldens.sh records
#     them (top-10 at every prompt position and 32 greedy steps; f32 KV cache, flash
#     attention off, 2 threads; llamaref/ref.mjs on the npm @fugood/llama.node build).
#
# llama-quantize comes from the native llama.cpp tree that
# ../../../../../shared/tools/llamaref/build-native-llama.sh checks out (node-llama-cpp
# 3.22.1's bundle: ggml-org/llama.cpp v0.5.0, commit de3ff81); set LLAMA_CPP to another
# tree if needed. It is built here if missing (cmake, a C++ compiler).
set -e
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../../../.." && pwd)
LLAMA_CPP=${LLAMA_CPP:-$HOME/.cache/ulan-ref/nlc/llama.cpp}
QUANTIZE="$LLAMA_CPP/build/bin/llama-quantize"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

[ -x "$QUANTIZE" ] || cmake --build "$LLAMA_CPP/build" --target llama-quantize -j"$(nproc)" >&2
sh "$HERE/llamaref/setup.sh" >&2
PROMPT=$(cat "$HERE/prompt.txt")
src=tiny-quant-f32.gguf
(cd "$ROOT" && go run ./cmd/ulan model testgen --preset tiny-quant --type f32 --seed 1 --out "$TMP/$src")
grep -v " $src\$" "$HERE/models.sha256" > "$TMP/sums" || true
(cd "$TMP" && sha256sum "$src") >> "$TMP/sums"
cp "$TMP/sums" "$HERE/models.sha256"
node "$HERE/llamaref/ref.mjs" logits --model "$TMP/$src" --tokens "$PROMPT" \
  --n-gen 32 --top-k 10 --all-positions > "$HERE/tiny-quant-f32.golden.json"
for mix in Q4_K_M Q5_K_M Q6_K; do
  name=tiny-quant-$(echo "$mix" | tr 'A-Z' 'a-z')
  "$QUANTIZE" "$TMP/$src" "$TMP/$name.gguf" "$mix" 2 >&2
  (cd "$ROOT" && go run ./engine/arch/deepseekv3/testdata/tensorsums "$TMP/$name.gguf") > "$HERE/$name.tensors.json"
  node "$HERE/llamaref/ref.mjs" logits --model "$TMP/$name.gguf" --tokens "$PROMPT" \
    --n-gen 32 --top-k 10 --all-positions > "$HERE/$name.golden.json"
  echo "wrote $name.tensors.json and $name.golden.json" >&2
done
