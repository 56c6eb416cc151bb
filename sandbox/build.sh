#!/usr/bin/env bash
# Builds every flow under sandbox/flows (release, opt-level "s") into sandbox/out/<name>.wasm:
# the ferry:flow components and the plain WASI 0.2 command for wasm32-wasip2, the preview1
# module for wasm32-wasip1. ferry-wasm-host's tests run this once when they start.
set -euo pipefail
cd "$(dirname "$0")"

# Test processes run this concurrently (nextest runs each test in its own process): one build
# at a time, the others wait and then find everything up to date.
mkdir -p out
exec 9>out/.build.lock
flock 9

# Kind 1: components of the ferry:flow world (cdylib crates using the SDK).
components=(
    hello params logs fails grants hoard
    infinite-loop memory-bomb deep-recursion stdout-flood huge-result fs-escape network disk-fill
    sleep-forever trap
)
# Kind 2: WASI 0.2 commands (bin crates).
commands=(command)
# Kind 3: WASI preview1 core modules with _start (bin crates).
preview1=(preview1)

for target in wasm32-wasip2 wasm32-wasip1; do
    if ! rustup target list --installed 2>/dev/null | grep -qx "$target"; then
        echo "build.sh: the Rust target $target is not installed (rustup target add $target)" >&2
        exit 1
    fi
done

# A caller's cargo settings (a test run's target dir, flags for the host) must not leak into
# the guest build.
unset CARGO_TARGET_DIR CARGO_BUILD_TARGET RUSTFLAGS CARGO_ENCODED_RUSTFLAGS CARGO_BUILD_RUSTFLAGS
locked=()
if [[ -f Cargo.lock ]]; then locked=(--locked); fi

packages() { for p in "$@"; do printf -- '-p\n%s\n' "$p"; done; }
mapfile -t p2 < <(packages "${components[@]}" "${commands[@]}")
mapfile -t p1 < <(packages "${preview1[@]}")
cargo build --quiet --release "${locked[@]}" --target wasm32-wasip2 "${p2[@]}"
cargo build --quiet --release "${locked[@]}" --target wasm32-wasip1 "${p1[@]}"

mkdir -p out
# Copy then rename, so a reader never sees half a file.
install_wasm() {
    cp "$1" "out/.$2.wasm.tmp"
    mv "out/.$2.wasm.tmp" "out/$2.wasm"
}
for name in "${components[@]}"; do
    install_wasm "target/wasm32-wasip2/release/${name//-/_}.wasm" "$name"
done
for name in "${commands[@]}"; do
    install_wasm "target/wasm32-wasip2/release/$name.wasm" "$name"
done
for name in "${preview1[@]}"; do
    install_wasm "target/wasm32-wasip1/release/$name.wasm" "$name"
done
echo "build.sh: $(( ${#components[@]} + ${#commands[@]} + ${#preview1[@]} )) flows in $(pwd)/out"
