/*
 * Coalescing on the way into the TUN (GRO): consecutive TCP segments of one flow in a batch —
 * same addresses, ports and ACK number, equal IP headers and TCP options, adjacent sequence
 * numbers, only ACK (PSH on the last), every payload the size of the first except a shorter
 * last — leave as one frame: a virtio header with GSO TCPV4/TCPV6 and NEEDS_CSUM, the first
 * packet's headers (lengths fixed, IPv4 header checksum redone, the TCP checksum field holding
 * the pseudo-header sum) and the payloads one after the other, gathered with writev. Every
 * joined packet's checksum is verified first (a joined frame's checksum is recomputed, so a bad
 * one would otherwise go unnoticed). Everything else leaves alone, with an empty virtio header.
 * The rules follow wireguard-go's tun/offload_linux.go (tcpGRO), appending only.
 */
#include <string.h>

#include "csum.h"
#include "vnet.h"

#define TCP_ACK 0x10
#define TCP_PSH 0x08
#define MAX_OPEN 16
#define MAX_JOIN 64
#define CHUNK 128

typedef struct {
  int64_t head;      /* batch index of the first packet */
  int64_t tail;      /* batch index of the last packet */
  int n;             /* packets joined */
  uint32_t iph, thl; /* header lengths of the head */
  uint32_t gso;      /* payload size of the head */
  uint32_t last_pay; /* payload size of the tail */
  uint32_t total;    /* IP length of the joined packet */
  uint32_t next_seq;
  int psh;
  int v6;
  int head_checked;
} gro_group;

/* A TCP packet's shape if it may be joined, else 0. */
static int tcp_candidate(const uint8_t* p, uint32_t len, uint32_t* iph, uint32_t* thl, int* v6) {
  if (len < 40) return 0;
  int version = p[0] >> 4;
  if (version == 4) {
    if ((p[0] & 0x0f) != 5 || p[9] != 6 || meshd_get16(p + 2) != len) return 0;
    if ((p[6] & 0x20) != 0 || (p[6] & 0x1f) != 0 || p[7] != 0) return 0; /* fragments */
    *iph = 20;
    *v6 = 0;
  } else if (version == 6) {
    if (len < 60 || p[6] != 6 || (uint32_t)meshd_get16(p + 4) + 40 != len) return 0;
    *iph = 40;
    *v6 = 1;
  } else {
    return 0;
  }
  uint32_t t = (uint32_t)(p[*iph + 12] >> 4) * 4;
  if (t < 20 || len < *iph + t + 1) return 0; /* no payload: nothing to join */
  uint8_t flags = p[*iph + 13];
  if (flags != TCP_ACK && flags != (TCP_ACK | TCP_PSH)) return 0;
  *thl = t;
  return 1;
}

static int tcp_csum_ok(const uint8_t* p, uint32_t len, uint32_t iph, int v6) {
  uint64_t s = meshd_pseudo_sum(p, v6, 6, len - iph);
  return meshd_csum_fold(meshd_csum_add(s, p + iph, len - iph)) == 0xffff;
}

/* Same flow (addresses, ports, ACK number) and headers that may be joined (wireguard-go's rules). */
static int same_flow(const uint8_t* a, const uint8_t* b, const gro_group* g, uint32_t thl) {
  uint32_t iph = g->iph;
  if (g->v6) {
    if (memcmp(a + 8, b + 8, 32) != 0) return 0;
    if (a[0] != b[0] || (a[1] >> 4) != (b[1] >> 4) || a[7] != b[7]) return 0;
  } else {
    if (memcmp(a + 12, b + 12, 8) != 0) return 0;
    if (a[1] != b[1] || (a[6] >> 5) != (b[6] >> 5) || a[8] != b[8]) return 0;
  }
  if (memcmp(a + iph, b + iph, 4) != 0 || memcmp(a + iph + 8, b + iph + 8, 4) != 0) return 0;
  if (thl != g->thl) return 0;
  return thl == 20 || memcmp(a + iph + 20, b + iph + 20, thl - 20) == 0;
}

/* Rewrite the head of a joined group and fill its virtio header. */
static void finish_group(uint8_t* head, const gro_group* g, uint8_t* hdr_out) {
  vnet_hdr h;
  memset(&h, 0, sizeof h);
  if (g->n > 1) {
    if (g->v6) {
      meshd_put16(head + 4, (uint16_t)(g->total - 40));
    } else {
      meshd_put16(head + 2, (uint16_t)g->total);
      meshd_ipv4_fix_csum(head, 20);
    }
    if (g->psh) head[g->iph + 13] |= TCP_PSH;
    uint64_t s = meshd_pseudo_sum(head, g->v6, 6, g->total - g->iph);
    meshd_put16(head + g->iph + 16, meshd_csum_fold(s));
    h.flags = VNET_F_NEEDS_CSUM;
    h.gso_type = g->v6 ? VNET_GSO_TCPV6 : VNET_GSO_TCPV4;
    h.hdr_len = (uint16_t)(g->iph + g->thl);
    h.gso_size = (uint16_t)g->gso;
    h.csum_start = (uint16_t)g->iph;
    h.csum_offset = 16;
  }
  vnet_hdr_encode(&h, hdr_out);
}

void vnet_gro_batch(uint8_t* buf, const uint32_t* offsets, const uint32_t* lengths, int64_t start, int64_t end,
                    vnet_emit_fn emit, void* ctx, vnet_gro_stats* stats) {
  /* Work in chunks of CHUNK packets: groups never span chunks. */
  gro_group groups[CHUNK];
  int64_t link[CHUNK]; /* next packet in the same group, -1: none */
  int open[MAX_OPEN];
  uint8_t hdrs[CHUNK][VNET_HDR_LEN];
  struct iovec iov[MAX_JOIN + 2];
  for (int64_t base = start; base < end; base += CHUNK) {
    int64_t stop = end - base < CHUNK ? end : base + CHUNK;
    int ng = 0, nopen = 0;
    for (int64_t i = base; i < stop; i++) {
      link[i - base] = -1;
      uint8_t* p = buf + offsets[i];
      uint32_t len = lengths[i];
      uint32_t iph = 0, thl = 0;
      int v6 = 0;
      int cand = tcp_candidate(p, len, &iph, &thl, &v6);
      int joined = 0;
      if (cand) {
        uint32_t pay = len - iph - thl;
        uint32_t seq = meshd_get32(p + iph + 4);
        int psh = (p[iph + 13] & TCP_PSH) != 0;
        for (int k = nopen - 1; k >= 0; k--) {
          gro_group* g = &groups[open[k]];
          uint8_t* hp = buf + offsets[g->head];
          if (g->v6 != v6 || !same_flow(hp, p, g, thl)) continue;
          /* This flow's open group: join it, or close it and start anew. */
          int ok = seq == g->next_seq && !g->psh && g->last_pay == g->gso && pay <= g->gso && g->n < MAX_JOIN &&
                   g->total + pay <= 65535;
          if (ok && !g->head_checked) {
            g->head_checked = 1;
            ok = tcp_csum_ok(hp, lengths[g->head], g->iph, g->v6);
          }
          if (ok) ok = tcp_csum_ok(p, len, iph, v6);
          if (ok) {
            link[g->tail - base] = i;
            g->tail = i;
            g->n++;
            g->total += pay;
            g->last_pay = pay;
            g->next_seq = seq + pay;
            g->psh = psh;
            joined = 1;
          }
          open[k] = open[--nopen];
          if (joined) open[nopen++] = (int)(g - groups);
          break;
        }
      }
      if (joined) continue;
      gro_group* g = &groups[ng];
      memset(g, 0, sizeof *g);
      g->head = g->tail = i;
      g->n = 1;
      if (cand) {
        g->iph = iph;
        g->thl = thl;
        g->v6 = v6;
        g->gso = g->last_pay = len - iph - thl;
        g->total = len;
        g->next_seq = meshd_get32(p + iph + 4) + g->gso;
        g->psh = (p[iph + 13] & TCP_PSH) != 0;
        if (nopen == MAX_OPEN) {
          for (int k = 1; k < nopen; k++) open[k - 1] = open[k];
          nopen--;
        }
        open[nopen++] = ng;
      }
      ng++;
    }
    for (int k = 0; k < ng; k++) {
      gro_group* g = &groups[k];
      uint8_t* head = buf + offsets[g->head];
      finish_group(head, g, hdrs[k]);
      iov[0].iov_base = hdrs[k];
      iov[0].iov_len = VNET_HDR_LEN;
      iov[1].iov_base = head;
      iov[1].iov_len = lengths[g->head];
      int cnt = 2;
      for (int64_t j = link[g->head - base]; j >= 0; j = link[j - base]) {
        iov[cnt].iov_base = buf + offsets[j] + g->iph + g->thl;
        iov[cnt].iov_len = lengths[j] - g->iph - g->thl;
        cnt++;
      }
      stats->frames++;
      if (g->n > 1) {
        stats->coalesced++;
        stats->coalesced_pkts += g->n;
      }
      if (emit(ctx, iov, cnt, g->n) != 0) return;
    }
  }
}
