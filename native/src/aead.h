/*
 * The batched ChaCha20-Poly1305 shared by the serial path (aead.c) and the worker pool
 * (aead_pool.c): one batch's checked arguments, and the loop that seals or opens a contiguous
 * range of its packets with one cipher context.
 */
#ifndef MESHD_AEAD_H
#define MESHD_AEAD_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

/* ChaCha20-Poly1305 on the cipher primitives directly (aead_direct.c), when Node's OpenSSL exports them. */
typedef struct meshd_direct_aead meshd_direct_aead;

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
  const meshd_direct_aead* direct; /* NULL: through EVP */
} meshd_batch_args;

/* Seal (seal = 1) or open packets from..to-1 of the batch with a->direct, else `ctx` (initialised
 * with EVP_chacha20_poly1305 for that direction); returns how many succeeded. Touches only those
 * packets' bytes and their lengths[i], ok[i]: disjoint ranges may run on different threads. */
int64_t meshd_aead_range(EVP_CIPHER_CTX* ctx, int seal, const meshd_batch_args* a, int64_t from, int64_t to);

/* The primitives looked up and checked against EVP; NULL when they are missing or differ. */
meshd_direct_aead* meshd_direct_aead_new(void);
void meshd_direct_aead_free(meshd_direct_aead* d);
/* Per-thread working memory of the direct path: key words, the one-time key block, the Poly1305
 * context. Reused across a range's packets and wiped once at its end (meshd_direct_wipe). */
#define MESHD_POLY_CTX_MAX 1024
typedef struct {
  _Alignas(64) unsigned char poly[MESHD_POLY_CTX_MAX];
  _Alignas(64) unsigned char block[64];
  unsigned int k[8];
  /* one-time Poly1305 keys of up to 8 packets, made together (meshd_poly_keys8) */
  _Alignas(64) uint8_t polykeys[8][32];
} meshd_direct_scratch;
/* Seal p[0..len) in place, tag to p[len..len+16); open ct || tag in place: 1, or 0 (bytes unchanged).
 * polykey: the packet's one-time Poly1305 key when already made (meshd_poly_keys8), else NULL. */
void meshd_direct_seal(const meshd_direct_aead* d, meshd_direct_scratch* s, const uint8_t* key, const uint8_t* counter_le,
                       const uint8_t* polykey, uint8_t* p, size_t len);
int meshd_direct_open(const meshd_direct_aead* d, meshd_direct_scratch* s, const uint8_t* key, const uint8_t* counter_le,
                      const uint8_t* polykey, uint8_t* p, size_t ct_len);
void meshd_direct_wipe(const meshd_direct_aead* d, meshd_direct_scratch* s);
/* Whether d makes one-time keys 8 packets at a time (the CPU can, and it gave OpenSSL's bytes at load). */
int meshd_direct_keys8(const meshd_direct_aead* d);

/* ChaCha20 block 0 of eight (key, 64-bit little-endian counter) pairs, its first 32 bytes (the
 * Poly1305 key) to out[lane] (chacha_keys.c); only where meshd_poly_keys8_available(). */
int meshd_poly_keys8_available(void);
void meshd_poly_keys8(const uint8_t* const keys[8], const uint8_t* const counters[8], uint8_t out[8][32]);

/* A pair of contexts, encrypt and decrypt; 1 on success. */
int meshd_aead_ctx_pair(EVP_CIPHER_CTX** enc, EVP_CIPHER_CTX** dec);
void meshd_aead_ctx_pair_free(EVP_CIPHER_CTX* enc, EVP_CIPHER_CTX* dec);

/*
 * A persistent pool of worker threads, each with its own contexts. A job is a batch cut into
 * contiguous slices: slice 0 runs on the caller's thread (with the caller's context), slices
 * 1..n-1 on workers; meshd_aead_pool_run returns once every slice is done.
 */
typedef struct meshd_aead_pool meshd_aead_pool;

/* Start up to `workers` threads; NULL when none could start. */
meshd_aead_pool* meshd_aead_pool_new(int workers);
int meshd_aead_pool_workers(const meshd_aead_pool* pool);
/* bounds[0..nslices]: slice k is packets bounds[k]..bounds[k+1]-1; nslices <= workers + 1. */
int64_t meshd_aead_pool_run(meshd_aead_pool* pool, int seal, const meshd_batch_args* a, const int64_t* bounds, int nslices,
                            EVP_CIPHER_CTX* caller_ctx);
/* Stop and join every worker, free their contexts. */
void meshd_aead_pool_free(meshd_aead_pool* pool);

#endif
