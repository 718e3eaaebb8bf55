//! JWKS documents: any bytes load as a key set or are refused, without a panic.
#![no_main]

use group_service::grpc::properties;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    if let Err(broken) = properties::jwks_document(bytes) {
        panic!("{broken}");
    }
});
