/*
 * The bulk loops of the Internet checksum (csum.h): a plain sum of native 32-bit words into a
 * 64-bit accumulator, and with AVX2 (chosen per call from the CPU's feature bits, which the
 * compiler's runtime reads once at load) four 64-bit lanes that take 32 bytes per step. Both
 * give the same 64-bit value modulo the end-around carry that meshd_csum_fold applies, so the
 * checksums are identical whichever loop ran.
 */
#include <string.h>

#include "csum.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define MESHD_CSUM_X86 1

__attribute__((target("avx2"))) static uint64_t lanes_total(__m256i a, __m256i b) {
  __m256i s = _mm256_add_epi64(a, b);
  uint64_t t[4];
  _mm256_storeu_si256((__m256i*)t, s);
  return t[0] + t[1] + t[2] + t[3];
}

/* Each 32-bit word widened to 64 bits and added: no carry is lost for any packet length. */
__attribute__((target("avx2"))) static uint64_t csum_avx2(uint64_t sum, const uint8_t* b, size_t len) {
  __m256i acc0 = _mm256_setzero_si256(), acc1 = _mm256_setzero_si256();
  while (len >= 64) {
    __m256i v = _mm256_loadu_si256((const __m256i*)b);
    __m256i w = _mm256_loadu_si256((const __m256i*)(b + 32));
    acc0 = _mm256_add_epi64(acc0, _mm256_cvtepu32_epi64(_mm256_castsi256_si128(v)));
    acc1 = _mm256_add_epi64(acc1, _mm256_cvtepu32_epi64(_mm256_extracti128_si256(v, 1)));
    acc0 = _mm256_add_epi64(acc0, _mm256_cvtepu32_epi64(_mm256_castsi256_si128(w)));
    acc1 = _mm256_add_epi64(acc1, _mm256_cvtepu32_epi64(_mm256_extracti128_si256(w, 1)));
    b += 64;
    len -= 64;
  }
  return meshd_csum_add_portable(sum + lanes_total(acc0, acc1), b, len);
}

__attribute__((target("avx2"))) static uint64_t csum_copy_avx2(uint64_t sum, uint8_t* out, const uint8_t* in, size_t len) {
  __m256i acc0 = _mm256_setzero_si256(), acc1 = _mm256_setzero_si256();
  while (len >= 32) {
    __m256i v = _mm256_loadu_si256((const __m256i*)in);
    _mm256_storeu_si256((__m256i*)out, v);
    acc0 = _mm256_add_epi64(acc0, _mm256_cvtepu32_epi64(_mm256_castsi256_si128(v)));
    acc1 = _mm256_add_epi64(acc1, _mm256_cvtepu32_epi64(_mm256_extracti128_si256(v, 1)));
    in += 32;
    out += 32;
    len -= 32;
  }
  memcpy(out, in, len);
  return meshd_csum_add_portable(sum + lanes_total(acc0, acc1), in, len);
}

static int have_avx2(void) {
  __builtin_cpu_init(); /* idempotent; the feature bits may not be read yet when a library loads */
  return __builtin_cpu_supports("avx2");
}
#endif

uint64_t meshd_csum_add_wide(uint64_t sum, const uint8_t* b, size_t len) {
#ifdef MESHD_CSUM_X86
  if (have_avx2()) return csum_avx2(sum, b, len);
#endif
  return meshd_csum_add_portable(sum, b, len);
}

uint64_t meshd_csum_copy(uint64_t sum, uint8_t* out, const uint8_t* in, size_t len) {
#ifdef MESHD_CSUM_X86
  if (len >= MESHD_CSUM_WIDE_MIN && have_avx2()) return csum_copy_avx2(sum, out, in, len);
#endif
  memcpy(out, in, len);
  return meshd_csum_add(sum, out, len);
}
