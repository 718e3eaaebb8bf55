//! Verification keys: one static key (HS256 secret, PEM public key) or a JWKS, and how a
//! token's header (`kid`, `alg`) picks one of them.

use std::str::FromStr;

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Header};

use super::Rejection;

/// One key and the only algorithm it verifies.
pub(crate) struct Key {
    /// `None` for a static key: it answers whatever `kid` a token names.
    pub kid: Option<String>,
    pub alg: Algorithm,
    pub key: DecodingKey,
}

/// The keys in force. A JWKS replaces the whole set on each good refresh.
pub(crate) struct KeySet {
    pub keys: Vec<Key>,
}

impl KeySet {
    pub fn single(key: DecodingKey, alg: Algorithm) -> Self {
        KeySet {
            keys: vec![Key {
                kid: None,
                alg,
                key,
            }],
        }
    }

    /// The usable keys of a JWKS document. Keys for encryption, of unsupported algorithms
    /// and symmetric (`oct`) keys are skipped with a warning: a published set holds public
    /// keys only. A document with no usable key is an error (the last good set stays).
    pub fn from_jwks_json(json: &[u8]) -> anyhow::Result<Self> {
        let set: JwkSet = serde_json::from_slice(json)
            .map_err(|e| anyhow::anyhow!("the JWKS is not a JSON key set: {e}"))?;
        let mut keys = Vec::with_capacity(set.keys.len());
        for jwk in &set.keys {
            match key_of(jwk) {
                Ok(key) => keys.push(key),
                Err(why) => tracing::warn!(kid = ?jwk.common.key_id, why, "JWKS key skipped"),
            }
        }
        anyhow::ensure!(!keys.is_empty(), "the JWKS holds no usable signing key");
        Ok(KeySet { keys })
    }

    /// The key that may verify a token with this header. With a `kid`, the key of that id
    /// (or a static key); without one, the only key of the token's algorithm.
    pub fn select(&self, header: &Header) -> Result<&Key, Rejection> {
        let mut named = false;
        let mut found: Option<&Key> = None;
        for key in &self.keys {
            let kid_fits = match (&header.kid, &key.kid) {
                (Some(wanted), Some(kid)) => wanted == kid,
                _ => true,
            };
            if !kid_fits {
                continue;
            }
            named = true;
            if key.alg == header.alg {
                if found.is_some() {
                    // Two keys of one algorithm and no kid to choose between them.
                    return Err(Rejection::UnknownKey);
                }
                found = Some(key);
                if header.kid.is_some() {
                    break;
                }
            }
        }
        match (found, named) {
            (Some(key), _) => Ok(key),
            (None, true) => Err(Rejection::WrongAlgorithm),
            (None, false) => Err(Rejection::UnknownKey),
        }
    }
}

fn key_of(jwk: &Jwk) -> Result<Key, &'static str> {
    if jwk
        .common
        .public_key_use
        .as_ref()
        .is_some_and(|u| *u != jsonwebtoken::jwk::PublicKeyUse::Signature)
    {
        return Err("not a signature key");
    }
    let inferred = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => Algorithm::RS256,
        AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
            EllipticCurve::P256 => Algorithm::ES256,
            EllipticCurve::P384 => Algorithm::ES384,
            _ => return Err("unsupported curve"),
        },
        AlgorithmParameters::OctetKeyPair(_) => Algorithm::EdDSA,
        AlgorithmParameters::OctetKey(_) => return Err("symmetric keys are not published"),
    };
    let alg = match jwk.common.key_algorithm {
        Some(named) => Algorithm::from_str(&named.to_string()).map_err(|_| "unsupported alg")?,
        None => inferred,
    };
    if alg.family() != inferred.family() {
        return Err("alg does not fit the key type");
    }
    let key = DecodingKey::from_jwk(jwk).map_err(|_| "malformed key parameters")?;
    Ok(Key {
        kid: jwk.common.key_id.clone(),
        alg,
        key,
    })
}
