//! Fuzzes the whole load path: protobuf decoding, import, passes and planning.
//! Any panic, abort, hang or huge allocation is a bug; errors are fine.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let opts = uniml::SessionOptions::default().with_threads(1).with_memory_limit(64 << 20);
    let _ = uniml::ModelInfo::from_bytes(data);
    let _ = uniml::Session::from_bytes(data, opts);
});
