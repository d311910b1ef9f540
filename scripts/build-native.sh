#!/usr/bin/env bash
# Builds podnet's native parts into dist/agent/:
#   podnet-ipip.bpf.o  tc programs of the eBPF datapath (clang -O2 -g -target bpf, with BTF)
#   podnet-bpf         its loader (C, links libbpf.so.1 dynamically: every Debian host with
#                      iproute2 has libbpf1)
#   podnet-tun.node    the userspace datapath's N-API shim (C: the glue podnet-tun.c and the
#                      offload byte work tun-offload.c, compiled straight against the
#                      Node headers: no node-gyp, nothing downloaded; N-API symbols resolve
#                      from the node binary at load time)
# Called by scripts/build.mjs (so `npm ci`/`npm run build` run it). Fails loudly when the
# toolchain is missing, naming the apt packages to install.
# PODNET_SKIP_NATIVE=1 skips it (e.g. a machine that only edits TypeScript).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${PODNET_SKIP_NATIVE:-}" = 1 ]; then
  echo "build-native: skipped (PODNET_SKIP_NATIVE=1)" >&2
  exit 0
fi

APT_HINT="apt-get install clang libbpf-dev gcc libc6-dev linux-libc-dev pkg-config"
missing=()
command -v clang >/dev/null 2>&1 || missing+=(clang)
command -v "${CC:-cc}" >/dev/null 2>&1 || missing+=("C compiler (${CC:-cc})")
[ -f /usr/include/bpf/libbpf.h ] || [ -f /usr/local/include/bpf/libbpf.h ] || missing+=("libbpf headers")
[ -f /usr/include/linux/bpf.h ] || missing+=("linux UAPI headers")
if [ ${#missing[@]} -gt 0 ]; then
  echo "build-native: ERROR: missing ${missing[*]}; install with: $APT_HINT" >&2
  exit 1
fi

SRC=agent/datapaths/ebpf
OUT=dist/agent
mkdir -p "$OUT"

# <asm/types.h> lives in the multiarch include dir, which -target bpf does not search.
MULTIARCH="$("${CC:-cc}" -print-multiarch 2>/dev/null || true)"
[ -n "$MULTIARCH" ] || MULTIARCH="$(uname -m)-linux-gnu"

clang -O2 -g -target bpf -Wall -Werror \
  -I"/usr/include/$MULTIARCH" -I"$SRC/bpf" \
  -c "$SRC/bpf/podnet-ipip.bpf.c" -o "$OUT/podnet-ipip.bpf.o.tmp"
mv "$OUT/podnet-ipip.bpf.o.tmp" "$OUT/podnet-ipip.bpf.o"

LIBBPF_CFLAGS="$(pkg-config --cflags libbpf 2>/dev/null || true)"
LIBBPF_LIBS="$(pkg-config --libs libbpf 2>/dev/null || echo -lbpf)"
# shellcheck disable=SC2086
"${CC:-cc}" -O2 -g -Wall -Wextra -Werror -o "$OUT/podnet-bpf.tmp" \
  $LIBBPF_CFLAGS "$SRC/native/podnet-bpf.c" $LIBBPF_LIBS
mv "$OUT/podnet-bpf.tmp" "$OUT/podnet-bpf"

# Userspace datapath shim. Node's headers: $PODNET_NODE_INCLUDE, else beside this node
# (<prefix>/include/node, as the nodejs .deb and the official tarballs install them), else
# npm's nodedir, else /usr/local/include/node.
NODE_INCLUDE="${PODNET_NODE_INCLUDE:-}"
if [ -z "$NODE_INCLUDE" ]; then
  for d in "$(node -p 'require("path").join(process.execPath, "..", "..", "include", "node")' 2>/dev/null || true)" \
           "$(npm config get nodedir 2>/dev/null | grep -v '^undefined$' | sed 's|$|/include/node|' || true)" \
           /usr/include/node /usr/local/include/node; do
    if [ -n "$d" ] && [ -f "$d/node_api.h" ]; then NODE_INCLUDE="$d"; break; fi
  done
fi
if [ -z "$NODE_INCLUDE" ] || [ ! -f "$NODE_INCLUDE/node_api.h" ]; then
  echo "build-native: ERROR: Node headers (node_api.h) not found; set PODNET_NODE_INCLUDE or install the nodejs package's headers" >&2
  exit 1
fi
"${CC:-cc}" -O2 -g -Wall -Wextra -Werror -fPIC -shared -fvisibility=hidden \
  -DNODE_GYP_MODULE_NAME=podnet_tun -I"$NODE_INCLUDE" \
  -o "$OUT/podnet-tun.node.tmp" agent/datapaths/userspace/native/podnet-tun.c agent/datapaths/userspace/native/tun-offload.c
mv "$OUT/podnet-tun.node.tmp" "$OUT/podnet-tun.node"
echo "build-native: built $OUT/podnet-ipip.bpf.o $OUT/podnet-bpf $OUT/podnet-tun.node" >&2
