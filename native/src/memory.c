/*
 * mallocTrim(): hands the C heap's free pages back to the kernel (glibc malloc_trim(0)), for a
 * long-running process whose start-up and record reads leave freed memory scattered through the
 * heap that free() alone keeps resident. Returns true when memory was released; false when
 * nothing was, or on a C library without it.
 */
#include <stdbool.h>
#include <stdlib.h> /* defines __GLIBC__ on glibc */
#if defined(__GLIBC__)
#include <malloc.h>
#endif
#include "meshd_native.h"

napi_value meshd_malloc_trim(napi_env env, napi_callback_info info) {
  bool released = false;
#if defined(__GLIBC__)
  released = malloc_trim(0) != 0;
#endif
  napi_value out;
  napi_get_boolean(env, released, &out);
  return out;
}
