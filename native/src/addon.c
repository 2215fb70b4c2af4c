/* Module registration: exports every function and the ABI version the TypeScript loader checks. */
#include "args.h"
#include "meshd_native.h"

typedef struct {
  const char* name;
  napi_callback fn;
} export_entry;

static const export_entry EXPORTS[] = {
    {"tunOpen", meshd_tun_open},
    {"fdRead", meshd_fd_read},
    {"fdWrite", meshd_fd_write},
    {"fdClose", meshd_fd_close},
    {"pollStart", meshd_poll_start},
    {"pollStop", meshd_poll_stop},
    {"pollRef", meshd_poll_ref},
    {"udpOpen", meshd_udp_open},
    {"udpLocalAddress", meshd_udp_local_address},
    {"udpRecv", meshd_udp_recv},
    {"udpSend", meshd_udp_send},
    {"udpSetMark", meshd_udp_set_mark},
    {"udpOffload", meshd_udp_offload},
    {"udpSendGso", meshd_udp_send_gso},
    {"udpRecvGro", meshd_udp_recv_gro},
    {"udpGroScratchSize", meshd_udp_gro_scratch_size},
    {"tunReadVnet", meshd_tun_read_vnet},
    {"tunWriteVnet", meshd_tun_write_vnet},
    {"tunVnetScratchSize", meshd_tun_vnet_scratch_size},
    {"vnetSplit", meshd_vnet_split},
    {"vnetCoalesce", meshd_vnet_coalesce},
    {"aeadSeal", meshd_aead_seal},
    {"aeadOpen", meshd_aead_open},
    {"aeadThreads", meshd_aead_threads},
    {"aeadStats", meshd_aead_stats},
    {"aeadUseDirect", meshd_aead_use_direct},
    {"opensslVersion", meshd_openssl_version},
    {"mallocTrim", meshd_malloc_trim},
};

NAPI_MODULE_INIT() {
  meshd_instance* inst = meshd_aead_instance_new();
  if (inst != NULL) napi_set_instance_data(env, inst, meshd_aead_instance_free, NULL);
  for (size_t i = 0; i < sizeof EXPORTS / sizeof EXPORTS[0]; i++) {
    napi_value fn;
    if (napi_create_function(env, EXPORTS[i].name, NAPI_AUTO_LENGTH, EXPORTS[i].fn, NULL, &fn) != napi_ok) return NULL;
    if (napi_set_named_property(env, exports, EXPORTS[i].name, fn) != napi_ok) return NULL;
  }
  napi_value abi;
  napi_create_int32(env, MESHD_ABI_VERSION, &abi);
  napi_set_named_property(env, exports, "abiVersion", abi);
  return exports;
}
