#!/usr/bin/env bash
# The test command: makes sure what the suite needs is there (installing
# the Debian packages it lacks when it can), then runs every test of the
# workspace (unit, integration, and end-to-end with the real kubectl).
set -euo pipefail
cd "$(dirname "$0")/.."

missing() { echo "cannot run the tests: $1" >&2; exit 1; }
command -v cargo >/dev/null 2>&1 || missing "cargo (a Rust toolchain) is not on PATH"
command -v kubectl >/dev/null 2>&1 || missing "kubectl (v1.32) is not on PATH; the end-to-end tests drive the real kubectl"
docker info >/dev/null 2>&1 || missing "Docker Engine does not answer (docker info); pods run as Docker containers"

# Debian packages the build and the tests use: protoc (the etcd client's
# build compiles etcd's API definitions), etcd (the store of control
# planes on several machines), busybox (the test images are built from the
# static one), nft (the service proxy), dig (the cluster DNS's test),
# chromium (the dashboard's tests drive it headless), tcpdump (the mesh's
# tests check what crosses the wire), nginx (the ingress's HTTP/1 tests
# send the same hostile requests to it).
packages=()
command -v protoc >/dev/null 2>&1 || packages+=(protobuf-compiler)
command -v etcd >/dev/null 2>&1 || packages+=(etcd-server)
command -v busybox >/dev/null 2>&1 || packages+=(busybox-static)
command -v nft >/dev/null 2>&1 || [ -x /usr/sbin/nft ] || packages+=(nftables)
command -v dig >/dev/null 2>&1 || packages+=(bind9-dnsutils)
command -v chromium >/dev/null 2>&1 || packages+=(chromium)
command -v tcpdump >/dev/null 2>&1 || [ -x /usr/bin/tcpdump ] || [ -x /usr/sbin/tcpdump ] || packages+=(tcpdump)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || packages+=(nginx-light)
if [ ${#packages[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "installing ${packages[*]} (apt-get)" >&2
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${packages[@]}" >/dev/null
    else
        missing "these Debian packages are not installed: ${packages[*]} (apt-get install ${packages[*]})"
    fi
fi

# An off-the-shelf operator framework (Python's kopf), which the custom
# resource tests run against the server unchanged.
if ! python3 -c "import kopf" >/dev/null 2>&1; then
    command -v python3 >/dev/null 2>&1 || missing "python3 is not on PATH; an operator test runs kopf"
    echo "installing kopf (pip)" >&2
    python3 -m pip install -q kopf >/dev/null 2>&1 \
        || missing "the Python package kopf is not installed (python3 -m pip install kopf)"
fi

cargo test --workspace "$@"

# The ingress's HTTP/1 framing under a fuzzer, for a bounded time
# (FUZZ_SECONDS, 60 by default; 0 skips it). cargo-fuzz needs a nightly
# toolchain; without one the run says so and is skipped.
fuzz_seconds=${FUZZ_SECONDS:-60}
if [ "$fuzz_seconds" -gt 0 ]; then
    if cargo +nightly --version >/dev/null 2>&1; then
        if ! cargo fuzz --version >/dev/null 2>&1; then
            echo "installing cargo-fuzz (cargo install)" >&2
            cargo install -q cargo-fuzz
        fi
        mkdir -p ingress/fuzz/corpus/h1_framing
        (cd ingress && cargo +nightly fuzz run h1_framing fuzz/corpus/h1_framing fuzz/seeds/h1_framing \
            -- -max_total_time="$fuzz_seconds")
    else
        echo "no nightly toolchain: the fuzz run (cargo +nightly fuzz run h1_framing) is skipped" >&2
    fi
fi
