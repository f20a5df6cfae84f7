/* chook: a hook plugin built with the C SDK for the runtime's tests. It
 * redacts the word "secret" in content, passes other channels, and refuses a
 * config that says {"refuse":true}. */
#define ULAN_PLUGIN_MAIN
#include "../../../sdk/c/ulan_plugin.h"

static uint8_t record[1 << 16];

int32_t ulan_plugin_init(const char *config, uint32_t len) {
  if (len >= 8 && memcmp(config, "{\"refuse", 8) == 0) return ulan_error(ULAN_INVALID_ARGUMENT, "refused by config");
  ulan_log(ULAN_INFO, "chook ready");
  return ULAN_OK;
}

ULAN_EXPORT(hook_open) int64_t hook_open(const char *meta, uint32_t len) { return 1; }

ULAN_EXPORT(hook_delta) int64_t hook_delta(int64_t h, const char *text, uint32_t len,
                                            const int32_t *ids, uint32_t n, int32_t flags) {
  if (h != 1) return -(int64_t)ulan_error(ULAN_NOT_FOUND, "unknown session");
  if ((flags & 3) != ULAN_CHANNEL_CONTENT || len > sizeof record - 12)
    return ulan_hook_result(record, ULAN_HOOK_PASS, 0, 0, 0);
  char *out = (char *)record + 12;
  memcpy(out, text, len);
  for (uint32_t i = 0; i + 6 <= len; i++)
    if (memcmp(out + i, "secret", 6) == 0) memset(out + i, '*', 6);
  int32_t head[3] = {ULAN_HOOK_REDACT, 0, (int32_t)len};
  memcpy(record, head, sizeof head);
  return ulan_pack(record, 12 + len);
}

ULAN_EXPORT(hook_end) int64_t hook_end(int64_t h, int32_t finish) {
  return ulan_hook_result(record, ULAN_HOOK_PASS, 0, 0, 0);
}

ULAN_EXPORT(hook_close) void hook_close(int64_t h) {}
