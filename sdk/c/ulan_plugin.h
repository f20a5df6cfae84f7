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
  if (len > 0) memcpy(buf + 12, emit, len);
  return ulan_pack(buf, 12 + len);
}

#ifdef ULAN_PLUGIN_MAIN
int32_t ulan_plugin_init(const char *config, uint32_t len);

ULAN_EXPORT(ulan_abi_1) void ulan_abi_1(void) {}

ULAN_EXPORT(ulan_alloc) void *ulan_alloc(uint32_t size) { return malloc(size ? size : 1); }

ULAN_EXPORT(ulan_free) void ulan_free(void *ptr) { free(ptr); }

ULAN_EXPORT(ulan_init) int32_t ulan_init(const char *config, uint32_t len) {
  return ulan_plugin_init(config, len);
}
#endif /* ULAN_PLUGIN_MAIN */

#endif /* ULAN_PLUGIN_H */
