//! Model bytes read straight out of JS memory: `WasmSession::new` decodes the protobuf from the
//! caller's `Uint8Array` in windows (`Session::from_reader`), so the model file is never copied
//! whole into the wasm heap beside the decoded model and the weights (that copy made MiniLM's
//! load peak at 3.3x its weights).

use js_sys::Uint8Array;

/// `std::io::Read + Seek` over a JS `Uint8Array` (which stays owned by JS).
pub struct JsBytes {
    bytes: Uint8Array,
    pos: u32,
    len: u32,
}

impl JsBytes {
    pub fn new(bytes: &Uint8Array) -> Self {
        JsBytes { bytes: bytes.clone(), pos: 0, len: bytes.length() }
    }
}

impl std::io::Read for JsBytes {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = (self.len - self.pos).min(u32::try_from(buf.len()).unwrap_or(u32::MAX));
        if n > 0 {
            self.bytes.subarray(self.pos, self.pos + n).copy_to(&mut buf[..n as usize]);
            self.pos += n;
        }
        Ok(n as usize)
    }
}

impl std::io::Seek for JsBytes {
    fn seek(&mut self, to: std::io::SeekFrom) -> std::io::Result<u64> {
        let at = match to {
            std::io::SeekFrom::Start(p) => p as i128,
            std::io::SeekFrom::End(d) => self.len as i128 + d as i128,
            std::io::SeekFrom::Current(d) => self.pos as i128 + d as i128,
        };
        if at < 0 || at > self.len as i128 {
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("seek to {at} outside 0..={}", self.len)));
        }
        self.pos = at as u32;
        Ok(at as u64)
    }
}
