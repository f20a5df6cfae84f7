#!/bin/sh
# Regenerates the llama.cpp goldens in this folder. Run from anywhere:
#   sh engine/arch/deepseekv3/testdata/gen_goldens.sh
#
# For each model below it writes the seeded test model with `ulan model testgen`,
# records the file's sha256 (models.sha256; the Go tests check the generator still
# writes the same bytes), and asks llama.cpp for the top-10 logits at every prompt
# position and for 32 greedy steps, with f32 weights, f32 KV cache, flash attention
# off and 2 threads (llamaref/ref.mjs; llama.cpp build 22dc605c4 inside the npm
# package @fugood/llama.node 1.7.15, installed by llamaref/setup.sh).
#
# prompt.txt holds 64 token ids drawn with Python's random.Random(7).randrange(3, 128000).
set -e
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../../../.." && pwd)
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

sh "$HERE/llamaref/setup.sh" >&2
PROMPT=$(cat "$HERE/prompt.txt")
: > "$HERE/models.sha256"
for spec in "tiny-v3 f32" "tiny-v2 f32" "tiny-v3 q8_0" "tiny-v3 f16" "tiny-v3 bf16"; do
  set -- $spec
  name="$1-$2"
  (cd "$ROOT" && go run ./cmd/ulan model testgen --preset "$1" --type "$2" --seed 1 --out "$TMP/$name.gguf")
  (cd "$TMP" && sha256sum "$name.gguf") >> "$HERE/models.sha256"
  node "$HERE/llamaref/ref.mjs" logits --model "$TMP/$name.gguf" --tokens "$PROMPT" \
    --n-gen 32 --top-k 10 --all-positions > "$HERE/$name.golden.json"
  echo "wrote $name.golden.json" >&2
done
