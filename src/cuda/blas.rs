//! cuBLAS as the fast path of the plain GEMMs on a real GPU: the Linear forward with an f32
//! weight (`sgemm_linear`) and with a bf16 weight (`bf16_linear`). The hand-written kernels of
//! `kernels/gemm.cu` and `kernels/gemm_tc.cu` stay the reference and the fallback: they run on the
//! emulated device, where libcublas is missing, and when `FDM_NO_CUBLAS=1`.
//!
//! Numerics are those of the hand-written kernels: f32 products and f32 sums for the f32 weight
//! (the handle's math mode is `CUBLAS_DEFAULT_MATH`, so no TF32); for the bf16 weight the input is
//! rounded to bf16 (nearest even, by the project's cast kernel) and the bf16 x bf16 products are
//! summed in f32 (`CUBLAS_COMPUTE_32F`). Only the summation order differs.
//!
//! With dynamic loading, cudarc panics on the first cuBLAS call when the library is absent, so
//! nothing here calls into cuBLAS before `is_culib_present()` said it is there.

use super::blas_lt::{self, BiasLinear, LtState};
use super::launch::{check_dtype_len, check_f32, device_ptr, queue_on_device, run_on_device, u32_arg, Launch};
use super::ops::elementwise::{strided_copy_launch, StridedIndex};
use super::ops::gemm_tc::{linear_prep_launch, InputAct};
use super::{CudaDevice, CudaStorage, Gpu};
use crate::dtype::DType;
use crate::error::{Error, Result};
use cudarc::cublas::result::{self as cublas, CublasError};
use cudarc::cublas::sys;
use cudarc::driver::CudaContext;
use std::ffi::{c_int, c_void};
use std::sync::{Arc, Mutex, OnceLock};

/// Set to `1` to keep every GEMM on the hand-written kernels.
pub const DISABLE_ENV: &str = "FDM_NO_CUBLAS";

/// A device's cuBLAS handle, or why there is none (created at the first GEMM on the device).
pub(super) type BlasSlot = OnceLock<std::result::Result<Blas, String>>;

/// cuBLAS handles are not thread-safe: every call holds the lock.
pub(super) struct Blas(Mutex<Handle>);

struct Handle {
    raw: sys::cublasHandle_t,
    ctx: Arc<CudaContext>,
    /// The handle's workspace, ours rather than cuBLAS's own pool, so that GEMMs recorded into a
    /// CUDA graph (`graph`) allocate nothing while captured. Dropped after the handle. cuBLASLt
    /// calls use it too (`workspace_ptr`): they queue on the same stream, one at a time.
    _workspace: cudarc::driver::CudaSlice<u8>,
    workspace_ptr: u64,
    /// The device's stream (the raw `CUstream`), for cuBLASLt calls.
    stream: *mut c_void,
    /// The cuBLASLt handle and plans, made at the first bf16 Linear that asks for them, or why
    /// there are none.
    lt: Option<std::result::Result<LtState, String>>,
}

/// cuBLAS's advice for Hopper GPUs (32 MiB; less is enough on older ones).
const WORKSPACE_BYTES: usize = 32 << 20;

// The raw handle is only used behind `Blas`'s mutex, one thread at a time.
unsafe impl Send for Handle {}

impl Drop for Handle {
    fn drop(&mut self) {
        // Destroying needs the handle's context current; errors at teardown have nowhere to go.
        let _ = self.ctx.bind_to_thread();
        // The cuBLASLt handle and plans first, while the context is surely alive.
        drop(self.lt.take());
        let _ = unsafe { cublas::destroy_handle(self.raw) };
    }
}

/// Whether this process may use cuBLAS at all: not disabled by `FDM_NO_CUBLAS=1`, and the
/// library on the loader path. Err is the reason, for a log line.
pub fn library_status() -> std::result::Result<(), String> {
    if std::env::var(DISABLE_ENV).is_ok_and(|v| v == "1") {
        return Err(format!("disabled by {DISABLE_ENV}=1"));
    }
    static PRESENT: OnceLock<bool> = OnceLock::new();
    // Loading the library is the probe; its answer does not change while the process runs.
    if !*PRESENT.get_or_init(|| unsafe { sys::is_culib_present() }) {
        return Err("no cuBLAS library (libcublas.so.13) on the loader path".into());
    }
    Ok(())
}

fn status_text(what: &str, e: CublasError) -> String {
    format!("{what} failed with {:?}", e.0)
}

/// A handle on `g`'s context that queues on `g`'s stream (where every kernel of the device runs,
/// so cuBLAS work is ordered with them and the caching allocator's reuse stays safe).
fn create(g: &Gpu) -> std::result::Result<Blas, String> {
    library_status()?;
    g.ctx.bind_to_thread().map_err(|e| format!("cannot make the CUDA context current: {e:?}"))?;
    let workspace = unsafe { g.stream.alloc::<u8>(WORKSPACE_BYTES) }.map_err(|e| format!("allocating the cuBLAS workspace: {e:?}"))?;
    let raw = cublas::create_handle().map_err(|e| status_text("cublasCreate", e))?;
    let (ws_ptr, _) = cudarc::driver::DevicePtr::device_ptr(&workspace, &g.stream);
    let stream = g.stream.cu_stream() as *mut c_void;
    let handle = Handle { raw, ctx: g.ctx.clone(), _workspace: workspace, workspace_ptr: ws_ptr, stream, lt: None };
    unsafe { cublas::set_stream(raw, g.stream.cu_stream() as sys::cudaStream_t) }
        .map_err(|e| status_text("cublasSetStream", e))?;
    // After set_stream, which resets the workspace to the library's default.
    unsafe { sys::cublasSetWorkspace_v2(raw, ws_ptr as *mut c_void, WORKSPACE_BYTES) }
        .result()
        .map_err(|e| status_text("cublasSetWorkspace", e))?;
    // DEFAULT_MATH: f32 GEMMs in full f32 (TF32 only with TF32_TENSOR_OP_MATH or a FAST_TF32
    // compute type, neither of which is used here).
    unsafe { sys::cublasSetMathMode(raw, sys::cublasMath_t::CUBLAS_DEFAULT_MATH) }
        .result()
        .map_err(|e| status_text("cublasSetMathMode", e))?;
    Ok(Blas(Mutex::new(handle)))
}

fn slot(dev: &CudaDevice) -> std::result::Result<&Blas, String> {
    match dev.gpu() {
        None => Err("the emulated device runs the hand-written kernels".into()),
        Some(g) => g.blas.get_or_init(|| create(g)).as_ref().map_err(|why| why.clone()),
    }
}

/// Why the GEMMs on `dev` do not go to cuBLAS; None when they do.
pub fn unavailable_reason(dev: &CudaDevice) -> Option<String> {
    slot(dev).err()
}

/// Whether `linear` on `dev` runs on cuBLAS.
pub fn available(dev: &CudaDevice) -> bool {
    slot(dev).is_ok()
}

/// One line for the device report: where the Linear GEMMs run and, if not on cuBLAS, why.
pub fn status_line(dev: &CudaDevice) -> String {
    let line = forward_status(dev);
    if unavailable_reason(dev).is_some() {
        return line;
    }
    let env = super::blas_gemm::GRADIENTS_ENV;
    if super::blas_gemm::gradients_requested() {
        format!("{line}; f32 gradients on cuBLAS ({env}=0 turns it off)")
    } else {
        format!("{line}; f32 gradients on the hand-written kernel ({env}=0)")
    }
}

fn forward_status(dev: &CudaDevice) -> String {
    match unavailable_reason(dev) {
        None if default_bias_path() == BiasPath::Epilogue && !blas_lt::library_present() => format!(
            "cuBLAS: Linear GEMMs (f32 and bf16 weights) on cuBLAS; libcublasLt.so.13 is not on the loader path: bf16 biases as bias rows (as with {}=0)",
            blas_lt::ENABLE_ENV
        ),
        None if default_bias_path() == BiasPath::Epilogue => {
            format!("cuBLAS: Linear GEMMs (f32 and bf16 weights) on cuBLAS; bf16 biases in cuBLASLt's epilogue ({}=0 turns it off)", blas_lt::ENABLE_ENV)
        }
        None => format!("cuBLAS: Linear GEMMs (f32 and bf16 weights) on cuBLAS; bf16 biases as bias rows ({}=0)", blas_lt::ENABLE_ENV),
        Some(why) => format!("cuBLAS: not used ({why}); Linear GEMMs on the hand-written kernels"),
    }
}

/// Runs `call` with `dev`'s handle, its context current on this thread; a status other than
/// success becomes `Error::Cuda` naming `op`.
pub(super) fn with_handle(dev: &CudaDevice, op: &'static str, call: impl FnOnce(sys::cublasHandle_t) -> std::result::Result<(), CublasError>) -> Result<()> {
    let blas = slot(dev).map_err(|why| Error::Cuda(format!("{op}: cuBLAS unavailable: {why}")))?;
    let handle = blas.0.lock().map_err(|_| Error::Cuda(format!("{op}: the cuBLAS handle's lock is poisoned")))?;
    handle.ctx.bind_to_thread().map_err(|e| Error::Cuda(format!("{op}: cannot make the CUDA context current: {e:?}")))?;
    queue_on_device(dev, "cublas", op, || call(handle.raw).map_err(|e| Error::Cuda(format!("cuBLAS {op}: {:?}", e.0))))
}

/// Runs `job` on `dev`'s cuBLASLt handle (made at the first call). Ok(false): nothing was queued
/// (no cuBLASLt library, or no algorithm for the shape): the caller runs the cuBLAS path.
fn lt_linear_bias(dev: &CudaDevice, op: &'static str, job: &BiasLinear) -> Result<bool> {
    let blas = slot(dev).map_err(|why| Error::Cuda(format!("{op}: cuBLAS unavailable: {why}")))?;
    let mut handle = blas.0.lock().map_err(|_| Error::Cuda(format!("{op}: the cuBLAS handle's lock is poisoned")))?;
    handle.ctx.bind_to_thread().map_err(|e| Error::Cuda(format!("{op}: cannot make the CUDA context current: {e:?}")))?;
    let handle = &mut *handle;
    let (workspace, stream) = (handle.workspace_ptr, handle.stream);
    let Ok(state) = handle.lt.get_or_insert_with(LtState::new) else { return Ok(false) };
    let mut queued = false;
    queue_on_device(dev, "cublaslt", op, || {
        queued = state.linear_bias(job, workspace, WORKSPACE_BYTES, stream)?;
        Ok(())
    })?;
    Ok(queued)
}

/// How many bf16 Linears ran on `dev`'s cuBLASLt path so far (0 where it has none).
pub fn cublaslt_matmuls(dev: &CudaDevice) -> u64 {
    let Ok(blas) = slot(dev) else { return 0 };
    let Ok(handle) = blas.0.lock() else { return 0 };
    match &handle.lt {
        Some(Ok(state)) => state.matmuls,
        _ => 0,
    }
}

/// The launch that writes `bias [out]` into every row of `y [m, out]` (a strided copy whose row
/// stride is 0), so the GEMM adds its products with beta = 1: `y = sum + bias`, one rounding,
/// as in the hand-written kernels.
pub fn bias_rows_launch(y: u64, bias: u64, m: usize, out: usize) -> Result<Launch> {
    let idx = StridedIndex::new(&[m, out], [&[0, 1], &[0, 1]])?;
    Ok(strided_copy_launch(y, bias, &idx))
}

pub(super) fn dim(op: &'static str, what: &str, n: usize) -> Result<c_int> {
    c_int::try_from(n).map_err(|_| Error::shape(op, format!("{what} {n} exceeds cuBLAS's 32-bit sizes")))
}

/// Checks shared by both linears; returns beta (1 when the bias was written into `y` first).
fn prepare(op: &'static str, y: &CudaStorage, bias: Option<&CudaStorage>, m: usize, out: usize) -> Result<f32> {
    check_f32(op, y, m * out)?;
    let Some(b) = bias else { return Ok(0.0) };
    check_f32(op, b, out)?;
    run_on_device(y.device(), &bias_rows_launch(device_ptr(y, 0), device_ptr(b, 0), m, out)?)?;
    Ok(1.0)
}

// Row-major to column-major. cuBLAS reads matrices column-major; a row-major R [r, c] with rows
// of c elements is, byte for byte, the column-major R^T [c, r] with leading dimension c. So
//   Y [m, out] row-major = column-major Y^T [out, m], ldc = out
//   X [m, inp] row-major = column-major X^T [inp, m], ld = inp
//   W [out, inp] row-major = column-major W^T [inp, out], ld = inp
// and Y = X W^T is Y^T = W X^T = (W^T)^T (X^T): cuBLAS's C = op(A) op(B) with A = the stored W
// read transposed (transa = T, lda = inp), B = the stored X as it is (transb = N, ldb = inp),
// M = out, N = m, K = inp, ldc = out. No copy or transpose of any operand is needed.

/// `y [m, out] = x [m, inp] w [out, inp]^T (+ bias [out])`, all f32 and dense, on cuBLAS.
#[allow(clippy::too_many_arguments)]
pub fn sgemm_linear(y: &mut CudaStorage, x: &CudaStorage, w: &CudaStorage, bias: Option<&CudaStorage>, m: usize, out: usize, inp: usize) -> Result<()> {
    const OP: &str = "sgemm_linear";
    check_f32(OP, x, m * inp)?;
    check_f32(OP, w, out * inp)?;
    let (cm, cn, ck) = (dim(OP, "out", out)?, dim(OP, "m", m)?, dim(OP, "in", inp)?);
    if m * out == 0 {
        return Ok(());
    }
    let beta = prepare(OP, y, bias, m, out)?;
    let (yp, xp, wp) = (device_ptr(y, 0), device_ptr(x, 0), device_ptr(w, 0));
    let (alpha, lda) = (1f32, ck.max(1));
    with_handle(x.device(), OP, |h| unsafe {
        let (t, n) = (sys::cublasOperation_t::CUBLAS_OP_T, sys::cublasOperation_t::CUBLAS_OP_N);
        cublas::sgemm(h, t, n, cm, cn, ck, &alpha, wp as *const f32, lda, xp as *const f32, lda, &beta, yp as *mut f32, cm)
    })
}

/// `y [m, out] = bf16(x) [m, inp] w [out, inp]^T (+ bias)`, `w` bf16, `x`, `bias`, `y` f32: `x`
/// is rounded to a bf16 scratch buffer, then one GemmEx with f32 compute (same mapping as above).
#[allow(clippy::too_many_arguments)]
pub fn bf16_linear(y: &mut CudaStorage, x: &CudaStorage, w: &CudaStorage, bias: Option<&CudaStorage>, m: usize, out: usize, inp: usize) -> Result<()> {
    bf16_linear_act(InputAct::Identity, y, x, w, bias, m, out, inp)
}

/// How a bf16 Linear adds its bias on cuBLAS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BiasPath {
    /// The bias written into every row of `y` first (with the input's cast, one launch), then
    /// the GEMM with beta = 1.
    Rows,
    /// One cuBLASLt matmul with the bias in its epilogue (`blas_lt`); `Rows` where cuBLASLt has no
    /// algorithm for the shape or no library.
    Epilogue,
}

/// The path `bf16_linear` takes: `Epilogue` unless `FDM_CUBLASLT=0`, then `Rows`.
pub fn default_bias_path() -> BiasPath {
    if blas_lt::requested() {
        BiasPath::Epilogue
    } else {
        BiasPath::Rows
    }
}

/// `bf16_linear` of `act(x)`: the activation applied inside the input's bf16 cast.
#[allow(clippy::too_many_arguments)]
pub fn bf16_linear_act(act: InputAct, y: &mut CudaStorage, x: &CudaStorage, w: &CudaStorage, bias: Option<&CudaStorage>, m: usize, out: usize, inp: usize) -> Result<()> {
    bf16_linear_on(default_bias_path(), act, y, x, w, bias, m, out, inp)
}

/// `bf16_linear_act` with the bias added as `path` says.
#[allow(clippy::too_many_arguments)]
pub fn bf16_linear_on(path: BiasPath, act: InputAct, y: &mut CudaStorage, x: &CudaStorage, w: &CudaStorage, bias: Option<&CudaStorage>, m: usize, out: usize, inp: usize) -> Result<()> {
    const OP: &str = "bf16_linear";
    check_f32(OP, x, m * inp)?;
    let Some(job) = checked_job(OP, y, w, bias, m, out, inp)? else { return Ok(()) };
    // One launch rounds act(x) into a bf16 scratch buffer and, on the Rows path, writes the
    // bias rows into y.
    let xb = x.device().alloc(DType::BF16, m * inp)?;
    let epilogue = path == BiasPath::Epilogue && bias.is_some();
    let rows_bias = if epilogue { 0 } else { job.bias };
    let prep = linear_prep_launch(device_ptr(&xb, 0), job.y, device_ptr(x, 0), rows_bias, m * inp, m * out, out, act);
    run_on_device(x.device(), &prep)?;
    gemm_bf16_operands(x.device(), BiasLinear { x: device_ptr(&xb, 0), ..job }, epilogue, !epilogue)
}

/// `bf16_linear_on` of an input already in bf16 (`xb` [m, inp], written so by the op that made
/// it: no cast, no scratch buffer); the bias rows, where `path` needs them, take a launch of
/// their own.
#[allow(clippy::too_many_arguments)]
pub fn bf16_linear_of_bf16(path: BiasPath, y: &mut CudaStorage, xb: &CudaStorage, w: &CudaStorage, bias: Option<&CudaStorage>, m: usize, out: usize, inp: usize) -> Result<()> {
    const OP: &str = "bf16_linear (bf16 input)";
    check_dtype_len(OP, xb, DType::BF16, m * inp)?;
    let Some(job) = checked_job(OP, y, w, bias, m, out, inp)? else { return Ok(()) };
    gemm_bf16_operands(xb.device(), BiasLinear { x: device_ptr(xb, 0), ..job }, path == BiasPath::Epilogue && bias.is_some(), false)
}

/// The checks both bf16 Linears share (weight, output, bias, sizes) and the job with its pointers
/// (`x` left 0 for the caller); None when the output is empty.
#[allow(clippy::too_many_arguments)]
fn checked_job(op: &'static str, y: &CudaStorage, w: &CudaStorage, bias: Option<&CudaStorage>, m: usize, out: usize, inp: usize) -> Result<Option<BiasLinear>> {
    check_dtype_len(op, w, DType::BF16, out * inp)?;
    for (what, v) in [("out", out), ("m", m), ("in", inp)] {
        dim(op, what, v)?;
    }
    u32_arg(op, m * inp)?;
    if m * out == 0 {
        return Ok(None);
    }
    check_f32(op, y, m * out)?;
    if let Some(b) = bias {
        check_f32(op, b, out)?;
    }
    u32_arg(op, m * out)?;
    Ok(Some(BiasLinear { y: device_ptr(y, 0), x: 0, w: device_ptr(w, 0), bias: bias.map_or(0, |b| device_ptr(b, 0)), m, out, inp }))
}

/// The GEMM of a bf16 Linear whose bf16 input `job.x` is ready: with `epilogue`, one cuBLASLt
/// matmul adding the bias (falling back to bias rows where it has no algorithm); else cuBLAS's
/// GemmEx adding onto the bias rows in `y` (written already when `rows_written`, else here).
fn gemm_bf16_operands(dev: &CudaDevice, job: BiasLinear, epilogue: bool, rows_written: bool) -> Result<()> {
    const OP: &str = "bf16_linear";
    if epilogue && lt_linear_bias(dev, OP, &job)? {
        return Ok(());
    }
    if job.bias != 0 && !rows_written {
        run_on_device(dev, &bias_rows_launch(job.y, job.bias, job.m, job.out)?)?;
    }
    let (cm, cn, ck) = (dim(OP, "out", job.out)?, dim(OP, "m", job.m)?, dim(OP, "in", job.inp)?);
    let beta = if job.bias != 0 { 1f32 } else { 0f32 };
    let (yp, xp, wp) = (job.y, job.x, job.w);
    let (alpha, lda) = (1f32, ck.max(1));
    let (bf16, f32t) = (sys::cudaDataType::CUDA_R_16BF, sys::cudaDataType::CUDA_R_32F);
    with_handle(dev, OP, |h| unsafe {
        let (t, n) = (sys::cublasOperation_t::CUBLAS_OP_T, sys::cublasOperation_t::CUBLAS_OP_N);
        let (alpha, beta) = (&alpha as *const f32 as *const c_void, &beta as *const f32 as *const c_void);
        let compute = sys::cublasComputeType_t::CUBLAS_COMPUTE_32F;
        let algo = sys::cublasGemmAlgo_t::CUBLAS_GEMM_DEFAULT;
        cublas::gemm_ex(h, t, n, cm, cn, ck, alpha, wp as *const c_void, bf16, lda, xp as *const c_void, bf16, lda, beta, yp as *mut c_void, f32t, cm, compute, algo)
    })
}
