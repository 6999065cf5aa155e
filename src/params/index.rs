//! Row gather/scatter over a row-major table `[rows, width]` with u32 row indices.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RowsParams {
    /// Rows of the table.
    pub rows: u32,
    /// Elements per row.
    pub width: u32,
    /// Number of indices.
    pub count: u32,
}
