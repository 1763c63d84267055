//! uniml as a WebAssembly component: the WIT world `uniml:inference/inference`
//! (`wit/inference.wit`) implemented over the `uniml` facade.
//!
//! Built for `wasm32-wasip2` by `cargo xtask wasi`; rustc emits the component
//! directly. Natively this crate is empty.
#![cfg(target_arch = "wasm32")]

mod convert;

use exports::uniml::inference::runtime::{Guest, GuestSession, Session};
use exports::uniml::inference::types::{Error, IoInfo, SessionOptions, Tensor};

wit_bindgen::generate!({
    path: "../../wit",
    world: "inference",
});

struct Component;

/// One loaded model. Sessions are used from one thread (components are single-threaded).
pub struct SessionImpl {
    session: uniml::Session,
}

/// Default memory limit inside the component: well below the 4 GiB a 32-bit linear memory can
/// address, so that oversized models fail with `memory-limit` instead of a failed allocation (a trap).
const DEFAULT_MEMORY_LIMIT: u64 = 1 << 30;

fn options(o: &SessionOptions) -> uniml::SessionOptions {
    let mut opts = uniml::SessionOptions::default().with_threads(1).with_memory_limit(DEFAULT_MEMORY_LIMIT);
    if let Some(limit) = o.memory_limit_bytes {
        opts = opts.with_memory_limit(limit);
    }
    opts.optimize = o.optimize;
    opts
}

fn load(bytes: &[u8], o: &SessionOptions) -> Result<Session, Error> {
    let session = uniml::Session::from_bytes(bytes, options(o)).map_err(|e| convert::error(e, None))?;
    Ok(Session::new(SessionImpl { session }))
}

impl GuestSession for SessionImpl {
    fn load(model: Vec<u8>) -> Result<Session, Error> {
        load(&model, &SessionOptions { memory_limit_bytes: None, optimize: true })
    }

    fn load_with_options(model: Vec<u8>, options: SessionOptions) -> Result<Session, Error> {
        load(&model, &options)
    }

    fn load_file(path: String, options: SessionOptions) -> Result<Session, Error> {
        let bytes = std::fs::read(&path).map_err(|e| Error::Other(format!("cannot read {path}: {e} (is its directory preopened?)")))?;
        load(&bytes, &options)
    }

    fn inputs(&self) -> Vec<IoInfo> {
        self.session.inputs().iter().map(convert::io_info).collect()
    }

    fn outputs(&self) -> Vec<IoInfo> {
        self.session.outputs().iter().map(convert::io_info).collect()
    }

    fn run(&self, inputs: Vec<(String, Tensor)>) -> Result<Vec<(String, Tensor)>, Error> {
        let tensors = inputs
            .iter()
            .map(|(name, t)| convert::tensor_in(name, t).map(|t| (name.as_str(), t)))
            .collect::<Result<Vec<_>, Error>>()?;
        let views: Vec<(&str, uniml::TensorView)> = tensors.iter().map(|(n, t)| (*n, t.view())).collect();
        let outs = self.session.run(&views).map_err(|e| convert::error(e, Some((&self.session, &tensors))))?;
        outs.into_iter().map(|(n, t)| convert::tensor_out(&n, &t).map(|t| (n, t))).collect()
    }
}

impl Guest for Component {
    type Session = SessionImpl;

    fn error_message(err: Error) -> String {
        convert::message(&err)
    }

    fn version() -> String {
        env!("CARGO_PKG_VERSION").to_string()
    }
}

export!(Component);
