/* bpe: a byte-level BPE tokenizer (sdk/ABI.md §6.1) whose merges spell out
 * a word list. Ids 0-255 are the bytes and 256 is <|endoftext|> (beginning
 * and end of sequence). Each listed word w gets a token for every prefix of
 * two bytes or more, each merged from the prefix one byte shorter and the
 * next byte, and one for " " + w, merged from a space and w; merges rank in
 * the list's order. So a listed word usually encodes as one token, with or
 * without its leading space (unless an earlier word's merge takes one of
 * its pairs first), and anything else as bytes and prefixes: every text
 * round-trips.
 *
 * Text is cut into pieces with the host's regex_split and each piece merged
 * with the host's bpe_merge; the pattern and the merge table are registered
 * once per instance, in ulan_plugin_init.
 *
 * Config (manifest.json's schema): {"words": ["hello", ...]}, which replace
 * the built-in list.
 *
 * Build and check it with
 *   ulan plugin build sdk/examples/c/tokenizer && ulan plugin test sdk/examples/c/tokenizer/tokenizer.wasm */
#define ULAN_PLUGIN_MAIN
#include "../../../c/ulan_plugin.h"

#include <stdio.h>

#define EOT 256
#define EOT_TEXT "<|endoftext|>"
#define MAX_WORD 256 /* bytes, with the NUL */
#define PIECES " ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"

static const char *builtin[] = {"the", "and", "of", "to", "in", "is", "that", "for", "it", "with",
                                "as", "was", "on", "be", "at", "by", "this", "have", "from", "or",
                                "hello", "world", "token", "plugin", "ulan"};

/* The vocabulary: token i's bytes are bytes[start[i] : start[i+1]]. */
static ulan_buf bytes, start; /* start holds u32 offsets */
static int32_t vocab_size;
static ulan_buf left, right, result; /* merges, i32 each */
static int32_t pattern, table = -1;
static ulan_buf spans, syms, merged, out; /* scratch and the last answer */

static uint32_t tok_start(int32_t id) { return ((const uint32_t *)start.data)[id]; }
static uint32_t tok_len(int32_t id) { return tok_start(id + 1) - tok_start(id); }

static int add_token(const void *b, uint32_t n) {
  if (!ulan_buf_put(&bytes, b, n)) return 0;
  uint32_t end = bytes.len;
  vocab_size++;
  return ulan_buf_put(&start, &end, 4);
}

/* find returns the id of the token with bytes b[0:n] above the byte tokens,
 * or -1. (Linear: it runs only at init.) */
static int32_t find(const char *b, uint32_t n) {
  for (int32_t id = EOT + 1; id < vocab_size; id++)
    if (tok_len(id) == n && memcmp(bytes.data + tok_start(id), b, n) == 0) return id;
  return -1;
}

/* merge adds the token a + b, made by merging ids a and b, unless it
 * exists, and returns its id (or -1 when memory runs out). */
static int32_t merge(int32_t a, int32_t b) {
  char joined[MAX_WORD + 1];
  uint32_t la = tok_len(a), lb = tok_len(b);
  memcpy(joined, bytes.data + tok_start(a), la);
  memcpy(joined + la, bytes.data + tok_start(b), lb);
  int32_t id = find(joined, la + lb);
  if (id >= 0) return id;
  id = vocab_size;
  if (!add_token(joined, la + lb) || !ulan_buf_put_i32(&left, a) || !ulan_buf_put_i32(&right, b) ||
      !ulan_buf_put_i32(&result, id))
    return -1;
  return id;
}

/* add_word adds the tokens and merges that spell w[0:n] (n < MAX_WORD),
 * then " " + w. */
static int32_t add_word(const char *w, uint32_t n) {
  int32_t id = (uint8_t)w[0];
  for (uint32_t l = 1; l < n && id >= 0; l++) id = merge(id, (uint8_t)w[l]);
  if (id < 0 || merge(' ', id) < 0) return ulan_error(ULAN_INTERNAL, "out of memory");
  return ULAN_OK;
}

int32_t ulan_plugin_init(const char *config, uint32_t len) {
  uint32_t zero = 0;
  if (!ulan_buf_put(&start, &zero, 4)) return ulan_error(ULAN_INTERNAL, "out of memory");
  for (int b = 0; b < 256; b++) {
    uint8_t c = (uint8_t)b;
    if (!add_token(&c, 1)) return ulan_error(ULAN_INTERNAL, "out of memory");
  }
  if (!add_token(EOT_TEXT, sizeof EOT_TEXT - 1)) return ulan_error(ULAN_INTERNAL, "out of memory");
  const char *v, *e;
  uint32_t n, en;
  int32_t status = ULAN_OK;
  if (ulan_json_find(config, len, "words", &v, &n)) {
    ulan_json_iter it;
    char w[MAX_WORD];
    if (!ulan_json_array(v, n, &it)) return ulan_error(ULAN_INVALID_ARGUMENT, "words: not an array");
    while (status == ULAN_OK && ulan_json_next(&it, &e, &en)) {
      int32_t l = ulan_json_string(e, en, w, sizeof w);
      if (l <= 0) return ulan_error(ULAN_INVALID_ARGUMENT, "words: each must be a string of 1 to 255 bytes");
      status = add_word(w, (uint32_t)l);
    }
  } else {
    for (size_t i = 0; status == ULAN_OK && i < sizeof builtin / sizeof *builtin; i++)
      status = add_word(builtin[i], (uint32_t)strlen(builtin[i]));
  }
  if (status != ULAN_OK) return status;
  if ((pattern = ulan_regex_compile(PIECES)) < 0) return ulan_error(ULAN_INTERNAL, "the host refused the pattern");
  uint32_t merges = left.len / 4;
  if (merges > 0 && (table = ulan_bpe_register((const int32_t *)left.data, (const int32_t *)right.data,
                                               (const int32_t *)result.data, merges)) < 0)
    return ulan_error(ULAN_INTERNAL, "the host refused the merges");
  return ULAN_OK;
}

ULAN_EXPORT(tok_info) int64_t tok_info(void) {
  out.len = 0;
  if (!ulan_buf_reserve(&out, 128)) return -(int64_t)ulan_error(ULAN_INTERNAL, "out of memory");
  out.len = (uint32_t)snprintf((char *)out.data, out.cap,
                               "{\"vocab_size\":%d,\"bos\":%d,\"eos\":[%d],\"decode_is_concat\":true}",
                               (int)vocab_size, EOT, EOT);
  return ulan_buf_pack(&out);
}

ULAN_EXPORT(tok_vocab) int64_t tok_vocab(int32_t first, int32_t count) {
  out.len = 0;
  for (int32_t id = first < 0 ? 0 : first; id < vocab_size && id - first < count; id++)
    if (!ulan_buf_put_token(&out, bytes.data + tok_start(id), (uint16_t)tok_len(id)))
      return -(int64_t)ulan_error(ULAN_INTERNAL, "out of memory");
  return ulan_buf_pack(&out);
}

/* encode_text appends the ids of text[0:len], which holds no special token. */
static int32_t encode_text(const char *text, uint32_t len) {
  if (len == 0) return ULAN_OK;
  int32_t n = ulan_split(pattern, text, len, &spans);
  if (n < 0) return ulan_error(ULAN_INVALID_ARGUMENT, "regex_split failed (over 1 MiB of text?)");
  const uint32_t *sp = (const uint32_t *)spans.data;
  for (int32_t p = 0; p < n; p++) {
    uint32_t a = sp[2 * p], b = sp[2 * p + 1];
    syms.len = merged.len = 0;
    for (uint32_t i = a; i < b; i++)
      if (!ulan_buf_put_i32(&syms, (uint8_t)text[i])) return ulan_error(ULAN_INTERNAL, "out of memory");
    const int32_t *ids = (const int32_t *)syms.data;
    uint32_t m = b - a;
    if (table >= 0 && m > 1) {
      if (!ulan_buf_reserve(&merged, 4 * m)) return ulan_error(ULAN_INTERNAL, "out of memory");
      int32_t got = ulan_bpe_merge(table, ids, m, (int32_t *)merged.data, m);
      if (got < 0 || (uint32_t)got > m) return ulan_error(ULAN_INTERNAL, "bpe_merge failed");
      ids = (const int32_t *)merged.data;
      m = (uint32_t)got;
    }
    if (!ulan_buf_put(&out, ids, 4 * m)) return ulan_error(ULAN_INTERNAL, "out of memory");
  }
  return ULAN_OK;
}

ULAN_EXPORT(tok_encode) int64_t tok_encode(const char *text, uint32_t len, int32_t flags) {
  out.len = 0;
  if ((flags & ULAN_ADD_SPECIAL) && !ulan_buf_put_i32(&out, EOT))
    return -(int64_t)ulan_error(ULAN_INTERNAL, "out of memory");
  uint32_t from = 0;
  const uint32_t eot_len = sizeof EOT_TEXT - 1;
  if (flags & ULAN_PARSE_SPECIAL) {
    for (uint32_t i = 0; i + eot_len <= len;) {
      if (memcmp(text + i, EOT_TEXT, eot_len) != 0) {
        i++;
        continue;
      }
      int32_t status = encode_text(text + from, i - from);
      if (status != ULAN_OK) return -(int64_t)status;
      if (!ulan_buf_put_i32(&out, EOT)) return -(int64_t)ulan_error(ULAN_INTERNAL, "out of memory");
      i += eot_len;
      from = i;
    }
  }
  int32_t status = encode_text(text + from, len - from);
  if (status != ULAN_OK) return -(int64_t)status;
  return ulan_buf_pack(&out);
}

ULAN_EXPORT(tok_decode) int64_t tok_decode(const int32_t *ids, uint32_t n, int32_t flags) {
  out.len = 0;
  for (uint32_t i = 0; i < n; i++) {
    int32_t id = ids[i];
    if (id < 0 || id >= vocab_size) return -(int64_t)ulan_error(ULAN_INVALID_ARGUMENT, "token id outside the vocabulary");
    if (id == EOT && (flags & ULAN_SKIP_SPECIAL)) continue;
    if (!ulan_buf_put(&out, bytes.data + tok_start(id), tok_len(id)))
      return -(int64_t)ulan_error(ULAN_INTERNAL, "out of memory");
  }
  return ulan_buf_pack(&out);
}
