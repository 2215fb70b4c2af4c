#include "args.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <uv.h>

int meshd_args(napi_env env, napi_callback_info info, size_t want, napi_value* argv, void** data) {
  size_t argc = want;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, data) != napi_ok) {
    meshd_throw_type(env, "cannot read arguments");
    return 0;
  }
  if (argc < want) {
    napi_value undef;
    napi_get_undefined(env, &undef);
    for (size_t i = argc; i < want; i++) argv[i] = undef;
  }
  return 1;
}

static size_t element_size(napi_typedarray_type t) {
  switch (t) {
    case napi_int8_array:
    case napi_uint8_array:
    case napi_uint8_clamped_array:
      return 1;
    case napi_int16_array:
    case napi_uint16_array:
      return 2;
    case napi_int32_array:
    case napi_uint32_array:
    case napi_float32_array:
      return 4;
    case napi_float64_array:
    case napi_bigint64_array:
    case napi_biguint64_array:
      return 8;
  }
  return 1;
}

static void throw_arg(napi_env env, const char* name, const char* what) {
  char msg[160];
  snprintf(msg, sizeof msg, "%s must be %s", name, what);
  meshd_throw_type(env, msg);
}

int meshd_get_bytes(napi_env env, napi_value v, const char* name, uint8_t** data, size_t* len) {
  bool is = false;
  if (napi_is_typedarray(env, v, &is) == napi_ok && is) {
    napi_typedarray_type type;
    size_t length;
    void* ptr;
    napi_value ab;
    size_t byte_offset;
    if (napi_get_typedarray_info(env, v, &type, &length, &ptr, &ab, &byte_offset) != napi_ok) {
      throw_arg(env, name, "a readable TypedArray");
      return 0;
    }
    *data = (uint8_t*)ptr;
    *len = length * element_size(type);
    return 1;
  }
  if (napi_is_dataview(env, v, &is) == napi_ok && is) {
    size_t length;
    void* ptr;
    napi_value ab;
    size_t byte_offset;
    if (napi_get_dataview_info(env, v, &length, &ptr, &ab, &byte_offset) != napi_ok) {
      throw_arg(env, name, "a readable DataView");
      return 0;
    }
    *data = (uint8_t*)ptr;
    *len = length;
    return 1;
  }
  throw_arg(env, name, "a TypedArray, Buffer or DataView");
  return 0;
}

static int is_nullish(napi_env env, napi_value v) {
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok) return 0;
  return t == napi_null || t == napi_undefined;
}

int meshd_get_bytes_opt(napi_env env, napi_value v, const char* name, uint8_t** data, size_t* len) {
  if (is_nullish(env, v)) {
    *data = NULL;
    *len = 0;
    return 1;
  }
  return meshd_get_bytes(env, v, name, data, len);
}

static int get_typed(napi_env env, napi_value v, const char* name, napi_typedarray_type want, const char* what,
                     void** data, size_t* count) {
  bool is = false;
  if (napi_is_typedarray(env, v, &is) != napi_ok || !is) {
    throw_arg(env, name, what);
    return 0;
  }
  napi_typedarray_type type;
  napi_value ab;
  size_t byte_offset;
  if (napi_get_typedarray_info(env, v, &type, count, data, &ab, &byte_offset) != napi_ok || type != want) {
    throw_arg(env, name, what);
    return 0;
  }
  return 1;
}

int meshd_get_u32array(napi_env env, napi_value v, const char* name, uint32_t** data, size_t* count) {
  return get_typed(env, v, name, napi_uint32_array, "a Uint32Array", (void**)data, count);
}

int meshd_get_u32array_opt(napi_env env, napi_value v, const char* name, uint32_t** data, size_t* count) {
  if (is_nullish(env, v)) {
    *data = NULL;
    *count = 0;
    return 1;
  }
  return meshd_get_u32array(env, v, name, data, count);
}

int meshd_get_i32array(napi_env env, napi_value v, const char* name, int32_t** data, size_t* count) {
  return get_typed(env, v, name, napi_int32_array, "an Int32Array", (void**)data, count);
}

int meshd_get_int(napi_env env, napi_value v, const char* name, int64_t min, int64_t max, int64_t* out) {
  double d;
  if (napi_get_value_double(env, v, &d) != napi_ok) {
    throw_arg(env, name, "a number");
    return 0;
  }
  if (!(d >= (double)min && d <= (double)max) || d != (double)(int64_t)d) {
    char msg[160];
    snprintf(msg, sizeof msg, "%s must be an integer in [%lld, %lld]", name, (long long)min, (long long)max);
    meshd_throw_range(env, msg);
    return 0;
  }
  *out = (int64_t)d;
  return 1;
}

void meshd_throw_errno(napi_env env, const char* syscall, int err) {
  const char* code = uv_err_name(-err);
  char msg[256];
  snprintf(msg, sizeof msg, "%s failed: %s (%s)", syscall, strerror(err), code);
  napi_value message, error, v;
  napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &message);
  napi_create_error(env, NULL, message, &error);
  napi_create_string_utf8(env, code, NAPI_AUTO_LENGTH, &v);
  napi_set_named_property(env, error, "code", v);
  napi_create_int32(env, -err, &v);
  napi_set_named_property(env, error, "errno", v);
  napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &v);
  napi_set_named_property(env, error, "syscall", v);
  napi_throw(env, error);
}

void meshd_throw_range(napi_env env, const char* msg) { napi_throw_range_error(env, "ERR_OUT_OF_RANGE", msg); }

void meshd_throw_type(napi_env env, const char* msg) { napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", msg); }

napi_value meshd_int(napi_env env, int64_t v) {
  napi_value out;
  napi_create_int64(env, v, &out);
  return out;
}

napi_value meshd_undefined(napi_env env) {
  napi_value out;
  napi_get_undefined(env, &out);
  return out;
}

int meshd_check_packet_ranges(napi_env env, const char* fn, size_t buf_len, const uint32_t* offsets, const uint32_t* lengths,
                              int64_t start, int64_t end) {
  for (int64_t i = start; i < end; i++) {
    if ((uint64_t)offsets[i] + lengths[i] > buf_len) {
      char msg[96];
      snprintf(msg, sizeof msg, "%s: a packet lies outside the buffer", fn);
      meshd_throw_range(env, msg);
      return 0;
    }
  }
  return 1;
}

int meshd_parse_write_args(napi_env env, napi_callback_info info, const char* fn, size_t min_result, meshd_write_args* out) {
  napi_value argv[7];
  if (!meshd_args(env, info, 7, argv, NULL)) return 0;
  int64_t fd, start, count;
  size_t buf_len, n_off, n_len, n_res;
  if (!meshd_get_int(env, argv[0], "fd", 0, INT_MAX, &fd) || !meshd_get_bytes(env, argv[1], "buf", &out->buf, &buf_len) ||
      !meshd_get_u32array(env, argv[2], "offsets", &out->offsets, &n_off) ||
      !meshd_get_u32array(env, argv[3], "lengths", &out->lengths, &n_len) ||
      !meshd_get_int(env, argv[4], "start", 0, UINT32_MAX, &start) ||
      !meshd_get_int(env, argv[5], "count", 0, UINT32_MAX, &count) ||
      !meshd_get_i32array(env, argv[6], "result", &out->result, &n_res))
    return 0;
  int64_t end = start + count;
  if ((uint64_t)end > n_off || (uint64_t)end > n_len || n_res < min_result) {
    char msg[96];
    snprintf(msg, sizeof msg, "%s: start/count outside the batch", fn);
    meshd_throw_range(env, msg);
    return 0;
  }
  if (!meshd_check_packet_ranges(env, fn, buf_len, out->offsets, out->lengths, start, end)) return 0;
  out->fd = (int)fd;
  out->start = start;
  out->end = end;
  return 1;
}
