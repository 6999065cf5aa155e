//! Output buffers that a kernel writes in full, allocated without zeroing them first.
//!
//! Every op returns a fresh output buffer. `vec![0f32; n]` has the allocator zero it, and since
//! freed buffers are reused from the heap (`host_alloc`), that is a memset over the whole output
//! right before the kernel overwrites every element: for the element-wise ops of a phase-1a
//! training step on two cores, about a tenth of the step (`BENCHMARKS.md`). An element-wise
//! kernel is written once, generic over `OutElem`, and runs either on an `f32` slice (what the
//! tests and callers that own a buffer use) or on the spare capacity of a new vector
//! (`filled_vec`), which becomes the output once every element has been written.

use std::mem::MaybeUninit;

/// One output element a kernel writes: an `f32` of an existing slice, or fresh memory.
pub trait OutElem: Send + Sized {
    fn put(&mut self, v: f32);

    /// Copy `src` into `dst` (same length) and return `dst` as plain `f32`s, for kernels that
    /// then work in place on the copy.
    fn copy_in<'a>(dst: &'a mut [Self], src: &[f32]) -> &'a mut [f32];
}

impl OutElem for f32 {
    #[inline(always)]
    fn put(&mut self, v: f32) {
        *self = v;
    }

    #[inline(always)]
    fn copy_in<'a>(dst: &'a mut [f32], src: &[f32]) -> &'a mut [f32] {
        dst.copy_from_slice(src);
        dst
    }
}

impl OutElem for MaybeUninit<f32> {
    #[inline(always)]
    fn put(&mut self, v: f32) {
        self.write(v);
    }

    #[inline(always)]
    fn copy_in<'a>(dst: &'a mut [MaybeUninit<f32>], src: &[f32]) -> &'a mut [f32] {
        assert_eq!(dst.len(), src.len(), "copy_in: lengths differ");
        for (d, &s) in dst.iter_mut().zip(src) {
            d.write(s);
        }
        // SAFETY: every element of `dst` was written just above, and `MaybeUninit<f32>` has the
        // layout of `f32`.
        unsafe { &mut *(dst as *mut [MaybeUninit<f32>] as *mut [f32]) }
    }
}

/// A vector of `n` values written by `fill`, never zeroed.
///
/// # Safety
/// `fill` must write every element of the slice it is given (`OutElem::put` or `copy_in`), and
/// must not read an element before writing it. A panic inside `fill` is safe: the vector is
/// dropped with length 0.
pub unsafe fn filled_vec(n: usize, fill: impl FnOnce(&mut [MaybeUninit<f32>])) -> Vec<f32> {
    let mut v = Vec::with_capacity(n);
    fill(&mut v.spare_capacity_mut()[..n]);
    // SAFETY: the capacity is at least `n`, and by the caller's contract `fill` wrote all `n`.
    unsafe { v.set_len(n) };
    v
}
