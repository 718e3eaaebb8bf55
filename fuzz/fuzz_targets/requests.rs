//! Every request: bytes decoded by the server's codec and converted as its handler does; the
//! first byte picks the request (`properties::REQUESTS`).
#![no_main]

use group_service::grpc::properties;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((which, bytes)) = data.split_first() else {
        return;
    };
    if let Err(broken) = properties::request(usize::from(*which), bytes) {
        panic!("{broken}");
    }
});
