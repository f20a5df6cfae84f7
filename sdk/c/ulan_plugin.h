/*
 * ulan_plugin.h — the C guest SDK for ulan plugins (ABI 1, sdk/ABI.md).
 *
 * Build a plugin as a wasip1 reactor with Debian's clang, lld, wasi-libc and
 * libclang-rt-14-dev-wasm32:
 *
 *   clang --target=wasm32-wasi -mexec-model=reactor -O2 -o plugin.wasm plugin.c
 *
 * In exactly one file, define ULAN_PLUGIN_MAIN before including this header:
 * that file then defines the exports every plugin needs (the ulan_abi_1
 * marker, ulan_alloc, ulan_free, ulan_init) and calls your
 *
 *   int32_t ulan_plugin_init(const char *config, uint32_t len);
 *
 * with the plugin's JSON configuration (return ULAN_OK to accept it).
 *
 * Besides the status codes, logging and error text every plugin uses, the
 * header has a small JSON reader for configs and parameters (ulan_json_*), a
 * growable output buffer (ulan_buf), and per kind: the hook result record
 * (ulan_hook_*), the sampler step arena and primitives (ulan_step,
 * ulan_top_k, ulan_softmax, ulan_draw, ulan_top_p_cut, ulan_history,
 * ulan_token_bytes) and the tokenizer primitives
 * (ulan_regex_*, ulan_bpe_*). sdk/examples/c has a plugin of each kind.
 */
#ifndef ULAN_PLUGIN_H
#define ULAN_PLUGIN_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define ULAN_EXPORT(name) __attribute__((export_name(#name)))
#define ULAN_IMPORT(name) __attribute__((import_module("ulan_v1"), import_name(#name)))

/* Status codes (sdk/ABI.md §3). */
enum {
  ULAN_OK = 0,
  ULAN_INVALID_ARGUMENT = 1,
  ULAN_NOT_FOUND = 2,
  ULAN_BUFFER_TOO_SMALL = 3,
  ULAN_UNSUPPORTED = 4,
  ULAN_INTERNAL = 5,
};

/* Log levels. */
enum { ULAN_DEBUG = 0, ULAN_INFO = 1, ULAN_WARN = 2, ULAN_ERROR = 3 };

/* Host imports (sdk/ABI.md §4). */
ULAN_IMPORT(log) void ulan_log_(int32_t level, const char *msg, uint32_t len);
ULAN_IMPORT(set_error) void ulan_set_error_(const char *msg, uint32_t len);

/* ulan_log writes a NUL-terminated message to the server's log. */
static inline void ulan_log(int32_t level, const char *msg) { ulan_log_(level, msg, (uint32_t)strlen(msg)); }

/* ulan_error sets the text of the error the export is about to return and
 * returns status, so that `return ulan_error(ULAN_INVALID_ARGUMENT, "...")`
 * reads naturally. */
static inline int32_t ulan_error(int32_t status, const char *msg) {
  ulan_set_error_(msg, (uint32_t)strlen(msg));
  return status;
}

/* ulan_pack returns a buffer as the ABI's packed result, ptr << 32 | len.
 * The buffer must stay valid until the plugin's next call. */
static inline int64_t ulan_pack(const void *ptr, uint32_t len) {
  return (int64_t)(((uint64_t)(uintptr_t)ptr << 32) | len);
}

/* Hooks (sdk/ABI.md §6.3). */
enum { ULAN_HOOK_PASS = 0, ULAN_HOOK_REPLACE = 1, ULAN_HOOK_REDACT = 2, ULAN_HOOK_STOP = 3 };
enum { ULAN_CHANNEL_CONTENT = 0, ULAN_CHANNEL_REASONING = 1, ULAN_CHANNEL_TOOL_ARGUMENTS = 2 };

/* ulan_hook_result builds a hook's result record in buf (at least 12 + len
 * bytes) and returns it packed; NULL emit means no text. */
static inline int64_t ulan_hook_result(uint8_t *buf, int32_t action, int32_t finish_reason,
                                       const char *emit, uint32_t len) {
  int32_t head[3] = {action, finish_reason, (int32_t)len};
  memcpy(buf, head, sizeof head);
  if (len > 0) memmove(buf + 12, emit, len);
  return ulan_pack(buf, 12 + len);
}

/* ---- Output buffers ----
 *
 * A ulan_buf is a growable byte buffer for an export's variable-size output:
 * keep one per handle (or one per plugin for tokenizer exports), reset its
 * len to 0 before each answer, append, and return ulan_buf_pack(&b). It
 * stays valid until the next call reuses it, as the ABI requires. The
 * appending functions return 0 when memory runs out (then answer
 * -ULAN_INTERNAL). */
typedef struct {
  uint8_t *data;
  uint32_t len, cap;
} ulan_buf;

/* ulan_buf_reserve makes room for n more bytes. */
static inline int ulan_buf_reserve(ulan_buf *b, uint32_t n) {
  if (n <= b->cap - b->len) return 1;
  if (n > UINT32_MAX / 2 - b->len) return 0;
  uint32_t cap = b->cap ? b->cap : 256;
  while (cap - b->len < n) cap *= 2;
  uint8_t *d = (uint8_t *)realloc(b->data, cap);
  if (!d) return 0;
  b->data = d;
  b->cap = cap;
  return 1;
}

/* ulan_buf_put appends n bytes. */
static inline int ulan_buf_put(ulan_buf *b, const void *p, uint32_t n) {
  if (!ulan_buf_reserve(b, n)) return 0;
  if (n > 0) memcpy(b->data + b->len, p, n);
  b->len += n;
  return 1;
}

/* ulan_buf_put_i32 appends a little-endian i32 (a token id). */
static inline int ulan_buf_put_i32(ulan_buf *b, int32_t v) { return ulan_buf_put(b, &v, 4); }

/* ulan_buf_put_token appends one tok_vocab entry: a u16 length and the
 * token's raw bytes (sdk/ABI.md §6.1). */
static inline int ulan_buf_put_token(ulan_buf *b, const void *bytes, uint16_t n) {
  return ulan_buf_put(b, &n, 2) && ulan_buf_put(b, bytes, n);
}

/* ulan_buf_pack returns the buffer's contents as a packed result. */
static inline int64_t ulan_buf_pack(const ulan_buf *b) { return b->len ? ulan_pack(b->data, b->len) : 0; }

/* ulan_buf_free releases the buffer. */
static inline void ulan_buf_free(ulan_buf *b) {
  free(b->data);
  b->data = NULL;
  b->len = b->cap = 0;
}

/* ulan_hook_reply builds a hook's result record in rec (grown as needed)
 * and returns it packed, or -ULAN_INTERNAL when memory runs out. */
static inline int64_t ulan_hook_reply(ulan_buf *rec, int32_t action, int32_t finish_reason,
                                      const char *emit, uint32_t len) {
  rec->len = 0;
  if (len > UINT32_MAX - 12 || !ulan_buf_reserve(rec, 12 + len)) return -(int64_t)ULAN_INTERNAL;
  rec->len = 12 + len;
  return ulan_hook_result(rec->data, action, finish_reason, emit, len);
}

/* ---- JSON ----
 *
 * A small reader for a plugin's config (ulan_init) and a request's
 * parameters (hook_open, smp_open): find a top-level member of an object,
 * then read it as a string, a number or an array. Values are spans of the
 * JSON text: nothing is allocated. Keys are compared as written (without
 * decoding escapes). The host checks a config against the manifest's schema
 * before ulan_init, so a plugin need not validate what the schema says. */

static inline const char *ulan_json_ws_(const char *p, const char *end) {
  while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
  return p;
}

/* ulan_json_skip_ returns the end of the value at p, or NULL if the text
 * ends first. */
static inline const char *ulan_json_skip_(const char *p, const char *end) {
  p = ulan_json_ws_(p, end);
  if (p >= end) return NULL;
  if (*p == '"') {
    for (p++; p < end; p++) {
      if (*p == '\\') {
        if (++p >= end) return NULL;
      } else if (*p == '"') {
        return p + 1;
      }
    }
    return NULL;
  }
  if (*p == '{' || *p == '[') {
    int depth = 0;
    while (p < end) {
      if (*p == '"') {
        if (!(p = ulan_json_skip_(p, end))) return NULL;
        continue;
      }
      if (*p == '{' || *p == '[') depth++;
      if ((*p == '}' || *p == ']') && --depth == 0) return p + 1;
      p++;
    }
    return NULL;
  }
  while (p < end && *p != ',' && *p != '}' && *p != ']' && *p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') p++;
  return p;
}

/* ulan_json_find sets *val and *vlen to the value of the top-level member
 * key of the object in json[0:len] and returns 1, or returns 0 if there is
 * none (or the text is not an object). */
static inline int ulan_json_find(const char *json, uint32_t len, const char *key, const char **val,
                                 uint32_t *vlen) {
  const char *end = json + len, *p = ulan_json_ws_(json, end);
  size_t klen = strlen(key);
  if (p >= end || *p != '{') return 0;
  p = ulan_json_ws_(p + 1, end);
  if (p < end && *p == '}') return 0;
  for (;;) {
    if (p >= end || *p != '"') return 0;
    const char *k = p + 1;
    if (!(p = ulan_json_skip_(p, end))) return 0;
    int match = (size_t)(p - 1 - k) == klen && memcmp(k, key, klen) == 0;
    p = ulan_json_ws_(p, end);
    if (p >= end || *p != ':') return 0;
    const char *v = ulan_json_ws_(p + 1, end);
    if (!(p = ulan_json_skip_(v, end))) return 0;
    if (match) {
      *val = v;
      *vlen = (uint32_t)(p - v);
      return 1;
    }
    p = ulan_json_ws_(p, end);
    if (p >= end || *p != ',') return 0;
    p = ulan_json_ws_(p + 1, end);
  }
}

static inline int ulan_json_hex4_(const char *p, uint32_t *out) {
  uint32_t v = 0;
  for (int i = 0; i < 4; i++) {
    char c = p[i];
    v <<= 4;
    if (c >= '0' && c <= '9') v |= (uint32_t)(c - '0');
    else if (c >= 'a' && c <= 'f') v |= (uint32_t)(c - 'a' + 10);
    else if (c >= 'A' && c <= 'F') v |= (uint32_t)(c - 'A' + 10);
    else return 0;
  }
  *out = v;
  return 1;
}

/* ulan_json_string decodes the string value val[0:vlen] into out as UTF-8
 * with a terminating NUL, and returns its length in bytes; -1 if the value
 * is not a string, has a bad escape, or does not fit in cap bytes. */
static inline int32_t ulan_json_string(const char *val, uint32_t vlen, char *out, uint32_t cap) {
  if (vlen < 2 || val[0] != '"' || val[vlen - 1] != '"' || cap == 0) return -1;
  uint32_t o = 0, last = vlen - 1; /* the closing quote */
  for (uint32_t i = 1; i < last; i++) {
    uint32_t c = (uint8_t)val[i];
    if (c == '\\') {
      if (++i >= last) return -1;
      switch (val[i]) {
        case '"': c = '"'; break;
        case '\\': c = '\\'; break;
        case '/': c = '/'; break;
        case 'b': c = '\b'; break;
        case 'f': c = '\f'; break;
        case 'n': c = '\n'; break;
        case 'r': c = '\r'; break;
        case 't': c = '\t'; break;
        case 'u': {
          if (i + 4 >= last || !ulan_json_hex4_(val + i + 1, &c)) return -1;
          i += 4;
          if (c >= 0xDC00 && c <= 0xDFFF) return -1;
          if (c >= 0xD800 && c <= 0xDBFF) { /* a surrogate pair */
            uint32_t lo;
            if (i + 6 >= last || val[i + 1] != '\\' || val[i + 2] != 'u' || !ulan_json_hex4_(val + i + 3, &lo) ||
                lo < 0xDC00 || lo > 0xDFFF)
              return -1;
            c = 0x10000 + ((c - 0xD800) << 10) + (lo - 0xDC00);
            i += 6;
          }
          break;
        }
        default: return -1;
      }
      uint8_t u[4];
      uint32_t n;
      if (c < 0x80) { u[0] = (uint8_t)c; n = 1; }
      else if (c < 0x800) { u[0] = (uint8_t)(0xC0 | c >> 6); u[1] = (uint8_t)(0x80 | (c & 0x3F)); n = 2; }
      else if (c < 0x10000) {
        u[0] = (uint8_t)(0xE0 | c >> 12); u[1] = (uint8_t)(0x80 | (c >> 6 & 0x3F)); u[2] = (uint8_t)(0x80 | (c & 0x3F)); n = 3;
      } else {
        u[0] = (uint8_t)(0xF0 | c >> 18); u[1] = (uint8_t)(0x80 | (c >> 12 & 0x3F));
        u[2] = (uint8_t)(0x80 | (c >> 6 & 0x3F)); u[3] = (uint8_t)(0x80 | (c & 0x3F)); n = 4;
      }
      if (o + n >= cap) return -1;
      memcpy(out + o, u, n);
      o += n;
    } else {
      if (o + 1 >= cap) return -1;
      out[o++] = (char)c;
    }
  }
  out[o] = 0;
  return (int32_t)o;
}

/* ulan_json_number reads the number value val[0:vlen] into *out; 0 if it
 * is not a number. */
static inline int ulan_json_number(const char *val, uint32_t vlen, double *out) {
  char tmp[64], *end;
  if (vlen == 0 || vlen >= sizeof tmp) return 0;
  memcpy(tmp, val, vlen);
  tmp[vlen] = 0;
  double v = strtod(tmp, &end);
  if (end != tmp + vlen) return 0;
  *out = v;
  return 1;
}

/* ulan_json_iter walks the elements of an array value:
 *
 *   ulan_json_iter it;
 *   const char *v; uint32_t n;
 *   if (ulan_json_array(val, vlen, &it))
 *     while (ulan_json_next(&it, &v, &n)) { ... }
 */
typedef struct {
  const char *p, *end;
} ulan_json_iter;

/* ulan_json_array starts an iteration; 0 if the value is not an array. */
static inline int ulan_json_array(const char *val, uint32_t vlen, ulan_json_iter *it) {
  const char *end = val + vlen, *p = ulan_json_ws_(val, end);
  if (p >= end || *p != '[') return 0;
  it->p = p + 1;
  it->end = end;
  return 1;
}

/* ulan_json_next sets *val and *vlen to the next element; 0 at the end. */
static inline int ulan_json_next(ulan_json_iter *it, const char **val, uint32_t *vlen) {
  const char *p = ulan_json_ws_(it->p, it->end);
  if (p >= it->end || *p == ']') return 0;
  const char *e = ulan_json_skip_(p, it->end);
  if (!e) return 0;
  *val = p;
  *vlen = (uint32_t)(e - p);
  e = ulan_json_ws_(e, it->end);
  it->p = (e < it->end && *e == ',') ? e + 1 : it->end;
  return 1;
}

/* ---- Samplers (sdk/ABI.md §6.2) ----
 *
 * A sampler exports smp_open(params, len) -> handle (i64), smp_step(arena,
 * len) -> status and smp_close(handle). ulan_step_view reads the step
 * arena; a processor writes s.out, a selector the row's out_token. */

/* Host primitives (granted to samplers). Arrays are 4-byte aligned guest
 * memory. */

/* ulan_top_k writes the indices and values of the k largest of vals[0:n],
 * largest first (ties: the lower index; NaN counts as smallest), and
 * returns how many: min(k, n); -1 for a bad range or k over 4096. */
ULAN_IMPORT(top_k) int32_t ulan_top_k(const float *vals, uint32_t n, uint32_t k, int32_t *out_ids,
                                      float *out_vals);
/* ulan_softmax writes softmax(vals / temp) to out (which may be vals);
 * 0, or -1 for a bad range, a temperature that is not positive and finite,
 * a NaN, or a vector of all -Inf. */
ULAN_IMPORT(softmax) int32_t ulan_softmax(const float *vals, uint32_t n, float temp, float *out);
/* ulan_draw returns the index the uniform u in [0, 1) falls on in the CDF
 * of probs[0:n] (never one of probability 0), or -1. */
ULAN_IMPORT(draw) int32_t ulan_draw(const float *probs, uint32_t n, float u);
/* ulan_top_p_cut returns how many of the leading probs[0:n] reach the mass
 * p in (0, 1] (sorted largest first, as ulan_top_k and ulan_softmax leave
 * them, that is top-p's nucleus), or -1. */
ULAN_IMPORT(top_p_cut) int32_t ulan_top_p_cut(const float *probs, uint32_t n, float p);
/* ulan_history writes the last min(n, cap) token ids of sequence h (its
 * row's handle) to buf, oldest first, and returns n, the length of its
 * history as the host recorded it (prompt, then each chosen token); -1 for
 * a sequence the host does not know. */
ULAN_IMPORT(history) int32_t ulan_history(int64_t h, int32_t *buf, uint32_t cap);
/* ulan_token_bytes writes the first min(n, cap) bytes of token id to buf
 * and returns n, the token's length in the model's vocabulary; -1 for an id
 * outside it (or before the host has one). */
ULAN_IMPORT(token_bytes) int32_t ulan_token_bytes(int32_t id, uint8_t *buf, uint32_t cap);
/* ulan_row_lse returns the log-sum-exp of row (its index in the arena) of
 * the smp_step call in flight; NaN outside one. A plugin whose manifest
 * declares "sampler": {"lse": "on_demand"} finds a row's lse NaN when the
 * host did not compute it, and calls this when it needs it. */
ULAN_IMPORT(row_lse) float ulan_row_lse(int32_t row);

/* out_token values other than a candidate's id (sdk/ABI.md section 6.2). */
#define ULAN_TOKEN_DRAW (-1)     /* processor: the host draws from out */
#define ULAN_TOKEN_WIDEN (-2)    /* too few candidates: step the row again, wider */
#define ULAN_TOKEN_KEEP_ALL (-3) /* keep the whole row, divided by the temperature written to lse */
/* ULAN_STEP_KEEP_ALL, in ulan_step's flags: the host accepts ULAN_TOKEN_KEEP_ALL. */
#define ULAN_STEP_KEEP_ALL 1

/* ulan_step_row is one row of the step arena. */
typedef struct {
  int64_t handle;    /* the sequence's handle, from smp_open */
  int32_t n;         /* candidates in this row (at most k) */
  int32_t position;  /* tokens generated so far */
  float u0, u1;      /* uniforms in [0, 1), seeded per request */
  float lse;         /* the log-sum-exp of the full row (NaN: ask ulan_row_lse); with
                        ULAN_TOKEN_KEEP_ALL the plugin writes its temperature here */
  int32_t out_token; /* a selector writes its token; -1, as the host writes it, lets the host draw */
} ulan_step_row;

_Static_assert(sizeof(ulan_step_row) == 32, "ulan_step_row is the ABI's 32-byte row");

/* ulan_step views a step arena in place. Row i's candidates are
 * ids[i*k : i*k+row[i].n], with their logits, and out is where a processor
 * writes adjusted logits (pre-filled with the logits; -Inf bans one). */
typedef struct {
  int32_t rows, k;
  uint32_t flags; /* ULAN_STEP_KEEP_ALL */
  ulan_step_row *row;
  const int32_t *ids;
  const float *logits;
  float *out;
} ulan_step;

/* ulan_step_view checks the arena's header and rows and fills s;
 * ULAN_INVALID_ARGUMENT if it is malformed. */
static inline int32_t ulan_step_view(void *arena, uint32_t len, ulan_step *s) {
  if (len < 16 || ((uintptr_t)arena & 7) != 0) return ULAN_INVALID_ARGUMENT;
  const int32_t *head = (const int32_t *)arena;
  int32_t rows = head[0], k = head[1];
  if (rows < 0 || k < 0 || 16 + (uint64_t)rows * 32 + (uint64_t)rows * (uint64_t)k * 12 > len)
    return ULAN_INVALID_ARGUMENT;
  s->rows = rows;
  s->k = k;
  s->flags = (uint32_t)head[2];
  s->row = (ulan_step_row *)((uint8_t *)arena + 16);
  s->ids = (const int32_t *)(s->row + rows);
  s->logits = (const float *)(s->ids + (size_t)rows * k);
  s->out = (float *)(s->logits + (size_t)rows * k);
  for (int32_t i = 0; i < rows; i++)
    if (s->row[i].n < 0 || s->row[i].n > k) return ULAN_INVALID_ARGUMENT;
  return ULAN_OK;
}

/* Row i's candidate ids, logits and output logits. */
static inline const int32_t *ulan_step_ids(const ulan_step *s, int32_t i) { return s->ids + (size_t)i * s->k; }
static inline const float *ulan_step_logits(const ulan_step *s, int32_t i) { return s->logits + (size_t)i * s->k; }
static inline float *ulan_step_out(const ulan_step *s, int32_t i) { return s->out + (size_t)i * s->k; }

/* ---- Tokenizers (sdk/ABI.md §6.1) ----
 *
 * A tokenizer exports tok_info() (JSON), tok_vocab(start, count),
 * tok_encode(text, len, flags) (i32 ids) and tok_decode(ids, n, flags)
 * (UTF-8), each returning a packed buffer, e.g. a ulan_buf. Compile patterns
 * and register merge tables once, in ulan_plugin_init. */
enum { ULAN_ADD_SPECIAL = 1, ULAN_PARSE_SPECIAL = 2, ULAN_SKIP_SPECIAL = 4 };

/* Host primitives (granted to tokenizers). */
ULAN_IMPORT(regex_compile) int32_t ulan_regex_compile_(const char *expr, uint32_t len);
/* ulan_regex_split writes the pieces of text as n [start, end) byte offset
 * pairs to spans if n <= cap, and returns n (or -1). */
ULAN_IMPORT(regex_split) int32_t ulan_regex_split(int32_t pattern, const char *text, uint32_t len,
                                                  uint32_t *spans, uint32_t cap);
/* ulan_bpe_register registers n merges in priority order (left[i] +
 * right[i] -> result[i]) and returns the table's id, or -1. */
ULAN_IMPORT(bpe_register) int32_t ulan_bpe_register(const int32_t *left, const int32_t *right,
                                                    const int32_t *result, uint32_t n);
/* ulan_bpe_merge merges a piece's n initial symbols and writes the m
 * resulting ids to out if m <= cap; returns m (or -1). */
ULAN_IMPORT(bpe_merge) int32_t ulan_bpe_merge(int32_t table, const int32_t *symbols, uint32_t n,
                                              int32_t *out, uint32_t cap);
/* ulan_bpe_merge_batch merges many pieces in one call: symbols[0:n] holds
 * the pieces' initial symbols one after another and lens[0:pieces] each
 * piece's count. It returns the number m of merged ids, or -1; when m <=
 * cap it writes them to out piece after piece and overwrites lens with
 * each piece's merged count. */
ULAN_IMPORT(bpe_merge_batch) int32_t ulan_bpe_merge_batch(int32_t table, const int32_t *symbols, uint32_t n,
                                                          int32_t *lens, uint32_t pieces, int32_t *out,
                                                          uint32_t cap);
/* ulan_bpe_encoder returns an encoder id for a byte-level BPE tokenizer:
 * split with pattern, map byte b to symbol bytemap[b] (256 entries), merge
 * with table; -1 on a bad id or too many encoders. */
ULAN_IMPORT(bpe_encoder) int32_t ulan_bpe_encoder(int32_t table, int32_t pattern, const int32_t *bytemap);
/* ulan_bpe_encode encodes text[0:n] with an encoder in one call and returns
 * the number of ids (at most n), written to out when they fit in cap; -1 on
 * failure. */
ULAN_IMPORT(bpe_encode) int32_t ulan_bpe_encode(int32_t encoder, const char *text, uint32_t n, int32_t *out,
                                                uint32_t cap);
/* ulan_regex_sequence returns a pattern id that applies the n (at most 8)
 * registered patterns ids[0:n] in turn, each to every piece the ones before
 * it cut, so that ulan_regex_split runs a whole chain of splits; -1 when an
 * id is unknown or too many patterns are registered. */
ULAN_IMPORT(regex_sequence) int32_t ulan_regex_sequence(const int32_t *ids, uint32_t n);

/* ulan_regex_compile compiles a NUL-terminated pattern (lookahead and
 * Unicode classes supported) and returns its id, or -1 (the host sets the
 * error text). */
static inline int32_t ulan_regex_compile(const char *expr) {
  return ulan_regex_compile_(expr, (uint32_t)strlen(expr));
}

/* ulan_split splits text with a compiled pattern into spans (u32 pairs,
 * grown as needed) and returns the number of pieces, or -1. */
static inline int32_t ulan_split(int32_t pattern, const char *text, uint32_t len, ulan_buf *spans) {
  spans->len = 0;
  for (;;) {
    uint32_t cap = spans->cap / 8;
    int32_t n = ulan_regex_split(pattern, text, len, (uint32_t *)spans->data, cap);
    if (n < 0) return -1;
    if ((uint32_t)n <= cap) {
      spans->len = (uint32_t)n * 8;
      return n;
    }
    if (!ulan_buf_reserve(spans, (uint32_t)n * 8)) return -1;
  }
}

#ifdef ULAN_PLUGIN_MAIN
int32_t ulan_plugin_init(const char *config, uint32_t len);

ULAN_EXPORT(ulan_abi_1) void ulan_abi_1(void) {}

ULAN_EXPORT(ulan_alloc) void *ulan_alloc(uint32_t size) { return malloc(size ? size : 1); }

ULAN_EXPORT(ulan_free) void ulan_free(void *ptr) { free(ptr); }

ULAN_EXPORT(ulan_init) int32_t ulan_init(const char *config, uint32_t len) {
  return ulan_plugin_init(config, len);
}

#ifdef ULAN_PLUGIN_RECONFIGURE
/* Define ULAN_PLUGIN_RECONFIGURE (with ULAN_PLUGIN_MAIN) and write
 * ulan_plugin_reconfigure to take a new config in place (sdk/ABI.md §5):
 * return 0 having switched to it, or non-zero having left the instance as it
 * was (ULAN_UNSUPPORTED: the host starts new instances instead). */
int32_t ulan_plugin_reconfigure(const char *config, uint32_t len);

ULAN_EXPORT(ulan_reconfigure) int32_t ulan_reconfigure(const char *config, uint32_t len) {
  return ulan_plugin_reconfigure(config, len);
}
#endif /* ULAN_PLUGIN_RECONFIGURE */
#endif /* ULAN_PLUGIN_MAIN */

#endif /* ULAN_PLUGIN_H */
