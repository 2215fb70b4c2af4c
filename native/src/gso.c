/*
 * UDP segmentation offload on the UDP socket: UDP_SEGMENT (GSO) on send, so consecutive
 * same-size datagrams to one destination leave in one sendmsg that the kernel (or the NIC)
 * cuts up, and UDP_GRO on receive, where the kernel hands over runs of datagrams of one sender
 * as one buffer plus the segment size, which we cut back into batch slots.
 *
 * A received coalesced buffer can hold more datagrams than the batch has free slots, so the
 * receive side keeps what it has not handed out yet in a caller-owned scratch area (state +
 * GRO_MSGS buffers of 64 KiB) and hands it out on the next call before reading the socket again;
 * result[5] says whether anything is still held there.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <string.h>
#include <unistd.h>

#ifndef MESHD_NO_LINUX_IO
#include <netinet/in.h>
#include <sys/socket.h>
#endif

#include "args.h"
#include "meshd_native.h"
#include "udp_addr.h"

#ifdef MESHD_NO_LINUX_IO
#define UNSUPPORTED(fn)                                  \
  napi_value fn(napi_env env, napi_callback_info info) { \
    meshd_throw_errno(env, #fn, ENOSYS);                 \
    return NULL;                                         \
  }
UNSUPPORTED(meshd_udp_offload)
UNSUPPORTED(meshd_udp_send_gso)
UNSUPPORTED(meshd_udp_recv_gro)
UNSUPPORTED(meshd_udp_gro_scratch_size)
#else

#ifndef SOL_UDP
#define SOL_UDP 17
#endif
#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif
#ifndef UDP_GRO
#define UDP_GRO 104
#endif

/* Datagrams per GSO send: the kernel's UDP_MAX_SEGMENTS was 64 before Linux 6.9 (128 since). */
#define GSO_MAX_SEGMENTS 64
/* Bytes per GSO send: under 65535 minus the IPv6 and UDP headers, with room to spare. */
#define GSO_MAX_BYTES 65000
#define SEND_MSGS 64
#define SEND_IOVS 512

#define GRO_MSGS 16
#define GRO_BUF 65536
#define GRO_STATE_BYTES 4096
#define GRO_MAGIC 0x6d67726fu

typedef struct {
  uint32_t len;
  uint32_t gso; /* segment size, 0: one plain datagram */
  uint32_t truncated;
  uint8_t addr[MESHD_ADDR_SIZE];
} gro_msg;

typedef struct {
  uint32_t magic;
  uint32_t nmsgs;
  uint32_t cur;
  uint32_t cur_off;
  gro_msg m[GRO_MSGS];
} gro_state;

_Static_assert(sizeof(gro_state) <= GRO_STATE_BYTES, "GRO state fits its area");

/*
 * udpOffload(fd, gso: boolean, gro: boolean): { gso: boolean, gro: boolean }
 * Probes UDP_SEGMENT and turns UDP_GRO on, as asked; says which the kernel supports.
 */
napi_value meshd_udp_offload(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  if (!meshd_args(env, info, 3, argv, NULL)) return NULL;
  int64_t fd;
  bool want_gso = false, want_gro = false;
  if (!meshd_get_int(env, argv[0], "fd", 0, INT_MAX, &fd)) return NULL;
  if (napi_get_value_bool(env, argv[1], &want_gso) != napi_ok || napi_get_value_bool(env, argv[2], &want_gro) != napi_ok) {
    meshd_throw_type(env, "gso and gro must be booleans");
    return NULL;
  }
  bool gso = false, gro = false;
  if (want_gso) {
    int v = 0;
    socklen_t len = sizeof v;
    gso = getsockopt((int)fd, SOL_UDP, UDP_SEGMENT, &v, &len) == 0;
  }
  if (want_gro) {
    int one = 1;
    gro = setsockopt((int)fd, SOL_UDP, UDP_GRO, &one, sizeof one) == 0;
  }
  napi_value out, v;
  napi_create_object(env, &out);
  napi_get_boolean(env, gso, &v);
  napi_set_named_property(env, out, "gso", v);
  napi_get_boolean(env, gro, &v);
  napi_set_named_property(env, out, "gro", v);
  return out;
}

typedef struct {
  int64_t first; /* batch index of the first datagram */
  int segs;
} send_group;

/*
 * udpSendGso(fd, family, buf, offsets, lengths, addrs, start, count, result): number
 * Like udpSend, but runs of consecutive datagrams to the same address, all of the first one's
 * size (the last may be shorter), go out as one UDP_SEGMENT message. When the kernel refuses a
 * segmented message, its datagrams are sent one by one and the refusal counted; EIO (the route's
 * device cannot segment or checksum) also sets result[7] so the caller stops asking.
 * result (Int32Array(8)): [sent, dropped, errors, lastErrno, messages, segmentedMessages,
 * refusedMessages, sawEio].
 */
napi_value meshd_udp_send_gso(napi_env env, napi_callback_info info) {
  meshd_send_args sa;
  if (!meshd_parse_send_args(env, info, "udpSendGso", 8, &sa)) return NULL;
  int fd = sa.fd, family = sa.family;
  uint8_t *buf = sa.buf, *addrs = sa.addrs;
  uint32_t *offsets = sa.offsets, *lengths = sa.lengths;
  int64_t start = sa.start, end = sa.end;
  int32_t* result = sa.result;
  struct mmsghdr msgs[SEND_MSGS];
  struct iovec iov[SEND_IOVS];
  struct sockaddr_storage names[SEND_MSGS];
  union {
    char buf[CMSG_SPACE(sizeof(uint16_t))];
    struct cmsghdr align;
  } ctrl[SEND_MSGS];
  send_group groups[SEND_MSGS];
  int64_t sent = 0, dropped = 0, errors = 0, messages = 0, segmented = 0, refused = 0, eio = 0;
  int last = 0;
  int64_t j = start;
  while (j < end) {
    int k = 0, used = 0;
    while (k < SEND_MSGS && j < end && used < SEND_IOVS) {
      socklen_t name_len;
      const uint8_t* a = addrs + (size_t)j * MESHD_ADDR_SIZE;
      if (!meshd_slot_to_sockaddr(a, family, &names[k], &name_len)) {
        errors++;
        last = EAFNOSUPPORT;
        j++;
        continue;
      }
      uint32_t seg = lengths[j];
      uint32_t total = seg;
      int segs = 1;
      iov[used].iov_base = buf + offsets[j];
      iov[used].iov_len = seg;
      groups[k].first = j;
      j++;
      while (seg > 0 && j < end && segs < GSO_MAX_SEGMENTS && used + segs < SEND_IOVS) {
        uint32_t l = lengths[j];
        if (l == 0 || l > seg || total + l > GSO_MAX_BYTES) break;
        if (memcmp(addrs + (size_t)j * MESHD_ADDR_SIZE, a, 18) != 0) break;
        iov[used + segs].iov_base = buf + offsets[j];
        iov[used + segs].iov_len = l;
        segs++;
        total += l;
        j++;
        if (l < seg) break; /* a shorter datagram ends the run */
      }
      memset(&msgs[k], 0, sizeof msgs[k]);
      msgs[k].msg_hdr.msg_name = &names[k];
      msgs[k].msg_hdr.msg_namelen = name_len;
      msgs[k].msg_hdr.msg_iov = &iov[used];
      msgs[k].msg_hdr.msg_iovlen = (size_t)segs;
      if (segs > 1) {
        memset(&ctrl[k], 0, sizeof ctrl[k]);
        msgs[k].msg_hdr.msg_control = ctrl[k].buf;
        msgs[k].msg_hdr.msg_controllen = sizeof ctrl[k].buf;
        struct cmsghdr* c = CMSG_FIRSTHDR(&msgs[k].msg_hdr);
        c->cmsg_level = SOL_UDP;
        c->cmsg_type = UDP_SEGMENT;
        c->cmsg_len = CMSG_LEN(sizeof(uint16_t));
        uint16_t gso = (uint16_t)seg;
        memcpy(CMSG_DATA(c), &gso, sizeof gso);
      }
      groups[k].segs = segs;
      used += segs;
      k++;
    }
    int done = 0;
    while (done < k) {
      int n = sendmmsg((int)fd, msgs + done, (unsigned)(k - done), MSG_DONTWAIT);
      if (n > 0) {
        for (int q = done; q < done + n; q++) {
          sent += groups[q].segs;
          messages++;
          if (groups[q].segs > 1) segmented++;
        }
        done += n;
        continue;
      }
      int err = n < 0 ? errno : EIO;
      if (err == EINTR) continue;
      if (err == EAGAIN || err == EWOULDBLOCK || err == ENOBUFS) {
        for (int q = done; q < k; q++) dropped += groups[q].segs;
        dropped += end - j;
        goto out;
      }
      if (groups[done].segs > 1) {
        /* The kernel will not segment this one: send its datagrams one by one. */
        if (err == EIO) eio = 1;
        refused++;
        int64_t counts[4];
        int64_t first = groups[done].first;
        meshd_udp_send_range((int)fd, family, buf, offsets, lengths, addrs, first, first + groups[done].segs, counts);
        sent += counts[0];
        messages += counts[0];
        errors += counts[2];
        if (counts[2] > 0) last = (int)counts[3];
        if (counts[1] > 0) {
          dropped += counts[1];
          for (int q = done + 1; q < k; q++) dropped += groups[q].segs;
          dropped += end - j;
          goto out;
        }
      } else {
        errors++;
        last = err;
      }
      done++;
    }
  }
out:
  result[0] = (int32_t)sent;
  result[1] = (int32_t)dropped;
  result[2] = (int32_t)errors;
  result[3] = last;
  result[4] = (int32_t)messages;
  result[5] = (int32_t)segmented;
  result[6] = (int32_t)refused;
  result[7] = (int32_t)eio;
  return meshd_int(env, sent);
}

/* Hand out held datagrams into slots got..max-1; returns the new got. */
static int64_t gro_drain(gro_state* st, uint8_t* bufs, uint8_t* buf, int64_t slot_size, uint32_t* offsets,
                         uint32_t* lengths, uint8_t* addrs, int64_t got, int64_t max, int64_t* truncated) {
  while (st->cur < st->nmsgs && got < max) {
    gro_msg* m = &st->m[st->cur];
    if (m->truncated) {
      (*truncated)++;
      st->cur++;
      st->cur_off = 0;
      continue;
    }
    const uint8_t* data = bufs + (size_t)st->cur * GRO_BUF;
    uint32_t seg = m->gso > 0 ? m->gso : m->len;
    uint32_t rest = m->len - st->cur_off;
    uint32_t l = seg < rest ? seg : rest;
    if ((int64_t)l > slot_size) {
      (*truncated)++;
    } else {
      size_t to = (size_t)got * (size_t)slot_size;
      memcpy(buf + to, data + st->cur_off, l);
      offsets[got] = (uint32_t)to;
      lengths[got] = l;
      memcpy(addrs + (size_t)got * MESHD_ADDR_SIZE, m->addr, MESHD_ADDR_SIZE);
      got++;
    }
    st->cur_off += l;
    if (st->cur_off >= m->len) {
      st->cur++;
      st->cur_off = 0;
    }
  }
  return got;
}

/*
 * udpRecvGro(fd, buf, slotSize, offsets, lengths, addrs, max, result, scratch): number
 * Like udpRecv on a socket with UDP_GRO on: datagram i lands at slot start i*slotSize. scratch
 * (udpGroScratchSize() bytes, zeroed, owned by the socket) holds what did not fit this time.
 * result (Int32Array(8)): [count, truncated, errors, lastErrno, coalescedMessages, held (1: more
 * datagrams wait in scratch), messages, 0].
 */
napi_value meshd_udp_recv_gro(napi_env env, napi_callback_info info) {
  napi_value argv[9];
  if (!meshd_args(env, info, 9, argv, NULL)) return NULL;
  int64_t fd, slot_size, max;
  uint8_t *buf, *addrs, *scratch;
  size_t buf_len, addrs_len, n_off, n_len, n_res, scratch_len;
  uint32_t *offsets, *lengths;
  int32_t* result;
  if (!meshd_get_int(env, argv[0], "fd", 0, INT_MAX, &fd) || !meshd_get_bytes(env, argv[1], "buf", &buf, &buf_len) ||
      !meshd_get_int(env, argv[2], "slotSize", 1, UINT32_MAX, &slot_size) ||
      !meshd_get_u32array(env, argv[3], "offsets", &offsets, &n_off) ||
      !meshd_get_u32array(env, argv[4], "lengths", &lengths, &n_len) ||
      !meshd_get_bytes(env, argv[5], "addrs", &addrs, &addrs_len) ||
      !meshd_get_int(env, argv[6], "max", 0, UINT32_MAX, &max) ||
      !meshd_get_i32array(env, argv[7], "result", &result, &n_res) ||
      !meshd_get_bytes(env, argv[8], "scratch", &scratch, &scratch_len))
    return NULL;
  if ((uint64_t)max > n_off || (uint64_t)max > n_len || (uint64_t)max * MESHD_ADDR_SIZE > addrs_len || n_res < 8 ||
      (uint64_t)max * (uint64_t)slot_size > buf_len) {
    meshd_throw_range(env, "udpRecvGro: batch arrays do not fit the buffer");
    return NULL;
  }
  if (scratch_len < GRO_STATE_BYTES + GRO_BUF || ((uintptr_t)scratch & 7) != 0) {
    meshd_throw_range(env, "udpRecvGro: scratch must be udpGroScratchSize() bytes (8-byte aligned)");
    return NULL;
  }
  gro_state* st = (gro_state*)scratch;
  if (st->magic != GRO_MAGIC || st->nmsgs > GRO_MSGS || st->cur > st->nmsgs) {
    memset(st, 0, sizeof *st);
    st->magic = GRO_MAGIC;
  }
  uint8_t* bufs = scratch + GRO_STATE_BYTES;
  int slots = (int)((scratch_len - GRO_STATE_BYTES) / GRO_BUF);
  if (slots > GRO_MSGS) slots = GRO_MSGS;

  struct mmsghdr msgs[GRO_MSGS];
  struct iovec iov[GRO_MSGS];
  struct sockaddr_storage names[GRO_MSGS];
  union {
    char buf[CMSG_SPACE(sizeof(int))];
    struct cmsghdr align;
  } ctrl[GRO_MSGS];
  int64_t got = 0, truncated = 0, errors = 0, coalesced = 0, messages = 0;
  int last = 0, reads = 0;
  for (;;) {
    got = gro_drain(st, bufs, buf, slot_size, offsets, lengths, addrs, got, max, &truncated);
    if (got >= max || reads >= 4 + (int)(max / slots)) break;
    st->nmsgs = st->cur = st->cur_off = 0;
    memset(msgs, 0, sizeof(struct mmsghdr) * (size_t)slots);
    for (int k = 0; k < slots; k++) {
      iov[k].iov_base = bufs + (size_t)k * GRO_BUF;
      iov[k].iov_len = GRO_BUF;
      msgs[k].msg_hdr.msg_name = &names[k];
      msgs[k].msg_hdr.msg_namelen = sizeof names[k];
      msgs[k].msg_hdr.msg_iov = &iov[k];
      msgs[k].msg_hdr.msg_iovlen = 1;
      msgs[k].msg_hdr.msg_control = ctrl[k].buf;
      msgs[k].msg_hdr.msg_controllen = sizeof ctrl[k].buf;
    }
    reads++;
    int n = recvmmsg((int)fd, msgs, (unsigned)slots, MSG_DONTWAIT, NULL);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) {
        errors++;
        last = errno;
      }
      break;
    }
    for (int k = 0; k < n; k++) {
      gro_msg* m = &st->m[k];
      m->len = msgs[k].msg_len;
      m->gso = 0;
      m->truncated = (msgs[k].msg_hdr.msg_flags & MSG_TRUNC) != 0;
      for (struct cmsghdr* c = CMSG_FIRSTHDR(&msgs[k].msg_hdr); c != NULL; c = CMSG_NXTHDR(&msgs[k].msg_hdr, c)) {
        if (c->cmsg_level == SOL_UDP && c->cmsg_type == UDP_GRO && c->cmsg_len >= CMSG_LEN(sizeof(uint16_t))) {
          int gso = 0;
          memcpy(&gso, CMSG_DATA(c), c->cmsg_len >= CMSG_LEN(sizeof(int)) ? sizeof(int) : sizeof(uint16_t));
          if (gso > 0 && (uint32_t)gso < m->len) {
            m->gso = (uint32_t)gso;
            coalesced++;
          }
        }
      }
      meshd_sockaddr_to_slot(&names[k], m->addr);
    }
    st->nmsgs = (uint32_t)n;
    messages += n;
    if (n < slots) {
      got = gro_drain(st, bufs, buf, slot_size, offsets, lengths, addrs, got, max, &truncated);
      break;
    }
  }
  result[0] = (int32_t)got;
  result[1] = (int32_t)truncated;
  result[2] = (int32_t)errors;
  result[3] = last;
  result[4] = (int32_t)coalesced;
  result[5] = st->cur < st->nmsgs ? 1 : 0;
  result[6] = (int32_t)messages;
  result[7] = 0;
  return meshd_int(env, got);
}

/* udpGroScratchSize(): the bytes udpRecvGro's scratch needs. */
napi_value meshd_udp_gro_scratch_size(napi_env env, napi_callback_info info) {
  return meshd_int(env, GRO_STATE_BYTES + (int64_t)GRO_MSGS * GRO_BUF);
}
#endif
