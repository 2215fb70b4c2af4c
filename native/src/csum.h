/*
 * Internet checksums (RFC 1071) for the offload paths: a 64-bit accumulator over the bytes,
 * folded to 16 bits at the end. Values are kept in network byte order arithmetic: the sum of
 * big-endian 16-bit words.
 */
#ifndef MESHD_CSUM_H
#define MESHD_CSUM_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* The portable loop of meshd_csum_add (any length, any alignment). */
static inline uint64_t meshd_csum_add_portable(uint64_t sum, const uint8_t* b, size_t len) {
  while (len >= 32) {
    uint32_t w[8];
    memcpy(w, b, 32);
    /* Sum as native 32-bit words; the byte order is fixed up once in meshd_csum_fold. */
    sum += (uint64_t)w[0] + w[1] + w[2] + w[3] + w[4] + w[5] + w[6] + w[7];
    b += 32;
    len -= 32;
  }
  while (len >= 4) {
    uint32_t w;
    memcpy(&w, b, 4);
    sum += w;
    b += 4;
    len -= 4;
  }
  if (len >= 2) {
    uint16_t h;
    memcpy(&h, b, 2);
    sum += h;
    b += 2;
    len -= 2;
  }
  if (len == 1) {
    uint8_t pad[2] = {b[0], 0};
    uint16_t h;
    memcpy(&h, pad, 2);
    sum += h;
  }
  return sum;
}

/* Lengths from which the wide (vector) loop pays for its call. */
#define MESHD_CSUM_WIDE_MIN 128

/*
 * The same sum as meshd_csum_add_portable, with 256-bit vectors where the CPU has AVX2 (csum.c;
 * about twice the bytes per cycle on a packet's payload).
 */
uint64_t meshd_csum_add_wide(uint64_t sum, const uint8_t* b, size_t len);

/*
 * Copy in[0..len) to out (not overlapping) and add its words to sum in the same pass: the
 * segment payload a cut copies is summed while it is in the registers anyway.
 */
uint64_t meshd_csum_copy(uint64_t sum, uint8_t* out, const uint8_t* in, size_t len);

/* Add the big-endian 16-bit words of b[0..len) (an odd last byte is padded with zero) to sum. */
static inline uint64_t meshd_csum_add(uint64_t sum, const uint8_t* b, size_t len) {
  if (len >= MESHD_CSUM_WIDE_MIN) return meshd_csum_add_wide(sum, b, len);
  return meshd_csum_add_portable(sum, b, len);
}

/* Fold to 16 bits and return it as a host-order number of the big-endian checksum (not inverted). */
static inline uint16_t meshd_csum_fold(uint64_t sum) {
  sum = (sum & 0xffffffffu) + (sum >> 32);
  sum = (sum & 0xffffffffu) + (sum >> 32);
  sum = (sum & 0xffff) + (sum >> 16);
  sum = (sum & 0xffff) + (sum >> 16);
  sum = (sum & 0xffff) + (sum >> 16);
  uint16_t native = (uint16_t)sum;
  /* The words were summed in native order; on little-endian hosts swap back (RFC 1071 §2(B)). */
  uint8_t bytes[2];
  memcpy(bytes, &native, 2);
  return (uint16_t)((bytes[0] << 8) | bytes[1]);
}

/* A host-order 16-bit value as the native-order word the accumulator expects. */
static inline uint64_t meshd_csum_word(uint16_t v) {
  uint8_t bytes[2] = {(uint8_t)(v >> 8), (uint8_t)v};
  uint16_t h;
  memcpy(&h, bytes, 2);
  return h;
}

/*
 * The pseudo-header sum (not folded) of an IPv4 or IPv6 packet `ip` for transport protocol
 * `proto` and transport length `len`.
 */
static inline uint64_t meshd_pseudo_sum(const uint8_t* ip, int v6, uint8_t proto, uint32_t len) {
  uint64_t s = v6 ? meshd_csum_add(0, ip + 8, 32) : meshd_csum_add(0, ip + 12, 8);
  s += meshd_csum_word(proto);
  s += meshd_csum_word((uint16_t)(len >> 16)) + meshd_csum_word((uint16_t)len);
  return s;
}

static inline uint16_t meshd_get16(const uint8_t* p) { return (uint16_t)((p[0] << 8) | p[1]); }
static inline uint32_t meshd_get32(const uint8_t* p) {
  return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}
static inline void meshd_put16(uint8_t* p, uint16_t v) {
  p[0] = (uint8_t)(v >> 8);
  p[1] = (uint8_t)v;
}
static inline void meshd_put32(uint8_t* p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24);
  p[1] = (uint8_t)(v >> 16);
  p[2] = (uint8_t)(v >> 8);
  p[3] = (uint8_t)v;
}

/* The IPv4 header checksum field value for header h of hl bytes (the field itself is zeroed first). */
static inline void meshd_ipv4_fix_csum(uint8_t* h, size_t hl) {
  h[10] = 0;
  h[11] = 0;
  meshd_put16(h + 10, (uint16_t)~meshd_csum_fold(meshd_csum_add(0, h, hl)));
}

#endif
