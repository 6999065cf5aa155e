//! Tier 2 (design.md §3): every `kernels/*.cu` compiled by NVRTC with no GPU:
//! * PTX for `compute_90` (H100/H200) and `compute_80` (A100),
//! * a CUBIN for `sm_90` with `--ptxas-options=-v`, whose report gives registers, static shared
//!   memory and spills per kernel; the table is printed and any spill fails the test unless the
//!   kernel is listed in `ALLOWED_SPILLS` with the reason.
//!
//! Without libnvrtc on the loader path this prints `SKIP (no NVRTC)`, unless FDM_REQUIRE_NVRTC=1
//! (set by `.ci/run`, which installs NVRTC 13.0 from PyPI into a cached venv).

use fdm::cuda::module::{self, KERNEL_SOURCES};
use fdm::cuda::ptxas::{self, KernelResources};

/// Kernels allowed to spill, each with the reason. Empty: no kernel spills today.
const ALLOWED_SPILLS: &[(&str, &str)] = &[];

/// The register file of an SM holds 64K 32-bit registers; a kernel above this many registers per
/// thread cannot run 256-thread blocks (the launchers' usual size) and needs a second look.
const MAX_REGISTERS: u32 = 255;

fn nvrtc_or_skip(test: &str) -> bool {
    if module::nvrtc_available() {
        return true;
    }
    if std::env::var("FDM_REQUIRE_NVRTC").is_ok_and(|v| v == "1") {
        panic!(
            "{test}: FDM_REQUIRE_NVRTC=1 but libnvrtc is not on the loader path (LD_LIBRARY_PATH)"
        );
    }
    println!("{test}: SKIP (no NVRTC)");
    false
}

#[test]
fn kernel_sources_list_every_kernel_file() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("kernels");
    let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "cu"))
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    on_disk.sort();
    let listed: Vec<String> = KERNEL_SOURCES.iter().map(|(n, _)| n.to_string()).collect();
    assert_eq!(listed, on_disk);
    for (name, src) in KERNEL_SOURCES {
        let head: String = src.lines().take(3).collect::<Vec<_>>().join("\n");
        assert!(
            head.starts_with("// "),
            "kernels/{name}.cu must open with a header comment"
        );
        assert!(
            !src.contains("#include"),
            "kernels/{name}.cu must not #include (see emu/cuda_emu.h)"
        );
    }
}

#[test]
fn kernels_compile_to_ptx_for_compute_90_and_80() {
    if !nvrtc_or_skip("kernels_compile_to_ptx_for_compute_90_and_80") {
        return;
    }
    println!(
        "NVRTC {:?}, include dirs {:?}",
        module::nvrtc_version(),
        module::include_dirs()
    );
    for arch in ["compute_90", "compute_80"] {
        for (name, src) in KERNEL_SOURCES {
            let out = module::compile(name, src, arch, &[]).unwrap_or_else(|e| panic!("{e}"));
            assert!(
                out.ptx.contains(".entry"),
                "kernels/{name}.cu for {arch}: PTX has no entry point"
            );
            let target = format!(".target sm_{}", &arch["compute_".len()..]);
            assert!(
                out.ptx.contains(&target),
                "kernels/{name}.cu for {arch}: PTX lacks `{target}`"
            );
        }
    }
}

fn print_table(rows: &[(String, KernelResources)]) {
    println!(
        "{:<16} {:<28} {:>5} {:>10} {:>7} {:>7} {:>7}",
        "file", "kernel", "regs", "smem(B)", "stack", "spill-s", "spill-l"
    );
    for (file, k) in rows {
        println!(
            "{:<16} {:<28} {:>5} {:>10} {:>7} {:>7} {:>7}",
            file,
            k.name,
            k.registers,
            k.static_smem_bytes,
            k.stack_frame_bytes,
            k.spill_store_bytes,
            k.spill_load_bytes
        );
    }
}

#[test]
fn kernels_compile_for_sm_90_without_spills() {
    if !nvrtc_or_skip("kernels_compile_for_sm_90_without_spills") {
        return;
    }
    let mut rows: Vec<(String, KernelResources)> = Vec::new();
    for (name, src) in KERNEL_SOURCES {
        let out = module::compile(name, src, "sm_90", &["--ptxas-options=-v"])
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            out.cubin.as_ref().is_some_and(|c| !c.is_empty()),
            "kernels/{name}.cu: no CUBIN for sm_90"
        );
        let report = ptxas::parse_report(&out.log);
        let entries = out.ptx.matches(".entry").count();
        assert_eq!(
            report.len(),
            entries,
            "kernels/{name}.cu: ptxas reported {} kernels, PTX has {entries}:\n{}",
            report.len(),
            out.log
        );
        rows.extend(report.into_iter().map(|k| (name.to_string(), k)));
    }
    print_table(&rows);
    let mut problems = Vec::new();
    for (file, k) in &rows {
        let allowed = ALLOWED_SPILLS.iter().any(|(n, _)| *n == k.name);
        if (k.spill_store_bytes > 0 || k.spill_load_bytes > 0) && !allowed {
            problems.push(format!(
                "{file}.cu {}: {} bytes spill stores, {} bytes spill loads",
                k.name, k.spill_store_bytes, k.spill_load_bytes
            ));
        }
        if k.registers > MAX_REGISTERS {
            problems.push(format!("{file}.cu {}: {} registers", k.name, k.registers));
        }
    }
    assert!(
        problems.is_empty(),
        "register/spill budget exceeded:\n{}",
        problems.join("\n")
    );
}

#[test]
fn compile_error_names_the_file_and_shows_the_log() {
    if !nvrtc_or_skip("compile_error_names_the_file_and_shows_the_log") {
        return;
    }
    let bad = "extern \"C\" __global__ void broken(float* x) { x[0] = undefined_name; }\n";
    let err = module::compile("broken_example", bad, "compute_90", &[])
        .unwrap_err()
        .to_string();
    assert!(err.contains("kernels/broken_example.cu"), "{err}");
    assert!(
        err.contains("undefined_name"),
        "the NVRTC log should name the bad identifier: {err}"
    );
    // `#line` keeps the file's own line numbers in NVRTC's messages.
    assert!(err.contains("broken_example.cu(1)"), "{err}");
}
