//! Row gather/scatter: literal cases, fast == ref on the sampler's shapes, bad indices.
use fdm::cpu::ops::index::*;
use fdm::ops::index::{gather_rows, scatter_rows};
use fdm::params::index::RowsParams;
use fdm::testing::random_vec;
use fdm::{Result, Tensor};

#[test]
fn gather_rows_literal_cpu() -> Result<()> {
    let table = Tensor::from_vec((0..12).map(|i| i as f32).collect(), &[4, 3])?;
    let g = gather_rows(&table, &[2, 0, 2])?;
    assert_eq!(g.shape(), &[3, 3]);
    assert_eq!(g.to_vec_f32()?, vec![6.0, 7.0, 8.0, 0.0, 1.0, 2.0, 6.0, 7.0, 8.0]);
    Ok(())
}

#[test]
fn scatter_rows_literal_and_later_wins_cpu() -> Result<()> {
    let table = Tensor::zeros(&[3, 2]);
    let vals = Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[3, 2])?;
    let s = scatter_rows(&table, &[1, 2, 1], &vals)?;
    assert_eq!(s.to_vec_f32()?, vec![0.0, 0.0, 5.0, 6.0, 3.0, 4.0]);
    assert_eq!(table.to_vec_f32()?, vec![0.0; 6], "input is not modified");
    Ok(())
}

#[test]
fn rows_fast_matches_ref_on_sampler_shapes_cpu() {
    // Feature table 2 x 1024 x 256, logits 1024 x 512.
    for (rows, width) in [(2048usize, 256usize), (1024, 512)] {
        let table = random_vec(1, rows * width, -1.0, 1.0);
        let idx: Vec<u32> = (0..37).map(|i| (i * 97 % rows) as u32).collect();
        let p = RowsParams { rows: rows as u32, width: width as u32, count: idx.len() as u32 };
        assert_eq!(gather_rows_fast(&table, &idx, p), gather_rows_ref(&table, &idx, p));
        let vals = random_vec(2, idx.len() * width, -1.0, 1.0);
        let (mut a, mut b) = (table.clone(), table.clone());
        scatter_rows_fast(&mut a, &idx, &vals, p);
        scatter_rows_ref(&mut b, &idx, &vals, p);
        assert_eq!(a, b);
    }
}

#[test]
fn rows_reject_out_of_range_index_cpu() -> Result<()> {
    let table = Tensor::zeros(&[4, 3]);
    let e = gather_rows(&table, &[4]).unwrap_err().to_string();
    assert!(e.contains("row index 4"), "{e}");
    let e = scatter_rows(&table, &[0], &Tensor::zeros(&[1, 2])).unwrap_err().to_string();
    assert!(e.contains("values"), "{e}");
    Ok(())
}
