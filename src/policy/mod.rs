//! Response policy zones (RPZ): where their rules come from.
//!
//! `transfer` keeps a secondary copy of a policy zone current from its
//! primary (AXFR, IXFR, SOA refresh).

pub mod transfer;
