//! `uniml run`: tensors from `.npy`/`.pb` files in, outputs to a directory.

use std::path::Path;
use std::process::ExitCode;

use uniml::onnx::{decode_tensor, encode_sequence, encode_tensor, tensor_from_proto, tensor_to_proto, NoExternalData};
use uniml::{Error, Result, Tensor, Value, ValueRef};

use uniml::npy;

use crate::{read_file, EngineArgs};

/// Reads one tensor from `.npy` or an ONNX TensorProto `.pb`, by content.
pub fn read_tensor(path: &Path) -> Result<Tensor> {
    let bytes = read_file(path)?;
    if bytes.starts_with(b"\x93NUMPY") {
        npy::read(&bytes)
    } else {
        tensor_from_proto(&decode_tensor(&bytes)?, &NoExternalData, u64::MAX)
            .map_err(|e| Error::Other(format!("{}: {e}", path.display())))
    }
}

/// Reads a value of the ONNX test-data layout: a tensor, or a sequence proto.
fn read_value(path: &Path, sequence: bool) -> Result<Value> {
    if sequence {
        let bytes = read_file(path)?;
        let seq = uniml::onnx::decode_sequence(&bytes)?;
        let ts: Result<Vec<Tensor>> = seq.tensor_values.iter().map(|t| tensor_from_proto(t, &NoExternalData, u64::MAX)).collect();
        return Ok(Value::Sequence(ts?));
    }
    read_tensor(path).map(Value::Tensor)
}

fn file_name(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.' { c } else { '_' }).collect()
}

pub fn run(model: &Path, inputs: &[String], inputs_dir: Option<&Path>, outputs_dir: &Path, engine: &EngineArgs) -> Result<ExitCode> {
    let (session, _) = crate::load(model, engine.options())?;
    let mut values: Vec<(String, Value)> = Vec::new();
    for spec in inputs {
        let (name, file) = spec.split_once('=').ok_or_else(|| Error::Other(format!("--input expects NAME=FILE, got '{spec}'")))?;
        values.push((name.to_string(), Value::Tensor(read_tensor(Path::new(file))?)));
    }
    if let Some(dir) = inputs_dir {
        for (k, info) in session.inputs().iter().enumerate() {
            if values.iter().any(|(n, _)| *n == info.name) {
                continue;
            }
            let pb = dir.join(format!("input_{k}.pb"));
            let npy = dir.join(format!("{}.npy", file_name(&info.name)));
            if pb.exists() {
                values.push((info.name.clone(), read_value(&pb, info.is_sequence)?));
            } else if npy.exists() {
                values.push((info.name.clone(), Value::Tensor(read_tensor(&npy)?)));
            }
        }
    }
    let refs: Vec<(&str, ValueRef)> = values.iter().map(|(n, v)| (n.as_str(), v.as_ref())).collect();
    let t0 = std::time::Instant::now();
    let outs = session.run_values(&refs)?;
    let ms = t0.elapsed().as_secs_f64() * 1e3;
    std::fs::create_dir_all(outputs_dir).map_err(|e| Error::Other(format!("cannot create {}: {e}", outputs_dir.display())))?;
    let write = |p: std::path::PathBuf, b: Vec<u8>| std::fs::write(&p, b).map_err(|e| Error::Other(format!("cannot write {}: {e}", p.display())));
    for (k, (name, v)) in outs.iter().enumerate() {
        match v {
            Value::Tensor(t) => {
                write(outputs_dir.join(format!("output_{k}.pb")), encode_tensor(&tensor_to_proto(t, name)))?;
                if let Ok(b) = npy::write(t) {
                    write(outputs_dir.join(format!("{}.npy", file_name(name))), b)?;
                }
                eprintln!("{name}: {} {:?}", t.dtype(), t.shape());
            }
            Value::Sequence(ts) => {
                let seq = uniml::onnx::proto::SequenceProto {
                    name: name.clone(),
                    elem_type: 1,
                    tensor_values: ts.iter().map(|t| tensor_to_proto(t, "")).collect(),
                    ..Default::default()
                };
                write(outputs_dir.join(format!("output_{k}.pb")), encode_sequence(&seq))?;
                eprintln!("{name}: sequence of {} tensors", ts.len());
            }
            Value::None => eprintln!("{name}: empty optional (not written)"),
        }
    }
    eprintln!("ran in {ms:.2} ms; outputs in {}", outputs_dir.display());
    Ok(ExitCode::SUCCESS)
}
