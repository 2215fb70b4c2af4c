/*
 * TUN segmentation offload (IFF_VNET_HDR): every frame read from or written to the TUN starts
 * with a 10-byte virtio_net_hdr. Reads may carry a TCP/UDP super-segment of up to 64 KiB that we
 * cut into MTU-sized IP packets (vnet_split.c); writes may carry consecutive TCP segments of one
 * flow joined into one (vnet_gro.c), which the kernel takes as a single GRO packet.
 */
#ifndef MESHD_VNET_H
#define MESHD_VNET_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#define VNET_HDR_LEN 10
#define VNET_F_NEEDS_CSUM 1
#define VNET_GSO_NONE 0
#define VNET_GSO_TCPV4 1
#define VNET_GSO_UDP 3
#define VNET_GSO_TCPV6 4
#define VNET_GSO_UDP_L4 5

/* Largest frame a TUN read may return: header plus a 64 KiB IP packet. */
#define VNET_MAX_FRAME (VNET_HDR_LEN + 65535)

typedef struct {
  uint8_t flags;
  uint8_t gso_type;
  uint16_t hdr_len;
  uint16_t gso_size;
  uint16_t csum_start;
  uint16_t csum_offset;
} vnet_hdr;

/* The header fields are little-endian (the virtio "legacy" layout the TUN uses on this host). */
void vnet_hdr_decode(const uint8_t* b, vnet_hdr* h);
void vnet_hdr_encode(const vnet_hdr* h, uint8_t* b);

/*
 * Where a super-segment stands while it is being cut into packets. `pkt` points at the IP
 * packet (after the virtio header) of `len` bytes.
 */
typedef struct {
  vnet_hdr h;
  uint8_t* pkt;
  uint32_t len;
  uint32_t next;    /* offset in pkt of the next segment's payload */
  uint32_t index;   /* segments emitted so far */
  int v6;
  int tcp;
} vnet_cut;

/*
 * Check a frame's header against its packet and prepare the cut. Returns 0, or an errno
 * (EINVAL: malformed header or packet, EPROTONOSUPPORT: a GSO type we do not handle). A frame
 * without GSO is completed in place (NEEDS_CSUM) and gives exactly one packet.
 */
int vnet_cut_begin(vnet_cut* c, uint8_t* frame, size_t frame_len);
/* Whether the cut has produced every segment. */
int vnet_cut_done(const vnet_cut* c);
/* Size of the next segment's IP packet. */
uint32_t vnet_cut_next_len(const vnet_cut* c);
/* Write the next segment's IP packet at out (vnet_cut_next_len bytes) and advance. */
void vnet_cut_emit(vnet_cut* c, uint8_t* out);

/* Finish the checksum of a NEEDS_CSUM packet in place. 0, or EINVAL when the offsets do not fit. */
int vnet_complete_csum(uint8_t* pkt, size_t len, uint16_t csum_start, uint16_t csum_offset);

/* What one coalescing pass over a batch did. */
typedef struct {
  int64_t frames;          /* frames handed to emit */
  int64_t coalesced;       /* of which joined two or more packets */
  int64_t coalesced_pkts;  /* packets inside those */
} vnet_gro_stats;

/*
 * Hand frame iovecs (virtio header, then the packet or the joined packets) to emit, once per
 * output frame; emit returns 0 to go on, or nonzero to stop. Packets start..end-1 of the batch;
 * headers of coalesced packets are rewritten in place.
 */
typedef int (*vnet_emit_fn)(void* ctx, const struct iovec* iov, int iovcnt, int packets);
void vnet_gro_batch(uint8_t* buf, const uint32_t* offsets, const uint32_t* lengths, int64_t start, int64_t end,
                    vnet_emit_fn emit, void* ctx, vnet_gro_stats* stats);

#endif
