//! Helpers shared by the command-line tests (`cli_inpaint.rs`, `cli_train.rs`, ...): running the
//! built `fdm` binary as a user would and writing mask files.
#![allow(dead_code)]

use fdm::io::image::save_mask_png;
use fdm::Tensor;
use std::path::Path;
use std::process::Command;

/// Run the `fdm` binary; (exit status ok, stdout + stderr). Without RUST_BACKTRACE (cargo test
/// may set it), as a user runs it: anyhow then prints the error alone.
pub fn fdm(args: &[&str]) -> (bool, String) {
    fdm_in(Path::new("."), args)
}

/// `fdm` run from the working folder `cwd` (where relative paths and defaults such as
/// `runs/<phase>` land).
pub fn fdm_in(cwd: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_fdm"))
        .args(args)
        .current_dir(cwd)
        .env_remove("RUST_BACKTRACE")
        .env_remove("RUST_LIB_BACKTRACE")
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

/// An `h x w` mask with one hole [y0, y1) x [x0, x1), saved in the file convention (white = hole).
pub fn write_mask(path: &Path, size: (usize, usize), hole: (usize, usize, usize, usize)) {
    let (h, w) = size;
    let mut m = vec![1.0; h * w];
    for y in hole.0..hole.1 {
        for x in hole.2..hole.3 {
            m[y * w + x] = 0.0;
        }
    }
    save_mask_png(&Tensor::from_vec(m, &[1, h, w]).unwrap(), path).unwrap();
}
