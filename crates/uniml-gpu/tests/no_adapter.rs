//! Without an adapter, opening the GPU is a typed `Error::Backend` naming what
//! was tried, never a panic. (Own test binary: it sets process-wide env vars.)

#[test]
fn no_adapter_is_a_clear_backend_error() {
    // Metal does not exist on Linux/Windows; elsewhere an absurd adapter name does the same.
    std::env::set_var("WGPU_ADAPTER_NAME", "no-such-adapter-uniml");
    let err = uniml_gpu::GpuContext::new().expect_err("no adapter has that name");
    match &err {
        uniml_data::Error::Backend { backend, message } => {
            assert_eq!(backend, "gpu");
            assert!(message.contains("no GPU adapter") && message.contains("backends tried"), "{message}");
        }
        other => panic!("expected Error::Backend, got {other:?}"),
    }
}
