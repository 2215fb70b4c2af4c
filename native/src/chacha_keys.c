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

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

#define ROTL(x, n) _mm256_or_si256(_mm256_slli_epi32((x), (n)), _mm256_srli_epi32((x), 32 - (n)))
#define QR(a, b, c, d)                  \
  a = _mm256_add_epi32(a, b);           \
  d = ROTL(_mm256_xor_si256(d, a), 16); \
  c = _mm256_add_epi32(c, d);           \
  b = ROTL(_mm256_xor_si256(b, c), 12); \
  a = _mm256_add_epi32(a, b);           \
  d = ROTL(_mm256_xor_si256(d, a), 8);  \
  c = _mm256_add_epi32(c, d);           \
  b = ROTL(_mm256_xor_si256(b, c), 7);

static uint32_t le32(const uint8_t* p) { return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24); }

__attribute__((target("avx2"))) static void keys8_avx2(const uint8_t* const keys[8], const uint8_t* const counters[8], uint8_t out[8][32]) {
  /* words[w][lane]: state word w of each lane's initial block */
  uint32_t words[16][8];
  for (int l = 0; l < 8; l++) {
    words[0][l] = 0x61707865u;
    words[1][l] = 0x3320646eu;
    words[2][l] = 0x79622d32u;
    words[3][l] = 0x6b206574u;
    for (int w = 0; w < 8; w++) words[4 + w][l] = le32(keys[l] + 4 * w);
    words[12][l] = 0; /* block counter 0 */
    words[13][l] = 0; /* WireGuard's nonce: 4 zero bytes, then the 64-bit counter */
    words[14][l] = le32(counters[l]);
    words[15][l] = le32(counters[l] + 4);
  }
  __m256i x[16], in[16];
  for (int w = 0; w < 16; w++) x[w] = in[w] = _mm256_loadu_si256((const __m256i*)words[w]);
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
  /* The key is the first 8 words of the block: x + initial state, little-endian. */
  for (int w = 0; w < 8; w++) _mm256_storeu_si256((__m256i*)words[w], _mm256_add_epi32(x[w], in[w]));
  for (int l = 0; l < 8; l++)
    for (int w = 0; w < 8; w++) {
      uint32_t v = words[w][l];
      out[l][4 * w] = (uint8_t)v;
      out[l][4 * w + 1] = (uint8_t)(v >> 8);
      out[l][4 * w + 2] = (uint8_t)(v >> 16);
      out[l][4 * w + 3] = (uint8_t)(v >> 24);
    }
  /* the key words of the block and the session keys: not left on the stack */
  volatile uint8_t* wipe = (volatile uint8_t*)words;
  for (size_t i = 0; i < sizeof words; i++) wipe[i] = 0;
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
