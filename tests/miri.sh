#!/usr/bin/env bash
# The cache table's own tests (src/cache/store.rs, taproot's only unsafe
# code) under miri, which stops at a use after free, a data race, an
# aliasing violation or a read of uninitialised memory. Nightly is used for
# this step only. Under miri the table has two shards of four slots and the
# tests a hundredth of their entries, so the same rebuilds, flushes and
# evictions happen in minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
# Add miri to the machine's nightly when it has one (installing "nightly"
# again would fetch the newest, which may lack miri), else install one.
if ! cargo +nightly miri --version >/dev/null 2>&1; then
  if rustup toolchain list | grep -q '^nightly'; then
    rustup component add miri rust-src --toolchain nightly
  else
    rustup toolchain install nightly --profile minimal --component miri --component rust-src
  fi
fi
# -Zmiri-tree-borrows: crossbeam-epoch breaks Stacked Borrows' rules in its
#   own participant list (crossbeam-rs/crossbeam#545) and is checked under
#   Tree Borrows upstream.
# -Zmiri-ignore-leaks: the global collector never runs the garbage it still
#   holds when the process exits (crossbeam-rs/crossbeam#579), so every entry
#   retired in the last epochs would count as leaked; crossbeam's own miri
#   runs set it for the same reason.
# -Zmiri-permissive-provenance: crossbeam-epoch keeps tagged pointers as
#   integers.
export MIRIFLAGS="-Zmiri-tree-borrows -Zmiri-ignore-leaks -Zmiri-permissive-provenance"
# One argument picks tests by name, as `cargo test` does.
exec cargo +nightly miri test --locked --lib "cache::store::tests::${1:-}"
