/* Address slots ↔ sockaddr, and the plain batched send, shared by udp.c and gso.c. */
#ifndef MESHD_UDP_ADDR_H
#define MESHD_UDP_ADDR_H

#ifndef MESHD_NO_LINUX_IO
#include <stdint.h>
#include <sys/socket.h>
#include <node_api.h>

#define MESHD_ADDR_SIZE 20

/* Address slot → sockaddr for a socket of `family`. Returns 0 if the socket cannot reach it. */
int meshd_slot_to_sockaddr(const uint8_t* a, int family, struct sockaddr_storage* ss, socklen_t* len);
void meshd_sockaddr_to_slot(const struct sockaddr_storage* ss, uint8_t* a);
/* udpSend's and udpSendGso's arguments (fd, family, buf, offsets, lengths, addrs, start, count,
 * result), checked: start..start+count inside the batch, every packet inside the buffer, result
 * at least `min_result` long. Returns 0 with a JS exception pending otherwise. */
typedef struct {
  int fd, family;
  uint8_t *buf, *addrs;
  uint32_t *offsets, *lengths;
  int64_t start, end;
  int32_t* result;
} meshd_send_args;
int meshd_parse_send_args(napi_env env, napi_callback_info info, const char* fn, size_t min_result, meshd_send_args* out);
void meshd_udp_send_range(int fd, int family, uint8_t* buf, const uint32_t* offsets, const uint32_t* lengths,
                          const uint8_t* addrs, int64_t start, int64_t end, int64_t* counts);
#endif

#endif
