use std::borrow::Cow;
use std::fmt;

use crate::{DType, Element, Error, Result, Shape};

/// Bytes aligned to 8 so any numeric element slice can be viewed in place.
#[derive(Default)]
pub(crate) struct AlignedBytes {
    words: Vec<u64>,
    len: usize,
    /// Words `0..init` of the allocation have been written at some point (a
    /// shorter `words.len()` after a recycle leaves them in place), so
    /// [`Self::reset_keep`] may extend the vector over them without writing.
    init: usize,
}

impl Clone for AlignedBytes {
    fn clone(&self) -> Self {
        // The clone's allocation holds only `words.len()` initialised words.
        AlignedBytes { words: self.words.clone(), len: self.len, init: self.words.len() }
    }
}

impl AlignedBytes {
    fn zeroed(len: usize) -> Self {
        let words = len.div_ceil(8);
        AlignedBytes { words: vec![0u64; words], len, init: words }
    }
    fn from_bytes(bytes: &[u8]) -> Self {
        let mut b = Self::zeroed(bytes.len());
        b.as_mut().copy_from_slice(bytes);
        b
    }
    fn as_ref(&self) -> &[u8] {
        &bytemuck::cast_slice(&self.words)[..self.len]
    }
    fn as_mut(&mut self) -> &mut [u8] {
        &mut bytemuck::cast_slice_mut(&mut self.words)[..self.len]
    }
    /// Capacity in bytes, used by the buffer pool to recycle allocations.
    fn capacity(&self) -> usize {
        self.words.capacity() * 8
    }
    /// Re-purposes this allocation for `len` bytes (zero-filled), growing only if needed.
    fn reset(&mut self, len: usize) {
        let words = len.div_ceil(8);
        let realloc = words > self.words.capacity();
        self.words.clear();
        self.words.resize(words, 0);
        self.init = if realloc { words } else { self.init.max(words) };
        self.len = len;
    }
    /// Like [`Self::reset`] but keeps the old bytes (only words never written
    /// before are zeroed): for outputs the kernel overwrites entirely, where
    /// zeroing a recycled buffer first would be a wasted pass over memory.
    fn reset_keep(&mut self, len: usize) {
        let words = len.div_ceil(8);
        if words <= self.init.min(self.words.capacity()) {
            // SAFETY: `words <= capacity`, and words `0..init` of this
            // allocation were all written (u64 has no drop glue and no invalid
            // bit patterns; truncating never de-initialises memory).
            unsafe { self.words.set_len(words) };
        } else {
            let realloc = words > self.words.capacity();
            if !realloc && self.words.len() < self.init {
                // SAFETY: as above, `init <= capacity` without a reallocation.
                unsafe { self.words.set_len(self.init) };
            }
            self.words.resize(words, 0);
            self.init = if realloc { words } else { self.init.max(words) };
        }
        self.len = len;
    }
}

#[derive(Clone)]
enum Storage {
    Bytes(AlignedBytes),
    Strings(Vec<String>),
}

/// An owned, dense, row-major tensor of any supported [`DType`].
#[derive(Clone)]
pub struct Tensor {
    dtype: DType,
    shape: Shape,
    storage: Storage,
}

fn checked_len(shape: &[usize]) -> Result<usize> {
    shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| Error::Shape(format!("shape {shape:?} overflows the address space")))
}

impl Tensor {
    /// A zero-filled tensor (empty strings for string tensors).
    pub fn zeros(dtype: DType, shape: &[usize]) -> Result<Tensor> {
        let n = checked_len(shape)?;
        let storage = if dtype == DType::String {
            Storage::Strings(vec![String::new(); n])
        } else {
            let bytes = n.checked_mul(dtype.size()).ok_or_else(|| Error::Shape(format!("shape {shape:?} too large")))?;
            Storage::Bytes(AlignedBytes::zeroed(bytes))
        };
        Ok(Tensor { dtype, shape: shape.to_vec(), storage })
    }

    pub fn from_vec<T: Element>(shape: &[usize], data: Vec<T>) -> Result<Tensor> {
        Self::from_slice(shape, &data)
    }

    pub fn from_slice<T: Element>(shape: &[usize], data: &[T]) -> Result<Tensor> {
        let n = checked_len(shape)?;
        if n != data.len() {
            return Err(Error::Shape(format!("shape {shape:?} needs {n} elements, got {}", data.len())));
        }
        Ok(Tensor {
            dtype: T::DTYPE,
            shape: shape.to_vec(),
            storage: Storage::Bytes(AlignedBytes::from_bytes(bytemuck::cast_slice(data))),
        })
    }

    /// A tensor from little-endian raw bytes in the in-memory layout: the ONNX `raw_data`
    /// layout except that sub-byte types are unpacked, one element per byte (see
    /// [`crate::lowp`]; out-of-range bytes are an error).
    pub fn from_raw_bytes(dtype: DType, shape: &[usize], bytes: &[u8]) -> Result<Tensor> {
        if dtype == DType::String {
            return Err(Error::Other("string tensors have no raw byte form".into()));
        }
        let n = checked_len(shape)?;
        let want = n.checked_mul(dtype.size()).ok_or_else(|| Error::Shape(format!("shape {shape:?} too large")))?;
        if bytes.len() != want {
            return Err(Error::Shape(format!(
                "{dtype} tensor of shape {shape:?} needs {want} bytes, got {}",
                bytes.len()
            )));
        }
        if dtype == DType::Bool && bytes.iter().any(|&b| b > 1) {
            let fixed: Vec<u8> = bytes.iter().map(|&b| (b != 0) as u8).collect();
            return Self::from_raw_bytes(dtype, shape, &fixed);
        }
        if dtype.bits() < 8 {
            if let Some(i) = bytes.iter().position(|&b| !crate::lowp::valid_byte(dtype, b)) {
                return Err(Error::Other(format!(
                    "byte {} of a {dtype} tensor is {:#04x}, outside the type's range (one unpacked element per byte)",
                    i, bytes[i]
                )));
            }
        }
        Ok(Tensor { dtype, shape: shape.to_vec(), storage: Storage::Bytes(AlignedBytes::from_bytes(bytes)) })
    }

    pub fn from_strings(shape: &[usize], data: Vec<String>) -> Result<Tensor> {
        let n = checked_len(shape)?;
        if n != data.len() {
            return Err(Error::Shape(format!("shape {shape:?} needs {n} strings, got {}", data.len())));
        }
        Ok(Tensor { dtype: DType::String, shape: shape.to_vec(), storage: Storage::Strings(data) })
    }

    pub fn from_bools(shape: &[usize], data: &[bool]) -> Result<Tensor> {
        let bytes: Vec<u8> = data.iter().map(|&b| b as u8).collect();
        Self::from_raw_bytes(DType::Bool, shape, &bytes)
    }

    pub fn scalar<T: Element>(v: T) -> Tensor {
        Self::from_slice(&[], &[v]).expect("scalar shape is valid")
    }

    pub fn dtype(&self) -> DType {
        self.dtype
    }
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }
    pub fn rank(&self) -> usize {
        self.shape.len()
    }
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Little-endian bytes of a numeric tensor (empty for strings).
    pub fn as_bytes(&self) -> &[u8] {
        match &self.storage {
            Storage::Bytes(b) => b.as_ref(),
            Storage::Strings(_) => &[],
        }
    }
    pub fn as_bytes_mut(&mut self) -> &mut [u8] {
        match &mut self.storage {
            Storage::Bytes(b) => b.as_mut(),
            Storage::Strings(_) => &mut [],
        }
    }

    pub fn as_slice<T: Element>(&self) -> Result<&[T]> {
        if T::DTYPE != self.dtype {
            return Err(Error::DType { expected: T::DTYPE, got: self.dtype });
        }
        Ok(bytemuck::cast_slice(self.as_bytes()))
    }

    pub fn as_slice_mut<T: Element>(&mut self) -> Result<&mut [T]> {
        if T::DTYPE != self.dtype {
            return Err(Error::DType { expected: T::DTYPE, got: self.dtype });
        }
        Ok(bytemuck::cast_slice_mut(self.as_bytes_mut()))
    }

    pub fn as_bools(&self) -> Result<&[bool]> {
        if self.dtype != DType::Bool {
            return Err(Error::DType { expected: DType::Bool, got: self.dtype });
        }
        // SAFETY: bool tensors only ever hold bytes 0 or 1 (enforced at construction and by kernels).
        let bytes = self.as_bytes();
        Ok(unsafe { std::slice::from_raw_parts(bytes.as_ptr() as *const bool, bytes.len()) })
    }

    pub fn as_strings(&self) -> Result<&[String]> {
        match &self.storage {
            Storage::Strings(s) => Ok(s),
            Storage::Bytes(_) => Err(Error::DType { expected: DType::String, got: self.dtype }),
        }
    }
    pub fn as_strings_mut(&mut self) -> Result<&mut [String]> {
        let dt = self.dtype;
        match &mut self.storage {
            Storage::Strings(s) => Ok(s),
            Storage::Bytes(_) => Err(Error::DType { expected: DType::String, got: dt }),
        }
    }

    pub fn to_vec<T: Element>(&self) -> Result<Vec<T>> {
        self.as_slice::<T>().map(|s| s.to_vec())
    }

    /// Same data, new shape (element count must match).
    pub fn reshaped(mut self, shape: &[usize]) -> Result<Tensor> {
        let n = checked_len(shape)?;
        if n != self.len() {
            return Err(Error::Shape(format!("cannot reshape {:?} ({} elements) to {shape:?}", self.shape, self.len())));
        }
        self.shape = shape.to_vec();
        Ok(self)
    }

    pub fn view(&self) -> TensorView<'_> {
        match &self.storage {
            Storage::Bytes(b) => TensorView { dtype: self.dtype, shape: Cow::Borrowed(&self.shape), data: ViewData::Bytes(b.as_ref()) },
            Storage::Strings(s) => TensorView { dtype: self.dtype, shape: Cow::Borrowed(&self.shape), data: ViewData::Strings(s) },
        }
    }

    /// Elements as f64, for reporting and comparisons (not a hot path).
    pub fn to_f64_vec(&self) -> Result<Vec<f64>> {
        self.view().to_f64_vec()
    }

    /// Bytes of heap storage held (for memory statistics).
    pub fn heap_bytes(&self) -> usize {
        match &self.storage {
            Storage::Bytes(b) => b.capacity(),
            Storage::Strings(s) => s.iter().map(|x| x.capacity() + 24).sum(),
        }
    }

    /// Re-purposes this tensor's allocation for a new dtype and shape (zero-filled).
    /// Used by the executor's buffer pool so steady-state runs do not allocate.
    pub fn recycle(self, dtype: DType, shape: &[usize]) -> Result<Tensor> {
        self.recycle_as(dtype, shape, true)
    }

    /// Like [`Tensor::recycle`] but the contents are unspecified (left over from
    /// the previous use, never uninitialised memory): for outputs that the caller
    /// overwrites entirely.
    pub fn recycle_unzeroed(self, dtype: DType, shape: &[usize]) -> Result<Tensor> {
        self.recycle_as(dtype, shape, false)
    }

    fn recycle_as(mut self, dtype: DType, shape: &[usize], zero: bool) -> Result<Tensor> {
        let n = checked_len(shape)?;
        if dtype == DType::String {
            return Tensor::zeros(dtype, shape);
        }
        let bytes = n.checked_mul(dtype.size()).ok_or_else(|| Error::Shape(format!("shape {shape:?} too large")))?;
        match &mut self.storage {
            Storage::Bytes(b) if zero => b.reset(bytes),
            Storage::Bytes(b) => b.reset_keep(bytes),
            Storage::Strings(_) => return Tensor::zeros(dtype, shape),
        }
        self.dtype = dtype;
        self.shape.clear();
        self.shape.extend_from_slice(shape);
        Ok(self)
    }
}

impl fmt::Debug for Tensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Tensor<{}>{:?}", self.dtype, self.shape)
    }
}

#[derive(Clone, Copy)]
enum ViewData<'a> {
    Bytes(&'a [u8]),
    Strings(&'a [String]),
}

/// A borrowed tensor: zero-copy view over caller memory (`TensorView::from_slice`) or over a [`Tensor`].
#[derive(Clone)]
pub struct TensorView<'a> {
    dtype: DType,
    shape: Cow<'a, [usize]>,
    data: ViewData<'a>,
}

impl<'a> TensorView<'a> {
    /// Zero-copy view over a typed slice.
    pub fn from_slice<T: Element>(shape: &[usize], data: &'a [T]) -> Result<TensorView<'a>> {
        let n = checked_len(shape)?;
        if n != data.len() {
            return Err(Error::Shape(format!("shape {shape:?} needs {n} elements, got {}", data.len())));
        }
        Ok(TensorView { dtype: T::DTYPE, shape: Cow::Owned(shape.to_vec()), data: ViewData::Bytes(bytemuck::cast_slice(data)) })
    }

    pub fn dtype(&self) -> DType {
        self.dtype
    }
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub fn as_bytes(&self) -> &'a [u8] {
        match self.data {
            ViewData::Bytes(b) => b,
            ViewData::Strings(_) => &[],
        }
    }
    pub fn as_slice<T: Element>(&self) -> Result<&'a [T]> {
        if T::DTYPE != self.dtype {
            return Err(Error::DType { expected: T::DTYPE, got: self.dtype });
        }
        bytemuck::try_cast_slice(self.as_bytes()).map_err(|e| Error::Other(format!("misaligned tensor data: {e}")))
    }
    pub fn as_strings(&self) -> Result<&'a [String]> {
        match self.data {
            ViewData::Strings(s) => Ok(s),
            ViewData::Bytes(_) => Err(Error::DType { expected: DType::String, got: self.dtype }),
        }
    }
    /// Copies into an owned tensor.
    pub fn to_owned(&self) -> Tensor {
        match self.data {
            ViewData::Bytes(b) => Tensor {
                dtype: self.dtype,
                shape: self.shape.to_vec(),
                storage: Storage::Bytes(AlignedBytes::from_bytes(b)),
            },
            ViewData::Strings(s) => Tensor { dtype: self.dtype, shape: self.shape.to_vec(), storage: Storage::Strings(s.to_vec()) },
        }
    }

    pub fn to_f64_vec(&self) -> Result<Vec<f64>> {
        macro_rules! conv {
            ($t:ty, $f:expr) => {{
                let s: &[$t] = bytemuck::try_cast_slice(self.as_bytes()).map_err(|e| Error::Other(e.to_string()))?;
                Ok(s.iter().map($f).collect())
            }};
        }
        match self.dtype {
            DType::F32 => conv!(f32, |&v| v as f64),
            DType::F64 => conv!(f64, |&v| v),
            DType::F16 => conv!(half::f16, |v| v.to_f64()),
            DType::BF16 => conv!(half::bf16, |v| v.to_f64()),
            DType::I8 => conv!(i8, |&v| v as f64),
            DType::U8 | DType::Bool => conv!(u8, |&v| v as f64),
            DType::I16 => conv!(i16, |&v| v as f64),
            DType::U16 => conv!(u16, |&v| v as f64),
            DType::I32 => conv!(i32, |&v| v as f64),
            DType::U32 => conv!(u32, |&v| v as f64),
            DType::I64 => conv!(i64, |&v| v as f64),
            DType::U64 => conv!(u64, |&v| v as f64),
            DType::String => Err(Error::DType { expected: DType::F64, got: DType::String }),
            d => Ok(self.as_bytes().iter().map(|&b| crate::lowp::byte_to_f64(d, b).unwrap_or(f64::NAN)).collect()),
        }
    }
}

impl fmt::Debug for TensorView<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TensorView<{}>{:?}", self.dtype, self.shape)
    }
}


#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn views_are_zero_copy_and_typed() {
        let data = [1.0f32, 2.0, 3.0, 4.0];
        let v = TensorView::from_slice(&[2, 2], &data).unwrap();
        assert_eq!(v.as_slice::<f32>().unwrap().as_ptr(), data.as_ptr());
        assert!(v.as_slice::<i32>().is_err());
        assert!(TensorView::from_slice(&[3], &data).is_err());
    }
    #[test]
    fn recycle_reuses_allocation() {
        let t = Tensor::zeros(DType::F32, &[1024]).unwrap();
        let ptr = t.as_bytes().as_ptr();
        let r = t.recycle(DType::I64, &[100]).unwrap();
        assert_eq!(r.as_bytes().as_ptr(), ptr);
        assert_eq!(r.shape(), &[100]);
    }
    #[test]
    fn recycle_unzeroed_keeps_allocation_and_zeroes_growth() {
        let t = Tensor::from_vec(&[4], vec![1f32, 2., 3., 4.]).unwrap();
        let r = t.recycle_unzeroed(DType::F32, &[2]).unwrap();
        assert_eq!(r.as_slice::<f32>().unwrap(), &[1., 2.]);
        // Regrowing within the allocation writes nothing.
        let r = r.recycle_unzeroed(DType::F32, &[4]).unwrap();
        assert_eq!(r.as_slice::<f32>().unwrap(), &[1., 2., 3., 4.]);
        let c = r.clone().recycle_unzeroed(DType::F32, &[1]).unwrap();
        assert_eq!(c.recycle_unzeroed(DType::F32, &[4]).unwrap().len(), 4);
        let g = r.recycle_unzeroed(DType::F32, &[6]).unwrap();
        assert_eq!(g.len(), 6);
        let z = g.recycle(DType::F32, &[3]).unwrap();
        assert_eq!(z.as_slice::<f32>().unwrap(), &[0., 0., 0.]);
    }
}
