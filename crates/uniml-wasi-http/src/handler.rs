//! The `wasi:http/incoming-handler` export: request bytes in, [`api::route`] out.

use crate::api;

use std::io::Write as _;

use wasi::http::types::{Fields, IncomingBody, IncomingRequest, Method, OutgoingBody, OutgoingResponse, ResponseOutparam};

wasi::http::proxy::export!(Handler);

struct Handler;

/// Requests larger than this are refused with 413.
const MAX_BODY: usize = 32 << 20;

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

fn read_body(request: IncomingRequest) -> Result<Vec<u8>, api::Reply> {
    let body = request.consume().map_err(|_| api::Reply::error(500, "other", "cannot read the request body"))?;
    let mut out = Vec::new();
    {
        let stream = body.stream().map_err(|_| api::Reply::error(500, "other", "cannot read the request body"))?;
        loop {
            match stream.blocking_read(1 << 16) {
                Ok(chunk) => {
                    out.extend_from_slice(&chunk);
                    if out.len() > MAX_BODY {
                        return Err(api::Reply::error(413, "too-large", &format!("request body over {MAX_BODY} bytes")));
                    }
                }
                Err(wasi::io::streams::StreamError::Closed) => break,
                Err(e) => return Err(api::Reply::error(400, "other", &format!("reading the request body: {e:?}"))),
            }
        }
    }
    let _ = IncomingBody::finish(body);
    Ok(out)
}

fn send(out: ResponseOutparam, reply: api::Reply) {
    let headers = Fields::new();
    let _ = headers.set(&"content-type".to_string(), &[reply.content_type.as_bytes().to_vec()]);
    let _ = headers.set(&"content-length".to_string(), &[reply.body.len().to_string().into_bytes()]);
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
