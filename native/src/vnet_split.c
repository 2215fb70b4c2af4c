/*
 * Cutting a TUN super-segment (virtio_net_hdr with GSO TCPV4/TCPV6/UDP_L4) into IP packets of
 * at most gso_size payload bytes each, in one pass: every packet gets a copy of the IP and
 * transport headers with its own IPv4 total length, ID and header checksum (or IPv6 payload
 * length), TCP sequence number (FIN and PSH only on the last) or UDP length, and a complete
 * transport checksum. The same steps as wireguard-go's tun/offload_linux.go gsoSplit.
 */
#include <errno.h>
#include <string.h>

#include "csum.h"
#include "vnet.h"

#define TCP_FIN 0x01
#define TCP_PSH 0x08

void vnet_hdr_decode(const uint8_t* b, vnet_hdr* h) {
  h->flags = b[0];
  h->gso_type = b[1];
  h->hdr_len = (uint16_t)(b[2] | (b[3] << 8));
  h->gso_size = (uint16_t)(b[4] | (b[5] << 8));
  h->csum_start = (uint16_t)(b[6] | (b[7] << 8));
  h->csum_offset = (uint16_t)(b[8] | (b[9] << 8));
}

void vnet_hdr_encode(const vnet_hdr* h, uint8_t* b) {
  b[0] = h->flags;
  b[1] = h->gso_type;
  b[2] = (uint8_t)h->hdr_len;
  b[3] = (uint8_t)(h->hdr_len >> 8);
  b[4] = (uint8_t)h->gso_size;
  b[5] = (uint8_t)(h->gso_size >> 8);
  b[6] = (uint8_t)h->csum_start;
  b[7] = (uint8_t)(h->csum_start >> 8);
  b[8] = (uint8_t)h->csum_offset;
  b[9] = (uint8_t)(h->csum_offset >> 8);
}

int vnet_complete_csum(uint8_t* pkt, size_t len, uint16_t csum_start, uint16_t csum_offset) {
  size_t at = (size_t)csum_start + csum_offset;
  if (at + 2 > len || csum_start >= len) return EINVAL;
  /* The field holds the pseudo-header sum; the checksum covers it and the rest of the packet. */
  uint64_t initial = meshd_csum_word(meshd_get16(pkt + at));
  pkt[at] = 0;
  pkt[at + 1] = 0;
  uint16_t sum = meshd_csum_fold(meshd_csum_add(initial, pkt + csum_start, len - csum_start));
  meshd_put16(pkt + at, (uint16_t)~sum);
  return 0;
}

int vnet_cut_begin(vnet_cut* c, uint8_t* frame, size_t frame_len) {
  memset(c, 0, sizeof *c);
  if (frame_len < VNET_HDR_LEN + 1) return EINVAL;
  vnet_hdr_decode(frame, &c->h);
  c->pkt = frame + VNET_HDR_LEN;
  c->len = (uint32_t)(frame_len - VNET_HDR_LEN);
  uint8_t* p = c->pkt;
  int version = p[0] >> 4;
  if (version != 4 && version != 6) return EINVAL;
  c->v6 = version == 6;
  if (c->h.gso_type == VNET_GSO_NONE) {
    if (c->h.flags & VNET_F_NEEDS_CSUM) {
      int err = vnet_complete_csum(p, c->len, c->h.csum_start, c->h.csum_offset);
      if (err != 0) return err;
    }
    c->h.gso_size = 0;
    c->next = 0;
    return 0;
  }
  uint8_t type = (uint8_t)(c->h.gso_type & 0x7f); /* 0x80 is the ECN bit */
  if (type == VNET_GSO_TCPV4 || type == VNET_GSO_TCPV6) {
    c->tcp = 1;
    if ((type == VNET_GSO_TCPV4) != (version == 4)) return EINVAL;
  } else if (type != VNET_GSO_UDP_L4) {
    return EPROTONOSUPPORT;
  }
  uint32_t iph = c->h.csum_start;
  if (iph < (c->v6 ? 40u : 20u) || (!c->v6 && iph != (uint32_t)(p[0] & 0x0f) * 4)) return EINVAL;
  /* Do not trust hdr_len (a forwarded packet may carry the whole first packet's length). */
  uint32_t thl;
  if (c->tcp) {
    if (c->len < iph + 20) return EINVAL;
    thl = (uint32_t)(p[iph + 12] >> 4) * 4;
    if (thl < 20 || c->h.csum_offset != 16) return EINVAL;
  } else {
    thl = 8;
    if (c->h.csum_offset != 6) return EINVAL;
  }
  if (c->len < iph + thl || c->h.gso_size == 0) return EINVAL;
  c->h.hdr_len = (uint16_t)(iph + thl);
  c->next = c->h.hdr_len;
  if (c->next == c->len) c->h.gso_size = 0; /* headers only: one packet, sent as it is */
  /* The copied headers get their checksums computed per packet. */
  if (!c->v6) {
    p[10] = 0;
    p[11] = 0;
  }
  p[iph + c->h.csum_offset] = 0;
  p[iph + c->h.csum_offset + 1] = 0;
  return 0;
}

int vnet_cut_done(const vnet_cut* c) {
  if (c->h.gso_size == 0) return c->index > 0;
  return c->next >= c->len;
}

uint32_t vnet_cut_next_len(const vnet_cut* c) {
  if (c->h.gso_size == 0) return c->len;
  uint32_t rest = c->len - c->next;
  return c->h.hdr_len + (rest < c->h.gso_size ? rest : c->h.gso_size);
}

void vnet_cut_emit(vnet_cut* c, uint8_t* out) {
  uint32_t total = vnet_cut_next_len(c);
  const uint8_t* in = c->pkt;
  if (c->h.gso_size == 0) {
    if (c->tcp || c->h.gso_type != VNET_GSO_NONE) {
      /* A GSO frame without payload: headers only, checksums still to do. */
      memcpy(out, in, total);
      if (!c->v6) meshd_ipv4_fix_csum(out, c->h.csum_start);
      uint32_t iph = c->h.csum_start;
      uint64_t s = meshd_pseudo_sum(out, c->v6, c->tcp ? 6 : 17, total - iph);
      meshd_put16(out + iph + c->h.csum_offset, (uint16_t)~meshd_csum_fold(meshd_csum_add(s, out + iph, total - iph)));
    } else {
      memcpy(out, in, total);
    }
    c->index++;
    c->next = c->len;
    return;
  }
  uint32_t iph = c->h.csum_start;
  uint32_t hl = c->h.hdr_len;
  uint32_t seg = total - hl;
  int last = c->next + seg >= c->len;
  memcpy(out, in, hl);
  /* The payload is summed as it is copied; the headers (fixed below) are summed after. The
   * transport header is a whole number of 32-bit words, so the two sums simply add. */
  uint64_t payload_sum = meshd_csum_copy(0, out + hl, in + c->next, seg);
  if (!c->v6) {
    meshd_put16(out + 4, (uint16_t)(meshd_get16(in + 4) + c->index));
    meshd_put16(out + 2, (uint16_t)total);
    meshd_ipv4_fix_csum(out, iph);
  } else {
    meshd_put16(out + 4, (uint16_t)(total - 40));
  }
  if (c->tcp) {
    meshd_put32(out + iph + 4, meshd_get32(in + iph + 4) + (uint32_t)c->h.gso_size * c->index);
    if (!last) out[iph + 13] &= (uint8_t)~(TCP_FIN | TCP_PSH);
  } else {
    meshd_put16(out + iph + 4, (uint16_t)(total - iph));
  }
  uint64_t s = meshd_pseudo_sum(out, c->v6, c->tcp ? 6 : 17, total - iph) + payload_sum;
  uint16_t sum = (uint16_t)~meshd_csum_fold(meshd_csum_add(s, out + iph, hl - iph));
  if (!c->tcp && sum == 0) sum = 0xffff; /* UDP: 0 means "no checksum" */
  meshd_put16(out + iph + c->h.csum_offset, sum);
  c->next += seg;
  c->index++;
}
