//! Build script: two jobs, neither needing CUDA.
//! 1. `kernel_sources.rs` in OUT_DIR: every `kernels/*.cu` embedded with `include_str!`, as the list
//!    `KERNEL_SOURCES` that `src/cuda/module.rs` compiles with NVRTC at run time.
//! 2. On Linux, the CPU emulator of the CUDA execution model (design.md §3 tier 3): the same `.cu` files
//!    compiled as host C++17 by g++ with the shim `emu/cuda_emu.h`, one translation unit per kernel
//!    file (each wrapped in its own namespace so file-local helpers cannot collide), plus a registry
//!    of every `extern "C" __global__` entry point so Rust can launch a kernel by name.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

fn main() {
    let root =
        PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let kernel_dir = root.join("kernels");
    println!("cargo:rerun-if-changed=kernels");
    println!("cargo:rerun-if-changed=emu");
    println!("cargo:rerun-if-env-changed=FDM_EMU_CXX_FLAGS");

    let kernels = kernel_files(&kernel_dir);
    write_kernel_sources(&out, &kernels);
    // The emulator's fibers (ucontext to start, _setjmp/_longjmp to switch, MAP_NORESERVE
    // stacks) are written for and tested on Linux, where CI runs the emulator tier; macOS, for
    // one, refuses its ucontext calls. Elsewhere the engine builds without it and the emulator's
    // tests print SKIP (`cfg(fdm_emu)`, `fdm::cuda::emu::BUILT`).
    println!("cargo::rustc-check-cfg=cfg(fdm_emu)");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        build_emulator(&root, &out, &kernels);
        println!("cargo:rustc-cfg=fdm_emu");
    }
}

/// `(module name, path)` of every `kernels/*.cu`, sorted by name so the build is reproducible.
fn kernel_files(dir: &Path) -> Vec<(String, PathBuf)> {
    let mut files: Vec<(String, PathBuf)> = fs::read_dir(dir)
        .expect("kernels/ directory")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "cu"))
        .map(|p| (p.file_stem().unwrap().to_string_lossy().into_owned(), p))
        .collect();
    files.sort();
    for (name, _) in &files {
        assert!(
            name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "kernel file name kernels/{name}.cu must be a C identifier"
        );
    }
    files
}

fn write_kernel_sources(out: &Path, kernels: &[(String, PathBuf)]) {
    let mut s =
        String::from("/// Every `kernels/*.cu` file: (module name = file stem, source text).\n");
    s.push_str("pub const KERNEL_SOURCES: &[(&str, &str)] = &[\n");
    for (name, path) in kernels {
        writeln!(
            s,
            "    ({name:?}, include_str!({:?})),",
            path.display().to_string()
        )
        .unwrap();
    }
    s.push_str("];\n");
    fs::write(out.join("kernel_sources.rs"), s).expect("write kernel_sources.rs");
}

/// Names of the `extern "C" __global__ void NAME(` entry points of one kernel source.
fn entry_points(src: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = src;
    while let Some(pos) = rest.find("__global__") {
        let before = &rest[..pos];
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let is_comment = before[line_start..].trim_start().starts_with("//");
        rest = &rest[pos + "__global__".len()..];
        if is_comment || !before[line_start..].contains("extern \"C\"") {
            continue;
        }
        let decl = rest.trim_start();
        let Some(decl) = decl.strip_prefix("void") else {
            continue;
        };
        let decl = decl.trim_start();
        // Skip `__launch_bounds__(...)` if present.
        let decl = match decl.strip_prefix("__launch_bounds__") {
            Some(d) => &d[d.find(')').map_or(0, |i| i + 1)..],
            None => decl,
        }
        .trim_start();
        let name: String = decl
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if !name.is_empty() {
            names.push(name);
        }
    }
    names
}

fn build_emulator(root: &Path, out: &Path, kernels: &[(String, PathBuf)]) {
    let emu_dir = root.join("emu");
    let gen_dir = out.join("emu_gen");
    fs::create_dir_all(&gen_dir).expect("create OUT_DIR/emu_gen");
    let mut build = cc::Build::new();
    build
        .cpp(true)
        .std("c++17")
        .opt_level(2)
        .include(&emu_dir)
        .include(root.join("kernels"))
        // _FORTIFY_SOURCE turns _longjmp into __longjmp_chk, which aborts jumps between fiber stacks.
        .flag("-U_FORTIFY_SOURCE")
        // Large stack frames must touch the guard page below each fiber stack, not skip over it.
        .flag("-fstack-clash-protection")
        .flag("-pthread")
        .flag_if_supported("-Wno-unknown-pragmas")
        .flag_if_supported("-Wno-unused-parameter")
        .flag_if_supported("-Wno-unused-function")
        .file(emu_dir.join("cuda_emu.cpp"));
    if let Ok(extra) = std::env::var("FDM_EMU_CXX_FLAGS") {
        for f in extra.split_whitespace() {
            build.flag(f);
        }
    }

    let mut registry = String::from(
        "// Generated by build.rs: the table of every emulated kernel.\n#include \"cuda_emu.h\"\n",
    );
    let mut lookups = String::new();
    for (name, path) in kernels {
        let src = fs::read_to_string(path).expect("read kernel source");
        let entries = entry_points(&src);
        let tu = gen_dir.join(format!("emu_{name}.cpp"));
        let mut s = format!(
            "// Generated by build.rs: kernels/{name}.cu compiled for the CPU emulator.\n\
             #include \"cuda_emu.h\"\nnamespace fdm_kernels_{name} {{\n#include \"kernel_prelude.h\"\n#include \"common.cuh\"\n#include {:?}\n}}\n\
             static const ::cuda_emu::KernelEntry fdm_entries_{name}[] = {{\n",
            path.display().to_string()
        );
        for e in &entries {
            writeln!(s, "    FDM_EMU_ENTRY({name:?}, fdm_kernels_{name}, {e}),").unwrap();
        }
        writeln!(
            s,
            "    {{nullptr, nullptr, nullptr, nullptr, nullptr, 0}}\n}};"
        )
        .unwrap();
        writeln!(s, "extern \"C\" const ::cuda_emu::KernelEntry* fdm_emu_table_{name}() {{ return fdm_entries_{name}; }}").unwrap();
        fs::write(&tu, s).expect("write emulator translation unit");
        build.file(&tu);
        writeln!(
            registry,
            "extern \"C\" const ::cuda_emu::KernelEntry* fdm_emu_table_{name}();"
        )
        .unwrap();
        writeln!(lookups, "    fdm_emu_table_{name}(),").unwrap();
    }
    write!(
        registry,
        "namespace cuda_emu {{\nconst KernelEntry* const* kernel_tables() {{\n  static const KernelEntry* const tables[] = {{\n{lookups}    nullptr}};\n  return tables;\n}}\n}}\n"
    )
    .unwrap();
    let reg = gen_dir.join("emu_registry.cpp");
    fs::write(&reg, registry).expect("write emulator registry");
    build.file(&reg);
    build.compile("fdm_cuda_emu");
}
