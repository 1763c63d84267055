//! Integration tests of the protobuf layer against real models and hostile input.
//!
//! Numbers marked "fact" were read from the files with the Python `onnx` 1.23.2 package
//! (`onnx.load`, `numpy_helper.to_array`, `SerializeToString`); they describe the bundled files,
//! not our decoder, so a mismatch means our decoder is wrong.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::HashMap;

use uniml_data::{bf16, f16, lowp, DType, Dim, Error, SymbolicShape, Tensor};
use uniml_onnx::proto::{
    self, tensor_proto::DataLocation, AttributeProto, NodeProto, StringStringEntryProto, TensorProto,
};
use uniml_onnx::tensor_proto::{
    dims_from_type, tensor_from_proto, tensor_to_proto, ExternalData, ExternalDataMap, NoExternalData,
};

const DIGITS: &str = "digits8x8_cnn.onnx";
const EFFNET: &str = "efficientnet_lite0.onnx";

/// A bundled model's path, from the run-time manifest dir (a test binary reused
/// from a shared target dir may have been compiled in another checkout).
fn bundled(name: &str) -> std::path::PathBuf {
    let manifest = std::env::var_os("CARGO_MANIFEST_DIR").map(std::path::PathBuf::from).unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into());
    manifest.join("../../models").join(name)
}
const NO_LIMIT: u64 = u64::MAX;

// ---- A global allocator that records the largest single allocation of the current thread, so
// ---- "rejected before allocating" is checked, not assumed. (Tests run on parallel threads,
// ---- hence per-thread; `const` init keeps the thread-local itself allocation-free.)
struct PeakAlloc;
thread_local! { static LARGEST: Cell<usize> = const { Cell::new(0) }; }
unsafe impl GlobalAlloc for PeakAlloc {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let _ = LARGEST.try_with(|m| m.set(m.get().max(l.size())));
        System.alloc(l)
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        System.dealloc(p, l)
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        let _ = LARGEST.try_with(|m| m.set(m.get().max(new)));
        System.realloc(p, l, new)
    }
}
#[global_allocator]
static ALLOC: PeakAlloc = PeakAlloc;

fn largest_allocation_during<R>(f: impl FnOnce() -> R) -> (R, usize) {
    LARGEST.with(|m| m.set(0));
    let r = f();
    (r, LARGEST.with(|m| m.get()))
}

/// Deterministic xorshift64*, so the fuzz-style tests are reproducible without a rand dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

// ------------------------------------------------------------------------------------------------
// Real models
// ------------------------------------------------------------------------------------------------

#[test]
fn digits_model_decodes_with_the_facts_onnx_reports() {
    let bytes = std::fs::read(bundled(DIGITS)).unwrap();
    let m = proto::decode_model(&bytes).unwrap();
    assert_eq!(m.ir_version, 8); // fact
    assert_eq!(m.producer_name, "train_digits_cnn"); // fact
    assert_eq!(m.opset_import.len(), 1);
    assert_eq!((m.opset_import[0].domain.as_str(), m.opset_import[0].version), ("", 13)); // fact
    let g = m.graph.as_ref().unwrap();
    assert_eq!(g.name, "digits8x8_cnn");
    let ops: Vec<&str> = g.node.iter().map(|n| n.op_type.as_str()).collect();
    assert_eq!(ops, ["Conv", "Relu", "MaxPool", "Flatten", "Gemm", "Relu", "Gemm"]); // fact
    assert_eq!(g.node[0].input, ["input", "cw", "cb"]);
    let pads = g.node[0].attribute.iter().find(|a| a.name == "pads").unwrap();
    assert_eq!(pads.r#type, proto::attribute_proto::AttributeType::Ints as i32);
    assert_eq!(pads.ints, [1, 1, 1, 1]); // fact
    let trans_b = &g.node[4].attribute[0];
    assert_eq!((trans_b.name.as_str(), trans_b.i), ("transB", 1)); // fact

    // Initializers: names, dims, and the f64 sum of each as numpy computes it (fact).
    let expected: [(&str, &[usize], f64); 6] = [
        ("cw", &[16, 1, 3, 3], 23.905867013847455),
        ("cb", &[16], -0.2807744973397348),
        ("w1", &[64, 256], 4.0290430389831045),
        ("b1", &[64], 0.029064336617011577),
        ("w2", &[10, 64], -2.0175691097974777),
        ("b2", &[10], 0.005402411101385951),
    ];
    assert_eq!(g.initializer.len(), expected.len());
    for (p, (name, dims, sum)) in g.initializer.iter().zip(expected) {
        let t = tensor_from_proto(p, &NoExternalData, 1 << 20).unwrap();
        assert_eq!((p.name.as_str(), t.dtype(), t.shape()), (name, DType::F32, dims));
        let got: f64 = t.to_f64_vec().unwrap().iter().sum();
        assert!(
            (got - sum).abs() < 1e-9 * sum.abs().max(1.0),
            "{name}: sum {got} vs {sum}"
        );
    }

    // Declared I/O types: symbolic batch, known rest.
    let (dt, shape) = dims_from_type(g.input[0].r#type.as_ref().unwrap()).unwrap();
    assert_eq!(dt, DType::F32);
    let n = || Dim::Sym("N".into());
    assert_eq!(
        shape,
        Some(SymbolicShape(vec![n(), Dim::Known(1), Dim::Known(8), Dim::Known(8)]))
    );
    let (_, out) = dims_from_type(g.output[0].r#type.as_ref().unwrap()).unwrap();
    assert_eq!(out, Some(SymbolicShape(vec![n(), Dim::Known(10)])));

    // Re-encoding reproduces a message that decodes to the same model.
    let again = proto::decode_model(&proto::encode_model(&m)).unwrap();
    assert_eq!(again, m);
}

#[test]
fn efficientnet_decodes_with_the_facts_onnx_reports() {
    let bytes = std::fs::read(bundled(EFFNET)).unwrap();
    let m = proto::decode_model(&bytes).unwrap();
    assert_eq!(m.ir_version, 8); // fact
    assert_eq!(m.producer_name, "effnet_lite0_to_onnx"); // fact
    let g = m.graph.as_ref().unwrap();
    assert_eq!(g.node.len(), 94); // fact
    assert_eq!(g.initializer.len(), 102); // fact
    let count = |op: &str| g.node.iter().filter(|n| n.op_type == op).count();
    // fact: Counter of op types.
    assert_eq!(
        [
            count("Conv"),
            count("Clip"),
            count("Add"),
            count("GlobalAveragePool"),
            count("Flatten"),
            count("Gemm")
        ],
        [49, 33, 9, 1, 1, 1]
    );
    assert_eq!(g.node.iter().map(|n| n.attribute.len()).sum::<usize>(), 198); // fact
    assert_eq!(g.initializer[0].name, "zero"); // fact: a scalar (dims [])
    assert_eq!(g.initializer[2].dims, [32, 3, 3, 3]); // fact: "w1"
    assert_eq!(
        (g.initializer[101].name.as_str(), g.initializer[101].dims.as_slice()),
        ("fc_b", &[1000i64][..])
    );

    let mut params = 0usize;
    for p in &g.initializer {
        let t = tensor_from_proto(p, &NoExternalData, 64 << 20).unwrap();
        assert_eq!(t.dtype(), DType::F32);
        params += t.len();
    }
    assert_eq!(params, 4_631_002); // fact: sum of np.prod(dims)
    let zero = tensor_from_proto(&g.initializer[0], &NoExternalData, 64).unwrap();
    assert_eq!(zero.shape(), &[] as &[usize]);

    // The memory limit applies per tensor and names it.
    let e = tensor_from_proto(&g.initializer[2], &NoExternalData, 1000).unwrap_err();
    assert_eq!(
        e,
        Error::MemoryLimit {
            what: "initializer 'w1'".into(),
            requested: 32 * 27 * 4,
            limit: 1000
        }
    );
}

// ------------------------------------------------------------------------------------------------
// Wire compatibility with what the onnx package writes
// ------------------------------------------------------------------------------------------------

/// Tensors written by `onnx.helper.make_tensor` with typed fields (not raw_data); the hex is
/// `SerializeToString().hex()` (fact).
#[test]
fn typed_field_tensors_written_by_onnx_decode() {
    let load = |h: &str| tensor_from_proto(&proto::decode_tensor(&hex(h)).unwrap(), &NoExternalData, 1 << 20).unwrap();

    let t = load("080310032a0cffffffffffffffffff01027f420161"); // INT8 [3] = [-1, 2, 127]
    assert_eq!(t.as_slice::<i8>().unwrap(), &[-1, 2, 127]);
    let t = load("0802100a2a058078808003420168"); // FLOAT16 [2] = [1, -2]
    assert_eq!(t.as_slice::<f16>().unwrap(), &[f16::from_f32(1.0), f16::from_f32(-2.0)]);
    let t = load("0802100d4201755a0b01ffffffffffffffffff01"); // UINT64 [2] = [1, 2^64-1]
    assert_eq!(t.as_slice::<u64>().unwrap(), &[1, u64::MAX]);
    let t = load("0802100832026162320368c3a9420173"); // STRING [2] = ["ab", "hé"]
    assert_eq!(t.as_strings().unwrap(), &["ab", "hé"]);
    let t = load("0801080310092a03010001420162"); // BOOL [1, 3] = [T, F, T]
    assert_eq!(
        (t.shape(), t.as_bools().unwrap()),
        (&[1usize, 3][..], &[true, false, true][..])
    );
    let t = load("0802100b4201645210000000000000e03f000000000000f4bf"); // DOUBLE [2] = [0.5, -1.25]
    assert_eq!(t.as_slice::<f64>().unwrap(), &[0.5, -1.25]);
}

/// `helper.make_node('Conv', ['x','w'], ['y'], name='c', kernel_shape=[3,3], alpha=0.5, mode='x',
/// fl=[1.0, 2.0])`: our encoding must be byte-identical, which pins the proto2 (unpacked) form of
/// `ints`/`floats` and the tag of `type` (fact).
#[test]
fn node_encoding_is_byte_identical_to_onnx() {
    let onnx = hex(
        "0a01780a01771201791a01632204436f6e762a0f0a05616c706861150000003fa001012a110a02666c3d0000803f3d00000040\
         a001062a150a0c6b65726e656c5f736861706540034003a001072a0c0a046d6f6465220178a00103",
    );
    use proto::attribute_proto::AttributeType as A;
    let attr = |name: &str, ty: A| AttributeProto {
        name: name.into(),
        r#type: ty as i32,
        ..Default::default()
    };
    let node = NodeProto {
        input: vec!["x".into(), "w".into()],
        output: vec!["y".into()],
        name: "c".into(),
        op_type: "Conv".into(),
        attribute: vec![
            AttributeProto {
                f: 0.5,
                ..attr("alpha", A::Float)
            },
            AttributeProto {
                floats: vec![1.0, 2.0],
                ..attr("fl", A::Floats)
            },
            AttributeProto {
                ints: vec![3, 3],
                ..attr("kernel_shape", A::Ints)
            },
            AttributeProto {
                s: b"x".to_vec(),
                ..attr("mode", A::String)
            },
        ],
        ..Default::default()
    };
    use prost::Message;
    assert_eq!(node.encode_to_vec(), onnx);
    assert_eq!(NodeProto::decode(onnx.as_slice()).unwrap(), node);
}

// ------------------------------------------------------------------------------------------------
// Round trips
// ------------------------------------------------------------------------------------------------

fn round_trip(t: &Tensor) -> Tensor {
    let p = tensor_to_proto(t, "t");
    let bytes = proto::encode_tensor(&p);
    let back = proto::decode_tensor(&bytes).unwrap();
    assert_eq!(back, p);
    tensor_from_proto(&back, &NoExternalData, 1 << 20).unwrap()
}

#[test]
fn every_dtype_round_trips() {
    let tensors = vec![
        Tensor::from_slice(&[2, 2], &[1.5f32, -0.0, f32::INFINITY, f32::MIN_POSITIVE]).unwrap(),
        Tensor::from_slice(&[3], &[f16::from_f32(0.5), f16::NEG_INFINITY, f16::MAX]).unwrap(),
        Tensor::from_slice(&[3], &[bf16::from_f32(0.5), bf16::MIN, bf16::ONE]).unwrap(),
        Tensor::from_slice(&[2], &[std::f64::consts::PI, -1e300]).unwrap(),
        Tensor::from_slice(&[3], &[i8::MIN, 0, i8::MAX]).unwrap(),
        Tensor::from_slice(&[3], &[0u8, 1, 255]).unwrap(),
        Tensor::from_slice(&[3], &[i16::MIN, -1, i16::MAX]).unwrap(),
        Tensor::from_slice(&[3], &[0u16, 1, u16::MAX]).unwrap(),
        Tensor::from_slice(&[1, 3], &[i32::MIN, -1, i32::MAX]).unwrap(),
        Tensor::from_slice(&[3], &[0u32, 1, u32::MAX]).unwrap(),
        Tensor::from_slice(&[3, 1], &[i64::MIN, -1, i64::MAX]).unwrap(),
        Tensor::from_slice(&[3], &[0u64, 1, u64::MAX]).unwrap(),
        Tensor::from_bools(&[2, 2], &[true, false, false, true]).unwrap(),
        Tensor::from_strings(&[2], vec!["".into(), "naïve ∑".into()]).unwrap(),
        Tensor::scalar(7i64),
        Tensor::zeros(DType::F32, &[0, 5]).unwrap(),
        Tensor::zeros(DType::String, &[2, 0]).unwrap(),
        // Low-precision types: bytes in memory, packed (odd lengths too) in the proto.
        Tensor::from_slice(&[3], &[lowp::F8E4M3FN(0x7e), lowp::F8E4M3FN(0xff), lowp::F8E4M3FN(1)]).unwrap(),
        Tensor::from_slice(&[2], &[lowp::F8E4M3FNUZ(0x80), lowp::F8E4M3FNUZ(0x7f)]).unwrap(),
        Tensor::from_slice(&[2], &[lowp::F8E5M2(0x7c), lowp::F8E5M2(0x83)]).unwrap(),
        Tensor::from_slice(&[2], &[lowp::F8E5M2FNUZ(0x80), lowp::F8E5M2FNUZ(0x01)]).unwrap(),
        Tensor::from_slice(&[2], &[lowp::F8E8M0(0), lowp::F8E8M0(0xff)]).unwrap(),
        Tensor::from_slice(&[3], &[lowp::F4E2M1(15), lowp::F4E2M1(0), lowp::F4E2M1(7)]).unwrap(),
        Tensor::from_slice(&[3], &[lowp::U4(15), lowp::U4(0), lowp::U4(9)]).unwrap(),
        Tensor::from_slice(&[1, 3], &[lowp::I4(-8), lowp::I4(7), lowp::I4(-1)]).unwrap(),
        Tensor::from_slice(&[5], &[lowp::U2(3), lowp::U2(0), lowp::U2(1), lowp::U2(2), lowp::U2(3)]).unwrap(),
        Tensor::from_slice(&[5], &[lowp::I2(-2), lowp::I2(1), lowp::I2(-1), lowp::I2(0), lowp::I2(-2)]).unwrap(),
    ];
    let mut seen = Vec::new();
    for t in &tensors {
        let r = round_trip(t);
        assert_eq!((r.dtype(), r.shape()), (t.dtype(), t.shape()), "{t:?}");
        assert_eq!(r.as_bytes(), t.as_bytes(), "{t:?}");
        if t.dtype() == DType::String {
            assert_eq!(r.as_strings().unwrap(), t.as_strings().unwrap());
        }
        seen.push(t.dtype());
    }
    for d in [
        DType::F32,
        DType::F16,
        DType::BF16,
        DType::F64,
        DType::I8,
        DType::U8,
        DType::I16,
        DType::U16,
    ]
    .into_iter()
    .chain([
        DType::I32,
        DType::U32,
        DType::I64,
        DType::U64,
        DType::Bool,
        DType::String,
    ])
    .chain(uniml_data::ALL_DTYPES.into_iter().filter(|d| d.is_low_precision()))
    {
        assert!(seen.contains(&d), "{d} not covered");
    }
}

#[test]
fn typed_fields_match_raw_data_for_every_numeric_dtype() {
    // The same values via the typed fields must give the same tensor as via raw_data.
    type Fill = Box<dyn Fn(&mut TensorProto)>;
    let cases: Vec<(Tensor, Fill)> = vec![
        (
            Tensor::from_slice(&[2], &[1.5f32, -2.0]).unwrap(),
            Box::new(|p| p.float_data = vec![1.5, -2.0]),
        ),
        (
            Tensor::from_slice(&[2], &[1.5f64, -2.0]).unwrap(),
            Box::new(|p| p.double_data = vec![1.5, -2.0]),
        ),
        (
            Tensor::from_slice(&[2], &[-5i64, 9]).unwrap(),
            Box::new(|p| p.int64_data = vec![-5, 9]),
        ),
        (
            Tensor::from_slice(&[2], &[7u64, u64::MAX]).unwrap(),
            Box::new(|p| p.uint64_data = vec![7, u64::MAX]),
        ),
        (
            Tensor::from_slice(&[2], &[7u32, u32::MAX]).unwrap(),
            Box::new(|p| p.uint64_data = vec![7, u32::MAX as u64]),
        ),
        (
            Tensor::from_slice(&[2], &[-7i32, 8]).unwrap(),
            Box::new(|p| p.int32_data = vec![-7, 8]),
        ),
        (
            Tensor::from_slice(&[2], &[-7i16, 8]).unwrap(),
            Box::new(|p| p.int32_data = vec![-7, 8]),
        ),
        (
            Tensor::from_slice(&[2], &[65535u16, 8]).unwrap(),
            Box::new(|p| p.int32_data = vec![65535, 8]),
        ),
        (
            Tensor::from_slice(&[2], &[-7i8, 8]).unwrap(),
            Box::new(|p| p.int32_data = vec![-7, 8]),
        ),
        (
            Tensor::from_slice(&[2], &[255u8, 8]).unwrap(),
            Box::new(|p| p.int32_data = vec![255, 8]),
        ),
        (
            Tensor::from_bools(&[2], &[true, false]).unwrap(),
            Box::new(|p| p.int32_data = vec![1, 0]),
        ),
        (
            Tensor::from_slice(&[1], &[bf16::from_f32(-3.0)]).unwrap(),
            Box::new(|p| p.int32_data = vec![bf16::from_f32(-3.0).to_bits() as i32]),
        ),
    ];
    for (t, fill) in cases {
        let mut p = tensor_to_proto(&t, "typed");
        p.raw_data.clear();
        fill(&mut p);
        let r = tensor_from_proto(&p, &NoExternalData, 1 << 20).unwrap();
        assert_eq!(
            (r.dtype(), r.shape(), r.as_bytes()),
            (t.dtype(), t.shape(), t.as_bytes()),
            "{t:?}"
        );
        // One value too few must be reported, naming the tensor.
        let mut short = p.clone();
        short.dims = vec![3];
        let e = tensor_from_proto(&short, &NoExternalData, 1 << 20).unwrap_err();
        assert!(
            matches!(&e, Error::InvalidModel(m) if m.contains("'typed'") && m.contains("expected 3")),
            "{e}"
        );
    }
}

// ------------------------------------------------------------------------------------------------
// Hostile input
// ------------------------------------------------------------------------------------------------

#[test]
fn truncated_models_are_errors_not_panics() {
    let bytes = std::fs::read(bundled(DIGITS)).unwrap();
    // Every prefix near both ends (where the headers and the final opset_import live), and a
    // stride through the middle. The model ends with its only opset_import, so no proper
    // prefix is a complete model: all must fail.
    let lens = (0..600)
        .chain((600..bytes.len() - 600).step_by(7))
        .chain(bytes.len() - 600..bytes.len());
    for len in lens {
        let r = proto::decode_model(&bytes[..len]);
        assert!(
            matches!(r, Err(Error::InvalidModel(_))),
            "prefix of {len} bytes decoded"
        );
    }
    assert!(proto::decode_model(&bytes).is_ok());

    // A truncated prefix of the model fails at the outer graph length check; to make the decoder
    // walk into nodes, attributes and tensors, truncate the *graph* bytes and re-wrap them in a
    // well-formed model. Prefixes ending on a field boundary are valid (smaller) graphs, so here
    // the requirement is only: no panic, and every initializer converts or fails cleanly.
    let model = proto::decode_model(&bytes).unwrap();
    let graph = prost::Message::encode_to_vec(model.graph.as_ref().unwrap());
    let mut failures = 0;
    for len in (0..graph.len()).step_by(3) {
        let mut m = vec![0x08, 0x08, 0x3a]; // ir_version = 8, then field 7 (graph), length-delimited
        prost::encoding::encode_varint(len as u64, &mut m);
        m.extend_from_slice(&graph[..len]);
        m.extend_from_slice(&[0x42, 0x02, 0x10, 0x0d]); // opset_import { version: 13 }
        match proto::decode_model(&m) {
            Ok(mp) => {
                for init in &mp.graph.unwrap().initializer {
                    let _ = tensor_from_proto(init, &NoExternalData, 1 << 20);
                }
            }
            Err(e) => {
                assert!(matches!(e, Error::InvalidModel(_)));
                failures += 1;
            }
        }
    }
    assert!(
        failures > graph.len() / 3 / 2,
        "most graph truncations must fail ({failures})"
    );
}

#[test]
fn garbage_and_mutated_models_never_panic() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    // Pure garbage of assorted lengths: protobuf may parse some of it, but never into a model.
    for i in 0..2000 {
        let len = (rng.next() % 4096) as usize + i % 3;
        let junk: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        assert!(proto::decode_model(&junk).is_err());
        let _ = proto::decode_tensor(&junk);
        let _ = proto::decode_sequence(&junk);
        let _ = proto::decode_optional(&junk);
        let _ = proto::decode_map(&junk);
    }
    // Mutated real model: whatever still decodes must convert (or fail) cleanly.
    let model = std::fs::read(bundled(DIGITS)).unwrap();
    let mut decoded = 0;
    for _ in 0..400 {
        let mut m = model.clone();
        for _ in 0..1 + rng.next() % 4 {
            let at = (rng.next() % m.len() as u64) as usize;
            m[at] = rng.next() as u8;
        }
        if let Ok(mp) = proto::decode_model(&m) {
            decoded += 1;
            for init in &mp.graph.unwrap().initializer {
                let _ = tensor_from_proto(init, &NoExternalData, 1 << 20);
            }
        }
    }
    assert!(decoded > 0, "mutations should sometimes keep the model decodable");
}

#[test]
fn deeply_nested_input_is_rejected_without_stack_overflow() {
    // OptionalProto.optional_value (field 7) nested 10_000 deep: prost's recursion limit must stop it.
    let mut msg: Vec<u8> = Vec::new();
    for _ in 0..10_000 {
        let mut outer = vec![0x3a];
        let mut n = msg.len();
        while n >= 0x80 {
            outer.push((n as u8) | 0x80);
            n >>= 7;
        }
        outer.push(n as u8);
        outer.extend_from_slice(&msg);
        msg = outer;
    }
    assert!(proto::decode_optional(&msg).is_err());
}

#[test]
fn huge_declared_initializer_hits_the_memory_limit_before_allocating() {
    let p = TensorProto {
        name: "big".into(),
        data_type: 1,
        dims: vec![1 << 40],
        ..Default::default()
    };
    let (r, largest) = largest_allocation_during(|| tensor_from_proto(&p, &NoExternalData, 1 << 30));
    assert_eq!(
        r.unwrap_err(),
        Error::MemoryLimit {
            what: "initializer 'big'".into(),
            requested: 4 << 40,
            limit: 1 << 30
        }
    );
    assert!(largest < 4096, "allocated {largest} bytes before rejecting");

    // Also when the data is external: the source must not even be asked.
    struct Panics;
    impl ExternalData for Panics {
        fn read(&self, _: &str, _: u64, _: Option<u64>) -> Result<Vec<u8>, Error> {
            panic!("external data read despite the limit")
        }
    }
    let mut ext = p.clone();
    ext.dims = vec![1 << 26, 2]; // 512 MiB of f32: allocatable, so the check must come first.
    ext.data_location = DataLocation::External as i32;
    ext.external_data = vec![StringStringEntryProto {
        key: "location".into(),
        value: "w.bin".into(),
    }];
    let (r, largest) = largest_allocation_during(|| tensor_from_proto(&ext, &Panics, 1 << 20));
    assert!(matches!(r, Err(Error::MemoryLimit { requested, .. }) if requested == 1 << 29));
    assert!(largest < 4096, "allocated {largest} bytes before rejecting");

    // Overflowing element counts are invalid, not a wrap-around to something small.
    let p = TensorProto {
        name: "ovf".into(),
        data_type: 1,
        dims: vec![1 << 62, 8],
        ..Default::default()
    };
    let e = tensor_from_proto(&p, &NoExternalData, NO_LIMIT).unwrap_err();
    assert!(
        matches!(&e, Error::InvalidModel(m) if m.contains("overflows") && m.contains("'ovf'")),
        "{e}"
    );
    // Within an unlimited budget, a declared size the data does not back is a mismatch, found
    // before the output buffer is reserved.
    let p = TensorProto {
        name: "wide".into(),
        data_type: 1,
        dims: vec![1 << 61],
        ..Default::default()
    };
    let (r, largest) = largest_allocation_during(|| tensor_from_proto(&p, &NoExternalData, NO_LIMIT));
    assert!(matches!(r, Err(Error::InvalidModel(m)) if m.contains("0 values in float_data")));
    assert!(largest < 4096, "allocated {largest} bytes before rejecting");
}

#[test]
fn unsupported_dtypes_are_named() {
    for (code, name) in [
        (14, "COMPLEX64 (14)"),
        (15, "COMPLEX128 (15)"),
        (27, "FLOAT6E2M3 (27)"),
        (0, "UNDEFINED (0)"),
        (99, "unknown code 99"),
    ] {
        let p = TensorProto {
            name: "q".into(),
            data_type: code,
            dims: vec![2],
            raw_data: vec![0; 2].into(),
            ..Default::default()
        };
        let e = tensor_from_proto(&p, &NoExternalData, NO_LIMIT)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("unsupported tensor dtype") && e.contains(name) && e.contains("'q'"),
            "{e}"
        );
    }
}

// ------------------------------------------------------------------------------------------------
// External data
// ------------------------------------------------------------------------------------------------

fn external(name: &str, dims: &[i64], entries: &[(&str, &str)]) -> TensorProto {
    TensorProto {
        name: name.into(),
        data_type: DType::F32.onnx_code(),
        dims: dims.to_vec(),
        data_location: DataLocation::External as i32,
        external_data: entries
            .iter()
            .map(|(k, v)| StringStringEntryProto {
                key: k.to_string(),
                value: v.to_string(),
            })
            .collect(),
        ..Default::default()
    }
}

#[test]
fn external_data_respects_offset_and_length() {
    // weights.bin: 8 bytes of padding, then [1, 2, 3] as f32, then [4] as f32.
    let mut blob = vec![0xAAu8; 8];
    for v in [1.0f32, 2.0, 3.0, 4.0] {
        blob.extend_from_slice(&v.to_le_bytes());
    }
    let map = ExternalDataMap(HashMap::from([("sub/weights.bin".to_string(), blob)]));
    let loc = ("location", "sub/weights.bin");

    let a = external("a", &[3], &[loc, ("offset", "8"), ("length", "12")]);
    let t = tensor_from_proto(&a, &map, NO_LIMIT).unwrap();
    assert_eq!(t.as_slice::<f32>().unwrap(), &[1.0, 2.0, 3.0]);
    // No length: exactly the declared size is read from the offset.
    let b = external("b", &[1], &[loc, ("offset", "20")]);
    assert_eq!(
        tensor_from_proto(&b, &map, NO_LIMIT)
            .unwrap()
            .as_slice::<f32>()
            .unwrap(),
        &[4.0]
    );

    let err = |p: &TensorProto| tensor_from_proto(p, &map, NO_LIMIT).unwrap_err();
    // Declared length disagrees with the dims.
    assert!(matches!(
        err(&external("c", &[3], &[loc, ("offset", "8"), ("length", "8")])),
        Error::ExternalData { .. }
    ));
    // Range past the end of the file.
    let e = err(&external("d", &[2], &[loc, ("offset", "20")]));
    assert!(
        matches!(&e, Error::ExternalData { location, message } if location == "sub/weights.bin" && message.contains("exceeds")),
        "{e}"
    );
    let e = err(&external("d", &[1], &[loc, ("offset", "1000")]));
    assert!(matches!(e, Error::ExternalData { .. }), "{e}");
    // Unknown file, malformed offset, missing location.
    assert!(matches!(
        err(&external("e", &[1], &[("location", "other.bin")])),
        Error::ExternalData { .. }
    ));
    assert!(matches!(
        err(&external("f", &[1], &[loc, ("offset", "-4")])),
        Error::ExternalData { .. }
    ));
    assert!(matches!(
        err(&external("g", &[1], &[("offset", "0")])),
        Error::InvalidModel(_)
    ));

    // Without a source, the error names the location.
    let e = tensor_from_proto(&a, &NoExternalData, NO_LIMIT).unwrap_err();
    assert!(
        matches!(&e, Error::ExternalData { location, message } if location == "sub/weights.bin" && message.contains("no external data source")),
        "{e}"
    );

    // The map itself honours offset/length, including "to the end".
    assert_eq!(map.read("sub/weights.bin", 20, None).unwrap(), 4.0f32.to_le_bytes());
    assert_eq!(map.read("sub/weights.bin", 24, None).unwrap(), b"");
    assert!(map.read("sub/weights.bin", 20, Some(5)).is_err());
    assert!(map.read("sub/weights.bin", u64::MAX, Some(u64::MAX)).is_err());
}
