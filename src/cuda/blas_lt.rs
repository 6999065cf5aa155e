//! cuBLASLt behind the bf16 Linear with a bias: one `cublasLtMatmul` computes
//! `y = bf16(x) w^T + bias`, the bias added in the GEMM's epilogue.
//!
//! Why: the cuBLAS path of `blas.rs` first writes the bias into every row of `y`
//! (`linear_prep_bf16`) and lets the GEMM read it back with beta = 1. Per Linear that is `m x out`
//! f32 values written and read again; for one image of the paper transformer, 38 MB per block,
//! 1.3 GB per pass. The H200 profile put `linear_prep_bf16` at 13 % of the pass's kernel time
//! (BENCHMARKS.md), most of it these bias rows. Here the prep only rounds the input.
//!
//! Numerics are the cuBLAS path's: bf16 x bf16 products summed in f32, the f32 bias added in f32,
//! one rounding to the f32 output. Only the summation order may differ.
//!
//! The default since it was checked and timed on an H100 (BENCHMARKS.md, 2026-11-27: faster on
//! every transformer shape, 42.4 -> 33.2 us at 4096 x 1536 x 512; the paper preset's one-sample
//! inpainting 867 -> 821 ms). `FDM_CUBLASLT=0` turns it off. `tests/cuda_blas.rs` compares it with
//! the cuBLAS path and the f64 reference on the transformer's shapes whatever the variable says.
//!
//! Plans: the matmul descriptor, the three matrix layouts and the algorithm cuBLASLt's heuristic
//! picks, per shape and pointer alignment class, made at the first call and kept while the handle
//! lives. Making one launches nothing on the GPU, so a plan made while a CUDA graph is being
//! captured is fine. A shape with no algorithm is remembered as such; the caller then runs the
//! cuBLAS path.

use crate::error::{Error, Result};
use cudarc::cublaslt::result::{self as lt, CublasError};
use cudarc::cublaslt::sys;
use std::collections::HashMap;
use std::ffi::c_void;
use std::mem::size_of;

/// Set to `0` to run the bf16 Linears with a bias on plain cuBLAS with bias rows (see the module
/// docs); any other value, or none, keeps cuBLASLt.
pub const ENABLE_ENV: &str = "FDM_CUBLASLT";

/// cuBLASLt needs the bias vector 16-byte aligned; other pointers are matched by the heuristic.
const BIAS_ALIGN: u64 = 16;

/// Whether the cuBLASLt path is wanted: unless `FDM_CUBLASLT=0` (read once: every Linear asks).
pub fn requested() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var(ENABLE_ENV).map_or(true, |v| v != "0"))
}

/// Whether libcublasLt is on the loader path (probed once; cudarc panics on the first call into a
/// missing library, so nothing here is called before this said yes).
pub fn library_present() -> bool {
    static PRESENT: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *PRESENT.get_or_init(|| unsafe { sys::is_culib_present() })
}

/// The largest power of two up to 256 that divides `ptr` (cuBLASLt's alignment classes).
fn alignment(ptr: u64) -> u32 {
    if ptr == 0 {
        return 256;
    }
    1u32 << ptr.trailing_zeros().min(8)
}

/// One Linear for cuBLASLt: device pointers and sizes, `y [m, out] = x [m, inp] w [out, inp]^T +
/// bias [out]` with `x`, `w` bf16 and `y`, `bias` f32, all dense.
#[derive(Clone, Copy, Debug)]
pub(super) struct BiasLinear {
    pub y: u64,
    pub x: u64,
    pub w: u64,
    pub bias: u64,
    pub m: usize,
    pub out: usize,
    pub inp: usize,
}

impl BiasLinear {
    fn key(&self) -> PlanKey {
        PlanKey { m: self.m, out: self.out, inp: self.inp, align: [alignment(self.w), alignment(self.x), alignment(self.y)] }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct PlanKey {
    m: usize,
    out: usize,
    inp: usize,
    /// Alignment classes of w (A), x (B) and y (C = D).
    align: [u32; 3],
}

/// A matmul descriptor with its layouts and algorithm, for one `PlanKey`.
struct Plan {
    desc: sys::cublasLtMatmulDesc_t,
    a: sys::cublasLtMatrixLayout_t,
    b: sys::cublasLtMatrixLayout_t,
    d: sys::cublasLtMatrixLayout_t,
    algo: sys::cublasLtMatmulAlgo_t,
}

impl Drop for Plan {
    fn drop(&mut self) {
        // Errors at teardown have nowhere to go.
        unsafe {
            for layout in [self.d, self.b, self.a] {
                if !layout.is_null() {
                    let _ = lt::destroy_matrix_layout(layout);
                }
            }
            let _ = lt::destroy_matmul_desc(self.desc);
        }
    }
}

/// A cuBLASLt handle and its plans. Used only under `blas.rs`'s handle lock, on the context and
/// stream of that handle.
pub(super) struct LtState {
    raw: sys::cublasLtHandle_t,
    /// None: the heuristic offered no algorithm for that shape.
    plans: HashMap<PlanKey, Option<Plan>>,
    /// Matmuls queued so far (tests check that the path ran rather than fell back).
    pub(super) matmuls: u64,
}

// The raw pointers are only used behind `blas.rs`'s mutex, one thread at a time.
unsafe impl Send for LtState {}

impl Drop for LtState {
    fn drop(&mut self) {
        self.plans.clear();
        let _ = unsafe { lt::destroy_handle(self.raw) };
    }
}

fn status(what: &str, e: CublasError) -> String {
    format!("{what} failed with {:?}", e.0)
}

unsafe fn set_desc<T>(desc: sys::cublasLtMatmulDesc_t, attr: sys::cublasLtMatmulDescAttributes_t, value: &T) -> std::result::Result<(), CublasError> {
    lt::set_matmul_desc_attribute(desc, attr, value as *const T as *const c_void, size_of::<T>())
}

unsafe fn set_pref<T>(pref: sys::cublasLtMatmulPreference_t, attr: sys::cublasLtMatmulPreferenceAttributes_t, value: &T) -> std::result::Result<(), CublasError> {
    lt::set_matmul_pref_attribute(pref, attr, value as *const T as *const c_void, size_of::<T>())
}

impl LtState {
    /// A handle on the current context (the caller made it current).
    pub(super) fn new() -> std::result::Result<LtState, String> {
        if !library_present() {
            return Err("no cuBLASLt library (libcublasLt.so.13) on the loader path".into());
        }
        let raw = lt::create_handle().map_err(|e| status("cublasLtCreate", e))?;
        Ok(LtState { raw, plans: HashMap::new(), matmuls: 0 })
    }

    /// Queues `job` on `stream` with the given workspace. Ok(false): cuBLASLt has no algorithm for
    /// this shape or the bias is not aligned for it; nothing was queued and the caller runs the
    /// cuBLAS path.
    pub(super) fn linear_bias(&mut self, job: &BiasLinear, workspace: u64, workspace_bytes: usize, stream: *mut c_void) -> Result<bool> {
        if job.bias == 0 || !job.bias.is_multiple_of(BIAS_ALIGN) {
            return Ok(false);
        }
        let key = job.key();
        if !self.plans.contains_key(&key) {
            let plan = make_plan(self.raw, &key, workspace_bytes).map_err(|e| Error::Cuda(format!("cuBLASLt plan for {}x{} -> {}: {e}", job.m, job.inp, job.out)))?;
            self.plans.insert(key, plan);
        }
        let Some(plan) = self.plans.get(&key).and_then(Option::as_ref) else { return Ok(false) };
        let (alpha, beta) = (1f32, 0f32);
        unsafe {
            set_desc(plan.desc, sys::cublasLtMatmulDescAttributes_t::CUBLASLT_MATMUL_DESC_BIAS_POINTER, &job.bias)
                .and_then(|_| {
                    lt::matmul(
                        self.raw,
                        plan.desc,
                        &alpha as *const f32 as *const c_void,
                        &beta as *const f32 as *const c_void,
                        job.w as *const c_void,
                        plan.a,
                        job.x as *const c_void,
                        plan.b,
                        job.y as *const c_void,
                        plan.d,
                        job.y as *mut c_void,
                        plan.d,
                        &plan.algo,
                        workspace as *mut c_void,
                        workspace_bytes,
                        stream as sys::cudaStream_t,
                    )
                })
                .map_err(|e| Error::Cuda(format!("cuBLASLt bf16 linear {}x{} -> {}: {:?}", job.m, job.inp, job.out, e.0)))?;
        }
        self.matmuls += 1;
        Ok(true)
    }
}

/// The descriptor, layouts and heuristic's algorithm for `key` (row-major to column-major as in
/// `blas.rs`: A = the stored w read transposed, B = the stored x, D = y, M = out, N = m, K = in).
/// Ok(None) when the heuristic has nothing for it.
fn make_plan(handle: sys::cublasLtHandle_t, key: &PlanKey, workspace_bytes: usize) -> std::result::Result<Option<Plan>, String> {
    use sys::cublasLtMatmulDescAttributes_t as D;
    use sys::cublasLtMatmulPreferenceAttributes_t as P;
    let (bf16, f32t) = (sys::cudaDataType::CUDA_R_16BF, sys::cudaDataType::CUDA_R_32F);
    let (m, out, inp) = (key.m as u64, key.out as u64, key.inp as u64);
    let desc = lt::create_matmul_desc(sys::cublasComputeType_t::CUBLAS_COMPUTE_32F, f32t).map_err(|e| status("cublasLtMatmulDescCreate", e))?;
    // From here every object is owned by `plan` (dropped on an early return).
    let mut plan = Plan { desc, a: std::ptr::null_mut(), b: std::ptr::null_mut(), d: std::ptr::null_mut(), algo: unsafe { std::mem::zeroed() } };
    plan.a = lt::create_matrix_layout(bf16, inp, out, inp as i64).map_err(|e| status("cublasLtMatrixLayoutCreate (w)", e))?;
    plan.b = lt::create_matrix_layout(bf16, inp, m, inp as i64).map_err(|e| status("cublasLtMatrixLayoutCreate (x)", e))?;
    plan.d = lt::create_matrix_layout(f32t, out, m, out as i64).map_err(|e| status("cublasLtMatrixLayoutCreate (y)", e))?;
    unsafe {
        set_desc(desc, D::CUBLASLT_MATMUL_DESC_TRANSA, &(cudarc::cublas::sys::cublasOperation_t::CUBLAS_OP_T as i32)).map_err(|e| status("TRANSA", e))?;
        set_desc(desc, D::CUBLASLT_MATMUL_DESC_TRANSB, &(cudarc::cublas::sys::cublasOperation_t::CUBLAS_OP_N as i32)).map_err(|e| status("TRANSB", e))?;
        set_desc(desc, D::CUBLASLT_MATMUL_DESC_EPILOGUE, &(sys::cublasLtEpilogue_t::CUBLASLT_EPILOGUE_BIAS as u32)).map_err(|e| status("EPILOGUE", e))?;
        set_desc(desc, D::CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &(f32t as i32)).map_err(|e| status("BIAS_DATA_TYPE", e))?;
    }
    let pref = lt::create_matmul_pref().map_err(|e| status("cublasLtMatmulPreferenceCreate", e))?;
    let found = unsafe {
        let [a, b, d] = key.align;
        let prefs = set_pref(pref, P::CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &(workspace_bytes as u64))
            .and_then(|_| set_pref(pref, P::CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &a))
            .and_then(|_| set_pref(pref, P::CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &b))
            .and_then(|_| set_pref(pref, P::CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &d))
            .and_then(|_| set_pref(pref, P::CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &d));
        let found = prefs.and_then(|_| lt::get_matmul_algo_heuristic(handle, desc, plan.a, plan.b, plan.d, plan.d, pref));
        let _ = lt::destroy_matmul_pref(pref);
        found
    };
    match found {
        Ok(heuristic) => {
            plan.algo = heuristic.algo;
            Ok(Some(plan))
        }
        // cudarc reports "no algorithm" as NOT_SUPPORTED; so does cuBLASLt for a combination it lacks.
        Err(CublasError(sys::cublasStatus_t::CUBLAS_STATUS_NOT_SUPPORTED)) => Ok(None),
        Err(e) => Err(status("cublasLtMatmulAlgoGetHeuristic", e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alignment_classes() {
        assert_eq!(alignment(0x7f00_0000_0000), 256);
        assert_eq!(alignment(0x7f00_0000_0010), 16);
        assert_eq!(alignment(0x7f00_0000_0104), 4);
        assert_eq!(alignment(0x7f00_0000_0180), 128);
    }
}
