//! Whether JPEG data is whole. The `image` crate's JPEG decoder fills the rows a truncated file
//! lacks with grey and reports no error, so a cut-off download would be inpainted or trained on
//! as if it were a photo; the readers check the data first (`image::read_image_bytes`).
//!
//! The rule: the main picture's marker segments, walked from its start-of-image marker by their
//! lengths, and its scans' entropy-coded data must reach an end-of-image marker (0xFF 0xD9).
//! Walking by lengths skips EXIF thumbnails, whose own end-of-image marker sits inside an APP1
//! segment; bytes after the end (padding, vendor trailers, a second picture) are never read.

/// Whether `data` holds a JPEG that runs to its end-of-image marker (module docs). Lenient where a
/// decoder is: stray bytes between segments are skipped.
pub fn jpeg_is_complete(data: &[u8]) -> bool {
    if !data.starts_with(&[0xFF, 0xD8]) {
        return false;
    }
    let mut i = 2;
    loop {
        // The next marker: 0xFF, possibly several (fill bytes), then the marker's code.
        let Some(p) = data[i..].iter().position(|&b| b == 0xFF) else { return false };
        i += p;
        while i < data.len() && data[i] == 0xFF {
            i += 1;
        }
        let Some(&code) = data.get(i) else { return false };
        i += 1;
        match code {
            0xD9 => return true,
            // Standalone markers (no length) and a stuffed zero outside a scan.
            0x00 | 0x01 | 0xD0..=0xD7 => {}
            _ => {
                let Some(len) = data.get(i..i + 2).map(|b| u16::from_be_bytes([b[0], b[1]]) as usize) else { return false };
                i += len;
                if i > data.len() {
                    return false;
                }
                if code == 0xDA {
                    match entropy_end(data, i) {
                        Some(end) => i = end,
                        None => return false,
                    }
                }
            }
        }
    }
}

/// Where the entropy-coded data of a scan starting at `i` ends: at the first 0xFF that is neither
/// a stuffed zero (0xFF 0x00) nor a restart marker (0xFF 0xD0..=0xD7). `None` if the data ends first.
fn entropy_end(data: &[u8], mut i: usize) -> Option<usize> {
    loop {
        i += data.get(i..)?.iter().position(|&b| b == 0xFF)?;
        match *data.get(i + 1)? {
            0x00 | 0xD0..=0xD7 => i += 2,
            _ => return Some(i),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::jpeg_is_complete;

    /// SOI, an APP1 holding a thumbnail's SOI..EOI, a table, a scan of stuffed and restart bytes.
    fn sample() -> Vec<u8> {
        let mut v = vec![0xFF, 0xD8];
        v.extend([0xFF, 0xE1, 0x00, 0x08, 0xFF, 0xD8, 0x11, 0x22, 0xFF, 0xD9]);
        v.extend([0xFF, 0xDB, 0x00, 0x04, 0x01, 0x02]);
        v.extend([0xFF, 0xDA, 0x00, 0x03, 0x00, 0x12, 0xFF, 0x00, 0x34, 0xFF, 0xD3, 0x56]);
        v.extend([0xFF, 0xD9]);
        v
    }

    #[test]
    fn whole_data_passes_and_trailing_bytes_are_ignored() {
        assert!(jpeg_is_complete(&sample()));
        let mut padded = sample();
        padded.extend([0u8; 100]);
        padded.extend([0xFF, 0xDA, 0x00]); // a trailer that looks like a cut scan
        assert!(jpeg_is_complete(&padded));
    }

    #[test]
    fn every_cut_is_caught_even_after_the_thumbnail_end() {
        let full = sample();
        for n in 0..full.len() - 1 {
            assert!(!jpeg_is_complete(&full[..n]), "cut at {n}");
        }
        assert!(!jpeg_is_complete(b"\x89PNG"));
    }
}
