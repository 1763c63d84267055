//! `uniml serve`: an Open Inference Protocol v2 (KServe / Triton) REST server
//! over the [`uniml`] facade.
//!
//! - `GET /v2`, `/v2/health/live`, `/v2/health/ready`, `/v2/models/{name}`,
//!   `/v2/models/{name}/ready`, `POST /v2/models/{name}/infer` (JSON tensors and
//!   the binary tensor data extension), the same under `/versions/{version}`;
//! - `GET /metrics` (Prometheus text);
//! - with a static directory, every other path is a file from it, sent with
//!   `Cross-Origin-Opener-Policy`/`-Embedder-Policy` (for `SharedArrayBuffer`)
//!   and precompressed `.br`/`.gz` siblings when the client accepts them.
//!
//! Inference runs on tokio's blocking pool, never on the reactor. At most
//! `max_concurrency` inferences run at once and `max_queue` more wait; past
//! that a request gets `503` with `Retry-After`. Bodies are limited before they
//! are buffered, and each tensor's declared size is checked before allocation.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::pin;
use std::task::Poll;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use http_body_util::BodyExt;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use uniml::{Error, Session, SessionOptions};

mod metrics;
pub mod oip;

pub use metrics::Metrics;
use metrics::{Admitted, Running};

/// Server settings (the `uniml serve` flags).
#[derive(Clone, Debug)]
pub struct Config {
    pub host: String,
    /// 0 picks a free port.
    pub port: u16,
    /// Inferences that run at once (each on a blocking thread).
    pub max_concurrency: usize,
    /// Requests that may wait for a slot; beyond it: 503 + Retry-After.
    pub max_queue: usize,
    /// Largest request body; larger ones get 413 before being buffered.
    pub max_body_bytes: usize,
    /// Per-request deadline: reading the body, waiting for a slot and inference.
    pub timeout: Duration,
    /// Time a client gets to send a request's headers.
    pub header_timeout: Duration,
    /// Serve a web app from this directory (COOP/COEP, precompressed siblings).
    pub static_dir: Option<PathBuf>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            host: "127.0.0.1".into(),
            port: 8000,
            max_concurrency: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            max_queue: 64,
            max_body_bytes: 64 << 20,
            timeout: Duration::from_secs(30),
            header_timeout: Duration::from_secs(10),
            static_dir: None,
        }
    }
}

/// A loaded model: its name in URLs (the file stem) and its session.
pub struct Model {
    pub name: String,
    pub session: Arc<Session>,
}

/// Loads every model file; the model name is the file stem (must be unique).
pub fn load_models(paths: &[PathBuf], options: &SessionOptions) -> Result<Vec<Model>, String> {
    let mut out: Vec<Model> = Vec::new();
    for p in paths {
        let name = p.file_stem().map(|s| s.to_string_lossy().into_owned()).filter(|s| !s.is_empty()).ok_or_else(|| format!("{}: no file name", p.display()))?;
        if out.iter().any(|m| m.name == name) {
            return Err(format!("two models are named '{name}' (the name is the file stem); rename one"));
        }
        let session = Session::from_file(p, options.clone()).map_err(|e| format!("{}: {e}", p.display()))?;
        out.push(Model { name, session: Arc::new(session) });
    }
    Ok(out)
}

struct AppState {
    models: BTreeMap<String, Arc<Session>>,
    cfg: Config,
    metrics: Arc<Metrics>,
    slots: Arc<Semaphore>,
    draining: AtomicBool,
}

/// A bound server, not yet accepting.
pub struct Server {
    listener: TcpListener,
    state: Arc<AppState>,
    router: Router,
}

impl Server {
    /// Binds `cfg.host:cfg.port` (port 0: any free port).
    pub async fn bind(models: Vec<Model>, cfg: Config) -> std::io::Result<Server> {
        let listener = TcpListener::bind((cfg.host.as_str(), cfg.port)).await?;
        Self::from_listener(listener, models, cfg)
    }

    pub fn from_listener(listener: TcpListener, models: Vec<Model>, mut cfg: Config) -> std::io::Result<Server> {
        cfg.max_concurrency = cfg.max_concurrency.max(1);
        if let Some(dir) = &cfg.static_dir {
            if !dir.is_dir() {
                return Err(std::io::Error::new(std::io::ErrorKind::NotFound, format!("static directory {} does not exist", dir.display())));
            }
        }
        let state = Arc::new(AppState {
            models: models.into_iter().map(|m| (m.name, m.session)).collect(),
            slots: Arc::new(Semaphore::new(cfg.max_concurrency)),
            metrics: Arc::new(Metrics::default()),
            draining: AtomicBool::new(false),
            cfg,
        });
        let router = router(state.clone());
        Ok(Server { listener, state, router })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    pub fn metrics(&self) -> Arc<Metrics> {
        self.state.metrics.clone()
    }

    /// Serves until `shutdown` completes, then stops accepting, lets every
    /// in-flight request finish (bounded by the request timeout plus 5 s) and returns.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) -> std::io::Result<()> {
        let Server { listener, state, router } = self;
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut conns = JoinSet::new();
        let mut shutdown = pin!(shutdown);
        loop {
            match first(listener.accept(), shutdown.as_mut()).await {
                Either::Left(Ok((stream, _peer))) => {
                    let _ = stream.set_nodelay(true);
                    conns.spawn(connection(stream, router.clone(), stop_rx.clone(), state.cfg.header_timeout));
                }
                // Out of file descriptors and the like: back off instead of spinning.
                Either::Left(Err(_)) => tokio::time::sleep(Duration::from_millis(20)).await,
                Either::Right(()) => break,
            }
            while conns.try_join_next().is_some() {}
        }
        state.draining.store(true, Ordering::SeqCst);
        drop(listener);
        let _ = stop_tx.send(true);
        let drain = async { while conns.join_next().await.is_some() {} };
        if tokio::time::timeout(state.cfg.timeout + Duration::from_secs(5), drain).await.is_err() {
            conns.abort_all();
        }
        Ok(())
    }
}

async fn connection(stream: tokio::net::TcpStream, router: Router, mut stop: watch::Receiver<bool>, header_timeout: Duration) {
    use hyper_util::rt::{TokioIo, TokioTimer};
    let svc = hyper_util::service::TowerToHyperService::new(router);
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(header_timeout);
    let mut conn = pin!(builder.serve_connection(TokioIo::new(stream), svc));
    if let Either::Left(_) = first(conn.as_mut(), stop.wait_for(|s| *s)).await {
        return;
    }
    // Shutting down: finish the request in progress (if any), then close.
    conn.as_mut().graceful_shutdown();
    let _ = conn.await;
}

enum Either<A, B> {
    Left(A),
    Right(B),
}

/// Polls both futures; the output of the first to finish (`a` wins ties).
async fn first<A: Future, B: Future>(a: A, b: B) -> Either<A::Output, B::Output> {
    let (mut a, mut b) = (pin!(a), pin!(b));
    std::future::poll_fn(|cx| {
        if let Poll::Ready(v) = a.as_mut().poll(cx) {
            return Poll::Ready(Either::Left(v));
        }
        if let Poll::Ready(v) = b.as_mut().poll(cx) {
            return Poll::Ready(Either::Right(v));
        }
        Poll::Pending
    })
    .await
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    first(ctrl_c, term).await;
}

/// The `uniml serve` entry point: loads the models, binds, prints the URL on
/// stdout once ready, serves until SIGINT/SIGTERM.
pub fn serve_blocking(paths: &[PathBuf], cfg: Config, options: SessionOptions) -> Result<(), String> {
    let t0 = Instant::now();
    let models = load_models(paths, &options)?;
    for m in &models {
        let io = |v: &[uniml::IoInfo]| v.iter().map(|i| i.to_string()).collect::<Vec<_>>().join(", ");
        eprintln!("uniml serve: model '{}' ({}) -> ({})", m.name, io(m.session.inputs()), io(m.session.outputs()));
    }
    let workers = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1).min(4);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(workers).enable_all().build().map_err(|e| format!("cannot start the runtime: {e}"))?;
    rt.block_on(async move {
        let server = Server::bind(models, cfg.clone()).await.map_err(|e| format!("cannot listen on {}:{}: {e}", cfg.host, cfg.port))?;
        let addr = server.local_addr().map_err(|e| e.to_string())?;
        eprintln!(
            "uniml serve: ready in {:.1} s; max concurrency {}, queue {}, body limit {} bytes, timeout {} ms{}",
            t0.elapsed().as_secs_f64(),
            cfg.max_concurrency.max(1),
            cfg.max_queue,
            cfg.max_body_bytes,
            cfg.timeout.as_millis(),
            cfg.static_dir.as_ref().map(|d| format!(", static files from {}", d.display())).unwrap_or_default()
        );
        println!("uniml serve: listening on http://{addr}");
        use std::io::Write;
        let _ = std::io::stdout().flush();
        server.run(shutdown_signal()).await.map_err(|e| e.to_string())?;
        eprintln!("uniml serve: shut down");
        Ok(())
    })
}

fn router(state: Arc<AppState>) -> Router {
    let api = Router::new()
        .route("/v2", get(server_metadata))
        .route("/v2/health/live", get(|| async { StatusCode::OK }))
        .route("/v2/health/ready", get(server_ready))
        .route("/v2/models/{name}", get(model_metadata))
        .route("/v2/models/{name}/ready", get(model_ready))
        .route("/v2/models/{name}/infer", post(infer))
        .route("/v2/models/{name}/versions/{version}", get(model_metadata))
        .route("/v2/models/{name}/versions/{version}/ready", get(model_ready))
        .route("/v2/models/{name}/versions/{version}/infer", post(infer))
        .route("/metrics", get(metrics_text));
    let static_dir = state.cfg.static_dir.clone();
    let api = api.with_state(state);
    match static_dir {
        Some(dir) => {
            use tower_http::set_header::SetResponseHeaderLayer;
            let files = tower_http::services::ServeDir::new(dir).precompressed_br().precompressed_gzip().append_index_html_on_directories(true);
            api.fallback_service(files)
                .layer(SetResponseHeaderLayer::overriding(HeaderName::from_static("cross-origin-opener-policy"), HeaderValue::from_static("same-origin")))
                .layer(SetResponseHeaderLayer::overriding(HeaderName::from_static("cross-origin-embedder-policy"), HeaderValue::from_static("require-corp")))
        }
        None => api.fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "no such endpoint").into_response() }),
    }
}

/// An OIP-style error: `{"error": "..."}` with a status code.
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    message: String,
    retry_after: bool,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError { status, message: message.into(), retry_after: false }
    }
    fn overloaded(message: impl Into<String>) -> ApiError {
        ApiError { status: StatusCode::SERVICE_UNAVAILABLE, message: message.into(), retry_after: true }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({"error": self.message}).to_string();
        let mut r = (self.status, [(header::CONTENT_TYPE, "application/json")], body).into_response();
        if self.retry_after {
            r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        r
    }
}

impl From<oip::DecodeError> for ApiError {
    fn from(e: oip::DecodeError) -> ApiError {
        match e {
            oip::DecodeError::Bad(m) => ApiError::new(StatusCode::BAD_REQUEST, m),
            oip::DecodeError::TooLarge(m) => ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, m),
        }
    }
}

/// Engine errors: input problems are the client's (400), memory limits 413, the rest 500.
fn engine_error(e: Error) -> ApiError {
    let status = match &e {
        Error::Input { .. } | Error::DType { .. } | Error::Shape(_) | Error::Node { .. } => StatusCode::BAD_REQUEST,
        Error::MemoryLimit { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    ApiError::new(status, e.to_string())
}

fn json(v: serde_json::Value) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], v.to_string()).into_response()
}

type Params = Path<HashMap<String, String>>;

fn model<'a>(st: &'a AppState, params: &HashMap<String, String>) -> Result<(&'a str, &'a Arc<Session>), ApiError> {
    let name = params.get("name").map(String::as_str).unwrap_or("");
    st.models.get_key_value(name).map(|(k, v)| (k.as_str(), v)).ok_or_else(|| {
        let known: Vec<&str> = st.models.keys().map(String::as_str).collect();
        ApiError::new(StatusCode::NOT_FOUND, format!("unknown model '{name}' (models: {})", known.join(", ")))
    })
}

async fn server_metadata() -> Response {
    json(serde_json::json!({"name": "uniml", "version": env!("CARGO_PKG_VERSION"), "extensions": ["binary_tensor_data"]}))
}

async fn server_ready(State(st): State<Arc<AppState>>) -> StatusCode {
    if st.draining.load(Ordering::SeqCst) {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    }
}

async fn model_metadata(State(st): State<Arc<AppState>>, Path(p): Params) -> Result<Response, ApiError> {
    let (name, session) = model(&st, &p)?;
    Ok(json(serde_json::json!({
        "name": name,
        "versions": ["1"],
        "platform": "onnx_uniml",
        "inputs": session.inputs().iter().map(oip::tensor_metadata).collect::<Vec<_>>(),
        "outputs": session.outputs().iter().map(oip::tensor_metadata).collect::<Vec<_>>(),
    })))
}

async fn model_ready(State(st): State<Arc<AppState>>, Path(p): Params) -> Result<StatusCode, ApiError> {
    model(&st, &p)?;
    Ok(if st.draining.load(Ordering::SeqCst) { StatusCode::SERVICE_UNAVAILABLE } else { StatusCode::OK })
}

async fn metrics_text(State(st): State<Arc<AppState>>) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], st.metrics.render(st.cfg.max_concurrency, st.cfg.max_queue)).into_response()
}

/// Records the request's status and latency when dropped; a request whose
/// client went away before the answer counts as status 499.
struct Record {
    metrics: Arc<Metrics>,
    model: String,
    start: Instant,
    status: u16,
}

impl Drop for Record {
    fn drop(&mut self) {
        self.metrics.record(&self.model, self.status, self.start.elapsed());
    }
}

async fn infer(State(st): State<Arc<AppState>>, Path(p): Params, headers: HeaderMap, body: Body) -> Response {
    let limit = st.cfg.max_body_bytes;
    let (name, session) = match model(&st, &p) {
        Ok((n, s)) => (n.to_string(), s.clone()),
        Err(e) => return drain_then(e, body, limit).await,
    };
    let mut rec = Record { metrics: st.metrics.clone(), model: name.clone(), start: Instant::now(), status: 499 };
    let resp = match admit(&st, &headers) {
        Ok((header_len, admitted)) => match infer_inner(&st, name, session, header_len, admitted, body).await {
            Ok(r) => r,
            Err(e) => e.into_response(),
        },
        Err((e, false)) => e.into_response(),
        Err((e, true)) => drain_then(e, body, limit).await,
    };
    rec.status = resp.status().as_u16();
    resp
}

/// Reads and discards a rejected request's body (bounded by the body limit and
/// 2 s) before answering, so the client sees the answer rather than a reset
/// connection while it is still sending.
async fn drain_then(e: ApiError, mut body: Body, limit: usize) -> Response {
    let drain = async {
        let mut seen = 0usize;
        while let Some(Ok(frame)) = body.frame().await {
            seen += frame.data_ref().map(|d| d.len()).unwrap_or(0);
            if seen > limit {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), drain).await;
    e.into_response()
}

/// Checks made from the headers alone, then admission (503 when full).
/// The error's flag says whether the body is worth draining.
fn admit(st: &Arc<AppState>, headers: &HeaderMap) -> Result<(Option<usize>, Admitted), (ApiError, bool)> {
    let limit = st.cfg.max_body_bytes;
    if let Some(len) = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok()) {
        if len > limit as u64 {
            let e = ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, format!("request body of {len} bytes is over the limit of {limit} bytes (--max-body-bytes)"));
            return Err((e, false));
        }
    }
    if let Some(enc) = headers.get(header::CONTENT_ENCODING) {
        if !enc.as_bytes().eq_ignore_ascii_case(b"identity") {
            let e = ApiError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, format!("Content-Encoding {enc:?} is not supported; send the request uncompressed"));
            return Err((e, true));
        }
    }
    let header_len = match headers.get("inference-header-content-length") {
        None => None,
        Some(v) => Some(v.to_str().ok().and_then(|s| s.trim().parse::<usize>().ok()).ok_or_else(|| {
            (ApiError::new(StatusCode::BAD_REQUEST, "Inference-Header-Content-Length is not a non-negative integer"), true)
        })?),
    };
    let admitted = Admitted::try_new(&st.metrics, st.cfg.max_concurrency + st.cfg.max_queue).ok_or_else(|| {
        let e = ApiError::overloaded(format!("server overloaded: {} inferences running and {} queued; retry later", st.cfg.max_concurrency, st.cfg.max_queue));
        (e, true)
    })?;
    Ok((header_len, admitted))
}

async fn infer_inner(st: &Arc<AppState>, name: String, session: Arc<Session>, header_len: Option<usize>, admitted: Admitted, body: Body) -> Result<Response, ApiError> {
    let limit = st.cfg.max_body_bytes;
    let deadline = tokio::time::Instant::now() + st.cfg.timeout;
    let timeout_ms = st.cfg.timeout.as_millis();
    let bytes = match tokio::time::timeout_at(deadline, http_body_util::Limited::new(body, limit).collect()).await {
        Err(_) => return Err(ApiError::new(StatusCode::REQUEST_TIMEOUT, format!("the request body did not arrive within the timeout of {timeout_ms} ms"))),
        Ok(Err(e)) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => {
            return Err(ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, format!("request body is over the limit of {limit} bytes (--max-body-bytes)")))
        }
        Ok(Err(e)) => return Err(ApiError::new(StatusCode::BAD_REQUEST, format!("cannot read the request body: {e}"))),
        Ok(Ok(c)) => c.to_bytes(),
    };
    let permit = match tokio::time::timeout_at(deadline, st.slots.clone().acquire_owned()).await {
        Err(_) => return Err(ApiError::overloaded(format!("no inference slot became free within the timeout of {timeout_ms} ms"))),
        Ok(Err(_)) => return Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "the server is shutting down")),
        Ok(Ok(p)) => p,
    };
    let metrics = st.metrics.clone();
    // The job owns the slot and the admission: a request that times out (or whose
    // client goes away) keeps counting until its inference really ends.
    let job = tokio::task::spawn_blocking(move || -> Result<oip::Encoded, ApiError> {
        let _permit = permit;
        let _admitted = admitted;
        let _running = Running::new(&metrics);
        let req = oip::decode_request(&bytes, header_len, session.inputs(), session.outputs(), limit)?;
        drop(bytes);
        let views: Vec<(&str, uniml::TensorView)> = req.inputs.iter().map(|(n, t)| (n.as_str(), t.view())).collect();
        let results = session.run(&views).map_err(engine_error)?;
        oip::encode_response(&name, req.id.as_ref(), &results, &req.outputs).map_err(engine_error)
    });
    let enc = match tokio::time::timeout_at(deadline, job).await {
        Err(_) => return Err(ApiError::new(StatusCode::GATEWAY_TIMEOUT, format!("inference did not finish within the timeout of {timeout_ms} ms"))),
        Ok(Err(e)) => return Err(ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("inference failed: {e}"))),
        Ok(Ok(r)) => r?,
    };
    let mut resp = Response::new(Body::from(enc.body));
    match enc.header_len {
        Some(h) => {
            resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
            resp.headers_mut().insert("inference-header-content-length", HeaderValue::from(h));
        }
        None => {
            resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
    }
    Ok(resp)
}
