//! `host_threads::on_pool` runs its closure on a thread of rayon's global pool and returns what
//! the closure returns; the engine's parallel ops give the same bits there as from outside the
//! pool (they split work by sizes, not by the calling thread).

use fdm::host_threads::on_pool;
use fdm::ops::binary::mul;
use fdm::ops::matmul::linear;
use fdm::testing::random_vec;
use fdm::Tensor;

fn bits(t: &Tensor) -> Vec<u32> {
    t.to_vec_f32().unwrap().iter().map(|v| v.to_bits()).collect()
}

#[test]
fn on_pool_runs_on_a_pool_thread_cpu() {
    assert_eq!(rayon::current_thread_index(), None, "the test thread is outside the pool");
    let (index, value) = on_pool(|| (rayon::current_thread_index(), 6 * 7));
    assert!(index.is_some(), "ran outside the pool");
    assert_eq!(value, 42);
    // Nested: already on the pool, it stays on that thread.
    let same = on_pool(|| {
        let outer = rayon::current_thread_index();
        on_pool(rayon::current_thread_index) == outer
    });
    assert!(same);
}

#[test]
fn parallel_ops_give_the_same_bits_on_the_pool_cpu() {
    // Large enough for the ops to split across threads.
    let a = Tensor::from_vec(random_vec(1, 1024 * 256, -2.0, 2.0), &[1024, 256]).unwrap();
    let b = Tensor::from_vec(random_vec(2, 1024 * 256, -2.0, 2.0), &[1024, 256]).unwrap();
    let w = Tensor::from_vec(random_vec(3, 192 * 256, -0.1, 0.1), &[192, 256]).unwrap();
    let bias = Tensor::from_vec(random_vec(4, 192, -1.0, 1.0), &[192]).unwrap();
    let outside = (bits(&mul(&a, &b).unwrap()), bits(&linear(&a, &w, Some(&bias)).unwrap()));
    let inside = on_pool(|| (bits(&mul(&a, &b).unwrap()), bits(&linear(&a, &w, Some(&bias)).unwrap())));
    assert!(outside == inside, "results differ on the pool");
}
