/*
 * UDP socket with batched I/O: recvmmsg into a packet batch (source addresses into the batch's
 * 20-byte address slots), sendmmsg from a batch (per-slot destinations). Non-blocking; a full
 * send queue drops the rest of the batch and reports how many were dropped.
 *
 * Address slot format (shared with src/engine/packet-batch.ts): 16 bytes IPv6 (IPv4 as
 * ::ffff:a.b.c.d), 2 bytes big-endian port, 2 reserved bytes.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <limits.h>
#include <string.h>
#include <unistd.h>

#ifndef MESHD_NO_LINUX_IO
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#endif

#include "args.h"
#include "meshd_native.h"
#include "udp_addr.h"

#define ADDR_SIZE 20
#define CHUNK 64

#ifdef MESHD_NO_LINUX_IO
#define UNSUPPORTED(fn)                         \
  napi_value fn(napi_env env, napi_callback_info info) { \
    meshd_throw_errno(env, #fn, ENOSYS);        \
    return NULL;                                \
  }
UNSUPPORTED(meshd_udp_open)
UNSUPPORTED(meshd_udp_local_address)
UNSUPPORTED(meshd_udp_recv)
UNSUPPORTED(meshd_udp_send)
#else

static const uint8_t V4_MAPPED_PREFIX[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

static int is_v4_mapped(const uint8_t* a) { return memcmp(a, V4_MAPPED_PREFIX, 12) == 0; }

/* Address slot → sockaddr for a socket of `family`. Returns 0 if the socket cannot reach it. */
int meshd_slot_to_sockaddr(const uint8_t* a, int family, struct sockaddr_storage* ss, socklen_t* len) {
  uint16_t port = (uint16_t)((a[16] << 8) | a[17]);
  if (family == AF_INET) {
    if (!is_v4_mapped(a)) return 0;
    struct sockaddr_in* sin = (struct sockaddr_in*)ss;
    memset(sin, 0, sizeof *sin);
    sin->sin_family = AF_INET;
    sin->sin_port = htons(port);
    memcpy(&sin->sin_addr, a + 12, 4);
    *len = sizeof *sin;
    return 1;
  }
  struct sockaddr_in6* sin6 = (struct sockaddr_in6*)ss;
  memset(sin6, 0, sizeof *sin6);
  sin6->sin6_family = AF_INET6;
  sin6->sin6_port = htons(port);
  memcpy(&sin6->sin6_addr, a, 16);
  *len = sizeof *sin6;
  return 1;
}

void meshd_sockaddr_to_slot(const struct sockaddr_storage* ss, uint8_t* a) {
  memset(a, 0, ADDR_SIZE);
  if (ss->ss_family == AF_INET) {
    const struct sockaddr_in* sin = (const struct sockaddr_in*)ss;
    a[10] = 0xff;
    a[11] = 0xff;
    memcpy(a + 12, &sin->sin_addr, 4);
    uint16_t port = ntohs(sin->sin_port);
    a[16] = (uint8_t)(port >> 8);
    a[17] = (uint8_t)port;
  } else if (ss->ss_family == AF_INET6) {
    const struct sockaddr_in6* sin6 = (const struct sockaddr_in6*)ss;
    memcpy(a, &sin6->sin6_addr, 16);
    uint16_t port = ntohs(sin6->sin6_port);
    a[16] = (uint8_t)(port >> 8);
    a[17] = (uint8_t)port;
  }
}

static void set_buffer(int fd, int force_opt, int opt, int size) {
  if (size <= 0) return;
  if (setsockopt(fd, SOL_SOCKET, force_opt, &size, sizeof size) == 0) return;
  setsockopt(fd, SOL_SOCKET, opt, &size, sizeof size);
}

/*
 * udpOpen(addr: Uint8Array(20) slot, recvBufferSize, sendBufferSize): { fd, family: 4 | 6 }
 * An IPv4(-mapped) address gives an AF_INET socket; anything else an AF_INET6 socket that also
 * accepts IPv4 (IPV6_V6ONLY off). Port 0 binds an ephemeral port.
 */
napi_value meshd_udp_open(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  if (!meshd_args(env, info, 3, argv, NULL)) return NULL;
  uint8_t* addr;
  size_t addr_len;
  int64_t rcvbuf, sndbuf;
  if (!meshd_get_bytes(env, argv[0], "addr", &addr, &addr_len) ||
      !meshd_get_int(env, argv[1], "recvBufferSize", 0, INT_MAX, &rcvbuf) ||
      !meshd_get_int(env, argv[2], "sendBufferSize", 0, INT_MAX, &sndbuf))
    return NULL;
  if (addr_len < ADDR_SIZE) {
    meshd_throw_range(env, "addr must hold one 20-byte address slot");
    return NULL;
  }
  int family = is_v4_mapped(addr) ? AF_INET : AF_INET6;
  int fd = socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    meshd_throw_errno(env, "socket", errno);
    return NULL;
  }
  if (family == AF_INET6) {
    int off = 0;
    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off);
  }
  set_buffer(fd, SO_RCVBUFFORCE, SO_RCVBUF, (int)rcvbuf);
  set_buffer(fd, SO_SNDBUFFORCE, SO_SNDBUF, (int)sndbuf);
  struct sockaddr_storage ss;
  socklen_t ss_len;
  meshd_slot_to_sockaddr(addr, family, &ss, &ss_len);
  if (bind(fd, (struct sockaddr*)&ss, ss_len) < 0) {
    int err = errno;
    close(fd);
    meshd_throw_errno(env, "bind", err);
    return NULL;
  }
  napi_value out, v;
  napi_create_object(env, &out);
  napi_create_int32(env, fd, &v);
  napi_set_named_property(env, out, "fd", v);
  napi_create_int32(env, family == AF_INET ? 4 : 6, &v);
  napi_set_named_property(env, out, "family", v);
  return out;
}

/*
 * udpSetMark(fd, mark): undefined — SO_MARK on the socket (needs CAP_NET_ADMIN), so that policy
 * routing can tell the tunnel's own datagrams apart (an exit node's routes must not catch them).
 */
napi_value meshd_udp_set_mark(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (!meshd_args(env, info, 2, argv, NULL)) return NULL;
  int64_t fd, mark;
  if (!meshd_get_int(env, argv[0], "fd", 0, INT_MAX, &fd) || !meshd_get_int(env, argv[1], "mark", 1, UINT32_MAX, &mark)) return NULL;
  uint32_t m = (uint32_t)mark;
  if (setsockopt((int)fd, SOL_SOCKET, SO_MARK, &m, sizeof m) < 0) {
    meshd_throw_errno(env, "setsockopt(SO_MARK)", errno);
    return NULL;
  }
  return NULL;
}

/* udpLocalAddress(fd, out: Uint8Array(20)): number (the bound port) */
napi_value meshd_udp_local_address(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (!meshd_args(env, info, 2, argv, NULL)) return NULL;
  int64_t fd;
  uint8_t* out;
  size_t out_len;
  if (!meshd_get_int(env, argv[0], "fd", 0, INT_MAX, &fd) || !meshd_get_bytes(env, argv[1], "out", &out, &out_len))
    return NULL;
  if (out_len < ADDR_SIZE) {
    meshd_throw_range(env, "out must hold one 20-byte address slot");
    return NULL;
  }
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  if (getsockname((int)fd, (struct sockaddr*)&ss, &len) < 0) {
    meshd_throw_errno(env, "getsockname", errno);
    return NULL;
  }
  meshd_sockaddr_to_slot(&ss, out);
  return meshd_int(env, (out[16] << 8) | out[17]);
}

/*
 * udpRecv(fd, buf, slotSize, offsets, lengths, addrs, max, result): number
 * Datagram i lands at slot start i*slotSize (offsets[i], lengths[i], addrs slot i). Datagrams
 * longer than a slot are dropped and counted. result: [count, truncated, errors, lastErrno].
 */
napi_value meshd_udp_recv(napi_env env, napi_callback_info info) {
  napi_value argv[8];
  if (!meshd_args(env, info, 8, argv, NULL)) return NULL;
  int64_t fd, slot_size, max;
  uint8_t *buf, *addrs;
  size_t buf_len, addrs_len, n_off, n_len, n_res;
  uint32_t *offsets, *lengths;
  int32_t* result;
  if (!meshd_get_int(env, argv[0], "fd", 0, INT_MAX, &fd) || !meshd_get_bytes(env, argv[1], "buf", &buf, &buf_len) ||
      !meshd_get_int(env, argv[2], "slotSize", 1, UINT32_MAX, &slot_size) ||
      !meshd_get_u32array(env, argv[3], "offsets", &offsets, &n_off) ||
      !meshd_get_u32array(env, argv[4], "lengths", &lengths, &n_len) ||
      !meshd_get_bytes(env, argv[5], "addrs", &addrs, &addrs_len) ||
      !meshd_get_int(env, argv[6], "max", 0, UINT32_MAX, &max) ||
      !meshd_get_i32array(env, argv[7], "result", &result, &n_res))
    return NULL;
  if ((uint64_t)max > n_off || (uint64_t)max > n_len || (uint64_t)max * ADDR_SIZE > addrs_len || n_res < 4 ||
      (uint64_t)max * (uint64_t)slot_size > buf_len) {
    meshd_throw_range(env, "udpRecv: batch arrays do not fit the buffer");
    return NULL;
  }
  struct mmsghdr msgs[CHUNK];
  struct iovec iov[CHUNK];
  struct sockaddr_storage names[CHUNK];
  int64_t got = 0, truncated = 0, errors = 0, consumed = 0;
  int last = 0;
  while (got < max && consumed < 2 * max + CHUNK) {
    int want = (int)(max - got < CHUNK ? max - got : CHUNK);
    memset(msgs, 0, sizeof(struct mmsghdr) * (size_t)want);
    for (int k = 0; k < want; k++) {
      iov[k].iov_base = buf + (size_t)(got + k) * (size_t)slot_size;
      iov[k].iov_len = (size_t)slot_size;
      msgs[k].msg_hdr.msg_name = &names[k];
      msgs[k].msg_hdr.msg_namelen = sizeof names[k];
      msgs[k].msg_hdr.msg_iov = &iov[k];
      msgs[k].msg_hdr.msg_iovlen = 1;
    }
    int n = recvmmsg((int)fd, msgs, (unsigned)want, MSG_DONTWAIT, NULL);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) {
        errors++;
        last = errno;
      }
      break;
    }
    consumed += n;
    int64_t dst = got;
    for (int k = 0; k < n; k++) {
      if (msgs[k].msg_hdr.msg_flags & MSG_TRUNC) {
        truncated++;
        continue;
      }
      size_t from = (size_t)(got + k) * (size_t)slot_size;
      size_t to = (size_t)dst * (size_t)slot_size;
      if (to != from) memmove(buf + to, buf + from, msgs[k].msg_len);
      offsets[dst] = (uint32_t)to;
      lengths[dst] = msgs[k].msg_len;
      meshd_sockaddr_to_slot(&names[k], addrs + (size_t)dst * ADDR_SIZE);
      dst++;
    }
    got = dst;
    if (n < want) break;
  }
  result[0] = (int32_t)got;
  result[1] = (int32_t)truncated;
  result[2] = (int32_t)errors;
  result[3] = last;
  return meshd_int(env, got);
}

/*
 * sendmmsg packets start..end-1, packet i to addrs slot i, one datagram each. counts receives
 * [sent, dropped (full queue: the rest of the range), errors, lastErrno].
 */
void meshd_udp_send_range(int fd, int family, uint8_t* buf, const uint32_t* offsets, const uint32_t* lengths,
                          const uint8_t* addrs, int64_t start, int64_t end, int64_t* counts) {
  struct mmsghdr msgs[CHUNK];
  struct iovec iov[CHUNK];
  struct sockaddr_storage names[CHUNK];
  int64_t sent = 0, dropped = 0, errors = 0;
  int last = 0;
  int64_t j = start;
  while (j < end) {
    int k = 0;
    while (k < CHUNK && j < end) {
      socklen_t name_len;
      if (!meshd_slot_to_sockaddr(addrs + (size_t)j * ADDR_SIZE, family, &names[k], &name_len)) {
        errors++;
        last = EAFNOSUPPORT;
        j++;
        continue;
      }
      memset(&msgs[k], 0, sizeof msgs[k]);
      iov[k].iov_base = buf + offsets[j];
      iov[k].iov_len = lengths[j];
      msgs[k].msg_hdr.msg_name = &names[k];
      msgs[k].msg_hdr.msg_namelen = name_len;
      msgs[k].msg_hdr.msg_iov = &iov[k];
      msgs[k].msg_hdr.msg_iovlen = 1;
      k++;
      j++;
    }
    int done = 0;
    while (done < k) {
      int n = sendmmsg(fd, msgs + done, (unsigned)(k - done), MSG_DONTWAIT);
      if (n > 0) {
        sent += n;
        done += n;
        continue;
      }
      int err = n < 0 ? errno : EIO;
      if (err == EINTR) continue;
      if (err == EAGAIN || err == EWOULDBLOCK || err == ENOBUFS) {
        dropped += (k - done) + (end - j);
        goto out;
      }
      errors++;
      last = err;
      done++;
    }
  }
out:
  counts[0] = sent;
  counts[1] = dropped;
  counts[2] = errors;
  counts[3] = last;
}

/* The checked arguments of udpSend and udpSendGso (see udp_addr.h). */
int meshd_parse_send_args(napi_env env, napi_callback_info info, const char* fn, size_t min_result, meshd_send_args* out) {
  napi_value argv[9];
  if (!meshd_args(env, info, 9, argv, NULL)) return 0;
  int64_t fd, fam, start, count;
  size_t buf_len, addrs_len, n_off, n_len, n_res;
  if (!meshd_get_int(env, argv[0], "fd", 0, INT_MAX, &fd) || !meshd_get_int(env, argv[1], "family", 4, 6, &fam) ||
      !meshd_get_bytes(env, argv[2], "buf", &out->buf, &buf_len) ||
      !meshd_get_u32array(env, argv[3], "offsets", &out->offsets, &n_off) ||
      !meshd_get_u32array(env, argv[4], "lengths", &out->lengths, &n_len) ||
      !meshd_get_bytes(env, argv[5], "addrs", &out->addrs, &addrs_len) ||
      !meshd_get_int(env, argv[6], "start", 0, UINT32_MAX, &start) ||
      !meshd_get_int(env, argv[7], "count", 0, UINT32_MAX, &count) ||
      !meshd_get_i32array(env, argv[8], "result", &out->result, &n_res))
    return 0;
  char what[96];
  int64_t end = start + count;
  if ((uint64_t)end > n_off || (uint64_t)end > n_len || (uint64_t)end * ADDR_SIZE > addrs_len || n_res < min_result) {
    snprintf(what, sizeof what, "%s: start/count outside the batch", fn);
    meshd_throw_range(env, what);
    return 0;
  }
  if (!meshd_check_packet_ranges(env, fn, buf_len, out->offsets, out->lengths, start, end)) return 0;
  out->fd = (int)fd;
  out->family = fam == 4 ? AF_INET : AF_INET6;
  out->start = start;
  out->end = end;
  return 1;
}

/*
 * udpSend(fd, family, buf, offsets, lengths, addrs, start, count, result): number
 * Sends packets start..start+count-1, packet i to addrs slot i. On a full send queue (EAGAIN)
 * the rest of the batch is dropped; a packet the kernel refuses is skipped and counted.
 * result: [sent, dropped, errors, lastErrno].
 */
napi_value meshd_udp_send(napi_env env, napi_callback_info info) {
  meshd_send_args sa;
  if (!meshd_parse_send_args(env, info, "udpSend", 4, &sa)) return NULL;
  int64_t counts[4] = {0, 0, 0, 0};
  meshd_udp_send_range(sa.fd, sa.family, sa.buf, sa.offsets, sa.lengths, sa.addrs, sa.start, sa.end, counts);
  for (int i = 0; i < 4; i++) sa.result[i] = (int32_t)counts[i];
  return meshd_int(env, counts[0]);
}
#endif
