//! Runs a model on `.npy` inputs and writes `.npy` outputs, with nothing but the
//! facade and std — so the very same program runs natively and inside
//! WebAssembly (wasm32-wasip1 under Wasmtime), which is how CI proves that
//! both give the same answers.
//!
//! usage: run_npy MODEL INPUTS_DIR OUTPUTS_DIR   (files are named after the
//! model's inputs/outputs with '/' and ':' replaced by '_')

use std::path::Path;

fn sanitize(name: &str) -> String {
    name.replace(['/', ':'], "_")
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, model, inputs, outputs] = &args[..] else {
        return Err("usage: run_npy MODEL INPUTS_DIR OUTPUTS_DIR".into());
    };
    let session = uniml::Session::from_file(model, uniml::SessionOptions::default().with_threads(1))?;
    let mut tensors = Vec::new();
    for info in session.inputs() {
        let p = Path::new(inputs).join(format!("{}.npy", sanitize(&info.name)));
        let bytes = std::fs::read(&p).map_err(|e| format!("{}: {e}", p.display()))?;
        tensors.push((info.name.clone(), uniml::npy::read(&bytes)?));
    }
    let views: Vec<(&str, uniml::TensorView)> = tensors.iter().map(|(n, t)| (n.as_str(), t.view())).collect();
    let outs = session.run(&views)?;
    std::fs::create_dir_all(outputs)?;
    for (name, t) in outs {
        std::fs::write(Path::new(outputs).join(format!("{}.npy", sanitize(&name))), uniml::npy::write(&t)?)?;
        println!("{name}: {} {:?}", t.dtype(), t.shape());
    }
    Ok(())
}
