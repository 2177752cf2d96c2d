//! taproot's cache table, compiled against loom's atomics and mutex, and
//! crossbeam-epoch built on loom too, so that `tests/store.rs` can explore
//! every interleaving of a reader with a writer (up to loom's preemption
//! bound). The table is the daemon's own file, not a copy.

#![deny(unsafe_op_in_unsafe_fn)]

#[cfg(not(all(taproot_loom, crossbeam_loom)))]
compile_error!("build with RUSTFLAGS=\"--cfg taproot_loom --cfg crossbeam_loom\" (see loom/run)");

#[path = "../../src/cache/store.rs"]
pub mod store;
