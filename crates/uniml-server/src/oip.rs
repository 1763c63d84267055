//! Open Inference Protocol v2 (KServe / Triton) request decoding and response
//! encoding: JSON tensors and the binary tensor data extension.
//!
//! Nothing here panics on client input: every size is checked (shape × dtype
//! against the bytes or elements actually present, with overflow checks)
//! before a tensor is allocated.

use serde::de::{DeserializeSeed, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use uniml::{bf16, f16, DType, Dim, IoInfo, Tensor};

/// The OIP datatype name of a uniml dtype.
pub fn datatype(d: DType) -> &'static str {
    match d {
        DType::Bool => "BOOL",
        DType::U8 => "UINT8",
        DType::U16 => "UINT16",
        DType::U32 => "UINT32",
        DType::U64 => "UINT64",
        DType::I8 => "INT8",
        DType::I16 => "INT16",
        DType::I32 => "INT32",
        DType::I64 => "INT64",
        DType::F16 => "FP16",
        DType::F32 => "FP32",
        DType::F64 => "FP64",
        DType::BF16 => "BF16",
        DType::String => "BYTES",
        // Not OIP datatypes: named after ONNX; outputs are sent widened to FP32 values.
        DType::F8E4M3FN => "FLOAT8E4M3FN",
        DType::F8E4M3FNUZ => "FLOAT8E4M3FNUZ",
        DType::F8E5M2 => "FLOAT8E5M2",
        DType::F8E5M2FNUZ => "FLOAT8E5M2FNUZ",
        DType::F8E8M0 => "FLOAT8E8M0",
        DType::F4E2M1 => "FLOAT4E2M1",
        DType::U4 => "UINT4",
        DType::I4 => "INT4",
        DType::U2 => "UINT2",
        DType::I2 => "INT2",
    }
}

pub fn dtype_of(name: &str) -> Option<DType> {
    Some(match name {
        "BOOL" => DType::Bool,
        "UINT8" => DType::U8,
        "UINT16" => DType::U16,
        "UINT32" => DType::U32,
        "UINT64" => DType::U64,
        "INT8" => DType::I8,
        "INT16" => DType::I16,
        "INT32" => DType::I32,
        "INT64" => DType::I64,
        "FP16" => DType::F16,
        "FP32" => DType::F32,
        "FP64" => DType::F64,
        "BF16" => DType::BF16,
        "BYTES" => DType::String,
        _ => return None,
    })
}

/// OIP tensor metadata (`{name, datatype, shape}`), -1 for symbolic or unknown dims.
pub fn tensor_metadata(info: &IoInfo) -> Value {
    let shape: Vec<i64> = match &info.shape {
        Some(s) => s.0.iter().map(|d| if let Dim::Known(k) = d { *k as i64 } else { -1 }).collect(),
        // Unknown rank: OIP cannot say so; one -1 is the convention of several servers.
        None => vec![-1],
    };
    let dt = info.dtype.map(datatype).unwrap_or("BYTES");
    serde_json::json!({"name": info.name, "datatype": dt, "shape": shape})
}

/// A client error (HTTP 400) or a too-large request (413).
#[derive(Debug)]
pub enum DecodeError {
    Bad(String),
    TooLarge(String),
}

fn bad<T>(msg: impl Into<String>) -> Result<T, DecodeError> {
    Err(DecodeError::Bad(msg.into()))
}

#[derive(Deserialize)]
struct RequestJson {
    #[serde(default)]
    id: Option<Value>,
    #[serde(default)]
    parameters: Option<Map<String, Value>>,
    inputs: Vec<InputJson>,
    #[serde(default)]
    outputs: Option<Vec<OutputJson>>,
}

#[derive(Deserialize)]
struct InputJson {
    name: String,
    shape: Vec<i64>,
    datatype: String,
    #[serde(default)]
    parameters: Option<Map<String, Value>>,
    #[serde(default)]
    data: Option<Box<RawValue>>,
}

#[derive(Deserialize)]
struct OutputJson {
    name: String,
    #[serde(default)]
    parameters: Option<Map<String, Value>>,
}

/// A decoded inference request.
pub struct InferRequest {
    pub id: Option<Value>,
    pub inputs: Vec<(String, Tensor)>,
    /// Outputs to return (model order when not selected), each with "binary?".
    pub outputs: Vec<(String, bool)>,
}

fn param_bool(p: &Option<Map<String, Value>>, key: &str) -> bool {
    p.as_ref().and_then(|m| m.get(key)).and_then(Value::as_bool).unwrap_or(false)
}

/// Decodes a request body. `header_len` is the `Inference-Header-Content-Length`
/// value when the binary extension is used (the JSON header comes first, then
/// the binary input data in input order). `max_elements_bytes` bounds any one tensor.
pub fn decode_request(body: &[u8], header_len: Option<usize>, model_inputs: &[IoInfo], model_outputs: &[IoInfo], max_bytes: usize) -> Result<InferRequest, DecodeError> {
    let (json, mut binary) = match header_len {
        Some(h) if h > body.len() => return bad(format!("Inference-Header-Content-Length is {h} but the body has only {} bytes", body.len())),
        Some(h) => body.split_at(h),
        None => (body, &[][..]),
    };
    let req: RequestJson = serde_json::from_slice(json).map_err(|e| DecodeError::Bad(format!("malformed inference request JSON: {e}")))?;
    let mut inputs = Vec::with_capacity(req.inputs.len());
    for inp in &req.inputs {
        let Some(info) = model_inputs.iter().find(|i| i.name == inp.name) else {
            let names: Vec<&str> = model_inputs.iter().map(|i| i.name.as_str()).collect();
            return bad(format!("input '{}': the model has no such input (inputs are: {})", inp.name, names.join(", ")));
        };
        let dtype = dtype_of(&inp.datatype).ok_or_else(|| DecodeError::Bad(format!("input '{}': unknown datatype '{}'", inp.name, inp.datatype)))?;
        if let Some(want) = info.dtype {
            if want != dtype && !info.is_sequence {
                return bad(format!("input '{}': expected datatype {}, got {}", inp.name, datatype(want), inp.datatype));
            }
        }
        let mut shape = Vec::with_capacity(inp.shape.len());
        for &d in &inp.shape {
            if d < 0 {
                return bad(format!("input '{}': shape {:?} has a negative dim", inp.name, inp.shape));
            }
            shape.push(d as usize);
        }
        check_shape(&inp.name, info, &shape)?;
        let n = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d)).ok_or_else(|| DecodeError::TooLarge(format!("input '{}': shape {:?} overflows", inp.name, shape)))?;
        let nbytes = n.saturating_mul(dtype.size().max(1));
        if nbytes > max_bytes {
            return Err(DecodeError::TooLarge(format!("input '{}': shape {:?} of {} needs {nbytes} bytes, more than the limit of {max_bytes}", inp.name, shape, inp.datatype)));
        }
        let binary_size = inp.parameters.as_ref().and_then(|m| m.get("binary_data_size"));
        let tensor = match (binary_size, &inp.data) {
            (Some(size), _) => {
                let size = size.as_u64().ok_or_else(|| DecodeError::Bad(format!("input '{}': binary_data_size must be a non-negative integer", inp.name)))? as usize;
                if size > binary.len() {
                    return bad(format!("input '{}': binary_data_size is {size} but only {} bytes of binary data remain", inp.name, binary.len()));
                }
                let (chunk, rest) = binary.split_at(size);
                binary = rest;
                from_binary(&inp.name, dtype, &shape, n, chunk)?
            }
            (None, Some(raw)) => from_json(&inp.name, dtype, &shape, n, raw)?,
            (None, None) => return bad(format!("input '{}': no data (give \"data\" or parameters.binary_data_size)", inp.name)),
        };
        inputs.push((inp.name.clone(), tensor));
    }
    if !binary.is_empty() {
        return bad(format!("{} bytes of binary data are not claimed by any input's binary_data_size", binary.len()));
    }
    let all_binary = param_bool(&req.parameters, "binary_data_output");
    let outputs = match &req.outputs {
        Some(sel) if !sel.is_empty() => {
            let mut out = Vec::with_capacity(sel.len());
            for o in sel {
                if !model_outputs.iter().any(|m| m.name == o.name) {
                    let names: Vec<&str> = model_outputs.iter().map(|i| i.name.as_str()).collect();
                    return bad(format!("output '{}': the model has no such output (outputs are: {})", o.name, names.join(", ")));
                }
                let binary = match o.parameters.as_ref().and_then(|m| m.get("binary_data")) {
                    Some(v) => v.as_bool().unwrap_or(false),
                    None => all_binary,
                };
                out.push((o.name.clone(), binary));
            }
            out
        }
        _ => model_outputs.iter().map(|o| (o.name.clone(), all_binary)).collect(),
    };
    Ok(InferRequest { id: req.id, inputs, outputs })
}

/// Rank and fixed dims against the model's declaration (symbolic dims are checked by the session).
fn check_shape(name: &str, info: &IoInfo, shape: &[usize]) -> Result<(), DecodeError> {
    let Some(decl) = &info.shape else { return Ok(()) };
    if info.is_sequence {
        return Ok(());
    }
    let expect: Vec<i64> = decl.0.iter().map(|d| if let Dim::Known(k) = d { *k as i64 } else { -1 }).collect();
    let fits = decl.rank() == shape.len() && decl.0.iter().zip(shape).all(|(d, &g)| !matches!(d, Dim::Known(k) if *k != g));
    if fits {
        Ok(())
    } else {
        bad(format!("input '{name}': expected shape {expect:?} ({decl}), got {shape:?}"))
    }
}

fn from_binary(name: &str, dtype: DType, shape: &[usize], n: usize, chunk: &[u8]) -> Result<Tensor, DecodeError> {
    if dtype == DType::String {
        // Each element: 4-byte little-endian length, then the bytes.
        let mut out = Vec::with_capacity(n.min(chunk.len() / 4));
        let mut rest = chunk;
        while !rest.is_empty() {
            if rest.len() < 4 {
                return bad(format!("input '{name}': truncated BYTES element length"));
            }
            let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
            if len > rest.len() - 4 {
                return bad(format!("input '{name}': BYTES element of {len} bytes overruns the data"));
            }
            out.push(String::from_utf8_lossy(&rest[4..4 + len]).into_owned());
            rest = &rest[4 + len..];
            if out.len() > n {
                break;
            }
        }
        if out.len() != n {
            return bad(format!("input '{name}': shape {shape:?} needs {n} BYTES elements, got {}", out.len()));
        }
        return Tensor::from_strings(shape, out).map_err(|e| DecodeError::Bad(format!("input '{name}': {e}")));
    }
    let want = n * dtype.size();
    if chunk.len() != want {
        return bad(format!("input '{name}': shape {shape:?} of {} needs {want} bytes, binary_data_size is {}", datatype(dtype), chunk.len()));
    }
    Tensor::from_raw_bytes(dtype, shape, chunk).map_err(|e| DecodeError::Bad(format!("input '{name}': {e}")))
}

/// One JSON element converted to a tensor element type.
trait JsonElem: Sized {
    const WHAT: &'static str;
    fn from_f64(_: f64) -> Option<Self> {
        None
    }
    fn from_i64(_: i64) -> Option<Self> {
        None
    }
    fn from_u64(_: u64) -> Option<Self> {
        None
    }
    fn from_bool(_: bool) -> Option<Self> {
        None
    }
    fn from_str(_: &str) -> Option<Self> {
        None
    }
}

macro_rules! float_elem {
    ($t:ty, $conv:expr) => {
        impl JsonElem for $t {
            const WHAT: &'static str = "a number";
            fn from_f64(v: f64) -> Option<Self> {
                Some($conv(v))
            }
            fn from_i64(v: i64) -> Option<Self> {
                Some($conv(v as f64))
            }
            fn from_u64(v: u64) -> Option<Self> {
                Some($conv(v as f64))
            }
        }
    };
}
float_elem!(f32, |v: f64| v as f32);
float_elem!(f64, |v: f64| v);
float_elem!(f16, f16::from_f64);
float_elem!(bf16, bf16::from_f64);

macro_rules! int_elem {
    ($($t:ty),*) => {$(
        impl JsonElem for $t {
            const WHAT: &'static str = concat!("an integer in the range of ", stringify!($t));
            fn from_i64(v: i64) -> Option<Self> { <$t>::try_from(v).ok() }
            fn from_u64(v: u64) -> Option<Self> { <$t>::try_from(v).ok() }
            fn from_f64(v: f64) -> Option<Self> {
                // 3.0 is accepted for an integer input, 3.5 is not.
                (v.fract() == 0.0 && v >= <$t>::MIN as f64 && v <= <$t>::MAX as f64).then(|| v as $t)
            }
        }
    )*};
}
int_elem!(i8, u8, i16, u16, i32, u32, i64, u64);

/// Booleans travel as one byte.
struct BoolByte(u8);
impl JsonElem for BoolByte {
    const WHAT: &'static str = "a boolean";
    fn from_bool(v: bool) -> Option<Self> {
        Some(BoolByte(v as u8))
    }
    fn from_i64(v: i64) -> Option<Self> {
        matches!(v, 0 | 1).then_some(BoolByte(v as u8))
    }
    fn from_u64(v: u64) -> Option<Self> {
        matches!(v, 0 | 1).then_some(BoolByte(v as u8))
    }
}
impl JsonElem for String {
    const WHAT: &'static str = "a string";
    fn from_str(v: &str) -> Option<Self> {
        Some(v.to_string())
    }
}

/// Flattens (possibly nested) JSON arrays into `out`, stopping past `cap` elements.
struct Flat<'a, T> {
    out: &'a mut Vec<T>,
    cap: usize,
}

impl<'de, T: JsonElem> DeserializeSeed<'de> for Flat<'_, T> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, T: JsonElem> Visitor<'de> for Flat<'_, T> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "{} or an array of them", T::WHAT)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(Flat { out: &mut *self.out, cap: self.cap })?.is_some() {}
        Ok(())
    }
    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<(), E> {
        self.push(T::from_f64(v), || v.to_string())
    }
    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<(), E> {
        self.push(T::from_i64(v), || v.to_string())
    }
    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<(), E> {
        self.push(T::from_u64(v), || v.to_string())
    }
    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<(), E> {
        self.push(T::from_bool(v), || v.to_string())
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<(), E> {
        self.push(T::from_str(v), || format!("{v:?}"))
    }
}

impl<T: JsonElem> Flat<'_, T> {
    fn push<E: serde::de::Error>(self, v: Option<T>, shown: impl FnOnce() -> String) -> Result<(), E> {
        if self.out.len() >= self.cap {
            return Err(E::custom(format!("more elements than the shape holds ({})", self.cap)));
        }
        match v {
            Some(v) => {
                self.out.push(v);
                Ok(())
            }
            None => Err(E::custom(format!("element {} is {}, expected {}", self.out.len(), shown(), T::WHAT))),
        }
    }
}

fn flatten<T: JsonElem>(name: &str, raw: &RawValue, n: usize) -> Result<Vec<T>, DecodeError> {
    // Every JSON element takes at least two bytes ("0,"): never reserve more than the text can hold.
    let mut out = Vec::with_capacity(n.min(raw.get().len() / 2 + 1));
    let mut de = serde_json::Deserializer::from_str(raw.get());
    Flat { out: &mut out, cap: n }.deserialize(&mut de).map_err(|e| DecodeError::Bad(format!("input '{name}': data: {e}")))?;
    if out.len() != n {
        return bad(format!("input '{name}': shape needs {n} elements, data has {}", out.len()));
    }
    Ok(out)
}

fn from_json(name: &str, dtype: DType, shape: &[usize], n: usize, raw: &RawValue) -> Result<Tensor, DecodeError> {
    macro_rules! num {
        ($t:ty) => {
            Tensor::from_vec::<$t>(shape, flatten::<$t>(name, raw, n)?)
        };
    }
    let t = match dtype {
        DType::F32 => num!(f32),
        DType::F64 => num!(f64),
        DType::F16 => num!(f16),
        DType::BF16 => num!(bf16),
        DType::I8 => num!(i8),
        DType::U8 => num!(u8),
        DType::I16 => num!(i16),
        DType::U16 => num!(u16),
        DType::I32 => num!(i32),
        DType::U32 => num!(u32),
        DType::I64 => num!(i64),
        DType::U64 => num!(u64),
        DType::Bool => {
            let bytes: Vec<u8> = flatten::<BoolByte>(name, raw, n)?.into_iter().map(|b| b.0).collect();
            Tensor::from_raw_bytes(DType::Bool, shape, &bytes)
        }
        DType::String => Tensor::from_strings(shape, flatten::<String>(name, raw, n)?),
        d => return bad(format!("input '{name}': {d} inputs are not supported over OIP")),
    };
    t.map_err(|e| DecodeError::Bad(format!("input '{name}': {e}")))
}

/// Output data for the JSON form, typed so f32 prints in its shortest form.
#[derive(Serialize)]
#[serde(untagged)]
enum OutData<'a> {
    F32(&'a [f32]),
    F64(&'a [f64]),
    Widened(Vec<f32>),
    I8(&'a [i8]),
    U8(&'a [u8]),
    I16(&'a [i16]),
    U16(&'a [u16]),
    I32(&'a [i32]),
    U32(&'a [u32]),
    I64(&'a [i64]),
    U64(&'a [u64]),
    Bool(Vec<bool>),
    Str(&'a [String]),
}

fn out_data(t: &Tensor) -> uniml::Result<OutData<'_>> {
    Ok(match t.dtype() {
        DType::F32 => OutData::F32(t.as_slice()?),
        DType::F64 => OutData::F64(t.as_slice()?),
        DType::F16 => OutData::Widened(t.as_slice::<f16>()?.iter().map(|v| v.to_f32()).collect()),
        DType::BF16 => OutData::Widened(t.as_slice::<bf16>()?.iter().map(|v| v.to_f32()).collect()),
        DType::I8 => OutData::I8(t.as_slice()?),
        DType::U8 => OutData::U8(t.as_slice()?),
        DType::I16 => OutData::I16(t.as_slice()?),
        DType::U16 => OutData::U16(t.as_slice()?),
        DType::I32 => OutData::I32(t.as_slice()?),
        DType::U32 => OutData::U32(t.as_slice()?),
        DType::I64 => OutData::I64(t.as_slice()?),
        DType::U64 => OutData::U64(t.as_slice()?),
        DType::Bool => OutData::Bool(t.as_bools()?.to_vec()),
        DType::String => OutData::Str(t.as_strings()?),
        _ => OutData::Widened(t.to_f64_vec()?.into_iter().map(|v| v as f32).collect()),
    })
}

#[derive(Serialize)]
struct OutputTensor<'a> {
    name: &'a str,
    datatype: &'static str,
    shape: &'a [usize],
    #[serde(skip_serializing_if = "Option::is_none")]
    parameters: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<OutData<'a>>,
}

#[derive(Serialize)]
struct ResponseJson<'a> {
    model_name: &'a str,
    model_version: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a Value>,
    outputs: Vec<OutputTensor<'a>>,
}

/// An encoded response: the body and, when any output is binary, the JSON header length.
pub struct Encoded {
    pub body: Vec<u8>,
    pub header_len: Option<usize>,
}

fn binary_bytes(t: &Tensor) -> Vec<u8> {
    match t.as_strings() {
        Ok(strings) => {
            let mut out = Vec::new();
            for s in strings {
                out.extend_from_slice(&(s.len() as u32).to_le_bytes());
                out.extend_from_slice(s.as_bytes());
            }
            out
        }
        Err(_) => t.as_bytes().to_vec(),
    }
}

/// Encodes the selected outputs (JSON, or JSON header + binary data).
pub fn encode_response(model: &str, id: Option<&Value>, results: &[(String, Tensor)], selected: &[(String, bool)]) -> uniml::Result<Encoded> {
    let mut outputs = Vec::with_capacity(selected.len());
    let mut binary: Vec<u8> = Vec::new();
    for (name, as_binary) in selected {
        let Some((_, t)) = results.iter().find(|(n, _)| n == name) else {
            return Err(uniml::Error::Other(format!("the model did not produce output '{name}'")));
        };
        if *as_binary {
            let bytes = binary_bytes(t);
            outputs.push(OutputTensor {
                name,
                datatype: datatype(t.dtype()),
                shape: t.shape(),
                parameters: Some(serde_json::json!({"binary_data_size": bytes.len()})),
                data: None,
            });
            binary.extend_from_slice(&bytes);
        } else {
            outputs.push(OutputTensor { name, datatype: datatype(t.dtype()), shape: t.shape(), parameters: None, data: Some(out_data(t)?) });
        }
    }
    let any_binary = selected.iter().any(|(_, b)| *b);
    let resp = ResponseJson { model_name: model, model_version: "1", id, outputs };
    let mut body = serde_json::to_vec(&resp).map_err(|e| uniml::Error::Other(format!("cannot encode the response: {e}")))?;
    let header_len = any_binary.then_some(body.len());
    body.extend_from_slice(&binary);
    Ok(Encoded { body, header_len })
}

#[cfg(test)]
mod tests {
    use super::*;
    use uniml::{Dim, SymbolicShape};

    fn io(name: &str, dtype: DType, dims: Vec<Dim>) -> IoInfo {
        IoInfo { name: name.into(), dtype: Some(dtype), shape: Some(SymbolicShape(dims)), is_sequence: false }
    }

    fn decode(body: &str, inputs: &[IoInfo]) -> Result<InferRequest, DecodeError> {
        decode_request(body.as_bytes(), None, inputs, &[io("y", DType::F32, vec![])], 1 << 20)
    }

    fn err(r: Result<InferRequest, DecodeError>) -> String {
        match r {
            Err(DecodeError::Bad(m)) | Err(DecodeError::TooLarge(m)) => m,
            Ok(_) => panic!("expected an error"),
        }
    }

    #[test]
    fn every_datatype_round_trips_its_name() {
        for d in [DType::Bool, DType::U8, DType::U16, DType::U32, DType::U64, DType::I8, DType::I16, DType::I32, DType::I64, DType::F16, DType::F32, DType::F64, DType::BF16, DType::String] {
            assert_eq!(dtype_of(datatype(d)), Some(d));
        }
        assert_eq!(dtype_of("FLOAT"), None);
    }

    #[test]
    fn json_integers_bools_strings_and_halves() {
        let ids = [io("ids", DType::I64, vec![Dim::Sym("b".into()), Dim::Known(2)])];
        let r = decode(r#"{"inputs":[{"name":"ids","shape":[2,2],"datatype":"INT64","data":[[1,-2],[9007199254740993,4.0]]}]}"#, &ids).map_err(|_| ()).unwrap();
        assert_eq!(r.inputs[0].1.as_slice::<i64>().unwrap(), &[1, -2, 9007199254740993, 4]);
        assert!(err(decode(r#"{"inputs":[{"name":"ids","shape":[1,2],"datatype":"INT64","data":[1,2.5]}]}"#, &ids)).contains("element 1 is 2.5"));
        let u8s = [io("u", DType::U8, vec![Dim::Known(2)])];
        assert!(err(decode(r#"{"inputs":[{"name":"u","shape":[2],"datatype":"UINT8","data":[1,256]}]}"#, &u8s)).contains("range of u8"));
        let flags = [io("f", DType::Bool, vec![Dim::Known(3)])];
        let r = decode(r#"{"inputs":[{"name":"f","shape":[3],"datatype":"BOOL","data":[true,false,1]}]}"#, &flags).map_err(|_| ()).unwrap();
        assert_eq!(r.inputs[0].1.as_bools().unwrap(), &[true, false, true]);
        let text = [io("t", DType::String, vec![Dim::Known(2)])];
        let r = decode(r#"{"inputs":[{"name":"t","shape":[2],"datatype":"BYTES","data":["héllo",""]}]}"#, &text).map_err(|_| ()).unwrap();
        assert_eq!(r.inputs[0].1.as_strings().unwrap(), &["héllo".to_string(), String::new()]);
        let half = [io("h", DType::F16, vec![Dim::Known(2)])];
        let r = decode(r#"{"inputs":[{"name":"h","shape":[2],"datatype":"FP16","data":[0.5,-2]}]}"#, &half).map_err(|_| ()).unwrap();
        assert_eq!(r.inputs[0].1.as_slice::<f16>().unwrap(), &[f16::from_f32(0.5), f16::from_f32(-2.0)]);
    }

    #[test]
    fn binary_bytes_elements_and_outputs() {
        let text = [io("t", DType::String, vec![Dim::Known(2)])];
        let mut bin = Vec::new();
        for s in ["ab", "xyz"] {
            bin.extend_from_slice(&(s.len() as u32).to_le_bytes());
            bin.extend_from_slice(s.as_bytes());
        }
        let header = format!(r#"{{"inputs":[{{"name":"t","shape":[2],"datatype":"BYTES","parameters":{{"binary_data_size":{}}}}}]}}"#, bin.len());
        let mut body = header.clone().into_bytes();
        body.extend_from_slice(&bin);
        let r = decode_request(&body, Some(header.len()), &text, &[io("t", DType::String, vec![])], 1 << 20).map_err(|_| ()).unwrap();
        assert_eq!(r.inputs[0].1.as_strings().unwrap(), &["ab".to_string(), "xyz".to_string()]);
        // A length that overruns the data is refused.
        let mut bad = body.clone();
        let at = header.len();
        bad[at..at + 4].copy_from_slice(&100u32.to_le_bytes());
        assert!(matches!(decode_request(&bad, Some(header.len()), &text, &[], 1 << 20), Err(DecodeError::Bad(m)) if m.contains("overruns")));
        // Encoding the same tensor as binary output gives the same layout.
        let enc = encode_response("m", None, &[("t".into(), r.inputs[0].1.clone())], &[("t".into(), true)]).unwrap();
        let h = enc.header_len.unwrap();
        assert_eq!(&enc.body[h..], &bin[..]);
    }

    #[test]
    fn sizes_are_checked_before_allocation() {
        let x = [io("x", DType::F32, vec![Dim::Sym("n".into())])];
        // 2^61 elements of 4 bytes: overflow is caught, nothing is reserved.
        let r = decode(r#"{"inputs":[{"name":"x","shape":[2305843009213693952],"datatype":"FP32","data":[1]}]}"#, &x);
        assert!(matches!(r, Err(DecodeError::TooLarge(_))));
        let r = decode(r#"{"inputs":[{"name":"x","shape":[300000],"datatype":"FP32","data":[1]}]}"#, &x);
        assert!(matches!(r, Err(DecodeError::TooLarge(m)) if m.contains("limit")));
    }
}
