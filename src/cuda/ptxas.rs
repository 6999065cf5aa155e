//! Parse the ptxas resource report that NVRTC writes into its program log when compiling for a
//! real architecture with `--ptxas-options=-v` (toolchain.md §4). Used by the kernel compile
//! tier (`tests/kernels_compile.rs`) to print registers, shared memory and spills per kernel and
//! to fail on spills, with no GPU and no ptxas binary.
//!
//! The lines look like:
//! ```text
//! ptxas info    : Compiling entry function 'softmax_fwd_f32' for 'sm_90'
//! ptxas info    : Function properties for softmax_fwd_f32
//!     0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
//! ptxas info    : Used 18 registers, used 1 barriers, 128 bytes smem, 380 bytes cmem[0]
//! ```

/// Resource use of one kernel as ptxas reports it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KernelResources {
    pub name: String,
    pub registers: u32,
    pub static_smem_bytes: u32,
    pub stack_frame_bytes: u32,
    pub spill_store_bytes: u32,
    pub spill_load_bytes: u32,
}

/// The number just before `unit` in `line` (e.g. `number_before(l, " registers")`).
fn number_before(line: &str, unit: &str) -> Option<u32> {
    let end = line.find(unit)?;
    let digits: String = line[..end]
        .chars()
        .rev()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    digits.chars().rev().collect::<String>().parse().ok()
}

fn quoted_or_last_word(s: &str) -> String {
    let s = s.trim();
    match (s.find('\''), s.rfind('\'')) {
        (Some(a), Some(b)) if b > a => s[a + 1..b].to_string(),
        _ => s.split_whitespace().last().unwrap_or("").to_string(),
    }
}

/// One entry per kernel (entry function) in the order ptxas reports them.
pub fn parse_report(log: &str) -> Vec<KernelResources> {
    let mut out: Vec<KernelResources> = Vec::new();
    let mut current: Option<usize> = None;
    let select = |out: &mut Vec<KernelResources>, name: String| -> usize {
        match out.iter().position(|k| k.name == name) {
            Some(i) => i,
            None => {
                out.push(KernelResources {
                    name,
                    ..Default::default()
                });
                out.len() - 1
            }
        }
    };
    for line in log.lines() {
        if let Some(rest) = line.split("Compiling entry function").nth(1) {
            let name = quoted_or_last_word(rest.split(" for ").next().unwrap_or(rest));
            current = Some(select(&mut out, name));
        } else if let Some(rest) = line.split("Function properties for").nth(1) {
            current = Some(select(&mut out, quoted_or_last_word(rest)));
        } else if let Some(i) = current {
            let k = &mut out[i];
            if line.contains("bytes stack frame") {
                k.stack_frame_bytes = number_before(line, " bytes stack frame").unwrap_or(0);
                k.spill_store_bytes = number_before(line, " bytes spill stores").unwrap_or(0);
                k.spill_load_bytes = number_before(line, " bytes spill loads").unwrap_or(0);
            } else if line.contains("Used ") && line.contains(" registers") {
                k.registers = number_before(line, " registers").unwrap_or(0);
                k.static_smem_bytes = number_before(line, " bytes smem").unwrap_or(0);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = "ptxas info    : 0 bytes gmem
ptxas info    : Compiling entry function 'reduce' for 'sm_90'
ptxas info    : Function properties for reduce
    0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
ptxas info    : Used 14 registers, used 1 barriers, 128 bytes smem, 372 bytes cmem[0]
ptxas info    : Compiling entry function 'big' for 'sm_90'
ptxas info    : Function properties for big
    312 bytes stack frame, 584 bytes spill stores, 636 bytes spill loads
ptxas info    : Used 32 registers, used 0 barriers, 368 bytes cmem[0]
";

    #[test]
    fn ptxas_report_parses_registers_smem_and_spills() {
        let r = parse_report(LOG);
        assert_eq!(r.len(), 2);
        assert_eq!(
            r[0],
            KernelResources {
                name: "reduce".into(),
                registers: 14,
                static_smem_bytes: 128,
                ..Default::default()
            }
        );
        assert_eq!(
            r[1],
            KernelResources {
                name: "big".into(),
                registers: 32,
                static_smem_bytes: 0,
                stack_frame_bytes: 312,
                spill_store_bytes: 584,
                spill_load_bytes: 636
            }
        );
    }
}
