//! Conversion between ONNX `TensorProto` and [`uniml_data::Tensor`], plus value-type helpers.
//!
//! Decoding rules (onnx.proto, "TensorProto"):
//! * `data_location == EXTERNAL`: the bytes are `raw_data`-formatted and come from an
//!   [`ExternalData`] source, described by the `location` / `offset` / `length` entries.
//! * else a non-empty `raw_data`: fixed-width little-endian elements, bools one byte each;
//!   4-bit types (UINT4, INT4, FLOAT4E2M1) two per byte and 2-bit types (UINT2, INT2) four per
//!   byte, the first element in the lowest bits, the last byte zero-padded.
//! * else the typed field for the dtype: `float_data` (f32), `double_data` (f64), `int64_data`
//!   (i64), `uint64_data` (u32, u64), `string_data` (strings), and `int32_data` for everything
//!   narrower than 32 bits plus i32 (f16/bf16 as their u16 bit patterns, float8 as their byte,
//!   sub-byte types as their *packed* bytes, one byte per int32, as `onnx.helper` writes them).
//!
//! In memory, sub-byte types are unpacked (one element per byte, see `uniml_data::lowp`): they
//! are packed and unpacked here, at the protobuf boundary, and nowhere else.
//!
//! Every size is validated against the dims *before* anything proportional to the dims is
//! allocated, so a hostile or corrupt file costs at most what its own bytes cost.

use std::collections::HashMap;

use uniml_data::{DType, Dim, Error, SymbolicShape, Tensor};

use crate::proto::{tensor_proto, type_proto, TensorProto, TensorShapeProto, TypeProto};

/// How external initializer bytes are obtained. Native builds read files beside the model (that
/// resolver lives in the facade crate: this crate must build for `wasm32-unknown-unknown`, so it
/// never touches `std::fs`); in the browser the caller supplies the files as a map.
///
/// `location` has already been checked to be a relative path without `..` components.
/// `length == None` means "to the end of the location's data".
pub trait ExternalData {
    fn read(&self, location: &str, offset: u64, length: Option<u64>) -> Result<Vec<u8>, Error>;
}

/// For models that must be self-contained: every external reference is an error.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoExternalData;

impl ExternalData for NoExternalData {
    fn read(&self, location: &str, _offset: u64, _length: Option<u64>) -> Result<Vec<u8>, Error> {
        Err(Error::ExternalData {
            location: location.to_string(),
            message: "the model stores this tensor's data externally, but no external data source was given".into(),
        })
    }
}

/// In-memory external data: `location` (exactly as written in the model) → file contents.
#[derive(Clone, Debug, Default)]
pub struct ExternalDataMap(pub HashMap<String, Vec<u8>>);

impl ExternalData for ExternalDataMap {
    fn read(&self, location: &str, offset: u64, length: Option<u64>) -> Result<Vec<u8>, Error> {
        let err = |message: String| Error::ExternalData { location: location.to_string(), message };
        let data = self.0.get(location).ok_or_else(|| {
            let mut known: Vec<&str> = self.0.keys().map(String::as_str).collect();
            known.sort_unstable();
            err(format!("not among the {} supplied external data files {known:?}", known.len()))
        })?;
        let size = data.len() as u64;
        if offset > size {
            return Err(err(format!("offset {offset} is beyond the end of the data ({size} bytes)")));
        }
        let end = match length {
            None => size,
            Some(len) => match offset.checked_add(len) {
                Some(end) if end <= size => end,
                _ => return Err(err(format!("range offset {offset} + length {len} exceeds the data size ({size} bytes)"))),
            },
        };
        // Both bounds are <= data.len(), so they fit in usize.
        Ok(data[offset as usize..end as usize].to_vec())
    }
}

/// Human-readable name of a `TensorProto.DataType` code, e.g. `"FLOAT8E4M3FN (17)"`.
pub fn onnx_dtype_name(code: i32) -> String {
    match tensor_proto::DataType::try_from(code) {
        Ok(dt) => format!("{} ({code})", dt.as_str_name()),
        Err(_) => format!("unknown code {code}"),
    }
}

/// Element count of `dims`, rejecting negative dims and u64 overflow.
fn element_count(dims: &[i64], name: &str) -> Result<u64, Error> {
    let mut n: u64 = 1;
    for &d in dims {
        if d < 0 {
            return Err(Error::InvalidModel(format!("tensor '{name}' has a negative dimension {d} in dims {dims:?}")));
        }
        n = n
            .checked_mul(d as u64)
            .ok_or_else(|| Error::InvalidModel(format!("tensor '{name}': element count of dims {dims:?} overflows")))?;
    }
    Ok(n)
}

/// Where an external tensor's bytes are, parsed from `external_data` entries.
fn external_ref(p: &TensorProto) -> Result<(String, u64, Option<u64>), Error> {
    let name = &p.name;
    let (mut location, mut offset, mut length) = (None, None, None);
    for e in &p.external_data {
        match e.key.as_str() {
            "location" => location = Some(e.value.clone()),
            "offset" => offset = Some(e.value.as_str()),
            "length" => length = Some(e.value.as_str()),
            _ => {} // "checksum" and future keys are advisory.
        }
    }
    let location = location.filter(|l| !l.is_empty()).ok_or_else(|| {
        Error::InvalidModel(format!("tensor '{name}' has data_location EXTERNAL but no 'location' in external_data"))
    })?;
    // Checked here, once, for every resolver: a model must not reach outside its own directory
    // (same rule as onnx.checker).
    let escapes = location.starts_with('/')
        || location.starts_with('\\')
        || location.as_bytes().get(1) == Some(&b':')
        || location.split(['/', '\\']).any(|c| c == "..");
    if escapes {
        return Err(Error::ExternalData {
            location,
            message: format!("tensor '{name}': external data must be a relative path inside the model's directory"),
        });
    }
    let parse = |key: &str, v: Option<&str>| -> Result<Option<u64>, Error> {
        v.map(|v| {
            v.trim().parse::<u64>().map_err(|_| Error::ExternalData {
                location: location.clone(),
                message: format!("tensor '{name}': external_data '{key}' = '{v}' is not a non-negative integer"),
            })
        })
        .transpose()
    };
    let offset = parse("offset", offset)?.unwrap_or(0);
    let length = parse("length", length)?;
    Ok((location, offset, length))
}

/// Converts a `TensorProto` into a [`Tensor`].
///
/// `limit_bytes` bounds the tensor's declared data size (for strings: the sum of the string
/// lengths); exceeding it gives [`Error::MemoryLimit`] before anything is allocated or read.
/// On 32-bit targets the limit is additionally capped at the address space.
pub fn tensor_from_proto(p: &TensorProto, ext: &dyn ExternalData, limit_bytes: u64) -> Result<Tensor, Error> {
    let name = p.name.as_str();
    let dtype = DType::from_onnx_code(p.data_type).ok_or_else(|| {
        Error::InvalidModel(format!("unsupported tensor dtype {} in tensor '{name}'", onnx_dtype_name(p.data_type)))
    })?;
    if p.segment.is_some() {
        return Err(Error::InvalidModel(format!(
            "tensor '{name}' is segmented (TensorProto.segment), which is not supported"
        )));
    }
    let count = element_count(&p.dims, name)?;
    let limit = limit_bytes.min(usize::MAX as u64);
    // Bytes of the serialised data (packed for sub-byte types) and of the in-memory tensor.
    let packed_len = count.saturating_mul(dtype.bits() as u64).div_ceil(8);
    let requested = if dtype == DType::String {
        p.string_data.iter().map(|s| s.len() as u64).sum()
    } else {
        count.saturating_mul(dtype.size() as u64)
    };
    if requested > limit {
        return Err(Error::MemoryLimit { what: format!("initializer '{name}'"), requested, limit });
    }
    // Non-zero dims divide a count that fits in usize; a dim can only exceed usize (on 32-bit
    // targets) when another dim is 0.
    let shape = p
        .dims
        .iter()
        .map(|&d| usize::try_from(d))
        .collect::<Result<Vec<usize>, _>>()
        .map_err(|_| Error::InvalidModel(format!("tensor '{name}': dims {:?} exceed the address space", p.dims)))?;
    let desc = || format!("tensor '{name}' ({dtype}, dims {:?})", p.dims);
    let to_invalid = |e: Error| Error::InvalidModel(format!("{}: {e}", desc()));

    if dtype == DType::String {
        if p.data_location == tensor_proto::DataLocation::External as i32 || !p.raw_data.is_empty() {
            return Err(Error::InvalidModel(format!(
                "{}: string tensors must use string_data, not raw_data or external data",
                desc()
            )));
        }
        if p.string_data.len() as u64 != count {
            return Err(Error::InvalidModel(format!(
                "{} has {} values in string_data, expected {count}",
                desc(),
                p.string_data.len()
            )));
        }
        let strings = p.string_data.iter().map(|b| String::from_utf8_lossy(b).into_owned()).collect();
        return Tensor::from_strings(&shape, strings).map_err(to_invalid);
    }

    // Numeric: `requested` is the exact in-memory size and is within the limit; `packed_len`
    // (at most `requested`) is the serialised size.
    let from_packed = |bytes: &[u8]| -> Result<Tensor, Error> {
        if dtype.bits() >= 8 {
            return Tensor::from_raw_bytes(dtype, &shape, bytes).map_err(to_invalid);
        }
        match uniml_data::lowp::unpack_bits(dtype, bytes, count as usize) {
            Some(unpacked) => Tensor::from_raw_bytes(dtype, &shape, &unpacked).map_err(to_invalid),
            None => Err(Error::InvalidModel(format!("{} has {} packed bytes, expected {packed_len}", desc(), bytes.len()))),
        }
    };
    if p.data_location == tensor_proto::DataLocation::External as i32 {
        let (location, offset, length) = external_ref(p)?;
        if let Some(len) = length {
            if len != packed_len {
                return Err(Error::ExternalData {
                    location,
                    message: format!("{} needs {packed_len} bytes but external_data length is {len}", desc()),
                });
            }
        }
        // Always ask for exactly the declared size: a resolver never reads more than the limit
        // allows, even when the model omits `length`.
        let bytes = ext.read(&location, offset, Some(packed_len))?;
        if bytes.len() as u64 != packed_len {
            return Err(Error::ExternalData {
                location,
                message: format!("{} needs {packed_len} bytes, the source returned {}", desc(), bytes.len()),
            });
        }
        return from_packed(&bytes);
    }
    if !p.raw_data.is_empty() {
        if p.raw_data.len() as u64 != packed_len {
            return Err(Error::InvalidModel(format!(
                "{} has {} bytes of raw_data, expected {packed_len}",
                desc(),
                p.raw_data.len()
            )));
        }
        return from_packed(&p.raw_data);
    }

    // Typed fields. Check the count first, then widen/narrow each value to its little-endian bytes.
    let (field, have) = match dtype {
        DType::F32 => ("float_data", p.float_data.len()),
        DType::F64 => ("double_data", p.double_data.len()),
        DType::I64 => ("int64_data", p.int64_data.len()),
        DType::U32 | DType::U64 => ("uint64_data", p.uint64_data.len()),
        DType::String => unreachable!("handled above"),
        // Everything else is narrower than 32 bits: one value (sub-byte: one packed byte) per int32.
        _ => ("int32_data", p.int32_data.len()),
    };
    let want = if dtype.bits() < 8 { packed_len } else { count };
    if have as u64 != want {
        return Err(Error::InvalidModel(format!(
            "{} has {have} values in {field} (and no raw_data), expected {want}",
            desc()
        )));
    }
    let mut bytes = Vec::with_capacity(requested as usize);
    match dtype {
        DType::F32 => p.float_data.iter().for_each(|v| bytes.extend_from_slice(&v.to_le_bytes())),
        DType::F64 => p.double_data.iter().for_each(|v| bytes.extend_from_slice(&v.to_le_bytes())),
        DType::I64 => p.int64_data.iter().for_each(|v| bytes.extend_from_slice(&v.to_le_bytes())),
        DType::U64 => p.uint64_data.iter().for_each(|v| bytes.extend_from_slice(&v.to_le_bytes())),
        DType::U32 => p.uint64_data.iter().for_each(|&v| bytes.extend_from_slice(&(v as u32).to_le_bytes())),
        DType::I32 => p.int32_data.iter().for_each(|v| bytes.extend_from_slice(&v.to_le_bytes())),
        // Narrow types are stored one per int32; truncation matches numpy's astype (what onnx does).
        DType::I16 | DType::U16 | DType::F16 | DType::BF16 => {
            p.int32_data.iter().for_each(|&v| bytes.extend_from_slice(&(v as u16).to_le_bytes()))
        }
        DType::Bool => bytes.extend(p.int32_data.iter().map(|&v| (v != 0) as u8)),
        DType::String => unreachable!("handled above"),
        // I8, U8, float8 bit patterns, packed sub-byte data.
        _ => bytes.extend(p.int32_data.iter().map(|&v| v as u8)),
    }
    from_packed(&bytes)
}

/// Converts a [`Tensor`] to a `TensorProto` named `name`: `raw_data` for numeric dtypes (the
/// compact form onnx's own `numpy_helper` writes; sub-byte types packed), `string_data` for strings.
pub fn tensor_to_proto(t: &Tensor, name: &str) -> TensorProto {
    let mut p = TensorProto {
        dims: t.shape().iter().map(|&d| d as i64).collect(),
        data_type: t.dtype().onnx_code(),
        name: name.to_string(),
        ..Default::default()
    };
    match t.as_strings() {
        Ok(strings) => p.string_data = strings.iter().map(|s| s.as_bytes().to_vec()).collect(),
        Err(_) => p.raw_data = uniml_data::lowp::pack_bits(t.dtype(), t.as_bytes()).into(),
    }
    p
}

/// A declared shape as a [`SymbolicShape`]: `dim_value` → `Dim::Known`, a non-empty `dim_param`
/// → `Dim::Sym`, neither (or a negative value, which onnx treats as unknown) → `Dim::Unknown`.
pub fn shape_from_proto(s: &TensorShapeProto) -> SymbolicShape {
    use crate::proto::tensor_shape_proto::dimension::Value;
    SymbolicShape(
        s.dim
            .iter()
            .map(|d| match &d.value {
                Some(Value::DimValue(v)) if *v >= 0 => usize::try_from(*v).map_or(Dim::Unknown, Dim::Known),
                Some(Value::DimParam(p)) if !p.is_empty() => Dim::Sym(p.clone()),
                _ => Dim::Unknown,
            })
            .collect(),
    )
}

/// Element type and declared shape of a tensor-typed value.
///
/// Returns `None` when `tp` is not a tensor type (sequence, map, optional, sparse, opaque, or
/// unset) or its `elem_type` is not a [`DType`] uniml supports — callers that need to tell these
/// apart inspect `tp.value` themselves. The inner `Option` is `None` when the shape is absent,
/// which in ONNX means "rank unknown" (distinct from `Some(SymbolicShape(vec![]))`, a scalar).
pub fn dims_from_type(tp: &TypeProto) -> Option<(DType, Option<SymbolicShape>)> {
    match &tp.value {
        Some(type_proto::Value::TensorType(t)) => {
            Some((DType::from_onnx_code(t.elem_type)?, t.shape.as_ref().map(shape_from_proto)))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proto(dtype: i32, dims: &[i64]) -> TensorProto {
        TensorProto { name: "w".into(), data_type: dtype, dims: dims.to_vec(), ..Default::default() }
    }

    #[test]
    fn typed_int32_data_narrows_like_onnx() {
        let mut p = proto(DType::F16.onnx_code(), &[2]);
        p.int32_data = vec![0x3c00, 0xc000]; // 1.0, -2.0 as f16 bit patterns
        let t = tensor_from_proto(&p, &NoExternalData, 1 << 20).unwrap();
        assert_eq!(t.to_f64_vec().unwrap(), vec![1.0, -2.0]);

        let mut p = proto(DType::Bool.onnx_code(), &[3]);
        p.int32_data = vec![0, 1, 7];
        let t = tensor_from_proto(&p, &NoExternalData, 1 << 20).unwrap();
        assert_eq!(t.as_bools().unwrap(), &[false, true, true]);
    }

    #[test]
    fn mismatches_name_the_tensor() {
        let mut p = proto(DType::F32.onnx_code(), &[2, 3]);
        p.raw_data = vec![0; 20].into();
        let e = tensor_from_proto(&p, &NoExternalData, 1 << 20).unwrap_err().to_string();
        assert!(e.contains("'w'") && e.contains("20 bytes") && e.contains("24"), "{e}");

        let p = proto(DType::F32.onnx_code(), &[2, -3]);
        let e = tensor_from_proto(&p, &NoExternalData, 1 << 20).unwrap_err().to_string();
        assert!(e.contains("negative"), "{e}");

        let p = proto(14, &[4]);
        let e = tensor_from_proto(&p, &NoExternalData, 1 << 20).unwrap_err().to_string();
        assert!(e.contains("unsupported tensor dtype COMPLEX64 (14)") && e.contains("'w'"), "{e}");
    }

    #[test]
    fn sub_byte_types_pack_at_the_boundary() {
        // onnx.helper.make_tensor('x', INT4, [5], [1, -2, 3, -8, 7]) writes int32_data [225, 131, 7].
        let mut p = proto(DType::I4.onnx_code(), &[5]);
        p.int32_data = vec![225, 131, 7];
        let t = tensor_from_proto(&p, &NoExternalData, 1 << 20).unwrap();
        assert_eq!(t.to_f64_vec().unwrap(), vec![1.0, -2.0, 3.0, -8.0, 7.0]);
        let back = tensor_to_proto(&t, "x");
        assert_eq!(back.raw_data, vec![225, 131, 7]);
        assert_eq!(tensor_from_proto(&back, &NoExternalData, 1 << 20).unwrap().as_bytes(), t.as_bytes());
        // make_tensor('x', UINT2, [5], [1, 2, 3, 0, 3]) → int32_data [57, 3].
        let mut p = proto(DType::U2.onnx_code(), &[5]);
        p.raw_data = vec![57, 3].into();
        let t = tensor_from_proto(&p, &NoExternalData, 1 << 20).unwrap();
        assert_eq!(t.to_f64_vec().unwrap(), vec![1.0, 2.0, 3.0, 0.0, 3.0]);
        p.raw_data = vec![57, 3, 0].into();
        assert!(tensor_from_proto(&p, &NoExternalData, 1 << 20).is_err());
        // make_tensor('x', FLOAT8E4M3FN, [3], [1, -2, 448]) → int32_data [56, 192, 126].
        let mut p = proto(DType::F8E4M3FN.onnx_code(), &[3]);
        p.int32_data = vec![56, 192, 126];
        let t = tensor_from_proto(&p, &NoExternalData, 1 << 20).unwrap();
        assert_eq!(t.to_f64_vec().unwrap(), vec![1.0, -2.0, 448.0]);
        // make_tensor('x', FLOAT4E2M1, [3], [1, -2, 6]) → int32_data [194, 7].
        let mut p = proto(DType::F4E2M1.onnx_code(), &[3]);
        p.int32_data = vec![194, 7];
        let t = tensor_from_proto(&p, &NoExternalData, 1 << 20).unwrap();
        assert_eq!(t.to_f64_vec().unwrap(), vec![1.0, -2.0, 6.0]);
    }

    #[test]
    fn external_paths_may_not_escape() {
        for loc in ["../w.bin", "/etc/passwd", "a/../../b", "C:\\w.bin", ""] {
            let mut p = proto(DType::F32.onnx_code(), &[1]);
            p.data_location = tensor_proto::DataLocation::External as i32;
            p.external_data = vec![crate::proto::StringStringEntryProto { key: "location".into(), value: loc.into() }];
            let map = ExternalDataMap(HashMap::from([(loc.to_string(), vec![0u8; 4])]));
            assert!(tensor_from_proto(&p, &map, 1 << 20).is_err(), "{loc:?} accepted");
        }
    }
}
