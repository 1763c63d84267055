//! Bad input never panics: malformed bytes, unsupported ops, wrong inputs and
//! oversized requests each give a typed error that names the problem.

mod common;

use uniml::onnx::proto::{self, ModelProto};
use uniml::{DType, Error, Session, SessionOptions, Tensor, TensorView};

fn vi(name: &str, elem: i32, dims: &[Result<i64, &str>]) -> proto::ValueInfoProto {
    use proto::tensor_shape_proto::{dimension::Value as D, Dimension};
    proto::ValueInfoProto {
        name: name.into(),
        r#type: Some(proto::TypeProto {
            value: Some(proto::type_proto::Value::TensorType(proto::type_proto::Tensor {
                elem_type: elem,
                shape: Some(proto::TensorShapeProto {
                    dim: dims
                        .iter()
                        .map(|d| Dimension { value: Some(match d { Ok(v) => D::DimValue(*v), Err(s) => D::DimParam(s.to_string()) }), ..Default::default() })
                        .collect(),
                }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn node(op: &str, domain: &str, name: &str, inputs: &[&str], outputs: &[&str]) -> proto::NodeProto {
    proto::NodeProto {
        op_type: op.into(),
        domain: domain.into(),
        name: name.into(),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: outputs.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

fn model(nodes: Vec<proto::NodeProto>, inputs: Vec<proto::ValueInfoProto>, outputs: Vec<proto::ValueInfoProto>, inits: Vec<proto::TensorProto>) -> Vec<u8> {
    let m = ModelProto {
        ir_version: 8,
        opset_import: vec![proto::OperatorSetIdProto { domain: String::new(), version: 17 }],
        graph: Some(proto::GraphProto { node: nodes, input: inputs, output: outputs, initializer: inits, name: "g".into(), ..Default::default() }),
        ..Default::default()
    };
    uniml::onnx::proto::encode_model(&m)
}

/// y = Relu(x + b), x: f32[batch, 4], b: f32[4]
fn add_relu() -> Vec<u8> {
    let b = uniml::onnx::tensor_to_proto(&Tensor::from_slice(&[4], &[1f32, -1., 2., -2.]).unwrap(), "b");
    model(
        vec![node("Add", "", "add", &["x", "b"], &["s"]), node("Relu", "", "relu", &["s"], &["y"])],
        vec![vi("x", 1, &[Err("batch"), Ok(4)])],
        vec![vi("y", 1, &[Err("batch"), Ok(4)])],
        vec![b],
    )
}

#[test]
fn truncated_and_garbage_bytes_are_invalid_model_errors() {
    let bytes = add_relu();
    for cut in [0, 1, 5, bytes.len() / 2, bytes.len() - 1] {
        match Session::from_bytes(&bytes[..cut], SessionOptions::default()) {
            Err(Error::InvalidModel(m)) => assert!(!m.is_empty()),
            other => panic!("prefix {cut}: expected InvalidModel, got {other:?}"),
        }
    }
    let garbage: Vec<u8> = (0..4096u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
    assert!(matches!(Session::from_bytes(&garbage, SessionOptions::default()), Err(Error::InvalidModel(_))));
    let digits = std::fs::read(common::root().join("models/digits8x8_cnn.onnx")).unwrap();
    for cut in (0..digits.len()).step_by(997) {
        assert!(Session::from_bytes(&digits[..cut], SessionOptions::default()).is_err(), "prefix {cut} of digits must fail");
    }
}

#[test]
fn every_unsupported_op_is_listed_at_once_with_domain_and_node() {
    let bytes = model(
        vec![
            node("FancyOp", "", "first_bad", &["x"], &["a"]),
            node("Relu", "", "ok", &["a"], &["b"]),
            node("Gizmo", "com.example", "second_bad", &["b"], &["y"]),
        ],
        vec![vi("x", 1, &[Ok(2)])],
        vec![vi("y", 1, &[Ok(2)])],
        vec![],
    );
    match Session::from_bytes(&bytes, SessionOptions::default()) {
        Err(Error::Unsupported(list)) => {
            assert_eq!(list.len(), 2, "{list:?}");
            assert_eq!((list[0].op.as_str(), list[0].node.as_str(), list[0].domain.as_str()), ("FancyOp", "first_bad", ""));
            assert_eq!((list[1].op.as_str(), list[1].node.as_str(), list[1].domain.as_str()), ("Gizmo", "second_bad", "com.example"));
            let msg = Error::Unsupported(list).to_string();
            assert!(msg.contains("FancyOp") && msg.contains("com.example::Gizmo") && msg.contains("second_bad"), "{msg}");
        }
        other => panic!("expected Unsupported, got {other:?}"),
    }
}

#[test]
fn wrong_inputs_name_the_input_expected_and_got() {
    let s = Session::from_bytes(&add_relu(), SessionOptions::default()).unwrap();
    let x = [0f32; 8];
    let ok = TensorView::from_slice(&[2, 4], &x).unwrap();
    assert_eq!(s.run(&[("x", ok.clone())]).unwrap()[0].1.shape(), &[2, 4]);

    let err = s.run(&[]).unwrap_err();
    assert!(matches!(&err, Error::Input { name, problem } if name == "x" && problem.contains("missing")), "{err}");

    let err = s.run(&[("x", ok.clone()), ("nope", ok.clone())]).unwrap_err();
    assert!(err.to_string().contains("nope") && err.to_string().contains("no such input"), "{err}");

    let xi = [0i64; 8];
    let err = s.run(&[("x", TensorView::from_slice(&[2, 4], &xi).unwrap())]).unwrap_err();
    assert!(matches!(&err, Error::Input { name, problem } if name == "x" && problem.contains("float32") && problem.contains("int64")), "{err}");

    let err = s.run(&[("x", TensorView::from_slice(&[8], &x).unwrap())]).unwrap_err();
    assert!(matches!(&err, Error::Input { name, problem } if name == "x" && problem.contains("rank")), "{err}");

    let err = s.run(&[("x", TensorView::from_slice(&[4, 2], &x).unwrap())]).unwrap_err();
    assert!(matches!(&err, Error::Input { name, problem } if name == "x" && problem.contains("must be 4") && problem.contains("got 2")), "{err}");
}

#[test]
fn oversized_initializer_hits_the_memory_limit_before_allocating() {
    let huge = proto::TensorProto { name: "w".into(), dims: vec![1 << 40], data_type: 1, ..Default::default() };
    let bytes = model(vec![node("Relu", "", "r", &["w"], &["y"])], vec![], vec![vi("y", 1, &[Ok(1 << 40)])], vec![huge]);
    let err = Session::from_bytes(&bytes, SessionOptions::default().with_memory_limit(1 << 30)).unwrap_err();
    assert!(matches!(err, Error::MemoryLimit { .. }), "{err}");
}

#[test]
fn oversized_run_time_tensor_hits_the_memory_limit() {
    // y = ConstantOfShape(shape): the caller asks for 2^36 floats.
    let bytes = model(
        vec![node("ConstantOfShape", "", "cos", &["shape"], &["y"])],
        vec![vi("shape", 7, &[Ok(1)])],
        vec![vi("y", 1, &[Err("n")])],
        vec![],
    );
    let s = Session::from_bytes(&bytes, SessionOptions::default().with_memory_limit(1 << 30)).unwrap();
    let shape = [1i64 << 36];
    let err = s.run(&[("shape", TensorView::from_slice(&[1], &shape).unwrap())]).unwrap_err();
    assert!(err.to_string().contains("memory limit"), "{err}");
    let _ = DType::F32;
}
