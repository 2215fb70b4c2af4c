/*
 * ChaCha20-Poly1305 (RFC 8439, as WireGuard uses it: no additional data) straight on the
 * ChaCha20 and Poly1305 primitives of the OpenSSL inside Node, skipping the EVP layer whose
 * per-packet re-initialisation (parameter lookups by name) costs about as much as sealing a
 * few hundred bytes. The primitives are looked up by name at load; when any is missing (a Node
 * linked to a shared OpenSSL that hides them) or the self-test against EVP fails, the EVP path
 * stays in use. Little-endian hosts only (the key and counter words are loaded as they lie).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "aead.h"

#define TAG_LEN 16

typedef void (*chacha_fn)(unsigned char* out, const unsigned char* in, size_t len, const unsigned int key[8], const unsigned int ctr[4]);
typedef size_t (*poly_size_fn)(void);
typedef void (*poly_init_fn)(void* ctx, const unsigned char key[32]);
typedef void (*poly_update_fn)(void* ctx, const unsigned char* in, size_t len);
typedef void (*poly_final_fn)(void* ctx, unsigned char mac[16]);

struct meshd_direct_aead {
  chacha_fn chacha;
  poly_init_fn init;
  poly_update_fn update;
  poly_final_fn final;
  size_t poly_size; /* bytes of the Poly1305 context in use (wiped after each range) */
  int keys8;        /* one-time keys 8 at a time (meshd_poly_keys8) */
};

int meshd_direct_keys8(const meshd_direct_aead* d) { return d->keys8; }

static const unsigned char ZEROS[16];

/* The one-time Poly1305 key (block 0) for this key and counter, unless given; ctr is left at block 1. */
static void setup(const meshd_direct_aead* d, meshd_direct_scratch* s, unsigned int ctr[4], const uint8_t* key, const uint8_t* counter_le,
                  const uint8_t* polykey) {
  memcpy(s->k, key, 32);
  ctr[0] = 0;
  ctr[1] = 0;
  memcpy(&ctr[2], counter_le, 8);
  if (polykey == NULL) {
    memset(s->block, 0, 64);
    d->chacha(s->block, s->block, 64, s->k, ctr);
    polykey = s->block;
  }
  ctr[0] = 1;
  d->init(s->poly, polykey);
}

void meshd_direct_wipe(const meshd_direct_aead* d, meshd_direct_scratch* s) {
  OPENSSL_cleanse(s->poly, d->poly_size);
  OPENSSL_cleanse(s->block, sizeof s->block);
  OPENSSL_cleanse(s->k, sizeof s->k);
  OPENSSL_cleanse(s->polykeys, sizeof s->polykeys);
}

/* MAC over ct: ct, zero padding to 16, then le64(0) (no AAD) || le64(len). */
static void mac(const meshd_direct_aead* d, meshd_direct_scratch* s, const uint8_t* ct, size_t len, uint8_t tag[TAG_LEN]) {
  d->update(s->poly, ct, len);
  if (len % 16) d->update(s->poly, ZEROS, 16 - len % 16);
  uint8_t lens[16] = {0};
  uint64_t l = (uint64_t)len;
  memcpy(lens + 8, &l, 8);
  d->update(s->poly, lens, 16);
  d->final(s->poly, tag);
}

void meshd_direct_seal(const meshd_direct_aead* d, meshd_direct_scratch* s, const uint8_t* key, const uint8_t* counter_le,
                       const uint8_t* polykey, uint8_t* p, size_t len) {
  unsigned int ctr[4];
  setup(d, s, ctr, key, counter_le, polykey);
  d->chacha(p, p, len, s->k, ctr);
  mac(d, s, p, len, p + len);
}

int meshd_direct_open(const meshd_direct_aead* d, meshd_direct_scratch* s, const uint8_t* key, const uint8_t* counter_le,
                      const uint8_t* polykey, uint8_t* p, size_t ct_len) {
  unsigned int ctr[4];
  uint8_t tag[TAG_LEN];
  setup(d, s, ctr, key, counter_le, polykey);
  mac(d, s, p, ct_len, tag);
  int ok = CRYPTO_memcmp(tag, p + ct_len, TAG_LEN) == 0;
  if (ok) d->chacha(p, p, ct_len, s->k, ctr);
  return ok;
}

/* Seal and open a few packets both ways; 1 when the direct path gives EVP's bytes. */
static int self_test(const meshd_direct_aead* d) {
  EVP_CIPHER_CTX *enc, *dec;
  if (!meshd_aead_ctx_pair(&enc, &dec)) return 0;
  static const size_t SIZES[] = {0, 1, 15, 16, 63, 64, 65, 200, 511, 512, 513, 1420};
  uint8_t key[32], ctr[8], a[1420 + TAG_LEN], b[1420 + TAG_LEN];
  meshd_direct_scratch sc;
  int ok = 1;
  for (size_t t = 0; t < sizeof SIZES / sizeof SIZES[0] && ok; t++) {
    size_t n = SIZES[t];
    for (int i = 0; i < 32; i++) key[i] = (uint8_t)(i * 7 + t);
    for (int i = 0; i < 8; i++) ctr[i] = (uint8_t)(0xf0 + i + t);
    for (size_t i = 0; i < n; i++) a[i] = b[i] = (uint8_t)(i * 13 + t);
    uint32_t offsets[1] = {0}, lengths[1] = {(uint32_t)n};
    uint8_t okb[1];
    meshd_batch_args args = {a, sizeof a, offsets, lengths, 0, 1, key, 32, NULL, ctr, okb, NULL};
    if (meshd_aead_range(enc, 1, &args, 0, 1) != 1) ok = 0;
    meshd_direct_seal(d, &sc, key, ctr, NULL, b, n);
    if (ok && memcmp(a, b, n + TAG_LEN) != 0) ok = 0;
    if (ok && !meshd_direct_open(d, &sc, key, ctr, NULL, b, n)) ok = 0;
    /* b is plaintext again, and so is a once EVP opens it */
    if (ok && (meshd_aead_range(dec, 0, &args, 0, 1) != 1 || memcmp(a, b, n) != 0)) ok = 0;
    for (size_t i = 0; i < n && ok; i++)
      if (b[i] != (uint8_t)(i * 13 + t)) ok = 0;
    /* a flipped tag bit must fail */
    meshd_direct_seal(d, &sc, key, ctr, NULL, b, n);
    b[n] ^= 1;
    if (ok && meshd_direct_open(d, &sc, key, ctr, NULL, b, n)) ok = 0;
  }
  meshd_direct_wipe(d, &sc);
  meshd_aead_ctx_pair_free(enc, dec);
  return ok;
}

/* 1 when meshd_poly_keys8 gives ChaCha20's block 0 for eight different keys and counters. */
static int keys8_test(const meshd_direct_aead* d) {
  uint8_t keys[8][32], counters[8][8], got[8][32], block[64];
  const uint8_t *kp[8], *cp[8];
  unsigned int k[8], ctr[4];
  int ok = 1;
  for (int round = 0; round < 3 && ok; round++) {
    for (int l = 0; l < 8; l++) {
      for (int i = 0; i < 32; i++) keys[l][i] = (uint8_t)(l * 31 + i * 7 + round * 101);
      for (int i = 0; i < 8; i++) counters[l][i] = (uint8_t)(round == 2 ? 0xff : l * 13 + i * 3 + round);
      kp[l] = keys[l];
      cp[l] = counters[l];
    }
    meshd_poly_keys8(kp, cp, got);
    for (int l = 0; l < 8 && ok; l++) {
      memcpy(k, keys[l], 32);
      ctr[0] = 0;
      ctr[1] = 0;
      memcpy(&ctr[2], counters[l], 8);
      memset(block, 0, 64);
      d->chacha(block, block, 64, k, ctr);
      if (memcmp(block, got[l], 32) != 0) ok = 0;
    }
  }
  return ok;
}

meshd_direct_aead* meshd_direct_aead_new(void) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  meshd_direct_aead* out = (meshd_direct_aead*)calloc(1, sizeof *out);
  if (out == NULL) return NULL;
  poly_size_fn size = (poly_size_fn)dlsym(RTLD_DEFAULT, "Poly1305_ctx_size");
  out->chacha = (chacha_fn)dlsym(RTLD_DEFAULT, "ChaCha20_ctr32");
  out->init = (poly_init_fn)dlsym(RTLD_DEFAULT, "Poly1305_Init");
  out->update = (poly_update_fn)dlsym(RTLD_DEFAULT, "Poly1305_Update");
  out->final = (poly_final_fn)dlsym(RTLD_DEFAULT, "Poly1305_Final");
  if (size == NULL || out->chacha == NULL || out->init == NULL || out->update == NULL || out->final == NULL ||
      (out->poly_size = size()) > MESHD_POLY_CTX_MAX || !self_test(out)) {
    free(out);
    return NULL;
  }
  out->keys8 = meshd_poly_keys8_available() && keys8_test(out);
  return out;
#else
  return NULL;
#endif
}

void meshd_direct_aead_free(meshd_direct_aead* d) { free(d); }
