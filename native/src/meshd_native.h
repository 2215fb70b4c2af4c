/*
 * meshd native addon: batched syscalls (TUN read/write, UDP recvmmsg/sendmmsg), a readiness
 * watcher on the Node event loop, and batched ChaCha20-Poly1305 through the OpenSSL that Node
 * exports. No protocol logic lives here.
 */
#ifndef MESHD_NATIVE_H
#define MESHD_NATIVE_H

#include <node_api.h>

/* Bumped whenever an exported function's signature changes; the TypeScript loader checks it. */
#define MESHD_ABI_VERSION 1

/* Per-environment state: the reusable cipher contexts, the AEAD worker pool and its counters. */
typedef struct meshd_instance meshd_instance;

meshd_instance* meshd_aead_instance_new(void);
void meshd_aead_instance_free(napi_env env, void* data, void* hint);

napi_value meshd_tun_open(napi_env env, napi_callback_info info);
napi_value meshd_fd_read(napi_env env, napi_callback_info info);
napi_value meshd_fd_write(napi_env env, napi_callback_info info);
napi_value meshd_fd_close(napi_env env, napi_callback_info info);

napi_value meshd_poll_start(napi_env env, napi_callback_info info);
napi_value meshd_poll_stop(napi_env env, napi_callback_info info);
napi_value meshd_poll_ref(napi_env env, napi_callback_info info);

napi_value meshd_udp_open(napi_env env, napi_callback_info info);
napi_value meshd_udp_local_address(napi_env env, napi_callback_info info);
napi_value meshd_udp_recv(napi_env env, napi_callback_info info);
napi_value meshd_udp_send(napi_env env, napi_callback_info info);
napi_value meshd_udp_set_mark(napi_env env, napi_callback_info info);

napi_value meshd_udp_offload(napi_env env, napi_callback_info info);
napi_value meshd_udp_send_gso(napi_env env, napi_callback_info info);
napi_value meshd_udp_recv_gro(napi_env env, napi_callback_info info);
napi_value meshd_udp_gro_scratch_size(napi_env env, napi_callback_info info);

napi_value meshd_tun_read_vnet(napi_env env, napi_callback_info info);
napi_value meshd_tun_write_vnet(napi_env env, napi_callback_info info);
napi_value meshd_tun_vnet_scratch_size(napi_env env, napi_callback_info info);
napi_value meshd_vnet_split(napi_env env, napi_callback_info info);
napi_value meshd_vnet_coalesce(napi_env env, napi_callback_info info);

napi_value meshd_aead_seal(napi_env env, napi_callback_info info);
napi_value meshd_aead_open(napi_env env, napi_callback_info info);
napi_value meshd_aead_threads(napi_env env, napi_callback_info info);
napi_value meshd_aead_stats(napi_env env, napi_callback_info info);
napi_value meshd_aead_use_direct(napi_env env, napi_callback_info info);
napi_value meshd_openssl_version(napi_env env, napi_callback_info info);

napi_value meshd_malloc_trim(napi_env env, napi_callback_info info);

#endif
