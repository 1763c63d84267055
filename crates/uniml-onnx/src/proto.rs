//! Hand-written prost messages for the ONNX IR (onnx-ml.proto and onnx-data.proto of onnx 1.23,
//! IR versions 3 to 11), plus checked `decode_*` / `encode_*` entry points.
//!
//! Why hand-written: no `build.rs` and no `protoc`, so the crate builds anywhere `rustc` does
//! (including `wasm32-unknown-unknown`). Every tag below was checked against the `.proto` files
//! shipped in the onnx 1.23.2 wheel; the tags are the wire contract, the Rust names follow
//! prost-build's conventions (nested messages live in a snake_case module named after the parent).
//!
//! The ONNX files are `proto2`. We model `optional` scalars as plain values (absent == default),
//! which is what every consumer wants and is lossless for decoding. Repeated scalars that proto2
//! does *not* pack (`dims`, `ints`, `floats`, `keys`) are marked `packed = "false"` so that what we
//! encode is byte-compatible with what the onnx package writes; the decoder accepts both forms
//! anyway, as the protobuf spec requires.
//!
//! Robustness: prost never trusts a length prefix beyond the bytes actually present and limits
//! message nesting to 100 levels, so hostile input can neither over-allocate nor overflow the stack.
//! Fields we do not model (device configurations, sharding specs) are skipped as unknown fields.

use prost::Message;
use uniml_data::Error;

// ---------------------------------------------------------------------------------------------
// Model, graph, node, attribute
// ---------------------------------------------------------------------------------------------

/// The top-level ONNX file: metadata, the opsets it was written against, and the main graph.
#[derive(Clone, PartialEq, Message)]
pub struct ModelProto {
    #[prost(int64, tag = "1")]
    pub ir_version: i64,
    #[prost(message, repeated, tag = "8")]
    pub opset_import: Vec<OperatorSetIdProto>,
    #[prost(string, tag = "2")]
    pub producer_name: String,
    #[prost(string, tag = "3")]
    pub producer_version: String,
    #[prost(string, tag = "4")]
    pub domain: String,
    #[prost(int64, tag = "5")]
    pub model_version: i64,
    #[prost(string, tag = "6")]
    pub doc_string: String,
    #[prost(message, optional, tag = "7")]
    pub graph: Option<GraphProto>,
    #[prost(message, repeated, tag = "14")]
    pub metadata_props: Vec<StringStringEntryProto>,
    #[prost(message, repeated, tag = "20")]
    pub training_info: Vec<TrainingInfoProto>,
    #[prost(message, repeated, tag = "25")]
    pub functions: Vec<FunctionProto>,
}

/// Training-time information (IR v7+). Decoded so nothing is silently lost; inference ignores it.
#[derive(Clone, PartialEq, Message)]
pub struct TrainingInfoProto {
    #[prost(message, optional, tag = "1")]
    pub initialization: Option<GraphProto>,
    #[prost(message, optional, tag = "2")]
    pub algorithm: Option<GraphProto>,
    #[prost(message, repeated, tag = "3")]
    pub initialization_binding: Vec<StringStringEntryProto>,
    #[prost(message, repeated, tag = "4")]
    pub update_binding: Vec<StringStringEntryProto>,
}

/// A computation graph: topologically sorted nodes, constant initializers, and typed I/O.
#[derive(Clone, PartialEq, Message)]
pub struct GraphProto {
    #[prost(message, repeated, tag = "1")]
    pub node: Vec<NodeProto>,
    #[prost(string, tag = "2")]
    pub name: String,
    #[prost(message, repeated, tag = "5")]
    pub initializer: Vec<TensorProto>,
    #[prost(message, repeated, tag = "15")]
    pub sparse_initializer: Vec<SparseTensorProto>,
    #[prost(string, tag = "10")]
    pub doc_string: String,
    #[prost(message, repeated, tag = "11")]
    pub input: Vec<ValueInfoProto>,
    #[prost(message, repeated, tag = "12")]
    pub output: Vec<ValueInfoProto>,
    #[prost(message, repeated, tag = "13")]
    pub value_info: Vec<ValueInfoProto>,
    #[prost(message, repeated, tag = "14")]
    pub quantization_annotation: Vec<TensorAnnotation>,
    #[prost(message, repeated, tag = "16")]
    pub metadata_props: Vec<StringStringEntryProto>,
}

/// Quantization parameters attached to a tensor name (graph field 14).
#[derive(Clone, PartialEq, Message)]
pub struct TensorAnnotation {
    #[prost(string, tag = "1")]
    pub tensor_name: String,
    #[prost(message, repeated, tag = "2")]
    pub quant_parameter_tensor_names: Vec<StringStringEntryProto>,
}

/// One operator invocation.
#[derive(Clone, PartialEq, Message)]
pub struct NodeProto {
    #[prost(string, repeated, tag = "1")]
    pub input: Vec<String>,
    #[prost(string, repeated, tag = "2")]
    pub output: Vec<String>,
    #[prost(string, tag = "3")]
    pub name: String,
    #[prost(string, tag = "4")]
    pub op_type: String,
    #[prost(string, tag = "7")]
    pub domain: String,
    #[prost(string, tag = "8")]
    pub overload: String,
    #[prost(message, repeated, tag = "5")]
    pub attribute: Vec<AttributeProto>,
    #[prost(string, tag = "6")]
    pub doc_string: String,
    #[prost(message, repeated, tag = "9")]
    pub metadata_props: Vec<StringStringEntryProto>,
}

/// A named attribute value of a node (or a reference to a function attribute via `ref_attr_name`).
///
/// `r#type` says which value field is meaningful; producers before IR v4-ish sometimes left it
/// unset, so consumers may need to infer it from which field is populated.
#[derive(Clone, PartialEq, Message)]
pub struct AttributeProto {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "21")]
    pub ref_attr_name: String,
    #[prost(string, tag = "13")]
    pub doc_string: String,
    #[prost(enumeration = "attribute_proto::AttributeType", tag = "20")]
    pub r#type: i32,
    #[prost(float, tag = "2")]
    pub f: f32,
    #[prost(int64, tag = "3")]
    pub i: i64,
    /// UTF-8 by convention, but kept as bytes as in the schema.
    #[prost(bytes = "vec", tag = "4")]
    pub s: Vec<u8>,
    #[prost(message, optional, tag = "5")]
    pub t: Option<TensorProto>,
    /// Boxed: a subgraph is large and most attributes are not graphs.
    #[prost(message, optional, boxed, tag = "6")]
    pub g: Option<Box<GraphProto>>,
    #[prost(message, optional, tag = "22")]
    pub sparse_tensor: Option<SparseTensorProto>,
    #[prost(message, optional, tag = "14")]
    pub tp: Option<TypeProto>,
    #[prost(float, repeated, packed = "false", tag = "7")]
    pub floats: Vec<f32>,
    #[prost(int64, repeated, packed = "false", tag = "8")]
    pub ints: Vec<i64>,
    #[prost(bytes = "vec", repeated, tag = "9")]
    pub strings: Vec<Vec<u8>>,
    #[prost(message, repeated, tag = "10")]
    pub tensors: Vec<TensorProto>,
    #[prost(message, repeated, tag = "11")]
    pub graphs: Vec<GraphProto>,
    #[prost(message, repeated, tag = "23")]
    pub sparse_tensors: Vec<SparseTensorProto>,
    #[prost(message, repeated, tag = "15")]
    pub type_protos: Vec<TypeProto>,
}

pub mod attribute_proto {
    /// Discriminator of [`super::AttributeProto`]. Note the real numbering: `TYPE_PROTO = 13`,
    /// `TYPE_PROTOS = 14` (the singular/plural pairs are not in tag order).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
    #[repr(i32)]
    pub enum AttributeType {
        Undefined = 0,
        Float = 1,
        Int = 2,
        String = 3,
        Tensor = 4,
        Graph = 5,
        SparseTensor = 11,
        TypeProto = 13,
        Floats = 6,
        Ints = 7,
        Strings = 8,
        Tensors = 9,
        Graphs = 10,
        SparseTensors = 12,
        TypeProtos = 14,
    }
}

/// Name and (optional) type of a graph input, output or intermediate value.
#[derive(Clone, PartialEq, Message)]
pub struct ValueInfoProto {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(message, optional, tag = "2")]
    pub r#type: Option<TypeProto>,
    #[prost(string, tag = "3")]
    pub doc_string: String,
    #[prost(message, repeated, tag = "4")]
    pub metadata_props: Vec<StringStringEntryProto>,
}

// ---------------------------------------------------------------------------------------------
// Types and shapes
// ---------------------------------------------------------------------------------------------

/// The type of a value: tensor, sequence, map, optional, sparse tensor or opaque.
#[derive(Clone, PartialEq, Message)]
pub struct TypeProto {
    #[prost(oneof = "type_proto::Value", tags = "1, 4, 5, 9, 8, 7")]
    pub value: Option<type_proto::Value>,
    #[prost(string, tag = "6")]
    pub denotation: String,
}

pub mod type_proto {
    use super::{TensorShapeProto, TypeProto};

    /// `elem_type` is a `TensorProto.DataType` code; `shape` absent means "rank unknown".
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Tensor {
        #[prost(int32, tag = "1")]
        pub elem_type: i32,
        #[prost(message, optional, tag = "2")]
        pub shape: Option<TensorShapeProto>,
    }

    /// Boxed because `TypeProto` contains itself through sequences, maps and optionals.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Sequence {
        #[prost(message, optional, boxed, tag = "1")]
        pub elem_type: Option<Box<TypeProto>>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Map {
        #[prost(int32, tag = "1")]
        pub key_type: i32,
        #[prost(message, optional, boxed, tag = "2")]
        pub value_type: Option<Box<TypeProto>>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Optional {
        #[prost(message, optional, boxed, tag = "1")]
        pub elem_type: Option<Box<TypeProto>>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct SparseTensor {
        #[prost(int32, tag = "1")]
        pub elem_type: i32,
        #[prost(message, optional, tag = "2")]
        pub shape: Option<TensorShapeProto>,
    }

    /// Tag 3 (`parameters`) is reserved/deprecated upstream.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Opaque {
        #[prost(string, tag = "1")]
        pub domain: String,
        #[prost(string, tag = "2")]
        pub name: String,
    }

    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Value {
        #[prost(message, tag = "1")]
        TensorType(Tensor),
        #[prost(message, tag = "4")]
        SequenceType(Sequence),
        #[prost(message, tag = "5")]
        MapType(Map),
        #[prost(message, tag = "9")]
        OptionalType(Optional),
        #[prost(message, tag = "8")]
        SparseTensorType(SparseTensor),
        #[prost(message, tag = "7")]
        OpaqueType(Opaque),
    }
}

/// A (possibly partially symbolic) tensor shape.
#[derive(Clone, PartialEq, Message)]
pub struct TensorShapeProto {
    #[prost(message, repeated, tag = "1")]
    pub dim: Vec<tensor_shape_proto::Dimension>,
}

pub mod tensor_shape_proto {
    /// One dimension: a number, a symbol, or (neither set) unknown.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Dimension {
        #[prost(oneof = "dimension::Value", tags = "1, 2")]
        pub value: Option<dimension::Value>,
        #[prost(string, tag = "3")]
        pub denotation: String,
    }

    pub mod dimension {
        #[derive(Clone, PartialEq, prost::Oneof)]
        pub enum Value {
            #[prost(int64, tag = "1")]
            DimValue(i64),
            #[prost(string, tag = "2")]
            DimParam(String),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Tensors
// ---------------------------------------------------------------------------------------------

/// A serialized tensor. Exactly one of the `*_data` fields, `raw_data` or `external_data` holds the
/// elements; see `crate::tensor_proto` for the decoding rules.
#[derive(Clone, PartialEq, Message)]
pub struct TensorProto {
    #[prost(int64, repeated, packed = "false", tag = "1")]
    pub dims: Vec<i64>,
    /// A `TensorProto.DataType` code (see [`tensor_proto::DataType`]); kept as `i32` so that codes
    /// newer than this file still decode and can be reported by number.
    #[prost(int32, tag = "2")]
    pub data_type: i32,
    #[prost(message, optional, tag = "3")]
    pub segment: Option<tensor_proto::Segment>,
    #[prost(float, repeated, tag = "4")]
    pub float_data: Vec<f32>,
    #[prost(int32, repeated, tag = "5")]
    pub int32_data: Vec<i32>,
    #[prost(bytes = "vec", repeated, tag = "6")]
    pub string_data: Vec<Vec<u8>>,
    #[prost(int64, repeated, tag = "7")]
    pub int64_data: Vec<i64>,
    #[prost(string, tag = "8")]
    pub name: String,
    #[prost(string, tag = "12")]
    pub doc_string: String,
    /// `Bytes`, not `Vec<u8>`: decoding allocates each tensor's data once (prost copies a
    /// `Vec<u8>` field twice), which keeps the peak and the fragmentation of loading low.
    #[prost(bytes = "bytes", tag = "9")]
    pub raw_data: prost::bytes::Bytes,
    #[prost(message, repeated, tag = "13")]
    pub external_data: Vec<StringStringEntryProto>,
    #[prost(enumeration = "tensor_proto::DataLocation", tag = "14")]
    pub data_location: i32,
    #[prost(double, repeated, tag = "10")]
    pub double_data: Vec<f64>,
    #[prost(uint64, repeated, tag = "11")]
    pub uint64_data: Vec<u64>,
    #[prost(message, repeated, tag = "16")]
    pub metadata_props: Vec<StringStringEntryProto>,
}

pub mod tensor_proto {
    /// All `TensorProto.DataType` codes of onnx 1.23 (uniml supports a subset, see `uniml_data::DType`).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
    #[repr(i32)]
    pub enum DataType {
        Undefined = 0,
        Float = 1,
        Uint8 = 2,
        Int8 = 3,
        Uint16 = 4,
        Int16 = 5,
        Int32 = 6,
        Int64 = 7,
        String = 8,
        Bool = 9,
        Float16 = 10,
        Double = 11,
        Uint32 = 12,
        Uint64 = 13,
        Complex64 = 14,
        Complex128 = 15,
        Bfloat16 = 16,
        Float8e4m3fn = 17,
        Float8e4m3fnuz = 18,
        Float8e5m2 = 19,
        Float8e5m2fnuz = 20,
        Uint4 = 21,
        Int4 = 22,
        Float4e2m1 = 23,
        Float8e8m0 = 24,
        Uint2 = 25,
        Int2 = 26,
        Float6e2m3 = 27,
        Float6e3m2 = 28,
    }

    impl DataType {
        /// The upper-case name used in onnx.proto (e.g. `FLOAT8E4M3FN`), for error messages.
        pub fn as_str_name(self) -> &'static str {
            match self {
                DataType::Undefined => "UNDEFINED",
                DataType::Float => "FLOAT",
                DataType::Uint8 => "UINT8",
                DataType::Int8 => "INT8",
                DataType::Uint16 => "UINT16",
                DataType::Int16 => "INT16",
                DataType::Int32 => "INT32",
                DataType::Int64 => "INT64",
                DataType::String => "STRING",
                DataType::Bool => "BOOL",
                DataType::Float16 => "FLOAT16",
                DataType::Double => "DOUBLE",
                DataType::Uint32 => "UINT32",
                DataType::Uint64 => "UINT64",
                DataType::Complex64 => "COMPLEX64",
                DataType::Complex128 => "COMPLEX128",
                DataType::Bfloat16 => "BFLOAT16",
                DataType::Float8e4m3fn => "FLOAT8E4M3FN",
                DataType::Float8e4m3fnuz => "FLOAT8E4M3FNUZ",
                DataType::Float8e5m2 => "FLOAT8E5M2",
                DataType::Float8e5m2fnuz => "FLOAT8E5M2FNUZ",
                DataType::Uint4 => "UINT4",
                DataType::Int4 => "INT4",
                DataType::Float4e2m1 => "FLOAT4E2M1",
                DataType::Float8e8m0 => "FLOAT8E8M0",
                DataType::Uint2 => "UINT2",
                DataType::Int2 => "INT2",
                DataType::Float6e2m3 => "FLOAT6E2M3",
                DataType::Float6e3m2 => "FLOAT6E3M2",
            }
        }
    }

    /// Where the tensor's bytes are: inline (`DEFAULT`) or in `external_data` (`EXTERNAL`).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
    #[repr(i32)]
    pub enum DataLocation {
        Default = 0,
        External = 1,
    }

    /// A chunk `[begin, end)` of a larger tensor. uniml rejects segmented tensors.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Segment {
        #[prost(int64, tag = "1")]
        pub begin: i64,
        #[prost(int64, tag = "2")]
        pub end: i64,
    }
}

/// COO sparse tensor: `values` (1-D, NNZ) and `indices` (`[NNZ, rank]` or linearized `[NNZ]`).
#[derive(Clone, PartialEq, Message)]
pub struct SparseTensorProto {
    #[prost(message, optional, tag = "1")]
    pub values: Option<TensorProto>,
    #[prost(message, optional, tag = "2")]
    pub indices: Option<TensorProto>,
    #[prost(int64, repeated, packed = "false", tag = "3")]
    pub dims: Vec<i64>,
}

#[derive(Clone, PartialEq, Message)]
pub struct StringStringEntryProto {
    #[prost(string, tag = "1")]
    pub key: String,
    #[prost(string, tag = "2")]
    pub value: String,
}

/// An opset a model imports; an empty domain (or `ai.onnx`) is the default ONNX domain.
#[derive(Clone, PartialEq, Message)]
pub struct OperatorSetIdProto {
    #[prost(string, tag = "1")]
    pub domain: String,
    #[prost(int64, tag = "2")]
    pub version: i64,
}

/// A model-local function (IR v8+): a named subgraph callable as an op of `domain`.
#[derive(Clone, PartialEq, Message)]
pub struct FunctionProto {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, repeated, tag = "4")]
    pub input: Vec<String>,
    #[prost(string, repeated, tag = "5")]
    pub output: Vec<String>,
    /// Attribute names without defaults.
    #[prost(string, repeated, tag = "6")]
    pub attribute: Vec<String>,
    /// Attributes with default values.
    #[prost(message, repeated, tag = "11")]
    pub attribute_proto: Vec<AttributeProto>,
    #[prost(message, repeated, tag = "7")]
    pub node: Vec<NodeProto>,
    #[prost(string, tag = "8")]
    pub doc_string: String,
    #[prost(message, repeated, tag = "9")]
    pub opset_import: Vec<OperatorSetIdProto>,
    #[prost(string, tag = "10")]
    pub domain: String,
    #[prost(string, tag = "13")]
    pub overload: String,
    #[prost(message, repeated, tag = "12")]
    pub value_info: Vec<ValueInfoProto>,
    #[prost(message, repeated, tag = "14")]
    pub metadata_props: Vec<StringStringEntryProto>,
}

// ---------------------------------------------------------------------------------------------
// onnx-data.proto: non-tensor values, used by the ONNX test-data `.pb` files
// ---------------------------------------------------------------------------------------------

/// A sequence of values of one kind (`elem_type` is a [`sequence_proto::DataType`]).
#[derive(Clone, PartialEq, Message)]
pub struct SequenceProto {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(int32, tag = "2")]
    pub elem_type: i32,
    #[prost(message, repeated, tag = "3")]
    pub tensor_values: Vec<TensorProto>,
    #[prost(message, repeated, tag = "4")]
    pub sparse_tensor_values: Vec<SparseTensorProto>,
    #[prost(message, repeated, tag = "5")]
    pub sequence_values: Vec<SequenceProto>,
    #[prost(message, repeated, tag = "6")]
    pub map_values: Vec<MapProto>,
    #[prost(message, repeated, tag = "7")]
    pub optional_values: Vec<OptionalProto>,
}

pub mod sequence_proto {
    /// Kind of the elements of a sequence (same numbering as `OptionalProto.DataType`).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
    #[repr(i32)]
    pub enum DataType {
        Undefined = 0,
        Tensor = 1,
        SparseTensor = 2,
        Sequence = 3,
        Map = 4,
        Optional = 5,
    }
}

/// A map: `keys` (integer key types) or `string_keys`, and `values` as a sequence of equal length.
#[derive(Clone, PartialEq, Message)]
pub struct MapProto {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(int32, tag = "2")]
    pub key_type: i32,
    #[prost(int64, repeated, packed = "false", tag = "3")]
    pub keys: Vec<i64>,
    #[prost(bytes = "vec", repeated, tag = "4")]
    pub string_keys: Vec<Vec<u8>>,
    #[prost(message, optional, tag = "5")]
    pub values: Option<SequenceProto>,
}

/// An optional value: none (no value field set) or one element of kind `elem_type`.
#[derive(Clone, PartialEq, Message)]
pub struct OptionalProto {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(int32, tag = "2")]
    pub elem_type: i32,
    #[prost(message, optional, tag = "3")]
    pub tensor_value: Option<TensorProto>,
    #[prost(message, optional, tag = "4")]
    pub sparse_tensor_value: Option<SparseTensorProto>,
    #[prost(message, optional, tag = "5")]
    pub sequence_value: Option<SequenceProto>,
    #[prost(message, optional, tag = "6")]
    pub map_value: Option<MapProto>,
    /// Boxed: an optional may directly contain an optional.
    #[prost(message, optional, boxed, tag = "7")]
    pub optional_value: Option<Box<OptionalProto>>,
}

/// Same numbering as [`sequence_proto::DataType`]; re-exported under the name used by onnx-data.proto.
pub mod optional_proto {
    pub use super::sequence_proto::DataType;
}

// ---------------------------------------------------------------------------------------------
// Decoding and encoding
// ---------------------------------------------------------------------------------------------

fn decode_message<M: Message + Default>(what: &str, bytes: &[u8]) -> Result<M, Error> {
    M::decode(bytes).map_err(|e| {
        Error::InvalidModel(format!("not an ONNX {what}: protobuf decode failed ({} bytes): {e}", bytes.len()))
    })
}

/// Decodes an `.onnx` file and checks the minimum structure every later stage relies on:
/// a main graph, and (for IR v3+, where opsets were introduced) at least one opset import.
///
/// A truncated or foreign file usually fails the protobuf decode; one that happens to parse
/// (protobuf is permissive: an empty buffer is a valid empty message) fails these checks instead.
pub fn decode_model(bytes: &[u8]) -> Result<ModelProto, Error> {
    if bytes.is_empty() {
        return Err(Error::InvalidModel("not an ONNX model: the input is empty".into()));
    }
    let model: ModelProto = decode_message("model", bytes)?;
    check_model(model, bytes.len() as u64)
}

/// As [`decode_model`], from a reader of `len` bytes that is read as the protobuf is decoded
/// (in windows of 256 KiB): the whole file is never in memory at once, only the decoded model.
/// A read error is reported as such (an `Error::Other` naming the byte offset).
pub fn decode_model_from_reader(reader: impl std::io::Read, len: u64) -> Result<ModelProto, Error> {
    if len == 0 {
        return Err(Error::InvalidModel("not an ONNX model: the input is empty".into()));
    }
    let mut buf = ReadBuf::new(reader, len);
    let decoded = ModelProto::decode(&mut buf);
    if let Some((at, e)) = buf.error.take() {
        return Err(Error::Other(format!("cannot read the model at byte {at} of {len}: {e}")));
    }
    let model = decoded.map_err(|e| Error::InvalidModel(format!("not an ONNX model: protobuf decode failed ({len} bytes): {e}")))?;
    check_model(model, len)
}

/// A [`prost::bytes::Buf`] over a reader: one window of the input in memory at a time. After a
/// read error it ends where the window ends (the decoder then fails; the error is kept).
struct ReadBuf<R> {
    reader: R,
    window: Vec<u8>,
    start: usize,
    end: usize,
    /// Bytes of the input not yet read into the window.
    unread: u64,
    /// Offset of the window's end in the input.
    offset: u64,
    error: Option<(u64, std::io::Error)>,
}

impl<R: std::io::Read> ReadBuf<R> {
    const WINDOW: usize = 256 << 10;

    fn new(reader: R, len: u64) -> Self {
        let mut b = ReadBuf { reader, window: vec![0; len.min(Self::WINDOW as u64) as usize], start: 0, end: 0, unread: len, offset: 0, error: None };
        b.fill();
        b
    }

    fn fill(&mut self) {
        let n = (self.window.len() as u64).min(self.unread) as usize;
        if n == 0 {
            return;
        }
        match self.reader.read_exact(&mut self.window[..n]) {
            Ok(()) => {
                self.start = 0;
                self.end = n;
                self.unread -= n as u64;
                self.offset += n as u64;
            }
            Err(e) => {
                self.error = Some((self.offset, e));
                self.unread = 0;
            }
        }
    }
}

impl<R: std::io::Read> prost::bytes::Buf for ReadBuf<R> {
    fn remaining(&self) -> usize {
        usize::try_from(self.unread).unwrap_or(usize::MAX).saturating_add(self.end - self.start)
    }
    fn chunk(&self) -> &[u8] {
        &self.window[self.start..self.end]
    }
    fn advance(&mut self, mut cnt: usize) {
        while cnt > 0 {
            let here = cnt.min(self.end - self.start);
            self.start += here;
            cnt -= here;
            if self.start == self.end {
                if self.unread == 0 {
                    break;
                }
                self.fill();
            }
        }
    }
}

/// The structure checks of [`decode_model`] on a decoded model of `len` bytes.
fn check_model(model: ModelProto, len: u64) -> Result<ModelProto, Error> {
    if model.graph.is_none() {
        return Err(Error::InvalidModel(format!(
            "not an ONNX model: no graph (ModelProto field 7) in {} bytes{}",
            len,
            if model.ir_version == 0 { " and no ir_version" } else { "" }
        )));
    }
    if model.ir_version >= 3 && model.opset_import.is_empty() {
        return Err(Error::InvalidModel(format!(
            "model declares IR version {} but imports no opset (ModelProto.opset_import is empty); \
             the file may be truncated",
            model.ir_version
        )));
    }
    Ok(model)
}

/// Decodes a serialized `TensorProto` (an ONNX test-data `input_N.pb` / `output_N.pb`).
pub fn decode_tensor(bytes: &[u8]) -> Result<TensorProto, Error> {
    decode_message("TensorProto", bytes)
}

/// Decodes a serialized `SequenceProto` (test data of sequence-typed inputs/outputs).
pub fn decode_sequence(bytes: &[u8]) -> Result<SequenceProto, Error> {
    decode_message("SequenceProto", bytes)
}

/// Decodes a serialized `OptionalProto` (test data of optional-typed inputs/outputs).
pub fn decode_optional(bytes: &[u8]) -> Result<OptionalProto, Error> {
    decode_message("OptionalProto", bytes)
}

/// Decodes a serialized `MapProto`.
pub fn decode_map(bytes: &[u8]) -> Result<MapProto, Error> {
    decode_message("MapProto", bytes)
}

pub fn encode_model(m: &ModelProto) -> Vec<u8> {
    m.encode_to_vec()
}

pub fn encode_tensor(t: &TensorProto) -> Vec<u8> {
    t.encode_to_vec()
}

pub fn encode_sequence(s: &SequenceProto) -> Vec<u8> {
    s.encode_to_vec()
}

pub fn encode_optional(o: &OptionalProto) -> Vec<u8> {
    o.encode_to_vec()
}

pub fn encode_map(m: &MapProto) -> Vec<u8> {
    m.encode_to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_and_graphless_inputs_are_rejected() {
        assert!(matches!(decode_model(&[]), Err(Error::InvalidModel(m)) if m.contains("empty")));
        // Field 1 (ir_version) = 8 only: valid protobuf, but not a model.
        let e = decode_model(&[0x08, 0x08]).unwrap_err();
        assert!(e.to_string().contains("no graph"), "{e}");
    }

    #[test]
    fn oneof_dimension_round_trips() {
        use tensor_shape_proto::{dimension::Value, Dimension};
        let s = TensorShapeProto {
            dim: vec![
                Dimension { value: Some(Value::DimValue(0)), denotation: String::new() },
                Dimension { value: Some(Value::DimParam("N".into())), denotation: String::new() },
                Dimension { value: None, denotation: String::new() },
            ],
        };
        let back = TensorShapeProto::decode(s.encode_to_vec().as_slice()).unwrap();
        // dim_value 0 must survive as "known 0", not collapse into "unknown".
        assert_eq!(back, s);
    }
}
