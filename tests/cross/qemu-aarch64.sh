#!/usr/bin/env bash
# Runs an aarch64 Linux program under qemu-user: qemu-aarch64 PROGRAM ARGS...
#
# ONNX Runtime reads /proc/cpuinfo (through pytorch/cpuinfo) when it is loaded; qemu-user
# 7.2 (Debian 12) passes the host's x86 file through for aarch64, cpuinfo finds no ARM
# core in it and ONNX Runtime crashes (SIGSEGV inside dlopen). So the program runs in a
# private mount namespace where /proc/cpuinfo describes ARM Neoverse-N1 cores, one per
# host processor (needs root or CAP_SYS_ADMIN for unshare and the bind mount).
set -euo pipefail
fake=$(mktemp)
trap 'rm -f "$fake"' EXIT
for ((i = 0; i < $(nproc --all); i++)); do
    printf 'processor\t: %d\nBogoMIPS\t: 50.00\nFeatures\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp\nCPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x3\nCPU part\t: 0xd0c\nCPU revision\t: 1\n\n' "$i"
done > "$fake"
export QEMU_LD_PREFIX=${QEMU_LD_PREFIX:-/usr/aarch64-linux-gnu}
exec unshare --mount -- bash -c 'mount --bind "$0" /proc/cpuinfo && exec qemu-aarch64 "$@"' "$fake" "$@"
