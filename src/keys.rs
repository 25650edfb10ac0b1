//! Publisher keys: Ed25519 key pairs, their short text forms, fingerprints, and signatures
//! over package manifests. Pure: files are read and written by the caller.

use std::fmt;

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};

/// Prefix of a public key's text form (what goes into `trusted_keys`).
const PUBLIC_PREFIX: &str = "ed25519:";
/// First line of a secret key file.
const SECRET_PREFIX: &str = "dars-secret-key-ed25519:";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    #[error("{0:?} is not a dars public key: expected \"ed25519:\" followed by 64 hex digits, as `dars keygen` prints")]
    BadPublic(String),
    #[error(
        "not a dars secret key file: expected a line starting \"dars-secret-key-ed25519:\" (made by `dars keygen`)"
    )]
    BadSecret,
    #[error("bad signature text: expected 128 hex digits")]
    BadSignatureText,
}

/// A publisher's public key.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PublicKey(VerifyingKey);

impl PublicKey {
    /// Parses the text form `ed25519:<64 hex>`.
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        let bad = || KeyError::BadPublic(text.trim().to_owned());
        let hex = text.trim().strip_prefix(PUBLIC_PREFIX).ok_or_else(bad)?;
        let bytes: [u8; 32] = decode_hex(hex).and_then(|b| b.try_into().ok()).ok_or_else(bad)?;
        VerifyingKey::from_bytes(&bytes).map(PublicKey).map_err(|_| bad())
    }

    /// The text form a technician pastes into `trusted_keys`.
    pub fn to_text(self) -> String {
        format!("{PUBLIC_PREFIX}{}", encode_hex(self.0.as_bytes()))
    }

    /// A short id to read aloud and compare: 16 hex digits of the key's BLAKE3 hash, in
    /// groups of four (`3f2a-91c0-...`).
    pub fn fingerprint(self) -> String {
        let hash = blake3::hash(self.0.as_bytes());
        let hex = encode_hex(&hash.as_bytes()[..8]);
        hex.as_bytes()
            .chunks(4)
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect::<Vec<_>>()
            .join("-")
    }

    /// Checks a detached signature (strictly: no malleable signatures, no weak keys).
    pub fn verify(self, message: &[u8], signature: &[u8; 64]) -> bool {
        let signature = Signature::from_bytes(signature);
        self.0.verify_strict(message, &signature).is_ok() && self.0.verify(message, &signature).is_ok()
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.fingerprint())
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_text())
    }
}

/// A publisher's secret key.
pub struct SecretKey(SigningKey);

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretKey({})", self.public().fingerprint())
    }
}

impl SecretKey {
    /// A new random key from the operating system's generator.
    pub fn generate() -> std::io::Result<Self> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| std::io::Error::other(format!("no random numbers: {e}")))?;
        Ok(SecretKey(SigningKey::from_bytes(&seed)))
    }

    pub fn public(&self) -> PublicKey {
        PublicKey(self.0.verifying_key())
    }

    /// The secret file's text.
    pub fn to_file_text(&self) -> String {
        format!(
            "{SECRET_PREFIX}{}\n# public key: {}\n# keep this file secret; anyone holding it can publish lessons as you\n",
            encode_hex(&self.0.to_bytes()),
            self.public().to_text()
        )
    }

    pub fn parse_file(text: &str) -> Result<Self, KeyError> {
        let line = text.lines().next().unwrap_or("").trim();
        let hex = line.strip_prefix(SECRET_PREFIX).ok_or(KeyError::BadSecret)?;
        let seed: [u8; 32] = decode_hex(hex)
            .and_then(|b| b.try_into().ok())
            .ok_or(KeyError::BadSecret)?;
        Ok(SecretKey(SigningKey::from_bytes(&seed)))
    }

    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.0.sign(message).to_bytes()
    }
}

/// The text form of a signature file: 128 hex digits and a newline.
pub fn signature_to_text(signature: &[u8; 64]) -> String {
    format!("{}\n", encode_hex(signature))
}

pub fn signature_from_text(text: &str) -> Result<[u8; 64], KeyError> {
    decode_hex(text.trim())
        .and_then(|b| b.try_into().ok())
        .ok_or(KeyError::BadSignatureText)
}

pub fn encode_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 15)] as char);
    }
    out
}

pub fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    text.as_bytes()
        .chunks(2)
        .map(|pair| Some(digit(pair[0])? << 4 | digit(pair[1])?))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_through_text_and_sign() {
        let secret = SecretKey::generate().expect("key");
        let again = SecretKey::parse_file(&secret.to_file_text()).expect("parse");
        assert_eq!(secret.public(), again.public());
        let public = PublicKey::parse(&secret.public().to_text()).expect("public");
        let signature = secret.sign(b"manifest");
        assert!(public.verify(b"manifest", &signature));
        assert!(!public.verify(b"manifesT", &signature));
        let text = signature_to_text(&signature);
        assert_eq!(signature_from_text(&text).expect("sig"), signature);
        assert_eq!(public.fingerprint().len(), 19);
    }

    #[test]
    fn bad_texts_are_refused() {
        for text in [
            "",
            "ed25519:",
            "ed25519:zz",
            "rsa:00",
            &format!("ed25519:{}", "0".repeat(63)),
        ] {
            assert!(PublicKey::parse(text).is_err(), "{text:?}");
        }
        assert_eq!(SecretKey::parse_file("hello").err(), Some(KeyError::BadSecret));
        assert!(signature_from_text("abc").is_err());
    }
}
