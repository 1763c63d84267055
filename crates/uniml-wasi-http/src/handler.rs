//! The `wasi:http/incoming-handler` export: request bytes in, [`api::route`] out.

use crate::api;

use std::io::Write as _;

use wasi::http::types::{Fields, IncomingBody, IncomingRequest, Method, OutgoingBody, OutgoingResponse, ResponseOutparam};

wasi::http::proxy::export!(Handler);

struct Handler;

impl wasi::exports::http::incoming_handler::Guest for Handler {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let method = match request.method() {
            Method::Get => "GET".to_string(),
            Method::Post => "POST".to_string(),
            Method::Other(m) => m,
            m => format!("{m:?}").to_uppercase(),
        };
        let path_q = request.path_with_query().unwrap_or_else(|| "/".into());
        let path = path_q.split('?').next().unwrap_or("/").to_string();
        let reply = match read_body(request) {
            Ok(body) => api::route(&method, &path, &body),
            Err(r) => r,
        };
        send(response_out, reply);
    }
}

/// Reads the whole body. Past `api::MAX_BODY` the rest is read and dropped (so the client sees
/// the 413 instead of a reset connection), up to 4× the limit.
fn read_body(request: IncomingRequest) -> Result<Vec<u8>, api::Reply> {
    let cannot = || api::Reply::error(500, "other", "cannot read the request body");
    let body = request.consume().map_err(|_| cannot())?;
    let mut out = Vec::new();
    let mut total = 0usize;
    {
        let stream = body.stream().map_err(|_| cannot())?;
        loop {
            match stream.blocking_read(1 << 16) {
                Ok(chunk) => {
                    total += chunk.len();
                    if total <= api::MAX_BODY {
                        out.extend_from_slice(&chunk);
                    } else if total > 4 * api::MAX_BODY {
                        break;
                    }
                }
                Err(wasi::io::streams::StreamError::Closed) => break,
                Err(e) => return Err(api::Reply::error(400, "other", &format!("reading the request body: {e:?}"))),
            }
        }
    }
    let _ = IncomingBody::finish(body);
    if total > api::MAX_BODY {
        return Err(api::Reply::error(413, "too-large", &format!("request body of {total}+ bytes is over {} bytes", api::MAX_BODY)));
    }
    Ok(out)
}

fn send(out: ResponseOutparam, reply: api::Reply) {
    let headers = Fields::new();
    let _ = headers.set("content-type", &[reply.content_type.as_bytes().to_vec()]);
    let _ = headers.set("content-length", &[reply.body.len().to_string().into_bytes()]);
    let resp = OutgoingResponse::new(headers);
    let _ = resp.set_status_code(reply.status);
    let Ok(body) = resp.body() else { return };
    ResponseOutparam::set(out, Ok(resp));
    if let Ok(mut stream) = body.write() {
        let _ = stream.write_all(&reply.body);
        let _ = stream.flush();
    }
    let _ = OutgoingBody::finish(body, None);
}
