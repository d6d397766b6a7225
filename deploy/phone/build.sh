#!/usr/bin/env bash
# Builds gridsync as one static binary for 64-bit ARM phones (Android under Termux, or any
# aarch64 Linux): target aarch64-unknown-linux-musl, cross-compiled with Debian's
# gcc-aarch64-linux-gnu. Prints the binary's path and size; fails past 20 MB.
#
# Needs: rustup target add aarch64-unknown-linux-musl; apt-get install gcc-aarch64-linux-gnu.
# Bundled SQLite is built with large-file support off: the glibc cross compiler would
# otherwise call open64/pread64..., which musl does not have (64-bit offsets are native on
# aarch64).
set -euo pipefail
cd "$(dirname "$0")/../.."

target=aarch64-unknown-linux-musl
export CC_aarch64_unknown_linux_musl=aarch64-linux-gnu-gcc
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER=aarch64-linux-gnu-gcc
export LIBSQLITE3_FLAGS="-DSQLITE_DISABLE_LFS -U_FORTIFY_SOURCE"
cargo build --profile phone --target "$target" -p gridsync

binary="${CARGO_TARGET_DIR:-target}/$target/phone/gridsync"
size=$(stat -c %s "$binary")
limit=$((20 * 1024 * 1024))
echo "$binary: $size bytes ($((size / 1024 / 1024)) MiB)"
if [ "$size" -gt "$limit" ]; then
  echo "the phone binary is larger than 20 MiB" >&2
  exit 1
fi
