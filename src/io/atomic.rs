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

/// The hidden temporary file beside `path` that its bytes are written to before the rename.
fn temp_path(path: &Path) -> std::io::Result<PathBuf> {
    let name = path
        .file_name()
        .ok_or_else(|| Error::new(std::io::ErrorKind::InvalidInput, format!("{} is not a file path", path.display())))?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    Ok(dir.join(format!(".{}.tmp-{}", name.to_string_lossy(), std::process::id())))
}

/// Write and sync `bytes` to `tmp`; errors name `target`, the file the bytes are for.
fn write_synced(tmp: &Path, bytes: &[u8], target: &Path) -> std::io::Result<()> {
    let mut file = std::fs::File::create(tmp).map_err(at(None, target))?;
    file.write_all(bytes).map_err(at(None, target))?;
    file.sync_all().map_err(at(None, target))
}

fn rename_into_place(tmp: &Path, target: &Path) -> std::io::Result<()> {
    std::fs::rename(tmp, target).map_err(at(Some("renaming the finished file into place"), target))
}

/// Write `bytes` to `path` atomically (module docs). The error is one line, `cannot write PATH:
/// CAUSE` (callers add no file name of their own).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = temp_path(path)?;
    let result = write_synced(&tmp, bytes, path).and_then(|()| rename_into_place(&tmp, path));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Write several files that belong together (a report's Markdown and its JSON) so that they
/// stay a pair as far as a file system allows: every file is first written and synced to its
/// temporary file, and only when all of them are complete are they renamed into place, one
/// after the other. A failure or an interruption while writing leaves every target as it was;
/// a target that is a folder is refused before anything is renamed. What remains is a rename
/// failing after others succeeded (the folder's permissions changed, or a folder took a
/// target's place, in between): the error then names the file that was not replaced and the
/// ones that already were, so a mixed pair is never silent. Temporary files are removed on every
/// failure.
pub fn write_files_together<P: AsRef<Path>, B: AsRef<[u8]>>(files: &[(P, B)]) -> std::io::Result<()> {
    let files: Vec<(&Path, &[u8])> = files.iter().map(|(p, b)| (p.as_ref(), b.as_ref())).collect();
    write_then_rename(&files, &mut rename_into_place)
}

/// `write_files_together` with the rename step given, so the tests can make one fail.
fn write_then_rename(files: &[(&Path, &[u8])], rename: &mut dyn FnMut(&Path, &Path) -> std::io::Result<()>) -> std::io::Result<()> {
    let temps = files.iter().map(|(path, _)| temp_path(path)).collect::<std::io::Result<Vec<_>>>()?;
    let remove_from = |first: usize| {
        for tmp in &temps[first..] {
            let _ = std::fs::remove_file(tmp);
        }
    };
    // A folder in a target's place would fail its rename: found here, before any file is
    // replaced, as is a file that cannot be written.
    let written = files.iter().zip(&temps).try_for_each(|((path, bytes), tmp)| {
        if path.is_dir() {
            return Err(Error::new(std::io::ErrorKind::IsADirectory, format!("cannot write {}: it is a folder", path.display())));
        }
        write_synced(tmp, bytes, path)
    });
    if let Err(e) = written {
        remove_from(0);
        return Err(e);
    }
    for (i, ((path, _), tmp)) in files.iter().zip(&temps).enumerate() {
        if let Err(e) = rename(tmp, path) {
            remove_from(i);
            if i == 0 {
                return Err(e);
            }
            let done: Vec<String> = files[..i].iter().map(|(p, _)| p.display().to_string()).collect();
            return Err(Error::new(e.kind(), format!("{e} ({} already replaced: the files no longer match)", done.join(", "))));
        }
    }
    Ok(())
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

    /// The names in `dir`, sorted.
    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        v.sort();
        v
    }

    #[test]
    fn files_written_together_replace_both_or_neither() {
        let dir = std::env::temp_dir().join(format!("fdm-atomic-together-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let (md, json) = (dir.join("t.md"), dir.join("t.json"));
        write_files_together(&[(&md, "md 1"), (&json, "json 1")]).unwrap();
        write_files_together(&[(&md, "md 2"), (&json, "json 2")]).unwrap();
        assert_eq!((std::fs::read(&md).unwrap(), std::fs::read(&json).unwrap()), (b"md 2".to_vec(), b"json 2".to_vec()));
        assert_eq!(names(&dir), ["t.json", "t.md"], "no temporary file left");
        // A folder in the second file's place: refused before the first is replaced, the error
        // naming the folder, no temporary file left.
        let blocked = dir.join("blocked.json");
        std::fs::create_dir_all(blocked.join("inside")).unwrap();
        let e = write_files_together(&[(&md, "md 3"), (&blocked, "json 3")]).unwrap_err().to_string();
        assert!(e.starts_with(&format!("cannot write {}: ", blocked.display())), "{e}");
        assert_eq!(std::fs::read(&md).unwrap(), b"md 2", "the first file is left as it was");
        assert!(blocked.join("inside").is_dir());
        assert_eq!(names(&dir), ["blocked.json", "t.json", "t.md"], "no temporary file left");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_failed_second_rename_is_reported_with_the_file_already_replaced() {
        let dir = std::env::temp_dir().join(format!("fdm-atomic-second-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let (md, json) = (dir.join("t.md"), dir.join("t.json"));
        write_files_together(&[(&md, "md 1"), (&json, "json 1")]).unwrap();
        // The second rename fails as a real one does when a folder takes the target's place
        // after the check (what the check cannot see coming).
        let mut calls = 0;
        let mut rename = |tmp: &Path, target: &Path| {
            calls += 1;
            if calls == 2 {
                std::fs::remove_file(target).unwrap();
                std::fs::create_dir(target).unwrap();
            }
            rename_into_place(tmp, target)
        };
        let e = write_then_rename(&[(md.as_path(), &b"md 2"[..]), (json.as_path(), &b"json 2"[..])], &mut rename).unwrap_err().to_string();
        assert!(e.starts_with(&format!("cannot write {}: renaming the finished file into place: ", json.display())), "{e}");
        assert!(e.ends_with(&format!("({} already replaced: the files no longer match)", md.display())), "{e}");
        assert_eq!(std::fs::read(&md).unwrap(), b"md 2");
        assert_eq!(names(&dir), ["t.json", "t.md"], "no temporary file left");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
