#!/usr/bin/env bash
# tokenvault side by side with raw sled, SQLite and SQLCipher: builds what it needs, runs every
# measurement in one process tree, and prints one table with the ratios, then the targets.
#
#   bash benches/compare.sh                               # 10,000 and 100,000 tokens
#   TOKENVAULT_BENCH_MILLION=1 bash benches/compare.sh    # and 1,000,000
#   bash benches/compare.sh --quick                       # a smoke run of the harness
#
# Extra arguments go to tokenvault-compare (see benches/compare/src/main.rs).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
manifest="$root/benches/Cargo.toml"
target="$root/target"

# SQLCipher's build compiles against the system's OpenSSL headers and links its libcrypto.
if [ ! -e /usr/include/openssl/evp.h ]; then
    echo "installing libssl-dev for SQLCipher" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libssl-dev >&2
fi

# Two builds, never one: built together, the two binaries would share one SQLite flavour.
cargo build --release --quiet --manifest-path "$manifest" --target-dir "$target" -p sqlcipher-peer
cargo build --release --quiet --manifest-path "$manifest" --target-dir "$target" -p tokenvault-compare

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
echo "toolchain: $(rustc --version)"
echo
exec "$target/release/tokenvault-compare" --peer "$target/release/sqlcipher-peer" "$@"
