//! Checks uniml-text against the project's Python pipeline: token ids against
//! `scripts/make_inputs.py text` (HF `tokenizers`), embeddings against onnxruntime
//! (`scripts/reference.py`, output `461` = the model's own mean-pooled embedding).

use std::path::{Path, PathBuf};
use std::process::Command;

use uniml::SessionOptions;
use uniml_text::{cosine, SentenceEmbedder};

/// The repository root, from the run-time manifest dir (a test binary reused
/// from a shared target dir may have been compiled in another checkout).
fn root() -> PathBuf {
    let manifest = std::env::var_os("CARGO_MANIFEST_DIR").map(PathBuf::from).unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into());
    manifest.join("../..")
}
fn tokenizer_path() -> String {
    root().join("models/bert-uncased-tokenizer.json").display().to_string()
}
fn model_path() -> PathBuf {
    root().join(".cache/models/paraphrase-MiniLM-L3-v2.onnx")
}

const SENTENCES: [&str; 3] = [
    "A man is playing a guitar.",
    "Someone plays an acoustic guitar.",
    "The stock market fell sharply today.",
];

fn python() -> PathBuf {
    let py = root().join(".venv/bin/python");
    assert!(
        py.exists(),
        "{} is missing: run bash scripts/setup-python.sh",
        py.display()
    );
    py
}

fn run_python(args: &[&str]) {
    let out = Command::new(python())
        .args(args)
        .current_dir(root())
        .output()
        .expect("cannot start .venv/bin/python");
    assert!(
        out.status.success(),
        "python {args:?} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn npy(path: &Path) -> uniml::Tensor {
    let bytes =
        std::fs::read(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    uniml::npy::read(&bytes).unwrap_or_else(|e| panic!("cannot parse {}: {e}", path.display()))
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("uniml-text-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Python inputs dir for sentence `i` (input_ids / attention_mask / token_type_ids, padded to 128).
fn python_inputs(dir: &Path, i: usize) -> PathBuf {
    let d = dir.join(format!("in{i}"));
    run_python(&[
        "scripts/make_inputs.py",
        "text",
        &tokenizer_path(),
        d.to_str().unwrap(),
        SENTENCES[i],
        "--max-len",
        "128",
    ]);
    d
}

fn embedder() -> SentenceEmbedder {
    let tok = std::fs::read(tokenizer_path()).unwrap_or_else(|e| panic!("cannot read {}: {e}", tokenizer_path()));
    let model = std::fs::read(model_path())
        .unwrap_or_else(|e| panic!("cannot read {}: {e} (run scripts/fetch_models.py)", model_path().display()));
    SentenceEmbedder::new(&tok, &model, SessionOptions::default()).expect("SentenceEmbedder::new")
}

#[test]
fn token_ids_match_python_and_embeddings_match_onnxruntime() {
    let dir = scratch("sim");
    let emb = embedder();

    // (a) token ids == the Python tokenizer's (unpadded prefix).
    let mut input_dirs = Vec::new();
    for (i, s) in SENTENCES.iter().enumerate() {
        let d = python_inputs(&dir, i);
        let py_ids = npy(&d.join("input_ids.npy")).to_vec::<i64>().unwrap();
        let py_mask = npy(&d.join("attention_mask.npy")).to_vec::<i64>().unwrap();
        assert_eq!(py_ids.len(), 128);
        let n = py_mask.iter().filter(|&&m| m != 0).count();
        assert_eq!(
            emb.token_ids(s).unwrap(),
            py_ids[..n].to_vec(),
            "token ids differ for {s:?}"
        );
        assert!(py_ids[n..].iter().all(|&id| id == 0));
        input_dirs.push(d);
    }

    // (b) embeddings == onnxruntime's pooled output `461`, batched (padded to the longest).
    let ours = emb.embed(&SENTENCES).unwrap();
    assert_eq!(ours.len(), 3);
    let mut reference = Vec::new();
    for (i, d) in input_dirs.iter().enumerate() {
        let out = dir.join(format!("out{i}"));
        run_python(&[
            "scripts/reference.py",
            model_path().to_str().unwrap(),
            "--inputs-dir",
            d.to_str().unwrap(),
            "--outputs-dir",
            out.to_str().unwrap(),
        ]);
        let r = npy(&out.join("461.npy"));
        assert_eq!(r.shape(), &[1, 384]);
        let r = r.to_vec::<f32>().unwrap();
        let diff = ours[i]
            .iter()
            .zip(&r)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(
            diff <= 1e-4,
            "sentence {i} {:?}: max |ours - onnxruntime| = {diff}",
            SENTENCES[i]
        );
        reference.push(r);
    }

    let similar = cosine(&ours[0], &ours[1]);
    let unrelated = cosine(&ours[0], &ours[2]);
    eprintln!("cosine(similar) = {similar:.4}, cosine(unrelated) = {unrelated:.4}");
    assert!(
        similar > unrelated,
        "similar pair {similar} <= unrelated pair {unrelated}"
    );
    // onnxruntime's similarities agree with ours.
    assert!((cosine(&reference[0], &reference[1]) - similar).abs() < 1e-4);
    assert!((cosine(&reference[0], &reference[2]) - unrelated).abs() < 1e-4);

    // One sentence alone (no padding) embeds the same as inside the padded batch.
    let single = emb.embed(&[SENTENCES[0]]).unwrap();
    let diff = single[0]
        .iter()
        .zip(&ours[0])
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(diff <= 1e-4, "batched vs single differ by {diff}");

    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn truncation_is_configurable() {
    let emb = embedder().with_max_length(5).unwrap();
    let ids = emb.token_ids("one two three four five six seven").unwrap();
    assert_eq!(ids.len(), 5);
    assert_eq!(ids[0], 101); // [CLS]
    assert_eq!(ids[4], 102); // [SEP]
    let e = emb
        .embed(&["one two three four five six seven", "hi"])
        .unwrap();
    assert_eq!(e.len(), 2);
    assert_eq!(e[0].len(), 384);
    assert!(emb.embed(&[]).unwrap().is_empty());
}

#[test]
fn bad_tokenizer_json_is_a_clear_error() {
    let model = std::fs::read(model_path()).unwrap();
    let e = SentenceEmbedder::new(b"{not json", &model, SessionOptions::default()).unwrap_err();
    assert!(
        matches!(e, uniml::Error::Other(ref m) if m.contains("tokenizer.json")),
        "{e:?}"
    );
}
