//! Callers (R24): bearer JWTs verified into a `Caller` by a sync interceptor. HS256 with a
//! shared secret (development), RS256 or ES256 with a public key (production).
//!
//! Claims: `sub` (user id, or the service's name), `tenant`, `admin`, `svc`, `exp`.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use tonic::{Request, Status};

use crate::domain::caller::{Caller, Principal};
use crate::domain::model::{TenantId, UserId};

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

/// Checks tokens. Cheap to clone.
#[derive(Clone)]
pub struct Verifier {
    key: Arc<DecodingKey>,
    validation: Arc<Validation>,
}

impl Verifier {
    pub fn hs256(secret: &[u8]) -> Self {
        Self::with(DecodingKey::from_secret(secret), Algorithm::HS256)
    }

    /// A PEM public key: RSA (RS256) or P-256 EC (ES256).
    pub fn from_public_key_pem(pem: &[u8]) -> anyhow::Result<Self> {
        if let Ok(key) = DecodingKey::from_rsa_pem(pem) {
            return Ok(Self::with(key, Algorithm::RS256));
        }
        if let Ok(key) = DecodingKey::from_ec_pem(pem) {
            return Ok(Self::with(key, Algorithm::ES256));
        }
        anyhow::bail!("the public key is neither an RSA nor an EC PEM key")
    }

    fn with(key: DecodingKey, alg: Algorithm) -> Self {
        let mut validation = Validation::new(alg);
        validation.leeway = 30;
        validation.set_required_spec_claims(&["exp", "sub"]);
        Verifier {
            key: Arc::new(key),
            validation: Arc::new(validation),
        }
    }

    /// The caller a token proves, or why it proves nothing.
    pub fn verify(&self, token: &str) -> Result<Caller, &'static str> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation).map_err(
            |e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => "the token has expired",
                jsonwebtoken::errors::ErrorKind::InvalidSignature => {
                    "the token's signature is not valid"
                }
                _ => "the token is not valid",
            },
        )?;
        let c = data.claims;
        if c.tenant <= 0 {
            return Err("the token names no tenant");
        }
        let principal = if c.svc {
            if c.sub.is_empty() {
                return Err("the token names no service");
            }
            Principal::Service(c.sub)
        } else {
            match c.sub.parse::<i64>() {
                Ok(id) if id > 0 => Principal::User(UserId(id)),
                _ => return Err("the token's subject is not a user id"),
            }
        };
        Ok(Caller {
            tenant: TenantId(c.tenant),
            principal,
            admin_claim: c.admin,
        })
    }

    /// The tonic interceptor: puts the `Caller` in the request's extensions, or answers
    /// UNAUTHENTICATED.
    pub fn interceptor(
        &self,
    ) -> impl Fn(Request<()>) -> Result<Request<()>, Status> + Clone + Send + Sync + 'static {
        let verifier = self.clone();
        move |mut req: Request<()>| {
            let header = req
                .metadata()
                .get("authorization")
                .ok_or_else(|| Status::unauthenticated("missing bearer token"))?;
            let token = header
                .to_str()
                .ok()
                .and_then(|h| {
                    h.strip_prefix("Bearer ")
                        .or_else(|| h.strip_prefix("bearer "))
                })
                .ok_or_else(|| {
                    Status::unauthenticated("the authorization header is not a bearer token")
                })?;
            let caller = verifier
                .verify(token.trim())
                .map_err(Status::unauthenticated)?;
            tracing::Span::current().record("tenant", caller.tenant.0);
            if let Some(slot) = req.extensions().get::<crate::metrics::CallTenant>() {
                slot.set(caller.tenant);
            }
            req.extensions_mut().insert(caller);
            Ok(req)
        }
    }
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
}
