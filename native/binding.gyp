{
  "targets": [
    {
      "target_name": "meshd_native",
      "sources": [
        "src/addon.c",
        "src/args.c",
        "src/poll.c",
        "src/tun.c",
        "src/udp.c",
        "src/gso.c",
        "src/csum.c",
        "src/vnet_split.c",
        "src/vnet_gro.c",
        "src/vnet_io.c",
        "src/aead.c",
        "src/aead_pool.c",
        "src/aead_direct.c",
        "src/chacha_keys.c",
        "src/memory.c"
      ],
      "defines": ["NAPI_VERSION=8"],
      # Never unmapped (worker teardown would otherwise dlclose it while libuv still holds a
      # close callback into it).
      "ldflags": ["-Wl,-z,nodelete"],
      "libraries": ["-lpthread", "-ldl"],
      "cflags": ["-std=gnu11", "-Wall", "-Wextra", "-Wno-unused-parameter", "-fvisibility=hidden"],
      "conditions": [
        ["OS!='linux'", { "defines": ["MESHD_NO_LINUX_IO"] }]
      ]
    }
  ]
}
