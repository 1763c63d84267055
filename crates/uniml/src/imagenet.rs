//! ImageNet-classifier input from a decoded image (feature `image`): the one
//! preprocessing shared by `uniml classify`, the wasi:http classifier and the
//! Cloudflare Worker, so every face feeds the model the same tensor.

/// EfficientNet-Lite preprocessing: resize the short side to 256 (bilinear),
/// centre-crop 224, x = (pixel − 127) / 128, NCHW.
pub fn preprocess(image: &image::RgbImage) -> Vec<f32> {
    let (w, h) = image.dimensions();
    let scale = 256.0 / w.min(h) as f32;
    let (nw, nh) = (((w as f32 * scale).round() as u32).max(224), ((h as f32 * scale).round() as u32).max(224));
    let resized = image::imageops::resize(image, nw, nh, image::imageops::FilterType::Triangle);
    let (x0, y0) = ((nw - 224) / 2, (nh - 224) / 2);
    let mut out = vec![0f32; 3 * 224 * 224];
    for y in 0..224 {
        for x in 0..224 {
            let p = resized.get_pixel(x0 + x, y0 + y);
            for c in 0..3 {
                out[c * 224 * 224 + (y * 224 + x) as usize] = (p[c] as f32 - 127.0) / 128.0;
            }
        }
    }
    out
}
