//! Page tokens: anything but an issued token of the same scope is INVALID_ARGUMENT.
#![no_main]

use group_service::grpc::properties;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (&str, i32, i64)| {
    let (token, size, after) = input;
    if let Err(broken) = properties::page_token(token, size, after) {
        panic!("{broken}");
    }
});
