#!/usr/bin/env bash
# Builds podnet's native parts of the eBPF datapath into dist/agent/:
#   podnet-ipip.bpf.o  tc programs (clang -O2 -g -target bpf, with BTF)
#   podnet-bpf         the loader (C, links libbpf.so.1 dynamically: every Debian host with
#                      iproute2 has libbpf1)
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
echo "build-native: built $OUT/podnet-ipip.bpf.o $OUT/podnet-bpf" >&2
