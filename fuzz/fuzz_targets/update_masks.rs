//! Update masks: any paths convert or answer INVALID_ARGUMENT.
#![no_main]

use group_service::grpc::properties;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|paths: Vec<String>| {
    if let Err(broken) = properties::update_mask(paths) {
        panic!("{broken}");
    }
});
