//! Whole-file writes that never leave a partial file in place of a good one: the bytes go to a
//! hidden temporary file beside the target (`.<name>.tmp-<pid>`), are synced to disk, and the
//! temporary file is renamed over the target (atomic on one file system). An interrupted or
//! failed write leaves the old file (or none) and removes its temporary file where it can. Every
//! output of the commands goes through here: samples, sheets, token files, reports, `.npy` arrays
//! (weights and checkpoints have their own streaming twin in `safetensors` and `train`).

use std::io::{Error, Write};
use std::path::{Path, PathBuf};

/// An I/O error naming the target file once and the OS's cause once: the temporary file is this
/// module's detail, and the folder it sits in is the target's, so the target says where to look.
/// Only the rename, which can fail for its own reasons (a folder in the way), names its step.
fn at<'a>(what: Option<&'static str>, target: &'a Path) -> impl FnOnce(Error) -> Error + 'a {
    move |e| {
        let step = what.map(|w| format!("{w}: ")).unwrap_or_default();
        Error::new(e.kind(), format!("cannot write {}: {step}{e}", target.display()))
    }
}

/// A file about to be written must not be a folder, and its folder must exist: checked before
/// long work whose result it holds, so a mistyped path fails at once.
pub fn check_output_file(path: &Path) -> std::io::Result<()> {
    if path.is_dir() {
        return Err(Error::new(std::io::ErrorKind::IsADirectory, format!("cannot write {}: it is a folder", path.display())));
    }
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    if !dir.is_dir() {
        return Err(Error::new(std::io::ErrorKind::NotFound, format!("cannot write {}: no folder {}", path.display(), dir.display())));
    }
    Ok(())
}

/// A folder about to receive output: not a file, created if missing, and writable (a small file
/// is written and removed), checked before long work so a bad path fails at once. `name` is how
/// the messages call it (`--out`, "the output folder").
pub fn check_output_folder(dir: &Path, name: &str) -> std::io::Result<()> {
    if dir.exists() && !dir.is_dir() {
        return Err(Error::new(std::io::ErrorKind::NotADirectory, format!("{name} {} is a file, not a folder", dir.display())));
    }
    std::fs::create_dir_all(dir).map_err(|e| Error::new(e.kind(), format!("cannot create {name} {}: {e}", dir.display())))?;
    let probe = dir.join(format!(".fdm-write-check-{}", std::process::id()));
    std::fs::write(&probe, b"").map_err(|e| Error::new(e.kind(), format!("cannot write to {name} {}: {e}", dir.display())))?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

/// Write `bytes` to `path` atomically (module docs). The error is one line, `cannot write PATH:
/// CAUSE` (callers add no file name of their own).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let name = path
        .file_name()
        .ok_or_else(|| Error::new(std::io::ErrorKind::InvalidInput, format!("{} is not a file path", path.display())))?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let tmp = dir.join(format!(".{}.tmp-{}", name.to_string_lossy(), std::process::id()));
    let result = (|| {
        let mut file = std::fs::File::create(&tmp).map_err(at(None, path))?;
        file.write_all(bytes).map_err(at(None, path))?;
        file.sync_all().map_err(at(None, path))?;
        std::fs::rename(&tmp, path).map_err(at(Some("renaming the finished file into place"), path))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_file_and_leaves_no_temporary() {
        let dir = std::env::temp_dir().join(format!("fdm-atomic-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("out.txt");
        write_atomic(&path, b"first").unwrap();
        write_atomic(&path, b"second").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"second");
        let names: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, ["out.txt"], "no temporary file left");
        // A folder in the way of the rename: an error naming the step, the old file untouched,
        // the temporary file removed.
        let blocked = dir.join("blocked");
        std::fs::create_dir_all(blocked.join("inside")).unwrap();
        let e = write_atomic(&blocked, b"x").unwrap_err().to_string();
        assert!(e.starts_with(&format!("cannot write {}: renaming", blocked.display())), "{e}");
        assert!(blocked.join("inside").is_dir());
        assert!(!dir.join(format!(".blocked.tmp-{}", std::process::id())).exists());
        // The target named once, the OS's cause once, no temporary file name.
        let missing = dir.join("missing/out.txt");
        let e = write_atomic(&missing, b"x").unwrap_err().to_string();
        assert!(e.starts_with(&format!("cannot write {}: ", missing.display())), "{e}");
        assert_eq!(e.matches("out.txt").count(), 1, "{e}");
        assert_eq!(e.matches("os error").count(), 1, "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
