//! Callers (R24): bearer JWTs verified into a `Caller` by a sync interceptor. HS256 with a
//! shared secret (development), RS256 or ES256 with a public key, or the keys of an identity
//! provider's JWKS (file or URL, reloaded on an interval, picked by `kid`).
//!
//! Claims: `sub` (user id, or the service's name), `tenant`, `admin`, `svc`, `exp`; `nbf`,
//! and `iss` and `aud` when an issuer or audience is configured. A refused token answers
//! UNAUTHENTICATED with an ErrorInfo reason (`Rejection::reason`).

mod fetch;
mod jwks;
mod keys;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use tonic::{Request, Status};

use crate::domain::caller::{Caller, Principal};
use crate::domain::model::{TenantId, UserId};
use jwks::Keys;
pub use jwks::{EARLY_RELOAD_GAP, JwksSource};
pub(crate) use keys::KeySet;

#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub tenant: i64,
    #[serde(default)]
    pub admin: bool,
    #[serde(default)]
    pub svc: bool,
    pub exp: u64,
    #[serde(default)]
    pub iat: u64,
}

/// Why a token proves nothing. Sent as UNAUTHENTICATED with `reason()` in an ErrorInfo.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rejection {
    /// No `authorization` metadata.
    Missing,
    /// Not `Bearer <jwt>`, or not a JWT at all.
    Malformed,
    /// Longer than `MAX_TOKEN_BYTES`: refused before it is parsed.
    TooLarge,
    Expired,
    /// `nbf` lies in the future (beyond the leeway).
    NotYetValid,
    BadSignature,
    WrongIssuer,
    WrongAudience,
    /// No key of the set has the token's `kid` (or, without a `kid`, no single key fits).
    UnknownKey,
    /// The token's `alg` is not the algorithm of the key it names (e.g. HS256 against RSA).
    WrongAlgorithm,
    /// A claim is missing, of the wrong type, or names no tenant or user.
    BadClaims,
}

impl Rejection {
    pub fn reason(self) -> &'static str {
        match self {
            Rejection::Missing => "TOKEN_MISSING",
            Rejection::Malformed => "TOKEN_MALFORMED",
            Rejection::TooLarge => "TOKEN_TOO_LARGE",
            Rejection::Expired => "TOKEN_EXPIRED",
            Rejection::NotYetValid => "TOKEN_NOT_YET_VALID",
            Rejection::BadSignature => "BAD_SIGNATURE",
            Rejection::WrongIssuer => "WRONG_ISSUER",
            Rejection::WrongAudience => "WRONG_AUDIENCE",
            Rejection::UnknownKey => "UNKNOWN_KEY",
            Rejection::WrongAlgorithm => "WRONG_ALGORITHM",
            Rejection::BadClaims => "BAD_CLAIMS",
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            Rejection::Missing => "missing bearer token",
            Rejection::Malformed => "the authorization header is not a bearer JWT",
            Rejection::TooLarge => "the token is longer than 8192 bytes, the most accepted",
            Rejection::Expired => "the token has expired",
            Rejection::NotYetValid => "the token is not valid yet (nbf)",
            Rejection::BadSignature => "the token's signature is not valid",
            Rejection::WrongIssuer => "the token's issuer (iss) is not accepted",
            Rejection::WrongAudience => "the token's audience (aud) is not this service",
            Rejection::UnknownKey => "the token's key id (kid) is not among the known keys",
            Rejection::WrongAlgorithm => "the token's algorithm (alg) does not fit its key",
            Rejection::BadClaims => "the token's claims do not name a tenant and a caller",
        }
    }

    fn of(e: &jsonwebtoken::errors::Error) -> Self {
        match e.kind() {
            ErrorKind::ExpiredSignature => Rejection::Expired,
            ErrorKind::ImmatureSignature => Rejection::NotYetValid,
            ErrorKind::InvalidSignature => Rejection::BadSignature,
            ErrorKind::InvalidIssuer => Rejection::WrongIssuer,
            ErrorKind::InvalidAudience => Rejection::WrongAudience,
            ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
                Rejection::WrongAlgorithm
            }
            ErrorKind::MissingRequiredClaim(claim) => match claim.as_str() {
                "iss" => Rejection::WrongIssuer,
                "aud" => Rejection::WrongAudience,
                _ => Rejection::BadClaims,
            },
            ErrorKind::InvalidClaimFormat(_) | ErrorKind::InvalidSubject => Rejection::BadClaims,
            // The payload is valid JSON under a good signature but not our claims' shape.
            ErrorKind::Json(_) => Rejection::BadClaims,
            _ => Rejection::Malformed,
        }
    }
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.message())
    }
}

/// The longest token accepted, in bytes: identity providers' JWTs are 1-4 KiB, and a longer
/// one is refused before it is decoded. (Its message in `Rejection::message` names it.)
pub const MAX_TOKEN_BYTES: usize = 8 << 10;

/// The leeway for `exp` and `nbf` unless `with_leeway` says otherwise.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(30);

/// What a token must say beyond its signature: one `Validation` per algorithm, built once.
#[derive(Clone)]
struct Policy {
    issuers: Vec<String>,
    audiences: Vec<String>,
    leeway: u64,
    validations: Vec<Validation>,
}

const ALGORITHMS: [Algorithm; 12] = [
    Algorithm::HS256,
    Algorithm::HS384,
    Algorithm::HS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::EdDSA,
];

impl Policy {
    fn new(issuers: Vec<String>, audiences: Vec<String>, leeway: u64) -> Self {
        let validations = ALGORITHMS
            .iter()
            .map(|&alg| {
                let mut v = Validation::new(alg);
                v.leeway = leeway;
                v.validate_nbf = true;
                let mut required = vec!["exp", "sub"];
                if !issuers.is_empty() {
                    v.set_issuer(&issuers);
                    required.push("iss");
                }
                if audiences.is_empty() {
                    // No audience configured: `aud` is not checked (it used to refuse any
                    // token that carried one).
                    v.validate_aud = false;
                } else {
                    v.set_audience(&audiences);
                    required.push("aud");
                }
                v.set_required_spec_claims(&required);
                v
            })
            .collect();
        Policy {
            issuers,
            audiences,
            leeway,
            validations,
        }
    }

    fn validation(&self, alg: Algorithm) -> &Validation {
        let i = ALGORITHMS.iter().position(|a| *a == alg);
        // Every `Algorithm` variant is in ALGORITHMS; a new one lands on the first entry,
        // whose own algorithm check then refuses the token.
        &self.validations[i.unwrap_or(0)]
    }
}

/// Checks tokens. Cheap to clone; clones share the keys (and their JWKS reloads).
#[derive(Clone)]
pub struct Verifier {
    keys: Arc<Keys>,
    policy: Arc<Policy>,
}

impl Verifier {
    pub fn hs256(secret: &[u8]) -> Self {
        Self::with(KeySet::single(
            DecodingKey::from_secret(secret),
            Algorithm::HS256,
        ))
    }

    /// A PEM public key: RSA (RS256) or P-256 EC (ES256).
    pub fn from_public_key_pem(pem: &[u8]) -> anyhow::Result<Self> {
        if let Ok(key) = DecodingKey::from_rsa_pem(pem) {
            return Ok(Self::with(KeySet::single(key, Algorithm::RS256)));
        }
        if let Ok(key) = DecodingKey::from_ec_pem(pem) {
            return Ok(Self::with(KeySet::single(key, Algorithm::ES256)));
        }
        anyhow::bail!("the public key is neither an RSA nor an EC PEM key")
    }

    /// The keys of a JWKS (a file, or an `http(s)://` URL), loaded now and reloaded every
    /// `refresh`, or sooner (once per `refresh` at most) when a token names an unknown `kid`.
    /// A reload that fails keeps the last good set. Needs a Tokio runtime.
    pub async fn jwks(source: JwksSource, refresh: Duration) -> anyhow::Result<Self> {
        Ok(Verifier {
            keys: Keys::refreshed(source, refresh).await?,
            policy: Arc::new(Policy::new(vec![], vec![], DEFAULT_LEEWAY.as_secs())),
        })
    }

    fn with(set: KeySet) -> Self {
        Verifier {
            keys: Keys::fixed(set),
            policy: Arc::new(Policy::new(vec![], vec![], DEFAULT_LEEWAY.as_secs())),
        }
    }

    /// Tokens must carry `iss` equal to one of `issuers` (none: `iss` is not checked).
    pub fn with_issuers(mut self, issuers: &[String]) -> Self {
        let p = &self.policy;
        self.policy = Arc::new(Policy::new(issuers.to_vec(), p.audiences.clone(), p.leeway));
        self
    }

    /// Tokens must carry an `aud` naming one of `audiences` (none: `aud` is not checked).
    pub fn with_audiences(mut self, audiences: &[String]) -> Self {
        let p = &self.policy;
        self.policy = Arc::new(Policy::new(p.issuers.clone(), audiences.to_vec(), p.leeway));
        self
    }

    /// How far `exp` and `nbf` may be off (clock skew); `DEFAULT_LEEWAY` otherwise.
    pub fn with_leeway(mut self, leeway: Duration) -> Self {
        let p = &self.policy;
        self.policy = Arc::new(Policy::new(
            p.issuers.clone(),
            p.audiences.clone(),
            leeway.as_secs(),
        ));
        self
    }

    /// The caller a token proves, or why it proves nothing.
    pub fn verify(&self, token: &str) -> Result<Caller, Rejection> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(Rejection::TooLarge);
        }
        // A header that does not parse (including `alg: none`, no algorithm of ours) is not a
        // token; only errors after the signature say something about claims.
        let header = jsonwebtoken::decode_header(token).map_err(|_| Rejection::Malformed)?;
        let set = self.keys.current();
        let key = set.select(&header).inspect_err(|r| {
            if *r == Rejection::UnknownKey && header.kid.is_some() {
                self.keys.ask_early_reload();
            }
        })?;
        let data = jsonwebtoken::decode::<Claims>(token, &key.key, self.policy.validation(key.alg))
            .map_err(|e| Rejection::of(&e))?;
        caller_of(data.claims)
    }

    /// The tonic interceptor: puts the `Caller` in the request's extensions, or answers
    /// UNAUTHENTICATED with the rejection's reason.
    pub fn interceptor(
        &self,
    ) -> impl Fn(Request<()>) -> Result<Request<()>, Status> + Clone + Send + Sync + 'static {
        let verifier = self.clone();
        move |mut req: Request<()>| {
            let header = req
                .metadata()
                .get("authorization")
                .ok_or(Rejection::Missing)?;
            let token = header
                .to_str()
                .ok()
                .and_then(|h| {
                    h.strip_prefix("Bearer ")
                        .or_else(|| h.strip_prefix("bearer "))
                })
                .ok_or(Rejection::Malformed)?;
            let caller = verifier.verify(token.trim())?;
            tracing::Span::current().record("tenant", caller.tenant.0);
            if let Some(slot) = req.extensions().get::<crate::metrics::CallTenant>() {
                slot.set(caller.tenant);
            }
            req.extensions_mut().insert(caller);
            Ok(req)
        }
    }
}

/// Strict claims: a positive tenant; a user's `sub` is a user id written the one canonical
/// way (digits, no sign, no leading zero or space: `"007"` is not user 7); a service's `sub`
/// is a non-empty name without control characters.
fn caller_of(c: Claims) -> Result<Caller, Rejection> {
    if c.tenant <= 0 {
        return Err(Rejection::BadClaims);
    }
    let principal = if c.svc {
        if c.sub.is_empty() || c.sub.chars().any(char::is_control) {
            return Err(Rejection::BadClaims);
        }
        Principal::Service(c.sub)
    } else {
        Principal::User(UserId(user_id(&c.sub).ok_or(Rejection::BadClaims)?))
    };
    Ok(Caller {
        tenant: TenantId(c.tenant),
        principal,
        admin_claim: c.admin,
    })
}

fn user_id(sub: &str) -> Option<i64> {
    let canonical =
        !sub.is_empty() && !sub.starts_with('0') && sub.bytes().all(|b| b.is_ascii_digit());
    if !canonical {
        return None;
    }
    sub.parse::<i64>().ok()
}

/// Whether to warn that tokens are checked with a generated development secret while the
/// server listens beyond this machine (the container default listens on 0.0.0.0).
pub fn development_secret_exposed(listen: SocketAddr, key_configured: bool) -> bool {
    !key_configured && !listen.ip().to_canonical().is_loopback()
}

/// Mints an HS256 token (the `token` command, tests).
pub fn mint_hs256(
    secret: &[u8],
    tenant: i64,
    sub: &str,
    admin: bool,
    service: bool,
    ttl_secs: u64,
) -> anyhow::Result<String> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let claims = Claims {
        sub: sub.to_owned(),
        tenant,
        admin,
        svc: service,
        exp: now + ttl_secs,
        iat: now,
    };
    Ok(jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret),
    )?)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    //! Production keys: RS256 and ES256 tokens verified with their public keys (test keys in
    //! tests/fixtures, made for these tests only).

    use super::*;

    const RSA_PRIVATE: &[u8] = include_bytes!("../../tests/fixtures/rsa-private.pem");
    const RSA_PUBLIC: &[u8] = include_bytes!("../../tests/fixtures/rsa-public.pem");
    const EC_PRIVATE: &[u8] = include_bytes!("../../tests/fixtures/es256-private-pkcs8.pem");
    const EC_PUBLIC: &[u8] = include_bytes!("../../tests/fixtures/es256-public.pem");

    fn claims(sub: &str, tenant: i64, admin: bool, svc: bool) -> Claims {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        Claims {
            sub: sub.into(),
            tenant,
            admin,
            svc,
            exp: now + 60,
            iat: now,
        }
    }

    fn sign(alg: Algorithm, key: &EncodingKey, c: &Claims) -> String {
        jsonwebtoken::encode(&Header::new(alg), c, key).unwrap()
    }

    #[test]
    fn r24_rs256_token_verifies_with_the_public_key() {
        let verifier = Verifier::from_public_key_pem(RSA_PUBLIC).unwrap();
        let key = EncodingKey::from_rsa_pem(RSA_PRIVATE).unwrap();
        let caller = verifier
            .verify(&sign(Algorithm::RS256, &key, &claims("7", 1, true, false)))
            .unwrap();
        assert_eq!(caller.tenant, TenantId(1));
        assert_eq!(caller.principal, Principal::User(UserId(7)));
        assert!(caller.admin_claim);
    }

    #[test]
    fn r24_es256_token_verifies_with_the_public_key() {
        let verifier = Verifier::from_public_key_pem(EC_PUBLIC).unwrap();
        let key = EncodingKey::from_ec_pem(EC_PRIVATE).unwrap();
        let caller = verifier
            .verify(&sign(
                Algorithm::ES256,
                &key,
                &claims("directory", 3, false, true),
            ))
            .unwrap();
        assert_eq!(caller.principal, Principal::Service("directory".into()));
        assert_eq!(caller.tenant, TenantId(3));
    }

    #[test]
    fn r24_public_key_verifier_refuses_other_algorithms_and_keys() {
        let verifier = Verifier::from_public_key_pem(RSA_PUBLIC).unwrap();
        // An HS256 token "signed" with the public key's bytes: the classic algorithm confusion.
        let forged = sign(
            Algorithm::HS256,
            &EncodingKey::from_secret(RSA_PUBLIC),
            &claims("7", 1, true, false),
        );
        assert!(verifier.verify(&forged).is_err());
        // A token of another key pair.
        let ec = sign(
            Algorithm::ES256,
            &EncodingKey::from_ec_pem(EC_PRIVATE).unwrap(),
            &claims("7", 1, false, false),
        );
        assert!(verifier.verify(&ec).is_err());
        assert!(Verifier::from_public_key_pem(b"not a key").is_err());
    }

    #[test]
    fn r24_claims_must_name_a_tenant_and_a_user_id() {
        let verifier = Verifier::hs256(b"0123456789abcdef0123");
        let key = EncodingKey::from_secret(b"0123456789abcdef0123");
        assert!(
            verifier
                .verify(&sign(Algorithm::HS256, &key, &claims("7", 0, false, false)))
                .is_err()
        );
        assert!(
            verifier
                .verify(&sign(
                    Algorithm::HS256,
                    &key,
                    &claims("kim", 1, false, false)
                ))
                .is_err()
        );
        assert!(
            verifier
                .verify(&sign(
                    Algorithm::HS256,
                    &key,
                    &claims("-3", 1, false, false)
                ))
                .is_err()
        );
        assert!(
            verifier
                .verify(&sign(Algorithm::HS256, &key, &claims("", 1, false, true)))
                .is_err()
        );
        assert!(
            verifier
                .verify(&sign(Algorithm::HS256, &key, &claims("7", 1, false, false)))
                .is_ok()
        );
    }

    #[test]
    fn development_secret_on_a_public_address_warns() {
        let at = |a: &str| a.parse::<SocketAddr>().unwrap();
        assert!(development_secret_exposed(at("0.0.0.0:50051"), false));
        assert!(development_secret_exposed(at("[::]:50051"), false));
        assert!(development_secret_exposed(at("10.1.2.3:50051"), false));
        assert!(!development_secret_exposed(at("127.0.0.1:50051"), false));
        assert!(!development_secret_exposed(at("[::1]:50051"), false));
        assert!(!development_secret_exposed(
            at("[::ffff:127.0.0.1]:50051"),
            false
        ));
        assert!(!development_secret_exposed(at("0.0.0.0:50051"), true));
    }
}
