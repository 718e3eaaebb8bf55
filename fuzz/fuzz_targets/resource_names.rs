//! Resource names: no panic, no INTERNAL, no second name for one resource.
#![no_main]

use group_service::grpc::properties;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Err(broken) = properties::resource_name(text) {
        panic!("{broken}");
    }
});
