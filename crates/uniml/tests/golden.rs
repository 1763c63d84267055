//! Golden tests: real models run by uniml and by onnxruntime (computed now, by
//! `scripts/reference.py`) on the same input bytes; outputs must agree within
//! 1e-4 of the reference's scale.

mod common;

use std::path::Path;

use common::*;
use uniml::{Session, SessionOptions, Tensor};

struct Golden {
    outputs: Vec<(String, Tensor, Tensor)>, // name, ours, reference
}

/// Makes inputs with `make_inputs.py ARGS… DIR`, runs both engines, returns both outputs.
fn golden(model_name: &str, make_inputs: &[&str], threads: usize) -> Golden {
    let model = model(model_name);
    let dir = scratch(&format!("{}-{}", model_name, make_inputs.join("-").replace(['/', '.'], "_")));
    let (inp, refs) = (dir.join("inputs"), dir.join("ref"));
    let mut args: Vec<String> = vec!["scripts/make_inputs.py".into()];
    args.extend(make_inputs.iter().map(|s| s.replace("{model}", &model.display().to_string())));
    args.push(inp.display().to_string());
    // `random` takes MODEL OUT_DIR [options]: put the dir right after the model.
    if matches!(make_inputs.first(), Some(&"random") | Some(&"text")) {
        let out = args.pop().unwrap_or_default();
        args.insert(3, out);
    }
    py(&args.iter().map(String::as_str).collect::<Vec<_>>());
    py(&["scripts/reference.py", &model.display().to_string(), "--inputs-dir", &inp.display().to_string(), "--outputs-dir", &refs.display().to_string()]);

    let session = Session::from_file(&model, SessionOptions::default().with_threads(threads)).unwrap_or_else(|e| panic!("load {model_name}: {e}"));
    let tensors: Vec<(String, Tensor)> = session
        .inputs()
        .iter()
        .map(|i| (i.name.clone(), read_npy(&inp.join(format!("{}.npy", sanitize(&i.name))))))
        .collect();
    let views: Vec<(&str, uniml::TensorView)> = tensors.iter().map(|(n, t)| (n.as_str(), t.view())).collect();
    let outs = session.run(&views).unwrap_or_else(|e| panic!("run {model_name}: {e}"));
    Golden {
        outputs: outs.into_iter().map(|(n, t)| {
            let r = read_npy(&refs.join(format!("{}.npy", sanitize(&n))));
            (n, t, r)
        }).collect(),
    }
}

/// max |ours − ref| / max(1, max |ref|): the tolerance is relative to the output's scale.
fn assert_close(g: &Golden, tol: f64, what: &str) -> f64 {
    let mut worst = 0f64;
    for (name, ours, want) in &g.outputs {
        assert_eq!(ours.shape(), want.shape(), "{what}: output '{name}' shape");
        assert_eq!(ours.dtype(), want.dtype(), "{what}: output '{name}' dtype");
        let (a, b) = (ours.to_f64_vec().unwrap(), want.to_f64_vec().unwrap());
        let scale = b.iter().fold(1f64, |m, v| m.max(v.abs()));
        let diff = a.iter().zip(&b).fold(0f64, |m, (x, y)| m.max((x - y).abs()));
        eprintln!("{what}: output '{name}' {:?} max |diff| {diff:.3e} (scale {scale:.3})", ours.shape());
        assert!(diff / scale <= tol, "{what}: output '{name}' differs from onnxruntime by {diff:e} (scale {scale}, tol {tol})");
        worst = worst.max(diff);
    }
    worst
}

fn top5(t: &Tensor) -> Vec<usize> {
    let v = t.to_f64_vec().unwrap();
    let mut idx: Vec<usize> = (0..v.len()).collect();
    idx.sort_by(|&a, &b| v[b].total_cmp(&v[a]));
    idx.truncate(5);
    idx
}

#[test]
fn digits8x8_cnn_matches_onnxruntime() {
    let g = golden("digits8x8_cnn.onnx", &["digits-synthetic"], 1);
    assert_close(&g, 1e-4, "digits (synthetic batch)");
    let g = golden("digits8x8_cnn.onnx", &["image", "digits", "testdata/page.png"], 1);
    assert_close(&g, 1e-4, "digits (page)");
}

#[test]
fn efficientnet_lite0_on_real_photos() {
    for (photo, threads) in [("coffee", 1), ("chelsea", 2)] {
        let g = golden("efficientnet_lite0.onnx", &["image", "efficientnet", &format!("testdata/{photo}.png")], threads);
        assert_close(&g, 1e-4, &format!("efficientnet {photo}"));
        let (_, ours, want) = &g.outputs[0];
        assert_eq!(top5(ours), top5(want), "{photo}: top-5 must equal onnxruntime's");
        let best = top5(ours)[0];
        if photo == "coffee" {
            assert_eq!(best, 967, "coffee → espresso");
        } else {
            assert!((281..=285).contains(&best), "chelsea → a cat class, got {best}");
        }
    }
}

#[test]
fn selfie_segmentation_on_astronaut() {
    let g = golden("selfie_segmentation.onnx", &["image", "selfie", "testdata/astronaut.png"], 2);
    assert_close(&g, 1e-4, "selfie");
    let mask = g.outputs[0].1.as_slice::<f32>().unwrap();
    let fg = mask.iter().filter(|&&p| p > 0.5).count() as f64 / mask.len() as f64;
    assert!((0.3..0.8).contains(&fg), "foreground fraction {fg}");
    let g = golden("selfie_segmentation_landscape.onnx", &["image", "selfie_landscape", "testdata/astronaut.png"], 1);
    assert_close(&g, 1e-4, "selfie landscape");
}

#[test]
fn mobilenetv2_generated_batch2() {
    let g = golden("mobilenetv2.onnx", &["random", "{model}", "--dim", "batch_size=2"], 2);
    assert_close(&g, 1e-4, "mobilenetv2");
}

#[test]
fn silero_vad_sequence() {
    let g = golden("silero_vad_16k_sequence.onnx", &["random", "{model}", "--dim", "sequence_length=8"], 1);
    assert_close(&g, 1e-4, "silero vad");
}

#[test]
fn ppocr_v4_det_on_page() {
    let g = golden("ppocrv4_det.onnx", &["image", "ppocr_det", "testdata/page.png"], 2);
    assert_close(&g, 1e-4, "PP-OCRv4 det");
}

#[test]
fn paraphrase_minilm_embeddings() {
    let g = golden("paraphrase-MiniLM-L3-v2.onnx", &["text", "models/bert-uncased-tokenizer.json", "Open neural network exchange models run in the browser."], 1);
    assert_close(&g, 1e-4, "MiniLM");
}

#[allow(dead_code)]
fn unused(_: &Path) {}
