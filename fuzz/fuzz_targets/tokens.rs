//! Bearer tokens: any text is UNAUTHENTICATED without the signature; any header and claims,
//! correctly signed, pass only when valid by every rule, as the caller they name. The first
//! byte picks the header (a fixed HS256 one or the fuzzed bytes) and the issuer/audience policy.
#![no_main]

use group_service::grpc::properties;
use libfuzzer_sys::fuzz_target;

const HS256: &[u8] = br#"{"alg":"HS256","typ":"JWT"}"#;

fuzz_target!(|input: (u8, &str, &[u8], &[u8])| {
    let (mode, text, header, claims) = input;
    if let Err(broken) = properties::bearer_token(text) {
        panic!("{broken}");
    }
    let header = if mode & 1 == 0 { HS256 } else { header };
    if let Err(broken) = properties::signed_token(header, claims, mode & 2 != 0) {
        panic!("{broken}");
    }
});
