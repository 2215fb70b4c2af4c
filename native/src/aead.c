/*
 * Batched ChaCha20-Poly1305 for WireGuard transport data, through the OpenSSL that Node exports.
 * Nonce = 4 zero bytes || 64-bit little-endian counter; no additional data. One encrypt and one
 * decrypt EVP_CIPHER_CTX per environment, initialised with the cipher once and re-keyed per
 * packet (only the nonce is reset when consecutive packets share a key).
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "args.h"
#include "meshd_native.h"

#define KEY_LEN 32
#define TAG_LEN 16
#define NONCE_LEN 12

struct meshd_instance {
  EVP_CIPHER_CTX* enc;
  EVP_CIPHER_CTX* dec;
};

meshd_instance* meshd_aead_instance_new(void) {
  meshd_instance* inst = (meshd_instance*)calloc(1, sizeof *inst);
  if (inst == NULL) return NULL;
  inst->enc = EVP_CIPHER_CTX_new();
  inst->dec = EVP_CIPHER_CTX_new();
  if (inst->enc == NULL || inst->dec == NULL ||
      EVP_EncryptInit_ex(inst->enc, EVP_chacha20_poly1305(), NULL, NULL, NULL) != 1 ||
      EVP_DecryptInit_ex(inst->dec, EVP_chacha20_poly1305(), NULL, NULL, NULL) != 1) {
    meshd_aead_instance_free(NULL, inst, NULL);
    return NULL;
  }
  return inst;
}

void meshd_aead_instance_free(napi_env env, void* data, void* hint) {
  meshd_instance* inst = (meshd_instance*)data;
  if (inst == NULL) return;
  if (inst->enc) EVP_CIPHER_CTX_free(inst->enc);
  if (inst->dec) EVP_CIPHER_CTX_free(inst->dec);
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

typedef struct {
  uint8_t* buf;
  size_t buf_len;
  uint32_t* offsets;
  uint32_t* lengths;
  int64_t start, end;
  uint8_t* keys;
  size_t keys_len;
  uint32_t* key_index; /* NULL: key 0 for every packet */
  uint8_t* counters;
  uint8_t* ok;
} batch_args;

/* (buf, offsets, lengths, start, count, keys, keyIndex|null, counters, ok) */
static int read_batch_args(napi_env env, napi_callback_info info, batch_args* a, meshd_instance** inst) {
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
  return 1;
}

static inline const uint8_t* key_for(const batch_args* a, int64_t i) {
  size_t idx = a->key_index ? a->key_index[i] : 0;
  if (idx > (a->keys_len / KEY_LEN) - 1) return NULL;
  return a->keys + idx * KEY_LEN;
}

/*
 * aeadSeal(buf, offsets, lengths, start, count, keys, keyIndex, counters, ok): number sealed
 * Encrypts packet i in place and appends the tag: lengths[i] grows by 16, ok[i] = 1. A packet
 * without 16 bytes of room after it, or with a key index outside keys, gets ok[i] = 0.
 */
napi_value meshd_aead_seal(napi_env env, napi_callback_info info) {
  batch_args a;
  meshd_instance* inst;
  if (!read_batch_args(env, info, &a, &inst)) return NULL;
  EVP_CIPHER_CTX* ctx = inst->enc;
  const uint8_t* last_key = NULL;
  uint8_t nonce[NONCE_LEN];
  int64_t sealed = 0;
  for (int64_t i = a.start; i < a.end; i++) {
    a.ok[i] = 0;
    const uint8_t* key = key_for(&a, i);
    size_t off = a.offsets[i], len = a.lengths[i];
    if (key == NULL || off > a.buf_len || len > a.buf_len - off || a.buf_len - off - len < TAG_LEN ||
        len > INT_MAX - TAG_LEN)
      continue;
    make_nonce(nonce, a.counters + 8 * i);
    if (EVP_CipherInit_ex(ctx, NULL, NULL, key == last_key ? NULL : key, nonce, 1) != 1) {
      last_key = NULL;
      continue;
    }
    last_key = key;
    uint8_t* p = a.buf + off;
    int outl = 0, finl = 0;
    if (EVP_EncryptUpdate(ctx, p, &outl, p, (int)len) != 1 || EVP_EncryptFinal_ex(ctx, p + outl, &finl) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, TAG_LEN, p + len) != 1) {
      last_key = NULL;
      continue;
    }
    a.lengths[i] = (uint32_t)(len + TAG_LEN);
    a.ok[i] = 1;
    sealed++;
  }
  return meshd_int(env, sealed);
}

/*
 * aeadOpen(buf, offsets, lengths, start, count, keys, keyIndex, counters, ok): number opened
 * Verifies and decrypts packet i (ciphertext || tag) in place: on success lengths[i] shrinks by
 * 16 and ok[i] = 1; on failure ok[i] = 0, lengths[i] is unchanged and the bytes are zeroed.
 */
napi_value meshd_aead_open(napi_env env, napi_callback_info info) {
  batch_args a;
  meshd_instance* inst;
  if (!read_batch_args(env, info, &a, &inst)) return NULL;
  EVP_CIPHER_CTX* ctx = inst->dec;
  const uint8_t* last_key = NULL;
  uint8_t nonce[NONCE_LEN];
  int64_t opened = 0;
  for (int64_t i = a.start; i < a.end; i++) {
    a.ok[i] = 0;
    const uint8_t* key = key_for(&a, i);
    size_t off = a.offsets[i], len = a.lengths[i];
    if (key == NULL || off > a.buf_len || len > a.buf_len - off || len < TAG_LEN || len > INT_MAX) continue;
    make_nonce(nonce, a.counters + 8 * i);
    if (EVP_CipherInit_ex(ctx, NULL, NULL, key == last_key ? NULL : key, nonce, 0) != 1) {
      last_key = NULL;
      continue;
    }
    last_key = key;
    uint8_t* p = a.buf + off;
    size_t ct_len = len - TAG_LEN;
    int outl = 0, finl = 0;
    if (EVP_DecryptUpdate(ctx, p, &outl, p, (int)ct_len) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, TAG_LEN, p + ct_len) != 1 ||
        EVP_DecryptFinal_ex(ctx, p + outl, &finl) != 1) {
      OPENSSL_cleanse(p, ct_len);
      last_key = NULL;
      continue;
    }
    a.lengths[i] = (uint32_t)ct_len;
    a.ok[i] = 1;
    opened++;
  }
  return meshd_int(env, opened);
}

napi_value meshd_openssl_version(napi_env env, napi_callback_info info) {
  napi_value out;
  napi_create_string_utf8(env, OpenSSL_version(OPENSSL_VERSION), NAPI_AUTO_LENGTH, &out);
  return out;
}
