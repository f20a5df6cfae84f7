/* topk: a selector sampler (sdk/ABI.md §6.2): for each row it keeps the
 * top_k candidates, applies the temperature with a softmax and draws with
 * the row's first uniform, all through the host's primitives; temperature
 * 0 picks the most likely candidate. The request's sampling parameters
 * "temperature" and "top_k" (smp_open's JSON, sdk/ABI.md §6.2:
 * {"sampling": {...}, "params": {...}, "vocab_size": N}) override the
 * configured defaults; unset ones keep them.
 *
 * Config (manifest.json's schema): {"temperature": 0.8, "top_k": 40}.
 *
 * Build and check it with
 *   ulan plugin build sdk/examples/c/sampler && ulan plugin test sdk/examples/c/sampler/sampler.wasm */
#define ULAN_PLUGIN_MAIN
#include "../../../c/ulan_plugin.h"

#define MAX_K 4096 /* the host's bound on top_k and on candidates per row */

typedef struct {
  int open;
  float temperature;
  int32_t top_k;
} sequence;

static float default_temperature = 1;
static int32_t default_top_k = 40;
static sequence *seqs;
static uint32_t nseqs;

/* Scratch for one row: the kept candidates' indices, logits and
 * probabilities. */
static int32_t top[MAX_K];
static float top_logits[MAX_K], probs[MAX_K];

/* params reads "temperature" and "top_k" from a JSON object, keeping the
 * current values where they are absent. */
static int32_t params(const char *json, uint32_t len, float *temperature, int32_t *top_k) {
  const char *v;
  uint32_t n;
  double d;
  if (ulan_json_find(json, len, "temperature", &v, &n)) {
    if (!ulan_json_number(v, n, &d) || !(d >= 0 && d <= 100))
      return ulan_error(ULAN_INVALID_ARGUMENT, "temperature: a number from 0 to 100");
    *temperature = (float)d;
  }
  if (ulan_json_find(json, len, "top_k", &v, &n)) {
    if (!ulan_json_number(v, n, &d) || !(d >= 0 && d <= MAX_K) || d != (int32_t)d)
      return ulan_error(ULAN_INVALID_ARGUMENT, "top_k: an integer from 0 (all) to 4096");
    *top_k = (int32_t)d;
  }
  return ULAN_OK;
}

int32_t ulan_plugin_init(const char *config, uint32_t len) {
  return params(config, len, &default_temperature, &default_top_k);
}

ULAN_EXPORT(smp_open) int64_t smp_open(const char *json, uint32_t len) {
  sequence q = {1, default_temperature, default_top_k};
  const char *sampling;
  uint32_t n;
  if (ulan_json_find(json, len, "sampling", &sampling, &n)) {
    int32_t status = params(sampling, n, &q.temperature, &q.top_k);
    if (status != ULAN_OK) return -(int64_t)status;
  }
  uint32_t i = 0;
  while (i < nseqs && seqs[i].open) i++;
  if (i == nseqs) {
    sequence *s = (sequence *)realloc(seqs, (nseqs + 1) * sizeof *s);
    if (!s) return -(int64_t)ulan_error(ULAN_INTERNAL, "out of memory");
    seqs = s;
    nseqs++;
  }
  seqs[i] = q;
  return (int64_t)i + 1;
}

ULAN_EXPORT(smp_close) void smp_close(int64_t h) {
  if (h >= 1 && h <= (int64_t)nseqs) seqs[h - 1].open = 0;
}

ULAN_EXPORT(smp_step) int32_t smp_step(void *arena, uint32_t len) {
  ulan_step s;
  if (ulan_step_view(arena, len, &s) != ULAN_OK) return ulan_error(ULAN_INVALID_ARGUMENT, "malformed step arena");
  for (int32_t i = 0; i < s.rows; i++) {
    ulan_step_row *row = &s.row[i];
    int64_t h = row->handle;
    if (h < 1 || h > (int64_t)nseqs || !seqs[h - 1].open) return ulan_error(ULAN_NOT_FOUND, "unknown sequence");
    const sequence *q = &seqs[h - 1];
    if (row->n == 0) continue; /* nothing to choose from: the host decides */
    uint32_t k = (uint32_t)row->n;
    if (q->top_k > 0 && (uint32_t)q->top_k < k) k = (uint32_t)q->top_k;
    int32_t m = ulan_top_k(ulan_step_logits(&s, i), (uint32_t)row->n, k, top, top_logits);
    if (m <= 0) return ulan_error(ULAN_INTERNAL, "top_k failed");
    int32_t pick = 0; /* temperature 0: the most likely */
    if (q->temperature > 0) {
      if (ulan_softmax(top_logits, (uint32_t)m, q->temperature, probs) != 0)
        return ulan_error(ULAN_INVALID_ARGUMENT, "softmax failed: every candidate is banned");
      pick = ulan_draw(probs, (uint32_t)m, row->u0);
      if (pick < 0) return ulan_error(ULAN_INTERNAL, "draw failed");
    }
    row->out_token = ulan_step_ids(&s, i)[top[pick]];
  }
  return ULAN_OK;
}
