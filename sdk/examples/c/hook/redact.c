/* redact: a hook that masks configured words in the generated content
 * (one '*' per character) and ends the generation at a stop phrase, also
 * when a word or the phrase is split across deltas: it holds back a
 * delta's tail while that tail could still become one (never more than the
 * longest word). Other channels pass unchanged.
 *
 * Config (manifest.json's schema): {"words": ["secret", ...], "stop": "..."};
 * without one it masks "secret" and does not stop.
 *
 * Build and check it with
 *   ulan plugin build sdk/examples/c/hook && ulan plugin test sdk/examples/c/hook/hook.wasm */
#define ULAN_PLUGIN_MAIN
#include "../../../c/ulan_plugin.h"

#define MAX_WORDS 32
#define MAX_WORD 256 /* bytes, with the NUL */

static char words[MAX_WORDS][MAX_WORD];
static uint32_t word_len[MAX_WORDS];
static int nwords;
static char stop[MAX_WORD];
static uint32_t stop_len;

/* A session: the text held back and the last record (valid until the
 * session's next call). */
typedef struct {
  int open;
  ulan_buf held, record;
} session;

static session *sessions;
static uint32_t nsessions;
static ulan_buf text, out; /* scratch for one call */

int32_t ulan_plugin_init(const char *config, uint32_t len) {
  const char *v, *e;
  uint32_t n, en;
  nwords = 0;
  stop_len = 0;
  if (ulan_json_find(config, len, "words", &v, &n)) {
    ulan_json_iter it;
    if (!ulan_json_array(v, n, &it)) return ulan_error(ULAN_INVALID_ARGUMENT, "words: not an array");
    while (ulan_json_next(&it, &e, &en)) {
      if (nwords == MAX_WORDS) return ulan_error(ULAN_INVALID_ARGUMENT, "words: more than 32");
      int32_t l = ulan_json_string(e, en, words[nwords], MAX_WORD);
      if (l <= 0) return ulan_error(ULAN_INVALID_ARGUMENT, "words: each must be a string of 1 to 255 bytes");
      word_len[nwords++] = (uint32_t)l;
    }
  } else {
    strcpy(words[0], "secret");
    word_len[0] = 6;
    nwords = 1;
  }
  if (ulan_json_find(config, len, "stop", &v, &n)) {
    int32_t l = ulan_json_string(v, n, stop, MAX_WORD);
    if (l <= 0) return ulan_error(ULAN_INVALID_ARGUMENT, "stop: must be a string of 1 to 255 bytes");
    stop_len = (uint32_t)l;
  }
  ulan_log(ULAN_INFO, stop_len ? "redact: masking words, with a stop phrase" : "redact: masking words");
  return ULAN_OK;
}

ULAN_EXPORT(hook_open) int64_t hook_open(const char *meta, uint32_t len) {
  uint32_t i = 0;
  while (i < nsessions && sessions[i].open) i++;
  if (i == nsessions) {
    session *s = (session *)realloc(sessions, (nsessions + 1) * sizeof *s);
    if (!s) return -(int64_t)ulan_error(ULAN_INTERNAL, "out of memory");
    sessions = s;
    memset(&sessions[nsessions++], 0, sizeof *s);
  }
  sessions[i].open = 1;
  sessions[i].held.len = 0;
  return (int64_t)i + 1;
}

static session *lookup(int64_t h) {
  if (h < 1 || h > (int64_t)nsessions || !sessions[h - 1].open) return NULL;
  return &sessions[h - 1];
}

/* starts reports whether p[0:n] begins with w[0:wn]; with a partial match at
 * the end of p (n < wn) it reports 2. */
static int starts(const char *p, uint32_t n, const char *w, uint32_t wn) {
  if (n >= wn) return memcmp(p, w, wn) == 0;
  return memcmp(p, w, n) == 0 ? 2 : 0;
}

static uint32_t chars(const char *w, uint32_t n) {
  uint32_t c = 0;
  for (uint32_t i = 0; i < n; i++) c += ((uint8_t)w[i] & 0xC0) != 0x80;
  return c;
}

ULAN_EXPORT(hook_delta) int64_t hook_delta(int64_t h, const char *delta, uint32_t len,
                                            const int32_t *ids, uint32_t n, int32_t flags) {
  session *s = lookup(h);
  if (!s) return -(int64_t)ulan_error(ULAN_NOT_FOUND, "unknown session");
  if ((flags & 3) != ULAN_CHANNEL_CONTENT) return ulan_hook_reply(&s->record, ULAN_HOOK_PASS, 0, NULL, 0);
  /* text = what was held back + the delta */
  text.len = out.len = 0;
  if (!ulan_buf_put(&text, s->held.data, s->held.len) || !ulan_buf_put(&text, delta, len))
    return -(int64_t)ulan_error(ULAN_INTERNAL, "out of memory");
  const char *t = (const char *)text.data;
  uint32_t i = 0, redacted = 0;
  s->held.len = 0;
  while (i < text.len) {
    uint32_t rest = text.len - i;
    if (stop_len > 0) {
      int m = starts(t + i, rest, stop, stop_len);
      if (m == 1) return ulan_hook_reply(&s->record, ULAN_HOOK_STOP, 0, (const char *)out.data, out.len);
      if (m == 2) break; /* hold the rest back */
    }
    int matched = 0, partial = 0;
    for (int w = 0; w < nwords && !matched; w++) {
      int m = starts(t + i, rest, words[w], word_len[w]);
      if (m == 1) {
        uint32_t c = chars(words[w], word_len[w]);
        if (!ulan_buf_reserve(&out, c)) return -(int64_t)ulan_error(ULAN_INTERNAL, "out of memory");
        memset(out.data + out.len, '*', c);
        out.len += c;
        i += word_len[w];
        matched = 1;
        redacted = 1;
      }
      partial |= m == 2;
    }
    if (matched) continue;
    if (partial) break;
    if (!ulan_buf_put(&out, t + i, 1)) return -(int64_t)ulan_error(ULAN_INTERNAL, "out of memory");
    i++;
  }
  if (!ulan_buf_put(&s->held, t + i, text.len - i)) return -(int64_t)ulan_error(ULAN_INTERNAL, "out of memory");
  if (redacted) return ulan_hook_reply(&s->record, ULAN_HOOK_REDACT, 0, (const char *)out.data, out.len);
  if (out.len == len && i == text.len && memcmp(out.data, delta, len) == 0)
    return ulan_hook_reply(&s->record, ULAN_HOOK_PASS, 0, NULL, 0);
  return ulan_hook_reply(&s->record, ULAN_HOOK_REPLACE, 0, (const char *)out.data, out.len);
}

/* hook_end flushes what was held back: it never became a word. */
ULAN_EXPORT(hook_end) int64_t hook_end(int64_t h, int32_t finish) {
  session *s = lookup(h);
  if (!s) return -(int64_t)ulan_error(ULAN_NOT_FOUND, "unknown session");
  if (s->held.len == 0) return ulan_hook_reply(&s->record, ULAN_HOOK_PASS, 0, NULL, 0);
  int64_t r = ulan_hook_reply(&s->record, ULAN_HOOK_REPLACE, 0, (const char *)s->held.data, s->held.len);
  s->held.len = 0;
  return r;
}

ULAN_EXPORT(hook_close) void hook_close(int64_t h) {
  session *s = lookup(h);
  if (!s) return;
  ulan_buf_free(&s->held);
  ulan_buf_free(&s->record);
  s->open = 0;
}
