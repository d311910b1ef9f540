#!/usr/bin/env bash
# Idempotent setup for podnet's tests and demo:
#   * as root, installs the apt packages the lab and the tests need (only those missing);
#   * runs `npm ci` when node_modules is missing or older than package-lock.json.
# Quiet when there is nothing to do. Without root it warns and continues.
set -euo pipefail

# One list, one place: add packages here. qemu-system-x86 and linux-image-amd64 are for the lab's
# VM hosts (Debian's stock kernel, which has ipip.ko; docs/lab.md): installing the kernel package
# only puts it in /boot for qemu to boot, it does not change the kernel the machine runs.
APT_PACKAGES="debootstrap systemd-container tcpdump iproute2 zstd iputils-ping openssh-client clang libbpf-dev gcc libc6-dev linux-libc-dev pkg-config python3 postgresql qemu-system-x86 linux-image-amd64 e2fsprogs kmod"

cd "$(dirname "$0")/.."

missing=()
for p in $APT_PACKAGES; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "ensure-deps: not root; cannot install missing apt packages: ${missing[*]} (lab tests will be skipped)" >&2
  elif ! command -v apt-get >/dev/null 2>&1; then
    echo "ensure-deps: no apt-get; missing packages: ${missing[*]}" >&2
  else
    echo "ensure-deps: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
fi

# npm ci when node_modules was not installed from this very package-lock.json. Compared by
# content, not mtime: a fresh checkout or a git worktree gives every file a new mtime, and an
# npm ci there would wipe a node_modules that other checkouts share.
lock_hash=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ ! -d node_modules ] || [ "$(cat node_modules/.podnet-lock-sha256 2>/dev/null)" != "$lock_hash" ]; then
  echo "ensure-deps: running npm ci" >&2
  npm ci --no-audit --no-fund --loglevel=error
  echo "$lock_hash" > node_modules/.podnet-lock-sha256
fi
