#!/usr/bin/env bash
# The test command: checks what the suite needs, then runs every test of the
# workspace (unit, integration, and end-to-end with the real kubectl).
set -euo pipefail
cd "$(dirname "$0")/.."

missing() { echo "cannot run the tests: $1" >&2; exit 1; }
command -v cargo >/dev/null 2>&1 || missing "cargo (a Rust toolchain) is not on PATH"
command -v kubectl >/dev/null 2>&1 || missing "kubectl (v1.32) is not on PATH; the end-to-end tests drive the real kubectl"
docker info >/dev/null 2>&1 || missing "Docker Engine does not answer (docker info); pods run as Docker containers"
command -v busybox >/dev/null 2>&1 || missing "busybox is not installed (apt-get install busybox-static); the test images are built from it"
command -v cmake >/dev/null 2>&1 || missing "cmake is not installed (apt-get install cmake); Pingora's zlib-ng builds with it"
command -v nft >/dev/null 2>&1 || [ -x /usr/sbin/nft ] || missing "nft is not installed (apt-get install nftables); the proxy's kernel mode is tested with it"
command -v dig >/dev/null 2>&1 || missing "dig is not installed (apt-get install bind9-dnsutils); the cluster DNS is queried with it"

exec cargo test --workspace "$@"
