#!/bin/sh
# Regenerates the llama.cpp goldens in this folder. Run from anywhere:
#   sh engine/arch/deepseekv4/testdata/gen_goldens.sh
#
# For each model below it writes the seeded test model with `ulan model testgen
# --preset tiny-v4 --type T --seed 1`, records the file's sha256 (models.sha256; the
# Go tests check the generator still writes the same bytes), and asks llama.cpp for
# the top-10 logits at every position of the 360-token prompt and for 32 greedy
# steps, with f32 KV cache, flash attention off and 2 threads (the harness of
# ../../deepseekv3/testdata/llamaref, unchanged: llama.cpp build 22dc605c4 inside the
# npm package @fugood/llama.node 1.7.15, installed by its setup.sh).
#
# A second run of the same prompt dumps llama.cpp's intermediate tensors, and
# goldens.mjs fails the script unless they prove that every CSA layer compressed
# (csa_state_compress, lid_state_compress) and selected with the indexer (lid_top_k)
# and every HCA layer compressed (hca_state_compress, also at position 383 during
# the greedy steps) — llama.cpp silently falls back to window-only attention when a
# compressor tensor is missing — and that the dumped run's logits are the golden's.
# The summary of that dump is tiny-v4-f32.tensors.json (see README.md), the figures
# the check measured NAME.figures.json.
#
# LLAMAREF_UPSTREAM=DIR uses a native llama.cpp build in DIR instead (ref.mjs
# --upstream; see shared/tools/llamaref/build-native-llama.sh).
#
# prompt.txt holds 360 token ids drawn with Python's random.Random(7).randrange(3, 128000)
# (its first 64 are deepseekv3's prompt).
set -e
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../../../.." && pwd)
REF="$ROOT/engine/arch/deepseekv3/testdata/llamaref"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

sh "$REF/setup.sh" >&2
UP=""
if [ -n "$LLAMAREF_UPSTREAM" ]; then UP="--upstream $LLAMAREF_UPSTREAM"; fi
PROMPT=$(cat "$HERE/prompt.txt")
DUMP='hc_pre-*,hc_comb-*,hc_post-*,hc_attn_pre-*,attn_norm-*,qr_norm-*,q-*,kv-*,csa_state_compress-*,lid_state_compress-*,hca_state_compress-*,hca_comp_k-*,lid_score_masked-*,lid_top_k-*,attn_raw-*,attn_csa_lid-*,attn_hca-*,attn_derope-*,attn_out-*,hc_attn_post-*,hc_ffn_pre-*,ffn_norm-*,ffn_moe_probs-*,ffn_moe_topk-*,ffn_moe_weights_scaled-*,ffn_moe_out-*,ffn_shexp-*,ffn_out-*,l_last-*,hc_head,result_norm'
: > "$HERE/models.sha256"
for typ in f32 q8_0; do
  name="tiny-v4-$typ"
  (cd "$ROOT" && go run ./cmd/ulan model testgen --preset tiny-v4 --type "$typ" --seed 1 --out "$TMP/$name.gguf")
  (cd "$TMP" && sha256sum "$name.gguf") >> "$HERE/models.sha256"
  # shellcheck disable=SC2086
  node "$REF/ref.mjs" logits --model "$TMP/$name.gguf" --tokens "$PROMPT" $UP \
    --n-gen 32 --top-k 10 --all-positions > "$TMP/$name.run.json"
  node "$HERE/goldens.mjs" golden "$TMP/$name.run.json" "$HERE/$name.golden.json"
  # shellcheck disable=SC2086
  node "$REF/ref.mjs" logits --model "$TMP/$name.gguf" --tokens "$PROMPT" $UP \
    --n-gen 32 --top-k 10 --all-positions --dump "$DUMP" --dump-out "$TMP/$name.dump.json" > "$TMP/$name.dumprun.json"
  node "$REF/ref.mjs" info --model "$TMP/$name.gguf" > "$TMP/$name.info.json"
  # The tensor summary is kept for the f32 model only (the one to debug against).
  tensors="$TMP/$name.tensors.json"
  if [ "$typ" = f32 ]; then tensors="$HERE/$name.tensors.json"; fi
  node "$HERE/goldens.mjs" check --info "$TMP/$name.info.json" --dump "$TMP/$name.dump.json" \
    --run "$TMP/$name.dumprun.json" --golden "$TMP/$name.run.json" \
    --out "$tensors" > "$HERE/$name.figures.json"
  echo "wrote $name.golden.json and $name.figures.json" >&2
done
