/*
 * The TUN's batch read and write with virtio headers (a TUN opened with tunOpen(name, true)),
 * and the same cutting and joining on plain buffers for tests (vnetSplit, vnetCoalesce).
 *
 * A read frame that is one packet lands in place: the virtio header in the slot's headroom, the
 * packet at slot start + headroom. A super-segment spills into a caller-owned scratch area
 * (tunVnetScratchSize() bytes) and is cut from there into slots; what does not fit in this
 * batch stays in the scratch for the next call (result[6] says so).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "args.h"
#include "meshd_native.h"
#include "vnet.h"

#define SCRATCH_STATE 256
#define SCRATCH_FRAME (VNET_MAX_FRAME + 64)
#define VNET_MAGIC 0x766e6574u

typedef struct {
  uint32_t magic;
  uint32_t active; /* a cut is under way in the frame area */
  vnet_cut cut;
} vnet_state;

_Static_assert(sizeof(vnet_state) <= SCRATCH_STATE, "vnet state fits its area");

static int transient(int err) {
  return err == EFAULT || err == EINVAL || err == EMSGSIZE || err == ENOBUFS || err == ENOMEM;
}

typedef struct {
  uint8_t* buf;
  int64_t slot_size, headroom, max_len, max;
  uint32_t *offsets, *lengths;
  int64_t count, errors, segments;
  int last;
} read_out;

/* Emit segments of the cut under way into slots until the batch is full or the cut is done. */
static void drain_cut(vnet_state* st, read_out* o) {
  while (st->active && o->count < o->max) {
    if (vnet_cut_done(&st->cut)) {
      st->active = 0;
      break;
    }
    uint32_t l = vnet_cut_next_len(&st->cut);
    size_t off = (size_t)(o->count * o->slot_size + o->headroom);
    if ((int64_t)l > o->max_len) {
      /* Larger than a slot allows (an MTU above the batch's slots): the rest of this
       * super-segment is dropped, counted once. */
      o->errors++;
      o->last = EMSGSIZE;
      st->active = 0;
      break;
    }
    vnet_cut_emit(&st->cut, o->buf + off);
    o->offsets[o->count] = (uint32_t)off;
    o->lengths[o->count] = l;
    o->count++;
    o->segments++;
  }
  if (st->active && vnet_cut_done(&st->cut)) st->active = 0;
}

static vnet_state* scratch_state(napi_env env, uint8_t* scratch, size_t len) {
  if (len < SCRATCH_STATE + SCRATCH_FRAME || ((uintptr_t)scratch & 7) != 0) {
    meshd_throw_range(env, "scratch must be tunVnetScratchSize() bytes (8-byte aligned)");
    return NULL;
  }
  vnet_state* st = (vnet_state*)scratch;
  if (st->magic != VNET_MAGIC) {
    memset(st, 0, sizeof *st);
    st->magic = VNET_MAGIC;
  }
  return st;
}

/*
 * tunReadVnet(fd, buf, slotSize, headroom, maxLen, offsets, lengths, max, result, scratch): number
 * As fdRead (headroom >= 10), for a TUN with virtio headers. result (Int32Array(8)): [count,
 * errors, lastErrno, 0, superSegments, packetsCutFromThem, held (1: segments wait in scratch), 0].
 */
napi_value meshd_tun_read_vnet(napi_env env, napi_callback_info info) {
  napi_value argv[10];
  if (!meshd_args(env, info, 10, argv, NULL)) return NULL;
  int64_t fd;
  read_out o;
  memset(&o, 0, sizeof o);
  size_t buf_len, n_off, n_len, n_res, scratch_len;
  int32_t* result;
  uint8_t* scratch;
  if (!meshd_get_int(env, argv[0], "fd", 0, INT_MAX, &fd) || !meshd_get_bytes(env, argv[1], "buf", &o.buf, &buf_len) ||
      !meshd_get_int(env, argv[2], "slotSize", 1, UINT32_MAX, &o.slot_size) ||
      !meshd_get_int(env, argv[3], "headroom", VNET_HDR_LEN, UINT32_MAX, &o.headroom) ||
      !meshd_get_int(env, argv[4], "maxLen", 1, UINT32_MAX, &o.max_len) ||
      !meshd_get_u32array(env, argv[5], "offsets", &o.offsets, &n_off) ||
      !meshd_get_u32array(env, argv[6], "lengths", &o.lengths, &n_len) ||
      !meshd_get_int(env, argv[7], "max", 0, UINT32_MAX, &o.max) ||
      !meshd_get_i32array(env, argv[8], "result", &result, &n_res) ||
      !meshd_get_bytes(env, argv[9], "scratch", &scratch, &scratch_len))
    return NULL;
  if (o.headroom + o.max_len >= o.slot_size || (uint64_t)o.max > n_off || (uint64_t)o.max > n_len || n_res < 8 ||
      (uint64_t)o.max * (uint64_t)o.slot_size > buf_len) {
    meshd_throw_range(env, "tunReadVnet: batch arrays do not fit the buffer");
    return NULL;
  }
  vnet_state* st = scratch_state(env, scratch, scratch_len);
  if (st == NULL) return NULL;
  uint8_t* frame = scratch + SCRATCH_STATE;
  int64_t supers = 0, attempts = 0;
  drain_cut(st, &o);
  while (o.count < o.max && attempts < o.max + 16) {
    attempts++;
    uint8_t* slot = o.buf + (size_t)(o.count * o.slot_size + o.headroom) - VNET_HDR_LEN;
    size_t first = (size_t)o.max_len + VNET_HDR_LEN;
    struct iovec iov[2] = {{slot, first}, {frame + first, SCRATCH_FRAME - first}};
    ssize_t n = readv((int)fd, iov, 2);
    if (n < 0) {
      int err = errno;
      if (err == EINTR) continue;
      if (err == EAGAIN || err == EWOULDBLOCK) break;
      o.errors++;
      o.last = err;
      if (!transient(err)) break;
      continue;
    }
    if (n == 0) break;
    vnet_hdr h;
    vnet_hdr_decode(slot, &h);
    if ((size_t)n <= first && h.gso_type == VNET_GSO_NONE) {
      /* One packet, already in its slot. */
      vnet_cut c;
      int err = vnet_cut_begin(&c, slot, (size_t)n);
      if (err != 0) {
        o.errors++;
        o.last = err;
        continue;
      }
      o.offsets[o.count] = (uint32_t)(slot + VNET_HDR_LEN - o.buf);
      o.lengths[o.count] = (uint32_t)n - VNET_HDR_LEN;
      o.count++;
      continue;
    }
    memcpy(frame, slot, (size_t)n < first ? (size_t)n : first);
    int err = vnet_cut_begin(&st->cut, frame, (size_t)n);
    if (err != 0) {
      o.errors++;
      o.last = err;
      continue;
    }
    if (h.gso_type == VNET_GSO_NONE && (int64_t)st->cut.len > o.max_len) {
      o.errors++;
      o.last = EMSGSIZE;
      continue;
    }
    st->active = 1;
    supers++;
    drain_cut(st, &o);
  }
  result[0] = (int32_t)o.count;
  result[1] = (int32_t)o.errors;
  result[2] = o.last;
  result[3] = 0;
  result[4] = (int32_t)supers;
  result[5] = (int32_t)o.segments;
  result[6] = st->active ? 1 : 0;
  result[7] = 0;
  return meshd_int(env, o.count);
}

typedef struct {
  int fd;
  int64_t written, dropped, errors;
  int last;
} write_ctx;

static int emit_write(void* p, const struct iovec* iov, int iovcnt, int packets) {
  write_ctx* w = p;
  ssize_t n;
  do n = writev(w->fd, iov, iovcnt);
  while (n < 0 && errno == EINTR);
  if (n >= 0) {
    w->written += packets;
  } else if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS) {
    w->dropped += packets;
  } else {
    w->errors += packets;
    w->last = errno;
  }
  return 0;
}

/*
 * tunWriteVnet(fd, buf, offsets, lengths, start, count, result): number
 * As fdWrite for a TUN with virtio headers, joining TCP segments (see vnet_gro.c). result
 * (Int32Array(8)): [written, dropped, errors, lastErrno, frames, joinedFrames, joinedPackets, 0]
 * (packet counts, except frames and joinedFrames). Packet headers may be rewritten in place.
 */
napi_value meshd_tun_write_vnet(napi_env env, napi_callback_info info) {
  meshd_write_args wa;
  if (!meshd_parse_write_args(env, info, "tunWriteVnet", 8, &wa)) return NULL;
  int32_t* result = wa.result;
  write_ctx w = {wa.fd, 0, 0, 0, 0};
  vnet_gro_stats s = {0, 0, 0};
  vnet_gro_batch(wa.buf, wa.offsets, wa.lengths, wa.start, wa.end, emit_write, &w, &s);
  result[0] = (int32_t)w.written;
  result[1] = (int32_t)w.dropped;
  result[2] = (int32_t)w.errors;
  result[3] = w.last;
  result[4] = (int32_t)s.frames;
  result[5] = (int32_t)s.coalesced;
  result[6] = (int32_t)s.coalesced_pkts;
  result[7] = 0;
  return meshd_int(env, w.written);
}

typedef struct {
  uint8_t* out;
  size_t cap, used;
  uint32_t* frame_lengths;
  size_t max_frames, frames;
  int overflow;
} copy_ctx;

static int emit_copy(void* p, const struct iovec* iov, int iovcnt, int packets) {
  copy_ctx* c = p;
  size_t total = 0;
  for (int i = 0; i < iovcnt; i++) total += iov[i].iov_len;
  if (c->frames >= c->max_frames || c->used + total > c->cap) {
    c->overflow = 1;
    return 1;
  }
  for (int i = 0; i < iovcnt; i++) {
    memcpy(c->out + c->used, iov[i].iov_base, iov[i].iov_len);
    c->used += iov[i].iov_len;
  }
  c->frame_lengths[c->frames++] = (uint32_t)total;
  return 0;
}

/*
 * vnetCoalesce(buf, offsets, lengths, start, count, out, frameLengths): number of frames
 * What tunWriteVnet would write, concatenated into out (frame k is frameLengths[k] bytes, virtio
 * header first). Throws RangeError when out or frameLengths is too small.
 */
napi_value meshd_vnet_coalesce(napi_env env, napi_callback_info info) {
  napi_value argv[7];
  if (!meshd_args(env, info, 7, argv, NULL)) return NULL;
  int64_t start, count;
  uint8_t *buf, *out;
  size_t buf_len, n_off, n_len, out_len, n_frames;
  uint32_t *offsets, *lengths, *frame_lengths;
  if (!meshd_get_bytes(env, argv[0], "buf", &buf, &buf_len) ||
      !meshd_get_u32array(env, argv[1], "offsets", &offsets, &n_off) ||
      !meshd_get_u32array(env, argv[2], "lengths", &lengths, &n_len) ||
      !meshd_get_int(env, argv[3], "start", 0, UINT32_MAX, &start) ||
      !meshd_get_int(env, argv[4], "count", 0, UINT32_MAX, &count) ||
      !meshd_get_bytes(env, argv[5], "out", &out, &out_len) ||
      !meshd_get_u32array(env, argv[6], "frameLengths", &frame_lengths, &n_frames))
    return NULL;
  if ((uint64_t)(start + count) > n_off || (uint64_t)(start + count) > n_len) {
    meshd_throw_range(env, "vnetCoalesce: start/count outside the batch");
    return NULL;
  }
  if (!meshd_check_packet_ranges(env, "vnetCoalesce", buf_len, offsets, lengths, start, start + count)) return NULL;
  copy_ctx c = {out, out_len, 0, frame_lengths, n_frames, 0, 0};
  vnet_gro_stats s = {0, 0, 0};
  vnet_gro_batch(buf, offsets, lengths, start, start + count, emit_copy, &c, &s);
  if (c.overflow) {
    meshd_throw_range(env, "vnetCoalesce: out or frameLengths too small");
    return NULL;
  }
  return meshd_int(env, (int64_t)c.frames);
}

/*
 * vnetSplit(frame, buf, slotSize, headroom, maxLen, offsets, lengths, max): number
 * Cut one frame (virtio header + packet; modified in place) into packets at slot i*slotSize +
 * headroom, as tunReadVnet does. Throws a system error (EINVAL, EPROTONOSUPPORT, EMSGSIZE for a
 * packet over maxLen, ENOSPC for more packets than max) for what a read would count and drop.
 */
napi_value meshd_vnet_split(napi_env env, napi_callback_info info) {
  napi_value argv[8];
  if (!meshd_args(env, info, 8, argv, NULL)) return NULL;
  uint8_t* frame;
  size_t frame_len, buf_len, n_off, n_len;
  read_out o;
  memset(&o, 0, sizeof o);
  if (!meshd_get_bytes(env, argv[0], "frame", &frame, &frame_len) ||
      !meshd_get_bytes(env, argv[1], "buf", &o.buf, &buf_len) ||
      !meshd_get_int(env, argv[2], "slotSize", 1, UINT32_MAX, &o.slot_size) ||
      !meshd_get_int(env, argv[3], "headroom", 0, UINT32_MAX, &o.headroom) ||
      !meshd_get_int(env, argv[4], "maxLen", 1, UINT32_MAX, &o.max_len) ||
      !meshd_get_u32array(env, argv[5], "offsets", &o.offsets, &n_off) ||
      !meshd_get_u32array(env, argv[6], "lengths", &o.lengths, &n_len) ||
      !meshd_get_int(env, argv[7], "max", 0, UINT32_MAX, &o.max))
    return NULL;
  if (o.headroom + o.max_len > o.slot_size || (uint64_t)o.max > n_off || (uint64_t)o.max > n_len ||
      (uint64_t)o.max * (uint64_t)o.slot_size > buf_len || frame_len > VNET_MAX_FRAME) {
    meshd_throw_range(env, "vnetSplit: batch arrays do not fit the buffer");
    return NULL;
  }
  vnet_state st;
  memset(&st, 0, sizeof st);
  int err = vnet_cut_begin(&st.cut, frame, frame_len);
  if (err == 0 && st.cut.h.gso_size == 0 && (int64_t)st.cut.len > o.max_len) err = EMSGSIZE;
  if (err != 0) {
    meshd_throw_errno(env, "vnetSplit", err);
    return NULL;
  }
  st.active = 1;
  drain_cut(&st, &o);
  if (o.errors > 0) {
    meshd_throw_errno(env, "vnetSplit", o.last);
    return NULL;
  }
  if (st.active) {
    meshd_throw_errno(env, "vnetSplit", ENOSPC);
    return NULL;
  }
  return meshd_int(env, o.count);
}

/* tunVnetScratchSize(): the bytes tunReadVnet's scratch needs. */
napi_value meshd_tun_vnet_scratch_size(napi_env env, napi_callback_info info) {
  return meshd_int(env, SCRATCH_STATE + SCRATCH_FRAME);
}
