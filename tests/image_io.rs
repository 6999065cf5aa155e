//! Image and mask files: the bundled photos load as planar [3, H, W] in [0, 255] (checked
//! against the `image` crate's own interleaved decode), every colour mode converts as
//! documented, saving rounds and clamps, masks follow white = hole with a 128 threshold and come
//! back in the engine polarity (1 = visible), the committed test masks are what the drawer makes,
//! and bad input gives typed errors.
//!
//! Regenerate `assets/masks/*.png` after changing `mask_draw::test_masks` with
//! `FDM_BLESS=1 cargo test --release --test image_io`.

use fdm::io::image::{
    has_readable_extension, READABLE_EXTENSIONS, check_mask_matches, contact_sheet, hole_fraction, load_image, load_mask, mask_from_luma, require_hole,
    save_contact_sheet, save_image, save_mask_png, save_png, save_png16, tensor_to_rgb8, thumbnail,
};
use fdm::io::mask_draw::{test_masks, MaskCanvas};
use fdm::io::ImageError;
use fdm::Tensor;
use std::path::{Path, PathBuf};

const PHOTOS: [&str; 4] = ["dev_005.jpg", "dev_018.jpg", "dev_047.jpg", "dev_064.jpg"];

fn asset(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("assets").join(rel)
}

fn test_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("fdm-img-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Value of the planar [3, H, W] tensor data at (c, y, x).
fn at(v: &[f32], h: usize, w: usize, c: usize, y: usize, x: usize) -> f32 {
    v[(c * h + y) * w + x]
}

#[test]
fn image_bundled_photos_load_planar_rgb_cpu() {
    for name in PHOTOS {
        let path = asset(&format!("photos/{name}"));
        let img = load_image(&path).unwrap();
        assert_eq!((img.width, img.height), (256, 256), "{name}");
        assert_eq!(img.tensor.shape(), &[3, 256, 256]);
        assert!(
            img.notes.is_empty(),
            "{name}: RGB JPEG needs no conversion: {:?}",
            img.notes
        );
        let v = img.tensor.to_vec_f32().unwrap();
        // Independent decode by the image crate, interleaved RGB: element (y, x, c).
        let oracle = ::image::open(&path).unwrap().to_rgb8();
        for (x, y, p) in oracle.enumerate_pixels() {
            for c in 0..3 {
                assert_eq!(
                    at(&v, 256, 256, c, y as usize, x as usize),
                    p[c] as f32,
                    "{name} ({c},{y},{x})"
                );
            }
        }
        let mean = v.iter().sum::<f32>() / v.len() as f32;
        assert!(mean > 20.0 && mean < 235.0, "{name}: a real photo, mean {mean}");
    }
}

#[test]
fn image_modes_convert_as_documented_cpu() {
    let dir = test_dir("modes");
    let (w, h) = (5u32, 3u32);
    // RGBA: alpha dropped, colour kept (not composited).
    let rgba = ::image::RgbaImage::from_fn(w, h, |x, y| {
        ::image::Rgba([x as u8 * 50, y as u8 * 100, 7, (x * 60) as u8])
    });
    rgba.save(dir.join("rgba.png")).unwrap();
    let img = load_image(dir.join("rgba.png")).unwrap();
    assert!(img.notes.iter().any(|n| n.contains("alpha")), "{:?}", img.notes);
    let v = img.tensor.to_vec_f32().unwrap();
    assert_eq!(
        (at(&v, 3, 5, 0, 2, 4), at(&v, 3, 5, 1, 2, 4), at(&v, 3, 5, 2, 2, 4)),
        (200.0, 200.0, 7.0)
    );
    assert_eq!(at(&v, 3, 5, 0, 0, 0), 0.0, "alpha 0 pixel keeps its stored colour");
    // Grey 8-bit: replicated.
    let grey = ::image::GrayImage::from_fn(w, h, |x, y| ::image::Luma([(x * 40 + y) as u8]));
    grey.save(dir.join("grey.png")).unwrap();
    let img = load_image(dir.join("grey.png")).unwrap();
    assert!(img.notes.iter().any(|n| n.contains("grey")), "{:?}", img.notes);
    let v = img.tensor.to_vec_f32().unwrap();
    for c in 0..3 {
        assert_eq!(at(&v, 3, 5, c, 2, 3), 122.0);
    }
    // Grey 16-bit: full precision, v * 255 / 65535.
    let g16 = ::image::ImageBuffer::<::image::Luma<u16>, Vec<u16>>::from_fn(2, 1, |x, _| {
        ::image::Luma([[257 * 10, 1000][x as usize]])
    });
    g16.save(dir.join("grey16.png")).unwrap();
    let img = load_image(dir.join("grey16.png")).unwrap();
    let v = img.tensor.to_vec_f32().unwrap();
    assert!((v[0] - 10.0).abs() < 1e-4, "257 * 10 -> 10, got {}", v[0]);
    assert!(
        (v[1] - 1000.0 * 255.0 / 65535.0).abs() < 1e-4,
        "1000 -> 3.891, got {}",
        v[1]
    );
    assert_eq!(v[1], v[2 + 1], "replicated across channels");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// WebP (lossless), BMP, TIFF and GIF read back the exact pixels the `image` crate wrote, as
/// photos and as masks; the folder listers take their extensions; a format that is not read
/// (AVIF here) is an error naming the ones that are.
#[test]
fn image_other_formats_read_exactly_cpu() {
    let dir = test_dir("formats");
    let (w, h) = (7u32, 5u32);
    // At most 35 colours, so GIF's palette holds them all and the round trip is exact too.
    let rgb = ::image::RgbImage::from_fn(w, h, |x, y| ::image::Rgb([x as u8 * 36, y as u8 * 60, (x * y) as u8 * 9 + 3]));
    let luma = ::image::GrayImage::from_fn(w, h, |x, y| ::image::Luma([if (2..5).contains(&x) && y >= 2 { 255 } else { 0 }]));
    for ext in ["webp", "bmp", "tiff", "tif", "gif"] {
        let (photo, mask) = (dir.join(format!("photo.{ext}")), dir.join(format!("mask.{ext}")));
        rgb.save(&photo).unwrap();
        let as_rgb = if ext == "gif" { ::image::DynamicImage::ImageLuma8(luma.clone()).to_rgb8() } else { rgb.clone() };
        if ext == "gif" {
            as_rgb.save(&mask).unwrap();
        } else {
            luma.save(&mask).unwrap();
        }
        assert!(has_readable_extension(&photo), "{ext}");
        let img = load_image(&photo).unwrap_or_else(|e| panic!("{ext}: {e}"));
        assert_eq!((img.width, img.height), (7, 5), "{ext}");
        let v = img.tensor.to_vec_f32().unwrap();
        for (x, y, p) in rgb.enumerate_pixels() {
            for c in 0..3 {
                assert_eq!(at(&v, 5, 7, c, y as usize, x as usize), p[c] as f32, "{ext} ({x}, {y}) channel {c}");
            }
        }
        let m = load_mask(&mask, false).unwrap_or_else(|e| panic!("{ext} mask: {e}")).to_vec_f32().unwrap();
        let holes: Vec<usize> = m.iter().enumerate().filter(|(_, &v)| v == 0.0).map(|(i, _)| i).collect();
        let expected: Vec<usize> = luma.enumerate_pixels().filter(|p| p.2[0] == 255).map(|p| (p.1 * w + p.0) as usize).collect();
        assert_eq!(holes, expected, "{ext} mask: white = hole");
    }
    for name in ["a.PNG", "b.Jpeg", "c.webp", "d.TIF", "e.gif", "f.bmp"] {
        assert!(has_readable_extension(Path::new(name)), "{name}");
    }
    for name in ["a.avif", "b.heic", "c.txt", "noext"] {
        assert!(!has_readable_extension(Path::new(name)), "{name}");
    }
    assert_eq!(READABLE_EXTENSIONS.len(), 8);
    // The start of an AVIF file: its format is recognised and not read; the error says which are.
    let avif = dir.join("photo.avif");
    std::fs::write(&avif, [&[0u8, 0, 0, 0x1c][..], b"ftypavif", &[0u8; 40][..]].concat()).unwrap();
    let err = load_image(&avif).unwrap_err().to_string();
    assert!(err.contains("photo.avif") && err.contains("readable formats: PNG, JPEG, WebP, BMP, TIFF, GIF"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Every 16-bit value survives loading (scaled to [0, 255] in f32) and `save_png16`; grey is
/// replicated; out-of-range values and NaN clamp like the 8-bit save.
#[test]
fn image_sixteen_bit_round_trip_is_exact_cpu() {
    let dir = test_dir("png16");
    let all = ::image::ImageBuffer::<::image::Luma<u16>, Vec<u16>>::from_fn(256, 256, |x, y| ::image::Luma([(y * 256 + x) as u16]));
    all.save(dir.join("all.png")).unwrap();
    let loaded = load_image(dir.join("all.png")).unwrap();
    assert!(loaded.deep);
    save_png16(&loaded.tensor, dir.join("back.png")).unwrap();
    let back = ::image::open(dir.join("back.png")).unwrap();
    assert_eq!(back.color(), ::image::ColorType::Rgb16);
    for (x, y, p) in back.into_rgb16().enumerate_pixels() {
        let v = (y * 256 + x) as u16;
        assert_eq!(p.0, [v, v, v], "value {v}");
    }
    assert!(!load_image(asset("photos/dev_005.jpg")).unwrap().deep);
    let odd = Tensor::from_vec(vec![-3.0, 255.5, f32::NAN, 128.0, 0.0, 1.0], &[3, 1, 2]).unwrap();
    save_png16(&odd, dir.join("odd.png")).unwrap();
    let odd = ::image::open(dir.join("odd.png")).unwrap().into_rgb16();
    assert_eq!(odd.get_pixel(0, 0).0, [0, 0, 0], "-3 and NaN write 0");
    assert_eq!(odd.get_pixel(1, 0).0, [65535, 32896, 257]);
    assert!(matches!(save_png16(&Tensor::zeros(&[1, 2, 2]), dir.join("x.png")), Err(ImageError::Shape { .. })));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn image_save_rounds_and_clamps_cpu() {
    let vals = vec![0.4, 0.5, 0.6, 254.5, 300.0, -5.0, f32::NAN, 127.49, 1e9];
    let mut data = vals.clone();
    data.extend(vals.iter().map(|v| v + 1.0));
    data.extend(std::iter::repeat_n(9.0, vals.len()));
    let t = Tensor::from_vec(data, &[3, 1, 9]).unwrap();
    let (w, h, bytes) = tensor_to_rgb8(&t).unwrap();
    assert_eq!((w, h), (9, 1));
    let red: Vec<u8> = bytes.iter().step_by(3).copied().collect();
    let green: Vec<u8> = bytes.iter().skip(1).step_by(3).copied().collect();
    assert_eq!(red, [0, 1, 1, 255, 255, 0, 0, 127, 255]);
    assert_eq!(green, [1, 2, 2, 255, 255, 0, 0, 128, 255]);
    assert!(bytes.iter().skip(2).step_by(3).all(|&b| b == 9));
}

#[test]
fn image_save_rounding_equals_round_then_clamp_everywhere_cpu() {
    // Every multiple of 1/64 from -4 to 260, the f32 neighbours of each half, and the edges.
    let mut vals: Vec<f32> = (-256..=260 * 64).map(|k| k as f32 / 64.0).collect();
    for k in -2..=257 {
        let half = k as f32 + 0.5;
        vals.extend([half, f32::from_bits(half.to_bits() - 1), f32::from_bits(half.to_bits() + 1)]);
    }
    vals.extend([0.49999997, -0.0, f32::MIN_POSITIVE, f32::INFINITY, f32::NEG_INFINITY, f32::NAN, 255.49998, 255.5, 1e30]);
    while vals.len() % 3 != 0 {
        vals.push(7.0);
    }
    let n = vals.len() / 3;
    let t = Tensor::from_vec(vals.clone(), &[3, 1, n]).unwrap();
    let (_, _, bytes) = tensor_to_rgb8(&t).unwrap();
    for (i, &v) in vals.iter().enumerate() {
        let (c, x) = (i / n, i % n);
        assert_eq!(bytes[3 * x + c], v.round().clamp(0.0, 255.0) as u8, "value {v:e}");
    }
}

#[test]
fn host_values_borrow_dense_cpu_tensors_and_copy_views_cpu() {
    let t = Tensor::from_vec((0..6).map(|v| v as f32).collect(), &[2, 3]).unwrap();
    let v = t.host_f32().unwrap();
    assert!(matches!(v, std::borrow::Cow::Borrowed(_)));
    assert_eq!(&*v, &[0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
    let view = t.transpose(0, 1).unwrap();
    let v = view.host_f32().unwrap();
    assert!(matches!(v, std::borrow::Cow::Owned(_)));
    assert_eq!(&*v, &[0.0, 3.0, 1.0, 4.0, 2.0, 5.0]);
}

#[test]
fn image_png_round_trip_is_exact_cpu() {
    let dir = test_dir("roundtrip");
    let photo = load_image(asset("photos/dev_018.jpg")).unwrap().tensor;
    save_png(&photo, dir.join("a.png")).unwrap();
    let back = load_image(dir.join("a.png")).unwrap();
    assert_eq!(back.tensor.to_vec_f32().unwrap(), photo.to_vec_f32().unwrap());
    // JPEG by extension: lossy, but close.
    save_image(&photo, dir.join("a.jpg")).unwrap();
    let j = load_image(dir.join("a.jpg")).unwrap().tensor.to_vec_f32().unwrap();
    let mad = j
        .iter()
        .zip(photo.to_vec_f32().unwrap())
        .map(|(a, b)| (a - b).abs())
        .sum::<f32>()
        / j.len() as f32;
    assert!(mad < 4.0, "quality-95 JPEG mean abs diff {mad}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A JPEG of `w x h` pixels, the left half red and the right half blue, carrying the EXIF
/// orientation `exif` (a minimal little-endian TIFF block with the one Orientation tag).
fn jpeg_with_orientation(path: &Path, w: u32, h: u32, exif: u16) {
    use image::ImageEncoder;
    let img = image::RgbImage::from_fn(w, h, |x, _| if x < w / 2 { image::Rgb([255, 0, 0]) } else { image::Rgb([0, 0, 255]) });
    let mut tiff = b"II*\0".to_vec();
    tiff.extend(8u32.to_le_bytes()); // first IFD right after the header
    tiff.extend(1u16.to_le_bytes()); // one entry
    tiff.extend(0x0112u16.to_le_bytes()); // Orientation
    tiff.extend(3u16.to_le_bytes()); // SHORT
    tiff.extend(1u32.to_le_bytes()); // one value
    tiff.extend(exif.to_le_bytes());
    tiff.extend([0, 0]); // value padding
    tiff.extend(0u32.to_le_bytes()); // no next IFD
    let mut bytes = Vec::new();
    let mut enc = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 100);
    enc.set_exif_metadata(tiff).unwrap();
    enc.write_image(img.as_raw(), w, h, image::ExtendedColorType::Rgb8).unwrap();
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn image_exif_orientation_turns_photos_and_masks_upright_cpu() {
    let dir = test_dir("exif");
    // Orientation 6: the stored picture is shown turned 90 degrees clockwise, so its left half
    // (red) becomes the top half, and 32 x 16 becomes 16 x 32.
    let turned = dir.join("turned.jpg");
    jpeg_with_orientation(&turned, 32, 16, 6);
    let img = load_image(&turned).unwrap();
    assert_eq!((img.width, img.height), (16, 32));
    assert_eq!(img.tensor.shape(), [3, 32, 16]);
    assert!(img.notes.iter().any(|n| n.contains("EXIF orientation")), "{:?}", img.notes);
    let v = img.tensor.to_vec_f32().unwrap();
    let (top, bottom) = ((at(&v, 32, 16, 0, 4, 8), at(&v, 32, 16, 2, 4, 8)), (at(&v, 32, 16, 0, 27, 8), at(&v, 32, 16, 2, 27, 8)));
    assert!(top.0 > 200.0 && top.1 < 60.0, "top is red: {top:?}");
    assert!(bottom.0 < 60.0 && bottom.1 > 200.0, "bottom is blue: {bottom:?}");
    // A mask file with the same tag is turned the same way, so it still fits its photo.
    let mask = load_mask(&turned, false).unwrap();
    assert_eq!(mask.shape(), [1, 32, 16]);
    // Orientation 1 (upright) changes nothing and adds no note.
    let upright = dir.join("upright.jpg");
    jpeg_with_orientation(&upright, 32, 16, 1);
    let img = load_image(&upright).unwrap();
    assert_eq!((img.width, img.height, img.notes.len()), (32, 16, 0));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn image_mask_threshold_and_polarity_cpu() {
    // File convention: white (>= 128) = hole. Engine polarity: 1 = visible.
    let luma = [0u8, 127, 128, 255];
    let m = mask_from_luma(&luma, 4, 1, false).unwrap();
    assert_eq!(m.shape(), &[1, 1, 4]);
    assert_eq!(m.to_vec_f32().unwrap(), vec![1.0, 1.0, 0.0, 0.0]);
    let inv = mask_from_luma(&luma, 4, 1, true).unwrap();
    assert_eq!(inv.to_vec_f32().unwrap(), vec![0.0, 0.0, 1.0, 1.0]);
    // Through a file, and from an RGB mask (read as luminance).
    let dir = test_dir("mask");
    ::image::GrayImage::from_raw(4, 1, luma.to_vec())
        .unwrap()
        .save(dir.join("m.png"))
        .unwrap();
    assert_eq!(
        load_mask(dir.join("m.png"), false).unwrap().to_vec_f32().unwrap(),
        vec![1.0, 1.0, 0.0, 0.0]
    );
    let rgb = ::image::RgbImage::from_fn(2, 1, |x, _| {
        if x == 0 {
            ::image::Rgb([255, 255, 255])
        } else {
            ::image::Rgb([10, 20, 30])
        }
    });
    rgb.save(dir.join("rgb.png")).unwrap();
    assert_eq!(
        load_mask(dir.join("rgb.png"), false).unwrap().to_vec_f32().unwrap(),
        vec![0.0, 1.0]
    );
    // save_mask_png writes the file convention back.
    save_mask_png(&m, dir.join("back.png")).unwrap();
    assert_eq!(
        ::image::open(dir.join("back.png")).unwrap().to_luma8().into_raw(),
        vec![0, 0, 255, 255]
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn image_mask_rect_asset_marks_the_box_cpu() {
    let m = load_mask(asset("masks/rect.png"), false).unwrap();
    assert_eq!(m.shape(), &[1, 256, 256]);
    let v = m.to_vec_f32().unwrap();
    for y in 0..256 {
        for x in 0..256 {
            let hole = (84..180).contains(&x) && (100..164).contains(&y);
            assert_eq!(v[y * 256 + x], if hole { 0.0 } else { 1.0 }, "({x},{y})");
        }
    }
    assert!((hole_fraction(&m).unwrap() - 96.0 * 64.0 / 65536.0).abs() < 1e-7);
    let inv = load_mask(asset("masks/rect.png"), true).unwrap();
    assert!((hole_fraction(&inv).unwrap() - (1.0 - 96.0 * 64.0 / 65536.0)).abs() < 1e-6);
}

#[test]
fn image_mask_without_hole_is_an_error_cpu() {
    let all_visible = Tensor::full(1.0, &[1, 8, 8]);
    let err = require_hole(&all_visible).unwrap_err();
    assert!(matches!(err, ImageError::NoHole));
    assert!(err.to_string().contains("mask has no hole"), "{err}");
    let mut some = vec![1.0; 64];
    some[10] = 0.0;
    require_hole(&Tensor::from_vec(some, &[1, 8, 8]).unwrap()).unwrap();
    assert!(matches!(
        require_hole(&Tensor::zeros(&[8, 8])),
        Err(ImageError::Shape { .. })
    ));
}

#[test]
fn image_mask_size_must_match_image_cpu() {
    let img = Tensor::zeros(&[3, 16, 8]);
    check_mask_matches(&img, &Tensor::zeros(&[1, 16, 8])).unwrap();
    match check_mask_matches(&img, &Tensor::zeros(&[1, 8, 16])) {
        Err(e @ ImageError::SizeMismatch { .. }) => assert_eq!(e.to_string(), "mask is 16x8 but the image is 8x16"),
        other => panic!("expected SizeMismatch, got {other:?}"),
    }
}

#[test]
fn image_mask_resize_is_nearest_and_stays_binary_cpu() {
    // `--resize-mask` (and `fdm reproduce`'s mask files) resize by `ops::resize::resize_nearest`.
    // A 4x2 mask with its left half a hole, doubled: the hole is the left half again, exactly.
    let small = Tensor::from_vec(vec![0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 1.0], &[1, 2, 4]).unwrap();
    let resize = |m: &Tensor, h: usize, w: usize| fdm::ops::resize::resize_nearest(&m.reshape(&[1, 1, 2, 4]).unwrap(), (h, w)).map(|t| t.reshape(&[1, h, w]).unwrap());
    let big = resize(&small, 4, 8).unwrap();
    assert_eq!(big.shape(), &[1, 4, 8]);
    let v = big.to_vec_f32().unwrap();
    for y in 0..4 {
        assert_eq!(&v[y * 8..y * 8 + 8], &[0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0], "row {y}");
    }
    // Shrinking to 2x1 keeps one hole pixel and one visible pixel, nothing in between.
    assert_eq!(resize(&small, 1, 2).unwrap().to_vec_f32().unwrap(), vec![0.0, 1.0]);
}

#[test]
fn mask_draw_geometry_literal_cpu() {
    // A horizontal stroke of width 1 through pixel centres of row 2 covers exactly that row.
    let mut c = MaskCanvas::new(5, 5);
    c.stroke(&[(0.5, 2.5), (4.5, 2.5)], 1.0);
    let row: Vec<u8> = (0..5).map(|y| c.luma[y * 5]).collect();
    assert_eq!(row, [0, 0, 255, 0, 0]);
    assert_eq!(c.hole_pixels(), 5);
    // A single point of width 3 at a pixel centre: the corner pixels' centres are
    // sqrt(2) = 1.41 <= 1.5 away, the next ring's 2 > 1.5, so exactly the 3x3 block.
    let mut p = MaskCanvas::new(5, 5);
    p.stroke(&[(2.5, 2.5)], 3.0);
    assert_eq!(p.hole_pixels(), 9);
    // Rectangles clip at the border.
    let mut r = MaskCanvas::new(4, 4);
    r.fill_rect(2, 3, 10, 10);
    assert_eq!(r.hole_pixels(), 2);
    let m = r.to_engine_mask().unwrap();
    assert_eq!(m.to_vec_f32().unwrap()[14..16], [0.0, 0.0]);
}

#[test]
fn mask_assets_match_the_drawer_cpu() {
    let bless = std::env::var("FDM_BLESS").is_ok_and(|v| v == "1");
    for (name, canvas) in test_masks() {
        let path = asset(&format!("masks/{name}"));
        if bless {
            canvas.save_png(&path).unwrap();
        }
        let stored = ::image::open(&path).unwrap_or_else(|e| panic!("{}: {e} (run with FDM_BLESS=1)", path.display()));
        assert_eq!(
            stored.to_luma8().into_raw(),
            canvas.luma,
            "{name} differs from mask_draw::test_masks()"
        );
        let frac = canvas.hole_pixels() as f32 / (256.0 * 256.0);
        assert!(frac > 0.05 && frac < 0.3, "{name}: hole fraction {frac}");
    }
}

#[test]
fn image_contact_sheet_tiles_with_gap_cpu() {
    let a = Tensor::full(10.0, &[3, 2, 3]);
    let b = Tensor::full(20.0, &[3, 1, 2]);
    let c = Tensor::full(30.0, &[3, 2, 2]);
    let sheet = contact_sheet(&[a, b, c], 2, 1).unwrap();
    // Cells 2 x 3, two columns, two rows, gap 1: H = 2*2 + 3, W = 2*3 + 3.
    assert_eq!(sheet.shape(), &[3, 7, 9]);
    let v = sheet.to_vec_f32().unwrap();
    let red: Vec<Vec<f32>> = (0..7).map(|y| v[y * 9..(y + 1) * 9].to_vec()).collect();
    let w = 255.0;
    assert_eq!(red[0], vec![w; 9]);
    assert_eq!(red[1], vec![w, 10.0, 10.0, 10.0, w, 20.0, 20.0, w, w]);
    assert_eq!(red[2], vec![w, 10.0, 10.0, 10.0, w, w, w, w, w]);
    assert_eq!(red[3], vec![w; 9]);
    assert_eq!(red[4], vec![w, 30.0, 30.0, w, w, w, w, w, w]);
    assert_eq!(red[5], vec![w, 30.0, 30.0, w, w, w, w, w, w]);
    assert_eq!(red[6], vec![w; 9]);
    assert!(matches!(contact_sheet(&[], 2, 1), Err(ImageError::Shape { .. })));
    assert!(matches!(
        contact_sheet(&[Tensor::zeros(&[1, 2, 2])], 2, 1),
        Err(ImageError::Shape { .. })
    ));
    // Saved: the four photos side by side.
    let dir = test_dir("sheet");
    let photos: Vec<Tensor> = PHOTOS
        .iter()
        .map(|n| load_image(asset(&format!("photos/{n}"))).unwrap().tensor)
        .collect();
    save_contact_sheet(&photos, 4, dir.join("sheet.png")).unwrap();
    let img = load_image(dir.join("sheet.png")).unwrap();
    assert_eq!((img.width, img.height), (4 * 256 + 5 * 4, 256 + 2 * 4));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn image_thumbnail_keeps_aspect_and_leaves_small_images_alone_cpu() {
    // 600 x 300, left half dark (40), right half light (200).
    let (w, h) = (600usize, 300usize);
    let v: Vec<f32> = (0..3 * w * h).map(|i| if i % w < w / 2 { 40.0 } else { 200.0 }).collect();
    let big = Tensor::from_vec(v, &[3, h, w]).unwrap();
    let small = thumbnail(&big, 200).unwrap();
    assert_eq!(small.shape(), [3, 100, 200]);
    let s = small.to_vec_f32().unwrap();
    assert!((at(&s, 100, 200, 1, 50, 20) - 40.0).abs() <= 1.0 && (at(&s, 100, 200, 2, 50, 180) - 200.0).abs() <= 1.0);
    // Already within the bound: the same tensor, values untouched (no 8-bit rounding).
    let odd = Tensor::from_vec(vec![12.25; 3 * 8 * 4], &[3, 8, 4]).unwrap();
    assert_eq!(thumbnail(&odd, 8).unwrap().to_vec_f32().unwrap(), odd.to_vec_f32().unwrap());
}

#[test]
fn image_bad_input_gives_typed_errors_cpu() {
    let dir = test_dir("bad");
    std::fs::write(dir.join("not-an-image.png"), b"hello, this is text").unwrap();
    assert!(matches!(
        load_image(dir.join("not-an-image.png")),
        Err(ImageError::Codec { .. })
    ));
    assert!(matches!(
        load_mask(dir.join("not-an-image.png"), false),
        Err(ImageError::Codec { .. })
    ));
    assert!(matches!(
        load_image(dir.join("missing.png")),
        Err(ImageError::Io { .. })
    ));
    // Truncated JPEGs: the decoder alone would fill the missing rows with grey; cut in the
    // header, at a third, and short of the last 2000 bytes, each is named as truncated.
    let jpg = std::fs::read(asset("photos/dev_005.jpg")).unwrap();
    for cut in [200, jpg.len() / 3, jpg.len() - 2000] {
        let path = dir.join("cut.jpg");
        std::fs::write(&path, &jpg[..cut]).unwrap();
        let err = load_image(&path).unwrap_err();
        assert!(matches!(err, ImageError::Truncated { .. }) && err.to_string().contains("cut.jpg: truncated or corrupt"), "cut at {cut}: {err}");
        assert!(matches!(load_mask(&path, false), Err(ImageError::Truncated { .. })), "cut at {cut}");
    }
    // Padding after the end-of-image marker is not a truncation.
    let padded = dir.join("padded.jpg");
    std::fs::write(&padded, [jpg.as_slice(), &[0u8; 64]].concat()).unwrap();
    load_image(&padded).unwrap();
    let err = save_png(&Tensor::zeros(&[4, 2, 2]), dir.join("x.png")).unwrap_err();
    assert!(
        matches!(err, ImageError::Shape { .. }) && err.to_string().contains("[4, 2, 2]"),
        "{err}"
    );
    assert!(matches!(
        save_image(&Tensor::zeros(&[3, 2, 2]), dir.join("x.bmp")),
        Err(ImageError::Codec { .. })
    ));
    assert!(!Path::new(&dir.join("x.png")).exists());
    std::fs::remove_dir_all(&dir).unwrap();
}
