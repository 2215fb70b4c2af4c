/* Argument checking shared by every exported function. Each getter returns 1 on success, or
 * throws a JS TypeError/RangeError and returns 0 (the caller then returns NULL). */
#ifndef MESHD_ARGS_H
#define MESHD_ARGS_H

#include <node_api.h>
#include <stddef.h>
#include <stdint.h>

#define MESHD_MAX_ARGS 12

/* Fetch exactly `want` arguments into argv (missing ones are undefined). */
int meshd_args(napi_env env, napi_callback_info info, size_t want, napi_value* argv, void** data);

/* Any TypedArray (Buffer included) or DataView: pointer to its first byte and its byte length. */
int meshd_get_bytes(napi_env env, napi_value v, const char* name, uint8_t** data, size_t* len);
/* Same, but null/undefined give data = NULL, len = 0. */
int meshd_get_bytes_opt(napi_env env, napi_value v, const char* name, uint8_t** data, size_t* len);
int meshd_get_u32array(napi_env env, napi_value v, const char* name, uint32_t** data, size_t* count);
int meshd_get_u32array_opt(napi_env env, napi_value v, const char* name, uint32_t** data, size_t* count);
int meshd_get_i32array(napi_env env, napi_value v, const char* name, int32_t** data, size_t* count);
int meshd_get_int(napi_env env, napi_value v, const char* name, int64_t min, int64_t max, int64_t* out);

/* Packets start..end-1 (offsets[i], lengths[i]) all inside a buffer of buf_len bytes; otherwise
 * throws a RangeError "<fn>: a packet lies outside the buffer" and returns 0. */
int meshd_check_packet_ranges(napi_env env, const char* fn, size_t buf_len, const uint32_t* offsets, const uint32_t* lengths,
                              int64_t start, int64_t end);

/* The arguments of the batched fd writes, fdWrite and tunWriteVnet: (fd, buf, offsets, lengths,
 * start, count, result), checked: start..start+count inside the batch, every packet inside the
 * buffer, result at least `min_result` long. Returns 0 with a JS exception pending otherwise. */
typedef struct {
  int fd;
  uint8_t* buf;
  uint32_t *offsets, *lengths;
  int64_t start, end;
  int32_t* result;
} meshd_write_args;
int meshd_parse_write_args(napi_env env, napi_callback_info info, const char* fn, size_t min_result, meshd_write_args* out);

/* Throw an Error shaped like Node's system errors: message, code ('EBUSY'), errno (negative), syscall. */
void meshd_throw_errno(napi_env env, const char* syscall, int err);
void meshd_throw_range(napi_env env, const char* msg);
void meshd_throw_type(napi_env env, const char* msg);

napi_value meshd_int(napi_env env, int64_t v);
napi_value meshd_undefined(napi_env env);

#endif
