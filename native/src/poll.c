/*
 * Readiness watcher: a uv_poll_t on the Node event loop that calls a JS function (with the
 * poll status, 0 or a negative errno) whenever the fd is readable. libuv polls level-triggered,
 * so a callback that does not drain everything is simply called again on the next loop turn.
 *
 * Lifetime: the C struct is freed only once both the uv handle has closed and the JS external
 * that names it has been finalized, so neither side can touch freed memory.
 */
#include <stdlib.h>
#include <uv.h>

#include "args.h"
#include "meshd_native.h"

typedef struct meshd_poll {
  uv_poll_t handle;
  napi_env env;
  napi_ref callback;
  napi_ref resource;
  napi_async_context async;
  int stopped;         /* uv_poll_stop + uv_close issued */
  int handle_closed;   /* uv close callback ran */
  int external_gone;   /* JS external finalized */
  int in_callback;     /* inside napi_make_callback */
  int release_pending; /* JS references to drop once the callback returns */
  int hook_added;      /* env cleanup hook registered */
} meshd_poll;

static void poll_maybe_free(meshd_poll* p) {
  if (p->handle_closed && p->external_gone) free(p);
}

static void on_handle_closed(uv_handle_t* h) {
  meshd_poll* p = (meshd_poll*)h->data;
  p->handle_closed = 1;
  poll_maybe_free(p);
}

static void poll_release_js(meshd_poll* p) {
  if (p->callback != NULL) napi_delete_reference(p->env, p->callback);
  if (p->resource != NULL) napi_delete_reference(p->env, p->resource);
  if (p->async != NULL) napi_async_destroy(p->env, p->async);
  p->callback = NULL;
  p->resource = NULL;
  p->async = NULL;
}

static void on_env_cleanup(void* arg);

/* Stop watching and close the uv handle. From the env cleanup hook no N-API calls are made. */
static void poll_stop(meshd_poll* p, int from_cleanup) {
  if (p->stopped) return;
  p->stopped = 1;
  uv_poll_stop(&p->handle);
  uv_close((uv_handle_t*)&p->handle, on_handle_closed);
  if (from_cleanup) return;
  if (p->hook_added) {
    napi_remove_env_cleanup_hook(p->env, on_env_cleanup, p);
    p->hook_added = 0;
  }
  if (p->in_callback)
    p->release_pending = 1;
  else
    poll_release_js(p);
}

static void on_env_cleanup(void* arg) {
  meshd_poll* p = (meshd_poll*)arg;
  p->hook_added = 0;
  poll_stop(p, 1);
}

static void on_external_finalize(napi_env env, void* data, void* hint) {
  meshd_poll* p = (meshd_poll*)data;
  poll_stop(p, 0);
  p->external_gone = 1;
  poll_maybe_free(p);
}

static void on_poll(uv_poll_t* h, int status, int events) {
  meshd_poll* p = (meshd_poll*)h->data;
  if (p->stopped || p->callback == NULL) return;
  napi_env env = p->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value cb, resource, arg, result;
  if (napi_get_reference_value(env, p->callback, &cb) == napi_ok &&
      napi_get_reference_value(env, p->resource, &resource) == napi_ok && cb != NULL && resource != NULL) {
    napi_create_int32(env, status, &arg);
    p->in_callback = 1;
    napi_status s = napi_make_callback(env, p->async, resource, cb, 1, &arg, &result);
    p->in_callback = 0;
    if (s == napi_pending_exception) {
      napi_value exc;
      if (napi_get_and_clear_last_exception(env, &exc) == napi_ok) napi_fatal_exception(env, exc);
    }
    if (p->release_pending) {
      p->release_pending = 0;
      poll_release_js(p);
    }
  }
  napi_close_handle_scope(env, scope);
}

/* pollStart(fd: number, onReadable: (status: number) => void): external */
napi_value meshd_poll_start(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (!meshd_args(env, info, 2, argv, NULL)) return NULL;
  int64_t fd;
  if (!meshd_get_int(env, argv[0], "fd", 0, 0x7fffffff, &fd)) return NULL;
  napi_valuetype t;
  if (napi_typeof(env, argv[1], &t) != napi_ok || t != napi_function) {
    meshd_throw_type(env, "onReadable must be a function");
    return NULL;
  }
  uv_loop_t* loop;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok) {
    meshd_throw_type(env, "no event loop");
    return NULL;
  }
  meshd_poll* p = (meshd_poll*)calloc(1, sizeof *p);
  if (p == NULL) {
    meshd_throw_errno(env, "calloc", 12);
    return NULL;
  }
  p->env = env;
  int rc = uv_poll_init(loop, &p->handle, (int)fd);
  if (rc != 0) {
    free(p);
    meshd_throw_errno(env, "uv_poll_init", -rc);
    return NULL;
  }
  p->handle.data = p;
  napi_value resource, name, external;
  napi_create_object(env, &resource);
  napi_create_string_utf8(env, "meshd:poll", NAPI_AUTO_LENGTH, &name);
  if (napi_create_reference(env, argv[1], 1, &p->callback) != napi_ok ||
      napi_create_reference(env, resource, 1, &p->resource) != napi_ok ||
      napi_async_init(env, resource, name, &p->async) != napi_ok) {
    poll_release_js(p);
    p->stopped = 1;
    p->external_gone = 1;
    uv_close((uv_handle_t*)&p->handle, on_handle_closed);
    meshd_throw_type(env, "cannot set up the poll callback");
    return NULL;
  }
  rc = uv_poll_start(&p->handle, UV_READABLE, on_poll);
  if (rc != 0) {
    poll_release_js(p);
    p->stopped = 1;
    p->external_gone = 1;
    uv_close((uv_handle_t*)&p->handle, on_handle_closed);
    meshd_throw_errno(env, "uv_poll_start", -rc);
    return NULL;
  }
  if (napi_add_env_cleanup_hook(env, on_env_cleanup, p) == napi_ok) p->hook_added = 1;
  if (napi_create_external(env, p, on_external_finalize, NULL, &external) != napi_ok) {
    poll_stop(p, 0);
    p->external_gone = 1;
    meshd_throw_type(env, "cannot create the poll handle");
    return NULL;
  }
  return external;
}

static meshd_poll* get_poll(napi_env env, napi_value v) {
  void* data = NULL;
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_external || napi_get_value_external(env, v, &data) != napi_ok ||
      data == NULL) {
    meshd_throw_type(env, "poll handle must come from pollStart");
    return NULL;
  }
  return (meshd_poll*)data;
}

/* pollStop(handle): stops watching; idempotent. */
napi_value meshd_poll_stop(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (!meshd_args(env, info, 1, argv, NULL)) return NULL;
  meshd_poll* p = get_poll(env, argv[0]);
  if (p == NULL) return NULL;
  poll_stop(p, 0);
  return meshd_undefined(env);
}

/* pollRef(handle, keepAlive: boolean): whether the watcher keeps the process alive. */
napi_value meshd_poll_ref(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (!meshd_args(env, info, 2, argv, NULL)) return NULL;
  meshd_poll* p = get_poll(env, argv[0]);
  if (p == NULL) return NULL;
  bool keep = true;
  napi_get_value_bool(env, argv[1], &keep);
  if (!p->stopped) {
    if (keep)
      uv_ref((uv_handle_t*)&p->handle);
    else
      uv_unref((uv_handle_t*)&p->handle);
  }
  return meshd_undefined(env);
}
