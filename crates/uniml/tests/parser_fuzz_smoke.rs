//! A bounded, deterministic smoke run of the parser fuzz target's body
//! (`fuzz/fuzz_targets/parse_model.rs`): thousands of mutated real models must
//! load or fail with an error, never panic. The open-ended run is
//! `cargo +nightly fuzz run parse_model` in `fuzz/`.

mod common;

use uniml::{Session, SessionOptions};

fn load(bytes: &[u8]) {
    let opts = SessionOptions::default().with_threads(1).with_memory_limit(64 << 20);
    let _ = uniml::ModelInfo::from_bytes(bytes);
    let _ = Session::from_bytes(bytes, opts);
}

#[test]
fn mutated_models_never_panic() {
    let seed_model = std::fs::read(common::root().join("models/digits8x8_cnn.onnx")).unwrap();
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut rnd = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..3000 {
        let mut m = seed_model.clone();
        match rnd() % 4 {
            // Flip a few bytes.
            0 | 1 => {
                for _ in 0..1 + rnd() % 8 {
                    let i = (rnd() as usize) % m.len();
                    m[i] = rnd() as u8;
                }
            }
            // Truncate.
            2 => m.truncate((rnd() as usize) % m.len()),
            // Splice a chunk from elsewhere.
            _ => {
                let a = (rnd() as usize) % m.len();
                let b = (rnd() as usize) % m.len();
                let n = ((rnd() as usize) % 64).min(m.len() - a.max(b));
                let chunk = m[a..a + n].to_vec();
                m[b..b + n].copy_from_slice(&chunk);
            }
        }
        load(&m);
    }
}
