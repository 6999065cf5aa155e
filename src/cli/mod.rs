//! The command-line front ends; `src/bin/fdm.rs` parses arguments and calls these.
pub mod device;
pub mod inpaint;
pub mod inspect;
pub mod profile;
pub mod reproduce;
pub mod reproduce_table4;
