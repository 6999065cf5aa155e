//! `fdm reproduce` through the binary on freshly initialised tiny weights: `-n 0` is refused for
//! every table before any work.
mod cli_common;
use cli_common::fdm;
use std::path::PathBuf;

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("fdm-cli-reproduce-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn reproduce_refuses_zero_photos_for_every_table_cpu() {
    let dir = temp_dir("n0");
    for table in ["table1", "table2", "table3", "table4", "all"] {
        let out = dir.join(table);
        let (ok, log) = fdm(&["reproduce", table, "-n", "0", "--random-init", "tiny", "--device", "cpu", "--out", out.to_str().unwrap()]);
        assert!(!ok, "{table}: {log}");
        assert!(log.contains("-n 0") && log.contains("at least one photo"), "{table}: {log}");
        assert!(!out.join(format!("{table}.json")).exists(), "{table}: nothing written");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
