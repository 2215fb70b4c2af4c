/*
 * TUN device: open /dev/net/tun as IFF_TUN|IFF_NO_PI, non-blocking; batch read and write of
 * whole IP packets on any packet fd (one read()/write() per packet, one JS call per batch).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <unistd.h>

#ifndef MESHD_NO_LINUX_IO
#include <linux/if_tun.h>
#include <net/if.h>
#include <sys/ioctl.h>
#endif

#include "args.h"
#include "meshd_native.h"

/* TUNSETOFFLOAD bits (linux/if_tun.h; the USO ones are newer than some headers). */
#define MESHD_TUN_F_CSUM 0x01
#define MESHD_TUN_F_TSO4 0x02
#define MESHD_TUN_F_TSO6 0x04
#define MESHD_TUN_F_USO4 0x20
#define MESHD_TUN_F_USO6 0x40

/*
 * tunOpen(name: string, vnet?: boolean): { fd, name, vnet: boolean, offloads: number }
 * With vnet, the device is opened with IFF_VNET_HDR and asked for checksum, TSO4/6 and (where
 * the kernel has it) USO offload; `offloads` holds the TUNSETOFFLOAD bits it accepted (0: none,
 * the frames still carry virtio headers). A kernel that refuses IFF_VNET_HDR gives vnet false.
 */
napi_value meshd_tun_open(napi_env env, napi_callback_info info) {
#ifdef MESHD_NO_LINUX_IO
  meshd_throw_errno(env, "tunOpen", ENOSYS);
  return NULL;
#else
  napi_value argv[2];
  if (!meshd_args(env, info, 2, argv, NULL)) return NULL;
  bool want_vnet = false;
  if (napi_get_value_bool(env, argv[1], &want_vnet) != napi_ok) want_vnet = false;
  char name[IFNAMSIZ + 1];
  size_t name_len = 0;
  memset(name, 0, sizeof name);
  if (napi_get_value_string_utf8(env, argv[0], name, sizeof name, &name_len) != napi_ok) {
    meshd_throw_type(env, "name must be a string");
    return NULL;
  }
  if (name_len == 0 || name_len >= IFNAMSIZ) {
    meshd_throw_range(env, "interface name must be 1 to 15 bytes");
    return NULL;
  }
  int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    meshd_throw_errno(env, "open /dev/net/tun", errno);
    return NULL;
  }
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  ifr.ifr_flags = IFF_TUN | IFF_NO_PI | (want_vnet ? IFF_VNET_HDR : 0);
  memcpy(ifr.ifr_name, name, name_len);
  int rc = ioctl(fd, TUNSETIFF, &ifr);
  if (rc < 0 && want_vnet && errno == EINVAL) {
    want_vnet = false;
    ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
    rc = ioctl(fd, TUNSETIFF, &ifr);
  }
  int offloads = 0;
  if (rc == 0 && want_vnet) {
    const int tcp = MESHD_TUN_F_CSUM | MESHD_TUN_F_TSO4 | MESHD_TUN_F_TSO6;
    const int udp = MESHD_TUN_F_USO4 | MESHD_TUN_F_USO6;
    if (ioctl(fd, TUNSETOFFLOAD, (unsigned long)(tcp | udp)) == 0) offloads = tcp | udp;
    else if (ioctl(fd, TUNSETOFFLOAD, (unsigned long)tcp) == 0) offloads = tcp;
  }
  if (rc < 0) {
    int err = errno;
    close(fd);
    meshd_throw_errno(env, "ioctl TUNSETIFF", err);
    return NULL;
  }
  napi_value out, v;
  napi_create_object(env, &out);
  napi_create_int32(env, fd, &v);
  napi_set_named_property(env, out, "fd", v);
  napi_create_string_utf8(env, ifr.ifr_name, strnlen(ifr.ifr_name, IFNAMSIZ), &v);
  napi_set_named_property(env, out, "name", v);
  napi_get_boolean(env, want_vnet, &v);
  napi_set_named_property(env, out, "vnet", v);
  napi_create_int32(env, offloads, &v);
  napi_set_named_property(env, out, "offloads", v);
  return out;
#endif
}

static int transient_read_error(int err) {
  return err == EFAULT || err == EINVAL || err == EMSGSIZE || err == ENOBUFS || err == ENOMEM;
}

/*
 * fdRead(fd, buf, slotSize, headroom, maxLen, offsets, lengths, max, result): number
 * Reads up to `max` packets, packet i into buf at i*slotSize + headroom (at most maxLen bytes,
 * and headroom + maxLen < slotSize),
 * setting offsets[i] and lengths[i]. Stops at EAGAIN. A packet longer than maxLen is dropped
 * and counted as an error (EMSGSIZE). result (Int32Array(4)) receives [count, errors,
 * lastErrno, 0]; an error other than a per-packet one stops the batch.
 */
napi_value meshd_fd_read(napi_env env, napi_callback_info info) {
  napi_value argv[9];
  if (!meshd_args(env, info, 9, argv, NULL)) return NULL;
  int64_t fd, slot_size, headroom, max_len, max;
  uint8_t* buf;
  size_t buf_len, n_off, n_len, n_res;
  uint32_t *offsets, *lengths;
  int32_t* result;
  if (!meshd_get_int(env, argv[0], "fd", 0, INT_MAX, &fd) || !meshd_get_bytes(env, argv[1], "buf", &buf, &buf_len) ||
      !meshd_get_int(env, argv[2], "slotSize", 1, UINT32_MAX, &slot_size) ||
      !meshd_get_int(env, argv[3], "headroom", 0, UINT32_MAX, &headroom) ||
      !meshd_get_int(env, argv[4], "maxLen", 1, UINT32_MAX, &max_len) ||
      !meshd_get_u32array(env, argv[5], "offsets", &offsets, &n_off) ||
      !meshd_get_u32array(env, argv[6], "lengths", &lengths, &n_len) ||
      !meshd_get_int(env, argv[7], "max", 0, UINT32_MAX, &max) ||
      !meshd_get_i32array(env, argv[8], "result", &result, &n_res))
    return NULL;
  if (headroom + max_len >= slot_size || (uint64_t)max > n_off || (uint64_t)max > n_len || n_res < 4 ||
      (uint64_t)max * (uint64_t)slot_size > buf_len) {
    meshd_throw_range(env, "fdRead: batch arrays do not fit the buffer");
    return NULL;
  }
  int64_t count = 0, errors = 0, attempts = 0;
  int last = 0;
  while (count < max && attempts < max + 16) {
    attempts++;
    size_t off = (size_t)(count * slot_size + headroom);
    /* Ask for one byte more than allowed: tun silently truncates a packet to the buffer (some
     * kernels return the copied length, some the whole length), so only a read longer than
     * max_len reveals a packet that did not fit. That byte lands in the slot's tailroom. */
    ssize_t n = read((int)fd, buf + off, (size_t)max_len + 1);
    if (n > (ssize_t)max_len) {
      errors++;
      last = EMSGSIZE;
      continue;
    }
    if (n > 0) {
      offsets[count] = (uint32_t)off;
      lengths[count] = (uint32_t)n;
      count++;
      continue;
    }
    if (n == 0) break;
    int err = errno;
    if (err == EINTR) continue;
    if (err == EAGAIN || err == EWOULDBLOCK) break;
    errors++;
    last = err;
    if (!transient_read_error(err)) break;
  }
  result[0] = (int32_t)count;
  result[1] = (int32_t)errors;
  result[2] = last;
  result[3] = 0;
  return meshd_int(env, count);
}

/*
 * fdWrite(fd, buf, offsets, lengths, start, count, result): number
 * Writes packets start..start+count-1, one write() each, never blocking. result receives
 * [written, droppedOnFullQueue (EAGAIN), errors, lastErrno].
 */
napi_value meshd_fd_write(napi_env env, napi_callback_info info) {
  meshd_write_args wa;
  if (!meshd_parse_write_args(env, info, "fdWrite", 4, &wa)) return NULL;
  int fd = wa.fd;
  uint8_t* buf = wa.buf;
  const uint32_t *offsets = wa.offsets, *lengths = wa.lengths;
  int32_t* result = wa.result;
  int64_t written = 0, dropped = 0, errors = 0;
  int last = 0;
  for (int64_t i = wa.start; i < wa.end; i++) {
    ssize_t n;
    do n = write(fd, buf + offsets[i], lengths[i]);
    while (n < 0 && errno == EINTR);
    if (n >= 0) {
      written++;
      continue;
    }
    int err = errno;
    if (err == EAGAIN || err == EWOULDBLOCK || err == ENOBUFS) {
      dropped++;
    } else {
      errors++;
      last = err;
    }
  }
  result[0] = (int32_t)written;
  result[1] = (int32_t)dropped;
  result[2] = (int32_t)errors;
  result[3] = last;
  return meshd_int(env, written);
}

/* fdClose(fd): closes a descriptor this addon opened. */
napi_value meshd_fd_close(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (!meshd_args(env, info, 1, argv, NULL)) return NULL;
  int64_t fd;
  if (!meshd_get_int(env, argv[0], "fd", 0, INT_MAX, &fd)) return NULL;
  if (close((int)fd) < 0 && errno != EINTR) {
    meshd_throw_errno(env, "close", errno);
    return NULL;
  }
  return meshd_undefined(env);
}
