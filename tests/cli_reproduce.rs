//! `fdm reproduce` through the binary on freshly initialised tiny weights: `-n 0` is refused for
//! every table before any work, and an `-n` above the photo folder's count is a note, with the
//! count used, the reduced run and the photo files recorded in the written files. Table 4 keeps
//! it fast (no sampling).
mod cli_common;
use cli_common::fdm;
use std::path::PathBuf;

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("fdm-cli-reproduce-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

const PHOTO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/assets/photos/dev_005.jpg");

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

#[test]
fn reproduce_caps_n_with_a_note_and_records_the_photos_used_cpu() {
    let dir = temp_dir("cap");
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::copy(PHOTO, data.join("dev_005.jpg")).unwrap();
    let out = dir.join("out");
    let (ok, log) = fdm(&["reproduce", "table4", "-n", "5", "--data", data.to_str().unwrap(), "--random-init", "tiny", "--lpips", "alex", "--device", "cpu", "--out", out.to_str().unwrap()]);
    assert!(ok, "{log}");
    assert!(log.contains("note: -n 5 asks for more photos than") && log.contains("using its 1 photo(s)"), "{log}");
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("table4.json")).unwrap()).unwrap();
    assert_eq!(json["provenance"]["images"], 1);
    assert_eq!(json["reduced_run"], true);
    assert_eq!(json["photo_files"], serde_json::json!(["dev_005.jpg"]));
    let md = std::fs::read_to_string(out.join("table4.md")).unwrap();
    assert!(md.contains("This is a reduced run: 1 photo(s)") && md.contains("Photos (1): `dev_005.jpg`"), "{md}");
    std::fs::remove_dir_all(&dir).unwrap();
}
