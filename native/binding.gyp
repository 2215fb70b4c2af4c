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
        "src/aead.c"
      ],
      "defines": ["NAPI_VERSION=8"],
      # Never unmapped (worker teardown would otherwise dlclose it while libuv still holds a
      # close callback into it).
      "ldflags": ["-Wl,-z,nodelete"],
      "cflags": ["-std=gnu11", "-Wall", "-Wextra", "-Wno-unused-parameter", "-fvisibility=hidden"],
      "conditions": [
        ["OS!='linux'", { "defines": ["MESHD_NO_LINUX_IO"] }]
      ]
    }
  ]
}
