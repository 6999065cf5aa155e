//! Data preparation on the host: mask generators (spec §6.7).
pub mod masks;
