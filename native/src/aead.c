/*
 * Batched ChaCha20-Poly1305 for WireGuard transport data, through the OpenSSL that Node exports.
 * Nonce = 4 zero bytes || 64-bit little-endian counter; no additional data. One encrypt and one
 * decrypt EVP_CIPHER_CTX per environment, initialised with the cipher once and re-keyed per
 * packet (only the nonce is reset when consecutive packets share a key). With aeadThreads > 1,
 * a batch of at least minBytes is cut into contiguous slices shared with worker threads
 * (aead_pool.c), each with contexts of its own; the call returns when every slice is done.
 * Where Node's OpenSSL exports the ChaCha20 and Poly1305 primitives, packets go straight
 * through them instead of EVP (aead_direct.c; same bytes, checked against EVP at load).
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "aead.h"
#include "args.h"
#include "meshd_native.h"

#define KEY_LEN 32
#define TAG_LEN 16
#define NONCE_LEN 12

/* Batches smaller than this many bytes never leave the caller's thread (aeadThreads can change it). */
#define DEFAULT_PARALLEL_MIN_BYTES (48 * 1024)
#define MAX_THREADS 64

struct meshd_instance {
  EVP_CIPHER_CTX* enc;
  EVP_CIPHER_CTX* dec;
  /* parallel sealing/opening: threads wanted (caller included; <= 1: off), the pool once started */
  int threads;
  int64_t min_bytes;
  meshd_aead_pool* pool;
  int pool_failed;
  /* the cipher primitives without EVP (NULL where unavailable), and whether they are used */
  meshd_direct_aead* direct;
  int use_direct;
  /* counters, touched by the JavaScript thread only */
  double parallel_batches, parallel_slices, parallel_packets, serial_batches;
};

int meshd_aead_ctx_pair(EVP_CIPHER_CTX** enc, EVP_CIPHER_CTX** dec) {
  *enc = EVP_CIPHER_CTX_new();
  *dec = EVP_CIPHER_CTX_new();
  if (*enc == NULL || *dec == NULL || EVP_EncryptInit_ex(*enc, EVP_chacha20_poly1305(), NULL, NULL, NULL) != 1 ||
      EVP_DecryptInit_ex(*dec, EVP_chacha20_poly1305(), NULL, NULL, NULL) != 1) {
    meshd_aead_ctx_pair_free(*enc, *dec);
    *enc = *dec = NULL;
    return 0;
  }
  return 1;
}

void meshd_aead_ctx_pair_free(EVP_CIPHER_CTX* enc, EVP_CIPHER_CTX* dec) {
  if (enc) EVP_CIPHER_CTX_free(enc);
  if (dec) EVP_CIPHER_CTX_free(dec);
}

meshd_instance* meshd_aead_instance_new(void) {
  meshd_instance* inst = (meshd_instance*)calloc(1, sizeof *inst);
  if (inst == NULL) return NULL;
  inst->threads = 1;
  inst->min_bytes = DEFAULT_PARALLEL_MIN_BYTES;
  if (!meshd_aead_ctx_pair(&inst->enc, &inst->dec)) {
    free(inst);
    return NULL;
  }
  inst->direct = meshd_direct_aead_new();
  inst->use_direct = inst->direct != NULL;
  return inst;
}

/* The environment's teardown: the workers are joined here (the addon stays mapped: -z nodelete). */
void meshd_aead_instance_free(napi_env env, void* data, void* hint) {
  meshd_instance* inst = (meshd_instance*)data;
  if (inst == NULL) return;
  meshd_aead_pool_free(inst->pool);
  meshd_direct_aead_free(inst->direct);
  meshd_aead_ctx_pair_free(inst->enc, inst->dec);
  free(inst);
}

static inline void make_nonce(uint8_t nonce[NONCE_LEN], const uint8_t* counter_le) {
  memset(nonce, 0, 4);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
  /* counters arrive as host-order u64 (BigUint64Array / Uint32Array pairs): make them LE */
  for (int b = 0; b < 8; b++) nonce[4 + b] = counter_le[7 - b];
#else
  memcpy(nonce + 4, counter_le, 8);
#endif
}

/* (buf, offsets, lengths, start, count, keys, keyIndex|null, counters, ok) */
static int read_batch_args(napi_env env, napi_callback_info info, meshd_batch_args* a, meshd_instance** inst) {
  napi_value argv[9];
  void* data = NULL;
  if (!meshd_args(env, info, 9, argv, &data)) return 0;
  size_t n_off, n_len, n_idx, n_ctr, n_ok;
  int64_t start, count;
  if (!meshd_get_bytes(env, argv[0], "buf", &a->buf, &a->buf_len) ||
      !meshd_get_u32array(env, argv[1], "offsets", &a->offsets, &n_off) ||
      !meshd_get_u32array(env, argv[2], "lengths", &a->lengths, &n_len) ||
      !meshd_get_int(env, argv[3], "start", 0, UINT32_MAX, &start) ||
      !meshd_get_int(env, argv[4], "count", 0, UINT32_MAX, &count) ||
      !meshd_get_bytes(env, argv[5], "keys", &a->keys, &a->keys_len) ||
      !meshd_get_u32array_opt(env, argv[6], "keyIndex", &a->key_index, &n_idx) ||
      !meshd_get_bytes(env, argv[7], "counters", &a->counters, &n_ctr) ||
      !meshd_get_bytes(env, argv[8], "ok", &a->ok, &n_ok))
    return 0;
  a->start = start;
  a->end = start + count;
  uint64_t end = (uint64_t)a->end;
  if (end > n_off || end > n_len || end * 8 > n_ctr || end > n_ok || (a->key_index != NULL && end > n_idx)) {
    meshd_throw_range(env, "aead: start/count outside the batch arrays");
    return 0;
  }
  if (a->keys_len < KEY_LEN) {
    meshd_throw_range(env, "aead: keys must hold at least one 32-byte key");
    return 0;
  }
  napi_get_instance_data(env, (void**)inst);
  if (*inst == NULL) {
    meshd_throw_type(env, "aead: cipher contexts unavailable");
    return 0;
  }
  a->direct = (*inst)->use_direct ? (*inst)->direct : NULL;
  return 1;
}

static inline const uint8_t* key_for(const meshd_batch_args* a, int64_t i) {
  size_t idx = a->key_index ? a->key_index[i] : 0;
  if (idx > (a->keys_len / KEY_LEN) - 1) return NULL;
  return a->keys + idx * KEY_LEN;
}

static int64_t seal_range(EVP_CIPHER_CTX* ctx, const meshd_batch_args* a, int64_t from, int64_t to) {
  const uint8_t* last_key = NULL;
  uint8_t nonce[NONCE_LEN];
  int64_t sealed = 0;
  for (int64_t i = from; i < to; i++) {
    a->ok[i] = 0;
    const uint8_t* key = key_for(a, i);
    size_t off = a->offsets[i], len = a->lengths[i];
    if (key == NULL || off > a->buf_len || len > a->buf_len - off || a->buf_len - off - len < TAG_LEN ||
        len > INT_MAX - TAG_LEN)
      continue;
    make_nonce(nonce, a->counters + 8 * i);
    if (EVP_CipherInit_ex(ctx, NULL, NULL, key == last_key ? NULL : key, nonce, 1) != 1) {
      last_key = NULL;
      continue;
    }
    last_key = key;
    uint8_t* p = a->buf + off;
    int outl = 0, finl = 0;
    if (EVP_EncryptUpdate(ctx, p, &outl, p, (int)len) != 1 || EVP_EncryptFinal_ex(ctx, p + outl, &finl) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, TAG_LEN, p + len) != 1) {
      last_key = NULL;
      continue;
    }
    a->lengths[i] = (uint32_t)(len + TAG_LEN);
    a->ok[i] = 1;
    sealed++;
  }
  return sealed;
}

static int64_t open_range(EVP_CIPHER_CTX* ctx, const meshd_batch_args* a, int64_t from, int64_t to) {
  const uint8_t* last_key = NULL;
  uint8_t nonce[NONCE_LEN];
  int64_t opened = 0;
  for (int64_t i = from; i < to; i++) {
    a->ok[i] = 0;
    const uint8_t* key = key_for(a, i);
    size_t off = a->offsets[i], len = a->lengths[i];
    if (key == NULL || off > a->buf_len || len > a->buf_len - off || len < TAG_LEN || len > INT_MAX) continue;
    make_nonce(nonce, a->counters + 8 * i);
    if (EVP_CipherInit_ex(ctx, NULL, NULL, key == last_key ? NULL : key, nonce, 0) != 1) {
      last_key = NULL;
      continue;
    }
    last_key = key;
    uint8_t* p = a->buf + off;
    size_t ct_len = len - TAG_LEN;
    int outl = 0, finl = 0;
    if (EVP_DecryptUpdate(ctx, p, &outl, p, (int)ct_len) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, TAG_LEN, p + ct_len) != 1 ||
        EVP_DecryptFinal_ex(ctx, p + outl, &finl) != 1) {
      OPENSSL_cleanse(p, ct_len);
      last_key = NULL;
      continue;
    }
    a->lengths[i] = (uint32_t)ct_len;
    a->ok[i] = 1;
    opened++;
  }
  return opened;
}

/* Packets in a group whose one-time keys are made together (meshd_poly_keys8), and the fewest
 * for which that beats making them one by one. */
#define KEY_GROUP 8
#define KEY_GROUP_MIN 3

/* Whether the loops below take packet i (the same checks as seal_range and open_range). */
static inline int direct_takes(const meshd_batch_args* a, int seal, int64_t i) {
  size_t off = a->offsets[i], len = a->lengths[i];
  if (off > a->buf_len || len > a->buf_len - off) return 0;
  if (seal) return a->buf_len - off - len >= TAG_LEN && len <= INT_MAX - TAG_LEN;
  return len >= TAG_LEN && len <= INT_MAX;
}

/* The same loops on the primitives directly: the same checks, results and bytes. Packets go in
 * groups of up to KEY_GROUP whose one-time keys are made in one pass where the CPU allows. */
static int64_t direct_range(const meshd_batch_args* a, int seal, int64_t from, int64_t to) {
  meshd_direct_scratch s;
  const int keys8 = meshd_direct_keys8(a->direct);
  int64_t done = 0;
  int64_t i = from;
  while (i < to) {
    int64_t idx[KEY_GROUP];
    const uint8_t *kp[KEY_GROUP], *cp[KEY_GROUP];
    int n = 0;
    for (; i < to && n < KEY_GROUP; i++) {
      a->ok[i] = 0;
      const uint8_t* key = key_for(a, i);
      if (key == NULL || !direct_takes(a, seal, i)) continue;
      idx[n] = i;
      kp[n] = key;
      cp[n] = a->counters + 8 * i;
      n++;
    }
    const int grouped = keys8 && n >= KEY_GROUP_MIN;
    if (grouped) {
      for (int l = n; l < KEY_GROUP; l++) { /* idle lanes repeat lane 0 */
        kp[l] = kp[0];
        cp[l] = cp[0];
      }
      meshd_poly_keys8(kp, cp, s.polykeys);
    }
    for (int l = 0; l < n; l++) {
      int64_t j = idx[l];
      uint8_t* p = a->buf + a->offsets[j];
      size_t len = a->lengths[j];
      const uint8_t* polykey = grouped ? s.polykeys[l] : NULL;
      if (seal) {
        meshd_direct_seal(a->direct, &s, kp[l], cp[l], polykey, p, len);
        a->lengths[j] = (uint32_t)(len + TAG_LEN);
      } else {
        size_t ct_len = len - TAG_LEN;
        if (!meshd_direct_open(a->direct, &s, kp[l], cp[l], polykey, p, ct_len)) {
          OPENSSL_cleanse(p, ct_len);
          continue;
        }
        a->lengths[j] = (uint32_t)ct_len;
      }
      a->ok[j] = 1;
      done++;
    }
  }
  meshd_direct_wipe(a->direct, &s);
  return done;
}

int64_t meshd_aead_range(EVP_CIPHER_CTX* ctx, int seal, const meshd_batch_args* a, int64_t from, int64_t to) {
  if (a->direct != NULL) return direct_range(a, seal, from, to);
  return seal ? seal_range(ctx, a, from, to) : open_range(ctx, a, from, to);
}

/* A packet's weight when slicing: its length, or 1 for one the loop refuses anyway. */
static inline double weight(const meshd_batch_args* a, int64_t i) {
  uint32_t len = a->lengths[i];
  return len == 0 || len > a->buf_len ? 1.0 : (double)len;
}

/*
 * Cut packets start..end-1 into at most `n` contiguous slices of about equal bytes (`total`:
 * the sum of their weights); returns the number of slices, bounds[0..slices] their edges.
 */
static int slice_batch(const meshd_batch_args* a, double total, int n, int64_t* bounds) {
  int k = 0;
  bounds[0] = a->start;
  double acc = 0;
  for (int64_t i = a->start; i < a->end && k < n - 1; i++) {
    acc += weight(a, i);
    if (acc * n >= total * (k + 1)) bounds[++k] = i + 1; /* slice k holds its share */
  }
  if (bounds[k] != a->end) bounds[++k] = a->end;
  return k;
}

/* One batch, on the caller's thread or shared with the workers when it is big enough. */
static napi_value run_batch(napi_env env, napi_callback_info info, int seal) {
  meshd_batch_args a;
  meshd_instance* inst;
  if (!read_batch_args(env, info, &a, &inst)) return NULL;
  EVP_CIPHER_CTX* ctx = seal ? inst->enc : inst->dec;
  int64_t count = a.end - a.start;
  if (inst->threads > 1 && count >= 2 && !inst->pool_failed) {
    double total = 0;
    for (int64_t i = a.start; i < a.end; i++) total += weight(&a, i);
    if (total >= (double)inst->min_bytes) {
      if (inst->pool == NULL) {
        inst->pool = meshd_aead_pool_new(inst->threads - 1);
        if (inst->pool == NULL) inst->pool_failed = 1; /* no threads: stay serial */
      }
      if (inst->pool != NULL) {
        int n = meshd_aead_pool_workers(inst->pool) + 1;
        if (n > count) n = (int)count;
        int64_t bounds[MAX_THREADS + 1];
        int slices = slice_batch(&a, total, n, bounds);
        int64_t done = meshd_aead_pool_run(inst->pool, seal, &a, bounds, slices, ctx);
        inst->parallel_batches++;
        inst->parallel_slices += slices;
        inst->parallel_packets += (double)count;
        return meshd_int(env, done);
      }
    }
  }
  inst->serial_batches++;
  return meshd_int(env, meshd_aead_range(ctx, seal, &a, a.start, a.end));
}

/*
 * aeadSeal(buf, offsets, lengths, start, count, keys, keyIndex, counters, ok): number sealed
 * Encrypts packet i in place and appends the tag: lengths[i] grows by 16, ok[i] = 1. A packet
 * without 16 bytes of room after it, or with a key index outside keys, gets ok[i] = 0.
 */
napi_value meshd_aead_seal(napi_env env, napi_callback_info info) { return run_batch(env, info, 1); }

/*
 * aeadOpen(buf, offsets, lengths, start, count, keys, keyIndex, counters, ok): number opened
 * Verifies and decrypts packet i (ciphertext || tag) in place: on success lengths[i] shrinks by
 * 16 and ok[i] = 1; on failure ok[i] = 0, lengths[i] is unchanged and the bytes are zeroed.
 */
napi_value meshd_aead_open(napi_env env, napi_callback_info info) { return run_batch(env, info, 0); }

static meshd_instance* instance_or_throw(napi_env env) {
  meshd_instance* inst = NULL;
  napi_get_instance_data(env, (void**)&inst);
  if (inst == NULL) meshd_throw_type(env, "aead: cipher contexts unavailable");
  return inst;
}

/*
 * aeadThreads(threads, minBytes): threads (the caller's included) that seal/open one batch of at
 * least minBytes; 0 or 1 turn the sharing off. Takes effect on the next batch; a running pool
 * of another size is joined here and the new one starts on first use. Returns threads.
 */
napi_value meshd_aead_threads(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int64_t threads, min_bytes;
  if (!meshd_args(env, info, 2, argv, NULL) || !meshd_get_int(env, argv[0], "threads", 0, MAX_THREADS, &threads) ||
      !meshd_get_int(env, argv[1], "minBytes", 0, INT32_MAX, &min_bytes))
    return NULL;
  meshd_instance* inst = instance_or_throw(env);
  if (inst == NULL) return NULL;
  if (inst->pool != NULL && meshd_aead_pool_workers(inst->pool) + 1 != threads) {
    meshd_aead_pool_free(inst->pool);
    inst->pool = NULL;
  }
  inst->pool_failed = 0;
  inst->threads = (int)threads;
  inst->min_bytes = min_bytes;
  return meshd_int(env, threads);
}

/* aeadUseDirect(on): use the cipher primitives without EVP (when available); returns whether they are used. */
napi_value meshd_aead_use_direct(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  bool on = false;
  if (!meshd_args(env, info, 1, argv, NULL)) return NULL;
  if (napi_get_value_bool(env, argv[0], &on) != napi_ok) {
    meshd_throw_type(env, "on must be a boolean");
    return NULL;
  }
  meshd_instance* inst = instance_or_throw(env);
  if (inst == NULL) return NULL;
  inst->use_direct = on && inst->direct != NULL;
  napi_value out;
  napi_get_boolean(env, inst->use_direct != 0, &out);
  return out;
}

static void set_number(napi_env env, napi_value obj, const char* name, double v) {
  napi_value n;
  napi_create_double(env, v, &n);
  napi_set_named_property(env, obj, name, n);
}

/* aeadStats(): { threads, workers, minBytes, parallelBatches, parallelSlices, parallelPackets, serialBatches, direct } */
napi_value meshd_aead_stats(napi_env env, napi_callback_info info) {
  meshd_instance* inst = instance_or_throw(env);
  if (inst == NULL) return NULL;
  napi_value out;
  napi_create_object(env, &out);
  set_number(env, out, "threads", inst->threads);
  set_number(env, out, "workers", meshd_aead_pool_workers(inst->pool));
  set_number(env, out, "minBytes", (double)inst->min_bytes);
  set_number(env, out, "parallelBatches", inst->parallel_batches);
  set_number(env, out, "parallelSlices", inst->parallel_slices);
  set_number(env, out, "parallelPackets", inst->parallel_packets);
  set_number(env, out, "serialBatches", inst->serial_batches);
  set_number(env, out, "direct", inst->use_direct ? 1 : 0);
  return out;
}

napi_value meshd_openssl_version(napi_env env, napi_callback_info info) {
  napi_value out;
  napi_create_string_utf8(env, OpenSSL_version(OPENSSL_VERSION), NAPI_AUTO_LENGTH, &out);
  return out;
}
