/*
 * The Poly1305 one-time keys of eight packets at once: ChaCha20 block 0 (RFC 8439 §2.6) of
 * eight (key, nonce) pairs, one pair per 32-bit lane of AVX2 vectors. OpenSSL's ChaCha20 runs
 * one stream per call, and a lone 64-byte block costs a quarter of sealing a 1420-byte packet;
 * eight blocks side by side cost about one. Only the first 32 bytes of each block (the key) are
 * produced. aead_direct.c checks the result against OpenSSL's ChaCha20 at load and uses it only
 * when they agree.
 */
#include <string.h>

#include "aead.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))  /* x86-64: a little-endian host */
#include <immintrin.h>

/* Rotations by 16 and 8 move whole bytes: one byte shuffle instead of two shifts and an or. */
#define ROTL(x, n) _mm256_or_si256(_mm256_slli_epi32((x), (n)), _mm256_srli_epi32((x), 32 - (n)))
#define ROTL16(x) _mm256_shuffle_epi8((x), rot16)
#define ROTL8(x) _mm256_shuffle_epi8((x), rot8)
#define QR(a, b, c, d)                  \
  a = _mm256_add_epi32(a, b);           \
  d = ROTL16(_mm256_xor_si256(d, a));   \
  c = _mm256_add_epi32(c, d);           \
  b = ROTL(_mm256_xor_si256(b, c), 12); \
  a = _mm256_add_epi32(a, b);           \
  d = ROTL8(_mm256_xor_si256(d, a));    \
  c = _mm256_add_epi32(c, d);           \
  b = ROTL(_mm256_xor_si256(b, c), 7);

__attribute__((target("avx2"))) static void keys8_avx2(const uint8_t* const keys[8], const uint8_t* const counters[8], uint8_t out[8][32]) {
  const __m256i rot16 = _mm256_setr_epi8(2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13, 2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9,
                                         14, 15, 12, 13);
  const __m256i rot8 = _mm256_setr_epi8(3, 0, 1, 2, 7, 4, 5, 6, 11, 8, 9, 10, 15, 12, 13, 14, 3, 0, 1, 2, 7, 4, 5, 6, 11, 8, 9, 10,
                                        15, 12, 13, 14);
  /* words[w][lane]: state word w of each lane's initial block (a little-endian host: the key
   * and counter bytes are the words as they lie) */
  _Alignas(32) uint32_t words[16][8];
  for (int l = 0; l < 8; l++) {
    uint32_t k[8], c[2];
    memcpy(k, keys[l], 32);
    memcpy(c, counters[l], 8);
    for (int w = 0; w < 8; w++) words[4 + w][l] = k[w];
    words[14][l] = c[0];
    words[15][l] = c[1];
  }
  __m256i x[16], in[16];
  x[0] = in[0] = _mm256_set1_epi32(0x61707865);
  x[1] = in[1] = _mm256_set1_epi32(0x3320646e);
  x[2] = in[2] = _mm256_set1_epi32(0x79622d32);
  x[3] = in[3] = _mm256_set1_epi32(0x6b206574);
  for (int w = 4; w < 12; w++) x[w] = in[w] = _mm256_load_si256((const __m256i*)words[w]);
  x[12] = in[12] = _mm256_setzero_si256(); /* block counter 0 */
  x[13] = in[13] = _mm256_setzero_si256(); /* WireGuard's nonce: 4 zero bytes, then the counter */
  x[14] = in[14] = _mm256_load_si256((const __m256i*)words[14]);
  x[15] = in[15] = _mm256_load_si256((const __m256i*)words[15]);
  for (int r = 0; r < 10; r++) {
    QR(x[0], x[4], x[8], x[12]);
    QR(x[1], x[5], x[9], x[13]);
    QR(x[2], x[6], x[10], x[14]);
    QR(x[3], x[7], x[11], x[15]);
    QR(x[0], x[5], x[10], x[15]);
    QR(x[1], x[6], x[11], x[12]);
    QR(x[2], x[7], x[8], x[13]);
    QR(x[3], x[4], x[9], x[14]);
  }
  /* The key is the first 8 words of the block: x + initial state. */
  for (int w = 0; w < 8; w++) _mm256_store_si256((__m256i*)words[w], _mm256_add_epi32(x[w], in[w]));
  for (int l = 0; l < 8; l++) {
    uint32_t k[8];
    for (int w = 0; w < 8; w++) k[w] = words[w][l];
    memcpy(out[l], k, 32);
  }
  /* the one-time keys and the session keys are not left on the stack */
  memset(words, 0, sizeof words);
  __asm__ __volatile__("" : : "r"(words) : "memory");
}

int meshd_poly_keys8_available(void) {
  __builtin_cpu_init(); /* idempotent; the feature bits may not be read yet when a library loads */
  return __builtin_cpu_supports("avx2");
}

void meshd_poly_keys8(const uint8_t* const keys[8], const uint8_t* const counters[8], uint8_t out[8][32]) {
  keys8_avx2(keys, counters, out);
}
#else
int meshd_poly_keys8_available(void) { return 0; }
void meshd_poly_keys8(const uint8_t* const keys[8], const uint8_t* const counters[8], uint8_t out[8][32]) {
  memset(out, 0, 8 * 32);
}
#endif
