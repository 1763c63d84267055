//! End-to-end tests of `uniml serve` (in-process, on 127.0.0.1:0) over raw
//! HTTP/1.1 on `std::net::TcpStream`: every endpoint, the binary extension,
//! error statuses, limits, overload, slow and vanishing clients, graceful
//! shutdown and static files. References come from running the same model
//! through the `uniml` facade at test time.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use uniml::{Session, SessionOptions, TensorView};
use uniml_server::{load_models, Config, Metrics, Server};

fn root() -> PathBuf {
    let manifest = std::env::var_os("CARGO_MANIFEST_DIR").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    manifest.join("../..").canonicalize().expect("repo root")
}

const DIGITS: &str = "models/digits8x8_cnn.onnx";

struct TestServer {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<std::io::Result<()>>>,
    metrics: Arc<Metrics>,
}

impl TestServer {
    fn start(models: &[&str], cfg: Config) -> TestServer {
        let paths: Vec<PathBuf> = models.iter().map(|m| root().join(m)).collect();
        let models = load_models(&paths, &SessionOptions::default().with_threads(1)).expect("load models");
        let (tx, rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
            rt.block_on(async move {
                let server = Server::bind(models, Config { host: "127.0.0.1".into(), port: 0, ..cfg }).await?;
                tx.send((server.local_addr()?, server.metrics())).expect("send addr");
                server
                    .run(async move {
                        let _ = stop_rx.await;
                    })
                    .await
            })
        });
        let (addr, metrics) = rx.recv_timeout(Duration::from_secs(30)).expect("server started");
        TestServer { addr, stop: Some(stop_tx), thread: Some(thread), metrics }
    }

    /// Asks for shutdown and waits for `run` to return.
    fn shutdown(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            t.join().expect("server thread").expect("server run");
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

#[derive(Debug)]
struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
    fn error(&self) -> String {
        self.json()["error"].as_str().unwrap_or_else(|| panic!("no error message in {:?}", String::from_utf8_lossy(&self.body))).to_string()
    }
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    s
}

fn head(method: &str, path: &str, headers: &[(&str, &str)], body_len: Option<usize>) -> String {
    let mut h = format!("{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n");
    for (k, v) in headers {
        h.push_str(&format!("{k}: {v}\r\n"));
    }
    if let Some(n) = body_len {
        h.push_str(&format!("Content-Length: {n}\r\n"));
    }
    h.push_str("\r\n");
    h
}

fn read_response(mut s: TcpStream) -> Resp {
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read response");
    parse_response(&raw)
}

fn parse_response(raw: &[u8]) -> Resp {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or_else(|| panic!("no header end in {:?}", String::from_utf8_lossy(raw)));
    let text = String::from_utf8_lossy(&raw[..end]).to_string();
    let mut lines = text.split("\r\n");
    let status: u16 = lines.next().and_then(|l| l.split(' ').nth(1)).and_then(|s| s.parse().ok()).expect("status line");
    let headers: Vec<(String, String)> = lines.filter_map(|l| l.split_once(':')).map(|(k, v)| (k.trim().to_string(), v.trim().to_string())).collect();
    let mut body = raw[end + 4..].to_vec();
    let chunked = headers.iter().any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    if chunked {
        let mut out = Vec::new();
        let mut rest = &body[..];
        loop {
            let nl = rest.windows(2).position(|w| w == b"\r\n").expect("chunk size line");
            let size = usize::from_str_radix(String::from_utf8_lossy(&rest[..nl]).trim(), 16).expect("chunk size");
            if size == 0 {
                break;
            }
            out.extend_from_slice(&rest[nl + 2..nl + 2 + size]);
            rest = &rest[nl + 2 + size + 2..];
        }
        body = out;
    }
    Resp { status, headers, body }
}

fn request(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Resp {
    let mut s = connect(addr);
    let len = (method != "GET").then_some(body.len());
    s.write_all(head(method, path, headers, len).as_bytes()).expect("write head");
    s.write_all(body).expect("write body");
    read_response(s)
}

fn get(addr: SocketAddr, path: &str) -> Resp {
    request(addr, "GET", path, &[], &[])
}

fn post_json(addr: SocketAddr, path: &str, v: &Value) -> Resp {
    request(addr, "POST", path, &[("Content-Type", "application/json")], v.to_string().as_bytes())
}

fn digits_input(n: usize) -> Vec<f32> {
    (0..n * 64).map(|i| ((i * 37 % 101) as f32) / 101.0).collect()
}

fn reference(model: &str, shape: &[usize], data: &[f32]) -> (Vec<usize>, Vec<f32>) {
    let s = Session::from_file(root().join(model), SessionOptions::default().with_threads(1)).expect("session");
    let out = s.run(&[("input", TensorView::from_slice(shape, data).unwrap())]).expect("run");
    (out[0].1.shape().to_vec(), out[0].1.as_slice::<f32>().unwrap().to_vec())
}

fn default_cfg() -> Config {
    Config { max_concurrency: 2, ..Config::default() }
}

#[test]
fn health_metadata_and_metrics() {
    let srv = TestServer::start(&[DIGITS], default_cfg());
    let a = srv.addr;
    assert_eq!(get(a, "/v2/health/live").status, 200);
    assert_eq!(get(a, "/v2/health/ready").status, 200);
    let meta = get(a, "/v2");
    assert_eq!(meta.status, 200);
    assert_eq!(meta.json()["name"], "uniml");
    assert!(meta.json()["extensions"].as_array().unwrap().iter().any(|e| e == "binary_tensor_data"));

    let m = get(a, "/v2/models/digits8x8_cnn");
    assert_eq!(m.status, 200);
    assert_eq!(m.header("content-type"), Some("application/json"));
    let m = m.json();
    assert_eq!(m["name"], "digits8x8_cnn");
    assert_eq!(m["inputs"][0], json!({"name": "input", "datatype": "FP32", "shape": [-1, 1, 8, 8]}));
    assert_eq!(m["outputs"][0]["name"], "logits");
    assert_eq!(m["outputs"][0]["datatype"], "FP32");
    assert_eq!(get(a, "/v2/models/digits8x8_cnn/versions/1").json()["name"], "digits8x8_cnn");
    assert_eq!(get(a, "/v2/models/digits8x8_cnn/ready").status, 200);
    assert_eq!(get(a, "/v2/models/digits8x8_cnn/versions/1/ready").status, 200);

    let unknown = get(a, "/v2/models/nope");
    assert_eq!(unknown.status, 404);
    assert!(unknown.error().contains("unknown model 'nope'"), "{}", unknown.error());
    assert!(unknown.error().contains("digits8x8_cnn"));
    assert_eq!(get(a, "/v2/models/nope/ready").status, 404);
    let r = post_json(a, "/v2/models/nope/infer", &json!({"inputs": []}));
    assert_eq!(r.status, 404);
    assert_eq!(get(a, "/no/such/path").status, 404);

    // One good and one bad inference show up in the counters.
    let x = digits_input(1);
    let ok = post_json(a, "/v2/models/digits8x8_cnn/infer", &json!({"inputs": [{"name": "input", "shape": [1, 1, 8, 8], "datatype": "FP32", "data": x}]}));
    assert_eq!(ok.status, 200);
    let bad = post_json(a, "/v2/models/digits8x8_cnn/infer", &json!({"inputs": [{"name": "input", "shape": [1, 1, 8], "datatype": "FP32", "data": [0.0]}]}));
    assert_eq!(bad.status, 400);
    let text = String::from_utf8(get(a, "/metrics").body).unwrap();
    for needle in [
        "uniml_requests_total{model=\"digits8x8_cnn\",status=\"200\"} 1",
        "uniml_requests_total{model=\"digits8x8_cnn\",status=\"400\"} 1",
        "uniml_request_duration_seconds_count{model=\"digits8x8_cnn\"} 2",
        "uniml_request_duration_seconds_bucket{model=\"digits8x8_cnn\",le=\"+Inf\"} 2",
        "uniml_queue_depth 0",
        "uniml_in_flight 0",
        "# TYPE uniml_request_duration_seconds histogram",
    ] {
        assert!(text.contains(needle), "metrics lack {needle:?}:\n{text}");
    }
}

#[test]
fn infer_json_matches_the_facade() {
    let srv = TestServer::start(&[DIGITS], default_cfg());
    let x = digits_input(3);
    let (shape, want) = reference(DIGITS, &[3, 1, 8, 8], &x);
    let r = post_json(
        srv.addr,
        "/v2/models/digits8x8_cnn/infer",
        &json!({"id": "req-42", "inputs": [{"name": "input", "shape": [3, 1, 8, 8], "datatype": "FP32", "data": x}]}),
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let j = r.json();
    assert_eq!(j["id"], "req-42");
    assert_eq!(j["model_name"], "digits8x8_cnn");
    let out = &j["outputs"][0];
    assert_eq!(out["name"], "logits");
    assert_eq!(out["datatype"], "FP32");
    assert_eq!(out["shape"], json!(shape));
    let got: Vec<f32> = out["data"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect();
    assert_eq!(got, want, "JSON floats round-trip exactly");

    // Nested data arrays (row-major) are accepted too; integers are valid FP32 data.
    let nested: Vec<Vec<Vec<Vec<f32>>>> = (0..3).map(|b| vec![(0..8).map(|r| x[b * 64 + r * 8..b * 64 + r * 8 + 8].to_vec()).collect()]).collect();
    let r2 = post_json(
        srv.addr,
        "/v2/models/digits8x8_cnn/versions/1/infer",
        &json!({"inputs": [{"name": "input", "shape": [3, 1, 8, 8], "datatype": "FP32", "data": nested}], "outputs": [{"name": "logits"}]}),
    );
    assert_eq!(r2.status, 200);
    assert_eq!(r2.json()["outputs"], j["outputs"]);
    let ints = post_json(
        srv.addr,
        "/v2/models/digits8x8_cnn/infer",
        &json!({"inputs": [{"name": "input", "shape": [1, 1, 8, 8], "datatype": "FP32", "data": vec![1; 64]}]}),
    );
    assert_eq!(ints.status, 200);
}

#[test]
fn binary_extension_round_trip() {
    let srv = TestServer::start(&[DIGITS], default_cfg());
    let x = digits_input(2);
    let (shape, want) = reference(DIGITS, &[2, 1, 8, 8], &x);
    let bytes: Vec<u8> = x.iter().flat_map(|v| v.to_le_bytes()).collect();
    let header = json!({
        "inputs": [{"name": "input", "shape": [2, 1, 8, 8], "datatype": "FP32", "parameters": {"binary_data_size": bytes.len()}}],
        "outputs": [{"name": "logits", "parameters": {"binary_data": true}}],
    })
    .to_string();
    let mut body = header.clone().into_bytes();
    body.extend_from_slice(&bytes);
    let hl = header.len().to_string();
    let r = request(srv.addr, "POST", "/v2/models/digits8x8_cnn/infer", &[("Content-Type", "application/octet-stream"), ("Inference-Header-Content-Length", &hl)], &body);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.header("content-type"), Some("application/octet-stream"));
    let h: usize = r.header("inference-header-content-length").expect("header length").parse().unwrap();
    let j: Value = serde_json::from_slice(&r.body[..h]).unwrap();
    let out = &j["outputs"][0];
    assert_eq!(out["shape"], json!(shape));
    assert!(out.get("data").is_none());
    let n = out["parameters"]["binary_data_size"].as_u64().unwrap() as usize;
    assert_eq!(n, want.len() * 4);
    assert_eq!(r.body.len(), h + n);
    let got: Vec<f32> = r.body[h..].chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    assert_eq!(got, want);

    // binary_data_output for all outputs, input as JSON.
    let r = post_json(
        srv.addr,
        "/v2/models/digits8x8_cnn/infer",
        &json!({"parameters": {"binary_data_output": true}, "inputs": [{"name": "input", "shape": [2, 1, 8, 8], "datatype": "FP32", "data": x}]}),
    );
    assert_eq!(r.status, 200);
    let h: usize = r.header("inference-header-content-length").unwrap().parse().unwrap();
    let got: Vec<f32> = r.body[h..].chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    assert_eq!(got, want);

    // Binary size that does not match the shape, and a header length past the body.
    let bad = json!({"inputs": [{"name": "input", "shape": [2, 1, 8, 8], "datatype": "FP32", "parameters": {"binary_data_size": 12}}]}).to_string();
    let mut body = bad.clone().into_bytes();
    body.extend_from_slice(&[0u8; 12]);
    let r = request(srv.addr, "POST", "/v2/models/digits8x8_cnn/infer", &[("Inference-Header-Content-Length", &bad.len().to_string())], &body);
    assert_eq!(r.status, 400);
    assert!(r.error().contains("needs 512 bytes"), "{}", r.error());
    let r = request(srv.addr, "POST", "/v2/models/digits8x8_cnn/infer", &[("Inference-Header-Content-Length", "999999")], &body);
    assert_eq!(r.status, 400);
    let r = request(srv.addr, "POST", "/v2/models/digits8x8_cnn/infer", &[("Inference-Header-Content-Length", "abc")], &body);
    assert_eq!(r.status, 400);
}

#[test]
fn client_errors_name_the_input() {
    let srv = TestServer::start(&[DIGITS], default_cfg());
    let a = srv.addr;
    let url = "/v2/models/digits8x8_cnn/infer";
    let x = digits_input(1);
    let cases: Vec<(Value, u16, Vec<&str>)> = vec![
        (json!({"inputs": [{"name": "input", "shape": [1, 1, 8, 9], "datatype": "FP32", "data": vec![0.0; 72]}]}), 400, vec!["input 'input'", "[-1, 1, 8, 8]", "[1, 1, 8, 9]"]),
        (json!({"inputs": [{"name": "input", "shape": [1, 1, 8, 8], "datatype": "INT64", "data": vec![0; 64]}]}), 400, vec!["input 'input'", "FP32", "INT64"]),
        (json!({"inputs": [{"name": "input", "shape": [1, 1, 8, 8], "datatype": "FLOAT", "data": x}]}), 400, vec!["unknown datatype 'FLOAT'"]),
        (json!({"inputs": [{"name": "input", "shape": [1, 1, 8, 8], "datatype": "FP32", "data": vec![0.0; 63]}]}), 400, vec!["64 elements", "63"]),
        (json!({"inputs": [{"name": "input", "shape": [1, 1, 8, 8], "datatype": "FP32", "data": vec![0.0; 65]}]}), 400, vec!["more elements"]),
        (json!({"inputs": [{"name": "input", "shape": [1, 1, 8, 8], "datatype": "FP32", "data": ["a"]}]}), 400, vec!["expected a number"]),
        (json!({"inputs": [{"name": "input", "shape": [1, 1, 8, 8], "datatype": "FP32"}]}), 400, vec!["no data"]),
        (json!({"inputs": [{"name": "image", "shape": [1, 1, 8, 8], "datatype": "FP32", "data": x}]}), 400, vec!["'image'", "inputs are: input"]),
        (json!({"inputs": []}), 400, vec!["'input'", "missing"]),
        (json!({"inputs": [{"name": "input", "shape": [1, -1, 8, 8], "datatype": "FP32", "data": x}]}), 400, vec!["negative"]),
        (json!({"inputs": [{"name": "input", "shape": [1, 1, 8, 8], "datatype": "FP32", "data": x}], "outputs": [{"name": "probs"}]}), 400, vec!["'probs'", "logits"]),
        // A shape whose bytes exceed the limit is refused before anything is allocated.
        (json!({"inputs": [{"name": "input", "shape": [1u64 << 40, 1, 8, 8], "datatype": "FP32", "data": [0.0]}]}), 413, vec!["input 'input'", "bytes"]),
        (json!({"inputs": [{"name": "input", "shape": [1u64 << 62, 1, 8, 8], "datatype": "FP32", "data": [0.0]}]}), 413, vec!["input 'input'"]),
    ];
    for (body, status, needles) in cases {
        let r = post_json(a, url, &body);
        assert_eq!(r.status, status, "{body}: {}", String::from_utf8_lossy(&r.body));
        assert_eq!(r.header("content-type"), Some("application/json"));
        let e = r.error();
        for n in needles {
            assert!(e.contains(n), "error {e:?} lacks {n:?}");
        }
    }
    let gz = request(a, "POST", url, &[("Content-Encoding", "gzip")], b"\x1f\x8b");
    assert_eq!(gz.status, 415);
    assert!(gz.error().contains("Content-Encoding"), "{}", gz.error());
    for raw in [&b"{not json"[..], b"", b"[]", b"{\"inputs\": 3}", b"\xff\xfe"] {
        let r = request(a, "POST", url, &[("Content-Type", "application/json")], raw);
        assert_eq!(r.status, 400, "{:?}", String::from_utf8_lossy(raw));
        assert!(r.error().contains("malformed"), "{}", r.error());
    }
    assert_eq!(get(a, "/v2/health/live").status, 200);
}

#[test]
fn body_limit_gives_413() {
    let srv = TestServer::start(&[DIGITS], Config { max_body_bytes: 4096, ..default_cfg() });
    let x = digits_input(1);
    let ok = post_json(srv.addr, "/v2/models/digits8x8_cnn/infer", &json!({"inputs": [{"name": "input", "shape": [1, 1, 8, 8], "datatype": "FP32", "data": x}]}));
    assert_eq!(ok.status, 200);
    // Declared too large: refused from the headers alone.
    let mut s = connect(srv.addr);
    s.write_all(head("POST", "/v2/models/digits8x8_cnn/infer", &[], Some(1 << 30)).as_bytes()).unwrap();
    let r = read_response(s);
    assert_eq!(r.status, 413);
    assert!(r.error().contains("limit"), "{}", r.error());
    // Chunked, no length: refused once the limit is crossed.
    let mut s = connect(srv.addr);
    s.write_all(head("POST", "/v2/models/digits8x8_cnn/infer", &[("Transfer-Encoding", "chunked")], None).as_bytes()).unwrap();
    let chunk = vec![b' '; 1000];
    for _ in 0..6 {
        let _ = s.write_all(format!("{:x}\r\n", chunk.len()).as_bytes());
        let _ = s.write_all(&chunk);
        let _ = s.write_all(b"\r\n");
    }
    let _ = s.write_all(b"0\r\n\r\n");
    let r = read_response(s);
    assert_eq!(r.status, 413);
    assert_eq!(get(srv.addr, "/v2/health/live").status, 200);
}

/// Opens an inference request and sends only part of its body: it is admitted and holds its place.
fn stalled_request(addr: SocketAddr) -> (TcpStream, Vec<u8>) {
    let x = digits_input(1);
    let body = json!({"inputs": [{"name": "input", "shape": [1, 1, 8, 8], "datatype": "FP32", "data": x}]}).to_string().into_bytes();
    let mut s = connect(addr);
    s.write_all(head("POST", "/v2/models/digits8x8_cnn/infer", &[], Some(body.len())).as_bytes()).unwrap();
    s.write_all(&body[..10]).unwrap();
    s.flush().unwrap();
    (s, body)
}

fn wait_for(what: &str, f: impl Fn() -> bool) {
    let t0 = Instant::now();
    while !f() {
        assert!(t0.elapsed() < Duration::from_secs(20), "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn overload_gives_503_with_retry_after() {
    let srv = TestServer::start(&[DIGITS], Config { max_concurrency: 1, max_queue: 1, ..default_cfg() });
    let (mut s1, b1) = stalled_request(srv.addr);
    let (mut s2, b2) = stalled_request(srv.addr);
    let m = srv.metrics.clone();
    wait_for("two admitted requests", || m.admitted.load(std::sync::atomic::Ordering::SeqCst) == 2);
    let r = post_json(srv.addr, "/v2/models/digits8x8_cnn/infer", &json!({"inputs": []}));
    assert_eq!(r.status, 503);
    assert_eq!(r.header("retry-after"), Some("1"));
    assert!(r.error().contains("overloaded"), "{}", r.error());
    // The admitted ones still complete, and then there is room again.
    s1.write_all(&b1[10..]).unwrap();
    s2.write_all(&b2[10..]).unwrap();
    assert_eq!(read_response(s1).status, 200);
    assert_eq!(read_response(s2).status, 200);
    let x = digits_input(1);
    let r = post_json(srv.addr, "/v2/models/digits8x8_cnn/infer", &json!({"inputs": [{"name": "input", "shape": [1, 1, 8, 8], "datatype": "FP32", "data": x}]}));
    assert_eq!(r.status, 200);
    let text = String::from_utf8(get(srv.addr, "/metrics").body).unwrap();
    assert!(text.contains("uniml_requests_total{model=\"digits8x8_cnn\",status=\"503\"} 1"), "{text}");
}

#[test]
fn slow_clients_time_out_and_vanishing_clients_leave_it_healthy() {
    let srv = TestServer::start(&[DIGITS], Config { timeout: Duration::from_millis(300), header_timeout: Duration::from_millis(500), ..default_cfg() });
    // Body too slow: 408 after the request timeout.
    let (s, _) = stalled_request(srv.addr);
    let t0 = Instant::now();
    let r = read_response(s);
    assert_eq!(r.status, 408);
    assert!(t0.elapsed() < Duration::from_secs(5));
    // Headers too slow: the connection is closed.
    let mut s = connect(srv.addr);
    s.write_all(b"POST /v2/models/digits8x8_cnn/infer HTTP/1.1\r\nHost: x\r\n").unwrap();
    let mut buf = Vec::new();
    let t0 = Instant::now();
    let _ = s.read_to_end(&mut buf);
    assert!(t0.elapsed() < Duration::from_secs(5), "a half-sent header must not hold the connection");
    // Clients that disconnect mid-body, or right after sending a full request.
    for _ in 0..5 {
        let (s, _) = stalled_request(srv.addr);
        drop(s);
    }
    let x = digits_input(4);
    let body = json!({"inputs": [{"name": "input", "shape": [4, 1, 8, 8], "datatype": "FP32", "data": x}]}).to_string();
    for _ in 0..5 {
        let mut s = connect(srv.addr);
        s.write_all(head("POST", "/v2/models/digits8x8_cnn/infer", &[], Some(body.len())).as_bytes()).unwrap();
        s.write_all(body.as_bytes()).unwrap();
        drop(s);
    }
    let m = srv.metrics.clone();
    wait_for("no admitted requests", || m.admitted.load(std::sync::atomic::Ordering::SeqCst) == 0);
    assert_eq!(get(srv.addr, "/v2/health/ready").status, 200);
    let ok = post_json(srv.addr, "/v2/models/digits8x8_cnn/infer", &json!({"inputs": [{"name": "input", "shape": [4, 1, 8, 8], "datatype": "FP32", "data": x}]}));
    assert_eq!(ok.status, 200);
    let text = String::from_utf8(get(srv.addr, "/metrics").body).unwrap();
    assert!(text.contains("uniml_in_flight 0") && text.contains("uniml_queue_depth 0"), "{text}");
}

#[test]
fn graceful_shutdown_finishes_in_flight_requests() {
    let mut srv = TestServer::start(&[DIGITS], default_cfg());
    let (mut s, body) = stalled_request(srv.addr);
    let m = srv.metrics.clone();
    wait_for("the request to be admitted", || m.admitted.load(std::sync::atomic::Ordering::SeqCst) == 1);
    let addr = srv.addr;
    let stop = srv.stop.take().unwrap();
    stop.send(()).unwrap();
    // New connections are refused soon after the signal.
    wait_for("the listener to close", || TcpStream::connect(addr).is_err());
    s.write_all(&body[10..]).unwrap();
    let r = read_response(s);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["outputs"][0]["shape"], json!([1, 10]));
    srv.shutdown();
}

#[test]
fn static_files_with_isolation_headers_and_precompression() {
    let dir = std::env::temp_dir().join(format!("uniml-server-static-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("pkg")).unwrap();
    std::fs::write(dir.join("index.html"), "<!doctype html><title>demo</title>").unwrap();
    std::fs::write(dir.join("pkg/app.js"), "console.log('plain')").unwrap();
    std::fs::write(dir.join("pkg/app.js.br"), "BROTLI").unwrap();
    std::fs::write(dir.join("pkg/app.js.gz"), "GZIP").unwrap();
    std::fs::write(dir.join("pkg/uniml_bg.wasm"), b"\0asm\x01\0\0\0").unwrap();
    let srv = TestServer::start(&[DIGITS], Config { static_dir: Some(dir.clone()), ..default_cfg() });
    let a = srv.addr;

    let index = get(a, "/");
    assert_eq!(index.status, 200);
    assert!(index.header("content-type").unwrap().starts_with("text/html"));
    assert_eq!(index.header("cross-origin-opener-policy"), Some("same-origin"));
    assert_eq!(index.header("cross-origin-embedder-policy"), Some("require-corp"));

    let wasm = get(a, "/pkg/uniml_bg.wasm");
    assert_eq!(wasm.status, 200);
    assert_eq!(wasm.header("content-type"), Some("application/wasm"));
    assert_eq!(wasm.body, b"\0asm\x01\0\0\0");

    let br = request(a, "GET", "/pkg/app.js", &[("Accept-Encoding", "gzip, deflate, br")], &[]);
    assert_eq!(br.header("content-encoding"), Some("br"));
    assert!(br.header("content-type").unwrap().contains("javascript"));
    assert_eq!(br.body, b"BROTLI");
    let gz = request(a, "GET", "/pkg/app.js", &[("Accept-Encoding", "gzip")], &[]);
    assert_eq!(gz.header("content-encoding"), Some("gzip"));
    assert_eq!(gz.body, b"GZIP");
    let plain = get(a, "/pkg/app.js");
    assert_eq!(plain.header("content-encoding"), None);
    assert_eq!(plain.body, b"console.log('plain')");

    assert_eq!(get(a, "/missing.js").status, 404);
    assert_eq!(get(a, "/../../../etc/passwd").status, 404);
    assert_eq!(get(a, "/pkg/%2e%2e/%2e%2e/etc/passwd").status, 404);
    // The API still answers, with the same headers.
    let live = get(a, "/v2/health/live");
    assert_eq!(live.status, 200);
    assert_eq!(live.header("cross-origin-embedder-policy"), Some("require-corp"));
    drop(srv);
    let _ = std::fs::remove_dir_all(&dir);
}

const EFFNET: &str = "models/efficientnet_lite0.onnx";

/// A binary-extension request for EfficientNet-Lite0 (batch×3×224×224 zeros): slow enough to catch in flight.
fn effnet_request(batch: usize) -> Vec<u8> {
    let bytes = vec![0u8; batch * 3 * 224 * 224 * 4];
    let header = json!({"inputs": [{"name": "input", "shape": [batch, 3, 224, 224], "datatype": "FP32", "parameters": {"binary_data_size": bytes.len()}}]}).to_string();
    let mut body = header.clone().into_bytes();
    body.extend_from_slice(&bytes);
    let mut req = head("POST", "/v2/models/efficientnet_lite0/infer", &[("Inference-Header-Content-Length", &header.len().to_string())], Some(body.len())).into_bytes();
    req.extend_from_slice(&body);
    req
}

#[test]
fn client_leaving_during_inference_frees_the_slot() {
    let srv = TestServer::start(&[EFFNET], Config { max_concurrency: 1, max_queue: 0, ..default_cfg() });
    let m = srv.metrics.clone();
    let mut s = connect(srv.addr);
    // A batch of 4 keeps the inference running long enough to be seen.
    s.write_all(&effnet_request(4)).unwrap();
    wait_for("the inference to start", || m.running.load(std::sync::atomic::Ordering::SeqCst) == 1);
    drop(s);
    wait_for("the slot to be freed", || m.admitted.load(std::sync::atomic::Ordering::SeqCst) == 0);
    let text = String::from_utf8(get(srv.addr, "/metrics").body).unwrap();
    assert!(
        text.contains("uniml_requests_total{model=\"efficientnet_lite0\",status=\"499\"} 1") || text.contains("uniml_requests_total{model=\"efficientnet_lite0\",status=\"200\"} 1"),
        "{text}"
    );
    let mut s = connect(srv.addr);
    s.write_all(&effnet_request(1)).unwrap();
    let r = read_response(s);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["outputs"][0]["shape"], json!([1, 1000]));
}

#[test]
fn slow_inference_gives_504_and_keeps_its_slot_until_done() {
    let srv = TestServer::start(&[EFFNET], Config { max_concurrency: 1, max_queue: 4, timeout: Duration::from_millis(120), ..default_cfg() });
    let m = srv.metrics.clone();
    // A batch of 12: the body (7.2 MB over loopback) arrives within milliseconds and
    // the inference takes well over 120 ms even at onnxruntime's speed (12 × ~12 ms);
    // under heavy machine load the body may be late instead (408), so try a few times.
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let mut s = connect(srv.addr);
        s.write_all(&effnet_request(12)).unwrap();
        let r = read_response(s);
        statuses.push(r.status);
        if r.status == 504 {
            assert!(r.error().contains("did not finish"), "{}", r.error());
            break;
        }
        assert_eq!(r.status, 408, "{}", String::from_utf8_lossy(&r.body));
    }
    assert_eq!(statuses.last(), Some(&504), "{statuses:?}");
    wait_for("the timed-out inference to end", || m.admitted.load(std::sync::atomic::Ordering::SeqCst) == 0 && m.running.load(std::sync::atomic::Ordering::SeqCst) == 0);
    assert_eq!(get(srv.addr, "/v2/health/ready").status, 200);
}
