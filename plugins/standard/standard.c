/* standard is ulan's standard sampler plugin, in processor mode:
 * llama.cpp's chain of top_k, typical_p, top_p, min_p and temperature over
 * the request's sampling parameters. It is a C port of the Go package
 * sdk/go/sampler/standard, which the host runs natively as the fallback
 * when a sampler plugin fails: for every row the two write the same bits
 * (host/plugin's TestStandardPluginMatchesNative compares them over random
 * rows, parameters, orders and widenings), so a seed gives the same tokens
 * either way. It is C rather than that package built for WebAssembly
 * because a Go guest pays its runtime on every call: in serving, a step of
 * 8 rows took 32–46 µs in Go and takes 13–15 µs here, and the module is
 * 137 KB instead of 3.4 MB (RATIONALE.md, "Why is the standard sampler
 * plugin written in C?").
 *
 * smp_open's JSON (sdk/ABI.md §6.2) carries the request's parameters; the
 * plugin's per-request params may set the order of the stages:
 *
 *   {"sampling": {"temperature": 0.7, "top_p": 0.9}, "params": {"order": ["top_p", "temperature"]}, "vocab_size": 129280}
 *
 * A row whose candidates are too few for the parameters (top_p near 1 on a
 * flat distribution) is answered with a request to widen it (out_token
 * −2); parameters that keep every token (temperature only) are answered
 * with a keep-all temperature (out_token −3), which the host applies over
 * the whole row. The plugin reads the row's log-sum-exp only for top_p over
 * the whole row (manifest: "lse": "on_demand"). It takes no configuration.
 *
 * Exp and Log are samplemath's (sdk/go/sampler/samplemath/explog.go),
 * operation for operation: only +, −, ×, ÷, conversions, frexp and ldexp,
 * each rounded once, so they give the same bits here as natively.
 *
 * Build it (the module is committed, and CI checks it is fresh) with
 *
 *   go run ./cmd/ulan plugin build plugins/standard */
#pragma STDC FP_CONTRACT OFF
#define ULAN_PLUGIN_MAIN
#include "../../sdk/c/ulan_plugin.h"

#include <math.h>

/* ---- samplemath's Exp and Log ---- */

static const double ln2Hi = 6.93147180369123816490e-01; /* 0x3fe62e42fee00000 */
static const double ln2Lo = 1.90821492927058770002e-10; /* ln 2 − ln2Hi */
static const double log2e = 1.44269504088896338700e+00;
static const double expOverflow = 7.09782712893383973096e+02;
static const double expUnderflow = -7.45133219101941108420e+02;

static const uint64_t exp2Table[32] = {
    0x3ff0000000000000, 0x3ff059b0d3158574, 0x3ff0b5586cf9890f, 0x3ff11301d0125b51,
    0x3ff172b83c7d517b, 0x3ff1d4873168b9aa, 0x3ff2387a6e756238, 0x3ff29e9df51fdee1,
    0x3ff306fe0a31b715, 0x3ff371a7373aa9cb, 0x3ff3dea64c123422, 0x3ff44e086061892d,
    0x3ff4bfdad5362a27, 0x3ff5342b569d4f82, 0x3ff5ab07dd485429, 0x3ff6247eb03a5585,
    0x3ff6a09e667f3bcd, 0x3ff71f75e8ec5f74, 0x3ff7a11473eb0187, 0x3ff82589994cce13,
    0x3ff8ace5422aa0db, 0x3ff93737b0cdc5e5, 0x3ff9c49182a3f090, 0x3ffa5503b23e255d,
    0x3ffae89f995ad3ad, 0x3ffb7f76f2fb5e47, 0x3ffc199bdd85529c, 0x3ffcb720dcef9069,
    0x3ffd5818dcfba487, 0x3ffdfc97337b9b5f, 0x3ffea4afa2a490da, 0x3fff50765b6e4540,
};

static double bits_double(uint64_t b) {
  double d;
  memcpy(&d, &b, sizeof d);
  return d;
}

static double samplemath_exp(double x) {
  if (x != x) return x;
  if (x > expOverflow) return INFINITY;
  if (x < expUnderflow) return 0;
  if (x == 0) return 1;
  double kf = x * (32 * log2e);
  kf += kf < 0 ? -0.5 : 0.5;
  int k = (int)kf;
  double fk = (double)k;
  double r = (x - fk * (ln2Hi / 32)) - fk * (ln2Lo / 32);
  double p = (1.0 / 720) * r + (1.0 / 120);
  p = p * r + (1.0 / 24);
  p = p * r + (1.0 / 6);
  p = p * r + (1.0 / 2);
  double em1 = r + (r * r) * p;
  double t = bits_double(exp2Table[k & 31]);
  double y = t + t * em1;
  int m = k >> 5;
  if (m > -1000 && m < 1000) return y * bits_double((uint64_t)(m + 1023) << 52);
  return ldexp(y, m);
}

static const double logSeries[10] = {
    1.0 / 21, 1.0 / 19, 1.0 / 17, 1.0 / 15, 1.0 / 13, 1.0 / 11, 1.0 / 9, 1.0 / 7, 1.0 / 5, 1.0 / 3,
};

static double samplemath_log(double x) {
  if (x != x || x < 0) return NAN;
  if (x == 0) return -INFINITY;
  if (x == INFINITY) return x;
  if (x == 1) return 0;
  int e;
  double m = frexp(x, &e);
  if (m < 0x1.6a09e667f3bcdp-1) { /* √2/2 */
    m *= 2;
    e--;
  }
  double s = (m - 1) / (m + 1);
  double z = s * s;
  double q = logSeries[0] * z + logSeries[1];
  for (int i = 2; i < 10; i++) q = q * z + logSeries[i];
  double s2 = 2 * s;
  double tail = s2 * (z * q);
  double fe = (double)e;
  return fe * ln2Hi + (s2 + (tail + fe * ln2Lo));
}

/* ---- The policy ---- */

enum { TOP_K, TYPICAL_P, TOP_P, MIN_P, TEMPERATURE, STAGES };
static const char *stage_names[STAGES] = {"top_k", "typical_p", "top_p", "min_p", "temperature"};

typedef struct {
  int open;
  int vocab;
  int nstages;
  int order[STAGES]; /* the stages that do something, in order */
  float temperature, top_p, min_p, typical_p;
  int32_t top_k;
} policy;

static policy *seqs;
static uint32_t nseqs;

/* Scratch for one row, grown to the longest row so far. */
static int32_t *live, *ident, *byshift;
static double *exps, *shifted;
static uint32_t scratch_cap;

static int grow(uint32_t n) {
  if (n <= scratch_cap) return 1;
  uint32_t cap = scratch_cap ? scratch_cap : 64;
  while (cap < n) cap *= 2;
  int32_t *l = realloc(live, cap * sizeof *l), *id = realloc(ident, cap * sizeof *id),
          *b = realloc(byshift, cap * sizeof *b);
  double *e = realloc(exps, cap * sizeof *e), *s = realloc(shifted, cap * sizeof *s);
  if (l) live = l;
  if (id) ident = id;
  if (b) byshift = b;
  if (e) exps = e;
  if (s) shifted = s;
  if (!l || !id || !b || !e || !s) return 0;
  for (uint32_t i = scratch_cap; i < cap; i++) ident[i] = (int32_t)i;
  scratch_cap = cap;
  return 1;
}

/* read_float reads a JSON number as a float32, correctly rounded from the
 * decimal (as Go's encoding/json does); null counts as absent (0 is
 * returned, *out untouched); anything else is an error (−1). */
static int read_float(const char *obj, uint32_t len, const char *key, float *out) {
  const char *v;
  uint32_t n;
  if (!ulan_json_find(obj, len, key, &v, &n) || (n == 4 && memcmp(v, "null", 4) == 0)) return 0;
  char tmp[64], *end;
  if (n == 0 || n >= sizeof tmp || v[0] == '"') return -1;
  memcpy(tmp, v, n);
  tmp[n] = 0;
  float f = strtof(tmp, &end);
  if (end != tmp + n) return -1;
  *out = f;
  return 1;
}

static int32_t fail(const char *msg) { return ulan_error(ULAN_INVALID_ARGUMENT, msg); }

/* parse is standard.Parse: the parameters, checked, and the stages that do
 * something. */
static int32_t parse(const char *json, uint32_t len, policy *p) {
  *p = (policy){.open = 1, .temperature = 1, .top_p = 1, .typical_p = 1};
  const char *end = json + len, *first = ulan_json_ws_(json, end), *after = ulan_json_skip_(json, end);
  if (first == end || *first != '{' || !after || ulan_json_ws_(after, end) != end)
    return fail("standard: smp_open: not a JSON object");
  const char *sampling, *params, *v;
  uint32_t slen, plen, n;
  double d;
  if (ulan_json_find(json, len, "sampling", &sampling, &slen) && !(slen == 4 && memcmp(sampling, "null", 4) == 0)) {
    if (read_float(sampling, slen, "temperature", &p->temperature) < 0) return fail("standard: sampling.temperature: not a number");
    if (read_float(sampling, slen, "top_p", &p->top_p) < 0) return fail("standard: sampling.top_p: not a number");
    if (read_float(sampling, slen, "min_p", &p->min_p) < 0) return fail("standard: sampling.min_p: not a number");
    if (read_float(sampling, slen, "typical_p", &p->typical_p) < 0) return fail("standard: sampling.typical_p: not a number");
    if (ulan_json_find(sampling, slen, "top_k", &v, &n) && !(n == 4 && memcmp(v, "null", 4) == 0)) {
      if (!ulan_json_number(v, n, &d) || d != (double)(int32_t)d) return fail("standard: sampling.top_k: not an int32");
      p->top_k = (int32_t)d;
    }
  }
  if (ulan_json_find(json, len, "vocab_size", &v, &n) && !(n == 4 && memcmp(v, "null", 4) == 0)) {
    if (!ulan_json_number(v, n, &d) || d != (double)(int32_t)d || d < 0) return fail("standard: smp_open: vocab_size: want an integer ≥ 0");
    p->vocab = (int)d;
  }
  float t = p->temperature;
  if (!(t >= 0) || t == INFINITY) return fail("standard: sampling.temperature: want a finite number ≥ 0");
  if (p->top_k < 0) return fail("standard: sampling.top_k: want ≥ 0 (0 is off)");
  if (!(p->top_p > 0 && p->top_p <= 1)) return fail("standard: sampling.top_p: want more than 0, at most 1");
  if (!(p->min_p >= 0 && p->min_p <= 1)) return fail("standard: sampling.min_p: want 0 to 1");
  if (!(p->typical_p > 0 && p->typical_p <= 1)) return fail("standard: sampling.typical_p: want more than 0, at most 1");
  int order[STAGES] = {TOP_K, TYPICAL_P, TOP_P, MIN_P, TEMPERATURE}, norder = STAGES;
  if (ulan_json_find(json, len, "params", &params, &plen) && ulan_json_find(params, plen, "order", &v, &n) &&
      !(n == 4 && memcmp(v, "null", 4) == 0)) {
    ulan_json_iter it;
    if (!ulan_json_array(v, n, &it)) return fail("standard: params.order: not an array");
    const char *e;
    uint32_t elen;
    norder = 0;
    while (ulan_json_next(&it, &e, &elen)) {
      char name[16];
      int st = -1;
      if (ulan_json_string(e, elen, name, sizeof name) >= 0)
        for (int s = 0; s < STAGES; s++)
          if (strcmp(name, stage_names[s]) == 0) st = s;
      if (st < 0) return fail("standard: params.order: each is one of top_k, typical_p, top_p, min_p, temperature");
      for (int j = 0; j < norder; j++)
        if (order[j] == st) return fail("standard: params.order: a stage comes twice");
      if (norder == STAGES) return fail("standard: params.order: too many stages");
      order[norder++] = st;
    }
  }
  for (int j = 0; j < norder; j++) {
    int st = order[j];
    int off = (st == TOP_K && p->top_k == 0) || (st == TYPICAL_P && p->typical_p == 1) ||
              (st == TOP_P && p->top_p == 1) || (st == MIN_P && p->min_p == 0) ||
              (st == TEMPERATURE && p->temperature == 1);
    if (!off) p->order[p->nstages++] = st;
  }
  return ULAN_OK;
}

/* keeps_all is Policy.KeepsAll: the temperature, when only temperature
 * stages (none or one, not 0) are on; 0 otherwise. */
static float keeps_all(const policy *p) {
  float t = 1;
  for (int j = 0; j < p->nstages; j++) {
    if (p->order[j] != TEMPERATURE || p->temperature == 0) return 0;
    t = p->temperature;
  }
  return t;
}

/* exp_gather is samplemath.ExpGather: exps[j] = Exp(out[idx[j]] − shift). */
static void exp_gather(const float *out, const int32_t *idx, uint32_t n, double shift) {
  for (uint32_t j = 0; j < n; j++) exps[j] = samplemath_exp((double)out[idx[j]] - shift);
}

/* sum_in_order is the exps' sum, left to right. */
static double sum_in_order(uint32_t n) {
  double s = 0;
  for (uint32_t j = 0; j < n; j++) s += exps[j];
  return s;
}

static const float *sort_key; /* for by_shift */

/* by_shift orders candidate indices by shifted (Go's cmp.Compare: NaN
 * first), ties to the lower index. */
static int by_shift(const void *pa, const void *pb) {
  int32_t a = *(const int32_t *)pa, b = *(const int32_t *)pb;
  double x = shifted[a], y = shifted[b];
  int xn = x != x, yn = y != y;
  if (xn || yn) {
    if (xn && !yn) return -1;
    if (yn && !xn) return 1;
  } else if (x < y) {
    return -1;
  } else if (x > y) {
    return 1;
  }
  return (a > b) - (a < b);
}

static int cmp_i32(const void *pa, const void *pb) {
  int32_t a = *(const int32_t *)pa, b = *(const int32_t *)pb;
  return (a > b) - (a < b);
}

/* typical is Policy.typical over a closed set; it returns the new count of
 * live, whose kept indices it leaves ascending. */
static uint32_t typical(const policy *p, const float *out, uint32_t nlive) {
  double m = (double)out[live[0]];
  exp_gather(out, live, nlive, m);
  double lse = m + samplemath_log(sum_in_order(nlive));
  double h = 0;
  for (uint32_t j = 0; j < nlive; j++) {
    double nl = lse - (double)out[live[j]];
    double pi = samplemath_exp(-nl);
    if (pi > 0) h += pi * nl;
  }
  for (uint32_t j = 0; j < nlive; j++) shifted[live[j]] = fabs(lse - (double)out[live[j]] - h);
  memcpy(byshift, live, nlive * sizeof *live);
  qsort(byshift, nlive, sizeof *byshift, by_shift);
  double mass = 0;
  uint32_t keep = nlive;
  for (uint32_t j = 0; j < nlive; j++) {
    mass += samplemath_exp((double)out[byshift[j]] - lse);
    if (mass > (double)p->typical_p) {
      keep = j + 1;
      break;
    }
  }
  memcpy(live, byshift, keep * sizeof *live);
  qsort(live, keep, sizeof *live, cmp_i32);
  return keep;
}

/* apply is Policy.Apply for row i of the step: 1 to widen, 0 when out is
 * written, −1 on an error (set with ulan_error). */
static int apply(const policy *p, const ulan_step *st, int32_t i) {
  ulan_step_row *row = &st->row[i];
  uint32_t n = (uint32_t)row->n;
  const float *logits = ulan_step_logits(st, i);
  float *out = ulan_step_out(st, i);
  if (n == 0) return 0;
  if (logits[0] != logits[0]) return fail("standard: bad row: candidate 0 is NaN"), -1;
  for (uint32_t j = 0; j + 1 < n; j++)
    if (!(logits[j] >= logits[j + 1])) return fail("standard: bad row: candidates not sorted largest first, or NaN"), -1;
  memcpy(out, logits, n * sizeof *out);
  if (isinf(out[0])) return fail("standard: bad row: the best candidate's logit is infinite"), -1;
  if (!grow(n)) return ulan_error(ULAN_INTERNAL, "standard: out of memory"), -1;
  memcpy(live, ident, n * sizeof *live);
  uint32_t nlive = n;
  int open = p->vocab <= 0 || (int64_t)n < p->vocab;
  int whole = open;
  for (int s = 0; s < p->nstages; s++) {
    switch (p->order[s]) {
    case TOP_K:
      if ((int64_t)nlive >= p->top_k) {
        nlive = (uint32_t)p->top_k;
        open = 0;
      } else if (p->vocab <= 0 || p->top_k < p->vocab) {
        whole = 0;
      }
      break;
    case TOP_P: {
      double total;
      if (open) {
        if (!whole) return 1;
        float lse = row->lse;
        if (lse != lse) lse = ulan_row_lse(i);
        if (lse != lse) return fail("standard: row_lse: the host gave no log-sum-exp for the row"), -1;
        if (!(lse >= logits[0]) || lse == INFINITY) return fail("standard: bad row: log-sum-exp below the best logit"), -1;
        exp_gather(out, live, nlive, (double)lse);
        total = 1;
      } else {
        exp_gather(out, live, nlive, (double)out[live[0]]);
        total = sum_in_order(nlive);
      }
      double target = (double)p->top_p * total, sum = 0;
      for (uint32_t j = 0; j < nlive; j++) {
        if ((sum += exps[j]) >= target) {
          nlive = j + 1;
          open = 0;
          break;
        }
      }
      whole = 0;
      break;
    }
    case MIN_P: {
      double thr = (double)out[live[0]] + samplemath_log((double)p->min_p);
      for (uint32_t j = 0; j < nlive; j++) {
        if ((double)out[live[j]] < thr) {
          nlive = j;
          open = 0;
          break;
        }
      }
      whole = 0;
      break;
    }
    case TYPICAL_P:
      if (open) return 1;
      nlive = typical(p, out, nlive);
      break;
    case TEMPERATURE:
      if (p->temperature == 0) {
        nlive = 1;
        open = 0;
        break;
      }
      for (uint32_t j = 0; j < nlive; j++) out[live[j]] = out[live[j]] / p->temperature;
      whole = 0;
      break;
    }
  }
  if (open) return 1;
  /* Every candidate not live is dropped; live is ascending. */
  uint32_t j = 0;
  for (uint32_t c = 0; c < n; c++) {
    if (j < nlive && live[j] == (int32_t)c) {
      j++;
      continue;
    }
    out[c] = -INFINITY;
  }
  return 0;
}

/* ---- Exports ---- */

int32_t ulan_plugin_init(const char *config, uint32_t len) {
  (void)config;
  (void)len;
  return ULAN_OK;
}

ULAN_EXPORT(smp_open) int64_t smp_open(const char *json, uint32_t len) {
  policy p;
  int32_t status = parse(json, len, &p);
  if (status != ULAN_OK) return -(int64_t)status;
  uint32_t i = 0;
  while (i < nseqs && seqs[i].open) i++;
  if (i == nseqs) {
    policy *s = realloc(seqs, (nseqs + 1) * sizeof *s);
    if (!s) return -(int64_t)ulan_error(ULAN_INTERNAL, "standard: out of memory");
    seqs = s;
    nseqs++;
  }
  seqs[i] = p;
  return (int64_t)i + 1;
}

ULAN_EXPORT(smp_close) void smp_close(int64_t h) {
  if (h >= 1 && h <= (int64_t)nseqs) seqs[h - 1].open = 0;
}

ULAN_EXPORT(smp_step) int32_t smp_step(void *arena, uint32_t len) {
  ulan_step st;
  int32_t status = ulan_step_view(arena, len, &st);
  if (status != ULAN_OK) return ulan_error(status, "standard: malformed step arena");
  for (int32_t i = 0; i < st.rows; i++) {
    ulan_step_row *row = &st.row[i];
    int64_t h = row->handle;
    if (h < 1 || h > (int64_t)nseqs || !seqs[h - 1].open) return ulan_error(ULAN_NOT_FOUND, "standard: unknown sequence handle");
    const policy *p = &seqs[h - 1];
    float t = keeps_all(p);
    if (t > 0 && (st.flags & ULAN_STEP_KEEP_ALL) && t <= 3.40282346638528859811704183484516925440e+38f) {
      row->lse = t;
      row->out_token = ULAN_TOKEN_KEEP_ALL;
      continue;
    }
    int r = apply(p, &st, i);
    if (r < 0) return ULAN_INVALID_ARGUMENT;
    row->out_token = r ? ULAN_TOKEN_WIDEN : ULAN_TOKEN_DRAW;
  }
  return ULAN_OK;
}
