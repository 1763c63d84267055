//! Minimal `.npy` (NumPy format v1/v2/v3) reading and writing for the CLI.

use uniml_data::{DType, Error, Result, Tensor};

fn dtype_from_descr(descr: &str) -> Option<DType> {
    let d = descr.trim_start_matches(['<', '|', '=']);
    Some(match d {
        "f4" => DType::F32,
        "f8" => DType::F64,
        "f2" => DType::F16,
        "i1" => DType::I8,
        "u1" => DType::U8,
        "i2" => DType::I16,
        "u2" => DType::U16,
        "i4" => DType::I32,
        "u4" => DType::U32,
        "i8" => DType::I64,
        "u8" => DType::U64,
        "b1" => DType::Bool,
        _ => return None,
    })
}

fn descr(dtype: DType) -> Option<&'static str> {
    Some(match dtype {
        DType::F32 => "<f4",
        DType::F64 => "<f8",
        DType::F16 => "<f2",
        DType::I8 => "|i1",
        DType::U8 => "|u1",
        DType::I16 => "<i2",
        DType::U16 => "<u2",
        DType::I32 => "<i4",
        DType::U32 => "<u4",
        DType::I64 => "<i8",
        DType::U64 => "<u8",
        DType::Bool => "|b1",
        // No standard npy descr (ml_dtypes' types are not numpy builtins): bf16, strings and
        // the low-precision types go through .pb (TensorProto) files instead.
        _ => return None,
    })
}

fn field<'a>(header: &'a str, key: &str) -> Option<&'a str> {
    let i = header.find(&format!("'{key}'"))?;
    let rest = header[i + key.len() + 2..].trim_start().strip_prefix(':')?.trim_start();
    Some(rest)
}

pub fn read(bytes: &[u8]) -> Result<Tensor> {
    let bad = |m: &str| Error::Other(format!("not a valid .npy file: {m}"));
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err(bad("missing magic"));
    }
    let (hlen, start) = if bytes[6] == 1 {
        (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10)
    } else {
        if bytes.len() < 12 {
            return Err(bad("truncated header"));
        }
        (u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize, 12)
    };
    let header = bytes.get(start..start + hlen).ok_or_else(|| bad("truncated header"))?;
    let header = std::str::from_utf8(header).map_err(|_| bad("header is not text"))?;
    let d = field(header, "descr").ok_or_else(|| bad("no descr"))?;
    let d = d.trim_start_matches('\'');
    let d = &d[..d.find('\'').ok_or_else(|| bad("bad descr"))?];
    let dtype = dtype_from_descr(d).ok_or_else(|| bad(&format!("unsupported dtype '{d}'")))?;
    if d.starts_with('>') {
        return Err(bad("big-endian data is not supported"));
    }
    if field(header, "fortran_order").is_some_and(|f| f.starts_with("True")) {
        return Err(bad("Fortran-ordered arrays are not supported"));
    }
    let s = field(header, "shape").ok_or_else(|| bad("no shape"))?;
    let s = &s[1..s.find(')').ok_or_else(|| bad("bad shape"))?];
    let shape: Vec<usize> = s.split(',').map(str::trim).filter(|x| !x.is_empty()).map(|x| x.parse().map_err(|_| bad("bad shape"))).collect::<Result<_>>()?;
    Tensor::from_raw_bytes(dtype, &shape, &bytes[start + hlen..])
}

pub fn write(t: &Tensor) -> Result<Vec<u8>> {
    let d = descr(t.dtype()).ok_or_else(|| Error::Other(format!("{} tensors cannot be written as .npy; use .pb", t.dtype())))?;
    let shape = match t.shape() {
        [] => "()".to_string(),
        [n] => format!("({n},)"),
        s => format!("({})", s.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(", ")),
    };
    let mut header = format!("{{'descr': '{d}', 'fortran_order': False, 'shape': {shape}, }}");
    let total = 10 + header.len() + 1;
    header.push_str(&" ".repeat((64 - total % 64) % 64));
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(t.as_bytes());
    Ok(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn roundtrip() {
        let t = uniml_data::Tensor::from_slice(&[2, 3], &[1f32, 2., 3., 4., 5., 6.]).unwrap();
        let back = super::read(&super::write(&t).unwrap()).unwrap();
        assert_eq!(back.shape(), &[2, 3]);
        assert_eq!(back.as_slice::<f32>().unwrap(), t.as_slice::<f32>().unwrap());
        assert!(super::read(b"garbage").is_err());
    }
}
