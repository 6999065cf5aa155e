//! `host_alloc::ReusingAlloc`: large freed blocks come back for the same layout, zeroed when
//! asked, contents survive `realloc` across the size boundary, and the cache keeps to its limits
//! by giving back its oldest blocks.
use fdm::host_alloc::{ReusingAlloc, REUSE_MAX_BYTES, REUSE_MIN_BYTES};
use std::alloc::{GlobalAlloc, Layout};

fn layout(size: usize) -> Layout {
    Layout::from_size_align(size, 64).unwrap()
}

#[test]
fn large_block_is_reused_for_same_layout_cpu() {
    let a = ReusingAlloc::new();
    let l = layout(REUSE_MIN_BYTES + 4096);
    unsafe {
        let p = a.alloc(l);
        assert!(!p.is_null());
        p.write_bytes(0xAB, l.size());
        a.dealloc(p, l);
        assert_eq!(a.kept_bytes(), l.size());
        let q = a.alloc(l);
        assert_eq!(q, p, "the kept block serves the same layout");
        assert_eq!(a.kept_bytes(), 0);
        a.dealloc(q, l);
        let z = a.alloc_zeroed(l);
        assert_eq!(z, p);
        assert!(std::slice::from_raw_parts(z, l.size()).iter().all(|&b| b == 0), "a reused zeroed block is cleared");
        a.dealloc(z, l);
    }
    a.release_kept();
    assert_eq!(a.kept_bytes(), 0);
}

#[test]
fn other_sizes_alignments_and_small_blocks_are_not_served_from_the_cache_cpu() {
    let a = ReusingAlloc::new();
    let l = layout(REUSE_MIN_BYTES);
    unsafe {
        let p = a.alloc(l);
        a.dealloc(p, l);
        // While kept, the block is not free in the system allocator, so any other address
        // proves it was not handed out.
        let bigger = layout(REUSE_MIN_BYTES + 64);
        let q = a.alloc(bigger);
        assert_ne!(q, p);
        let wider = Layout::from_size_align(REUSE_MIN_BYTES, 4096).unwrap();
        let w = a.alloc(wider);
        assert_ne!(w, p);
        assert_eq!(a.kept_bytes(), l.size());
        a.dealloc(q, bigger);
        a.dealloc(w, wider);
        assert_eq!(a.kept_bytes(), l.size() + bigger.size() + wider.size());

        let small = layout(REUSE_MIN_BYTES - 1);
        let s = a.alloc(small);
        a.dealloc(s, small);
        assert_eq!(a.kept_bytes(), l.size() + bigger.size() + wider.size(), "small blocks go straight back");
    }
    a.release_kept();
}

#[test]
fn cache_keeps_to_its_limits_by_giving_back_the_oldest_blocks_cpu() {
    let a = ReusingAlloc::new();
    // Byte limit: blocks of 1/8 of it, never touched (so never faulted in).
    let big = layout(REUSE_MAX_BYTES / 8);
    let blocks: Vec<*mut u8> = (0..10).map(|_| unsafe { a.alloc(big) }).collect();
    assert!(blocks.iter().all(|p| !p.is_null()));
    blocks.iter().for_each(|&p| unsafe { a.dealloc(p, big) });
    assert_eq!(a.kept_bytes(), REUSE_MAX_BYTES, "eight blocks fill it");
    // The newest eight are kept (newest handed out first); the first two went back.
    let again: Vec<*mut u8> = (0..8).map(|_| unsafe { a.alloc(big) }).collect();
    let expected: Vec<*mut u8> = blocks[2..].iter().rev().copied().collect();
    assert_eq!(again, expected);
    assert_eq!(a.kept_bytes(), 0);
    again.iter().for_each(|&p| unsafe { a.dealloc(p, big) });
    // A block larger than the whole cache is not kept and evicts nothing.
    let huge = layout(REUSE_MAX_BYTES + 4096);
    unsafe {
        let p = a.alloc(huge);
        a.dealloc(p, huge);
    }
    assert_eq!(a.kept_bytes(), REUSE_MAX_BYTES);
    a.release_kept();

    // Slot limit: more blocks than slots; the cache stays full of the newest.
    let l = layout(REUSE_MIN_BYTES);
    let blocks: Vec<*mut u8> = (0..80).map(|_| unsafe { a.alloc(l) }).collect();
    blocks.iter().for_each(|&p| unsafe { a.dealloc(p, l) });
    let kept = a.kept_bytes();
    assert!(kept < 80 * l.size() && kept.is_multiple_of(l.size()) && kept > 0, "kept {kept} bytes");
    assert_eq!(unsafe { a.alloc(l) }, blocks[79], "the newest block comes back first");
    unsafe { a.dealloc(blocks[79], l) };
    a.release_kept();
    assert_eq!(a.kept_bytes(), 0);
}

#[test]
fn realloc_keeps_contents_and_takes_a_kept_block_of_the_new_size_cpu() {
    let a = ReusingAlloc::new();
    let pattern = |i: usize| (i * 7 + 3) as u8;
    unsafe {
        // A kept block of the size the realloc will ask for.
        let large = REUSE_MIN_BYTES * 2;
        let waiting = a.alloc(layout(large));
        a.dealloc(waiting, layout(large));

        let small = layout(1000);
        let p = a.alloc(small);
        (0..small.size()).for_each(|i| *p.add(i) = pattern(i));
        // small -> large: served by the kept block
        let p = a.realloc(p, small, large);
        assert_eq!(p, waiting);
        assert_eq!(a.kept_bytes(), 0);
        assert!((0..small.size()).all(|i| *p.add(i) == pattern(i)));
        (0..large).for_each(|i| *p.add(i) = pattern(i));
        // large -> larger, no kept block of that size: the system allocator resizes
        let larger = large + 12345;
        let q = a.realloc(p, layout(large), larger);
        assert!((0..large).all(|i| *q.add(i) == pattern(i)));
        // larger -> small
        let r = a.realloc(q, layout(larger), 500);
        assert!((0..500).all(|i| *r.add(i) == pattern(i)));
        a.dealloc(r, layout(500));
    }
    a.release_kept();
}

#[test]
fn blocks_are_shared_safely_between_threads_cpu() {
    let a = ReusingAlloc::new();
    let l = layout(REUSE_MIN_BYTES);
    std::thread::scope(|s| {
        for t in 0..4u8 {
            let a = &a;
            s.spawn(move || {
                for _ in 0..50 {
                    unsafe {
                        let p = a.alloc_zeroed(l);
                        let block = std::slice::from_raw_parts_mut(p, l.size());
                        assert!(block.iter().step_by(4096).all(|&b| b == 0));
                        block.iter_mut().step_by(4096).for_each(|b| *b = t + 1);
                        assert!(block.iter().step_by(4096).all(|&b| b == t + 1), "no other thread holds the block");
                        a.dealloc(p, l);
                    }
                }
            });
        }
    });
    assert!(a.kept_bytes() <= 4 * l.size());
    a.release_kept();
}
