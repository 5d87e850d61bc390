//! WeChat Pay API v3's signatures and encryption.
//!
//! - A request is signed SHA256withRSA (PKCS#1 v1.5) over `METHOD\nPATH?QUERY\nTIMESTAMP\nNONCE\nBODY\n` with the
//!   merchant's private key and sent as `Authorization: WECHATPAY2-SHA256-RSA2048 mchid="…",nonce_str="…",
//!   signature="…",timestamp="…",serial_no="…"`.
//! - Answers and notifications are signed by WeChat Pay over `TIMESTAMP\nNONCE\nBODY\n`, with the key named by
//!   `Wechatpay-Serial` (a platform certificate's serial or a WeChat Pay public key id).
//! - The JSAPI page's `paySign` is the merchant's signature over `appId\ntimeStamp\nnonceStr\npackage\n`.
//! - A notification's resource is AEAD_AES_256_GCM under the 32-byte APIv3 key: 12-byte nonce, the
//!   `associated_data` as AAD, Base64 ciphertext ending in the 16-byte tag.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rsa::pkcs1v15::{Signature, SigningKey, VerifyingKey};
use rsa::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey, LineEnding};
use rsa::sha2::Sha256;
use rsa::signature::{SignatureEncoding, Signer, Verifier};

use crate::WechatError;

pub const SCHEME: &str = "WECHATPAY2-SHA256-RSA2048";

/// How far a notification's or answer's timestamp may be from now, in seconds (replayed or delayed messages
/// outside it are refused).
pub const TIMESTAMP_WINDOW_S: i64 = 300;

/// The message a request's signature covers.
pub fn request_message(method: &str, path_and_query: &str, timestamp: i64, nonce: &str, body: &str) -> String {
    format!("{method}\n{path_and_query}\n{timestamp}\n{nonce}\n{body}\n")
}

/// The message an answer's or a notification's signature covers.
pub fn response_message(timestamp: i64, nonce: &str, body: &[u8]) -> Vec<u8> {
    let mut m = format!("{timestamp}\n{nonce}\n").into_bytes();
    m.extend_from_slice(body);
    m.push(b'\n');
    m
}

/// The message the JSAPI `paySign` covers.
pub fn pay_sign_message(app_id: &str, timestamp: &str, nonce: &str, package: &str) -> String {
    format!("{app_id}\n{timestamp}\n{nonce}\n{package}\n")
}

/// An RSA private key that signs (the merchant's, or in the fakes the platform's), with the serial that names
/// its certificate or public key.
#[derive(Clone)]
pub struct MerchantKey {
    key: SigningKey<Sha256>,
    pub serial: String,
}

impl std::fmt::Debug for MerchantKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MerchantKey(serial {})", self.serial)
    }
}

impl MerchantKey {
    /// From a PKCS#8 PEM (`apiclient_key.pem`).
    pub fn from_pem(pem: &str, serial: &str) -> Result<MerchantKey, WechatError> {
        let key = rsa::PrivateKey::from_pkcs8_pem(pem).map_err(|e| WechatError::Key(format!("private key: {e}")))?;
        Ok(MerchantKey { key: SigningKey::new(key), serial: serial.to_string() })
    }

    /// A fresh 2048-bit key (tests and the fakes).
    pub fn generate(serial: &str) -> MerchantKey {
        use rsa::Generate;
        MerchantKey { key: SigningKey::new(rsa::PrivateKey::generate()), serial: serial.to_string() }
    }

    pub fn private_pem(&self) -> Result<String, WechatError> {
        let doc = self.key.as_ref().to_pkcs8_pem(LineEnding::LF).map_err(|e| WechatError::Key(e.to_string()))?;
        Ok(doc.to_string())
    }

    /// The public half as an SPKI PEM (`-----BEGIN PUBLIC KEY-----`), as WeChat Pay hands out its public key.
    pub fn public_pem(&self) -> Result<String, WechatError> {
        self.key.as_ref().to_public_key().to_public_key_pem(LineEnding::LF).map_err(|e| WechatError::Key(e.to_string()))
    }

    /// SHA256withRSA, Base64.
    pub fn sign(&self, message: &[u8]) -> String {
        STANDARD.encode(self.key.sign(message).to_bytes())
    }
}

/// The `Authorization` header of a signed request.
pub fn authorization(mchid: &str, key: &MerchantKey, method: &str, path_and_query: &str, body: &str) -> String {
    let timestamp = crate::now_s();
    let nonce = crate::random_alnum(32);
    let signature = key.sign(request_message(method, path_and_query, timestamp, &nonce, body).as_bytes());
    format!(
        "{SCHEME} mchid=\"{mchid}\",nonce_str=\"{nonce}\",signature=\"{signature}\",timestamp=\"{timestamp}\",serial_no=\"{}\"",
        key.serial
    )
}

/// The fields of an `Authorization` header, in any order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthFields {
    pub mchid: String,
    pub nonce_str: String,
    pub signature: String,
    pub timestamp: i64,
    pub serial_no: String,
}

pub fn parse_authorization(header: &str) -> Result<AuthFields, WechatError> {
    let bad = |why: &str| WechatError::Signature(format!("Authorization header: {why}"));
    let rest = header.strip_prefix(SCHEME).and_then(|r| r.strip_prefix(' ')).ok_or_else(|| bad("wrong scheme"))?;
    let mut fields = std::collections::HashMap::new();
    for part in rest.split(',') {
        let (k, v) = part.trim().split_once('=').ok_or_else(|| bad("a field without '='"))?;
        let v = v.strip_prefix('"').and_then(|v| v.strip_suffix('"')).ok_or_else(|| bad("an unquoted value"))?;
        if fields.insert(k.to_string(), v.to_string()).is_some() {
            return Err(bad("a repeated field"));
        }
    }
    let mut take = |k: &str| fields.remove(k).ok_or_else(|| bad(&format!("no {k}")));
    Ok(AuthFields {
        mchid: take("mchid")?,
        nonce_str: take("nonce_str")?,
        signature: take("signature")?,
        timestamp: take("timestamp")?.parse().map_err(|_| bad("timestamp is not a number"))?,
        serial_no: take("serial_no")?,
    })
}

/// The serial number of a PEM certificate, in the upper-case hex that `Wechatpay-Serial` carries.
pub fn certificate_serial(pem: &str) -> Result<String, WechatError> {
    use x509_cert::der::DecodePem;
    let cert = x509_cert::Certificate::from_pem(pem.trim().as_bytes())
        .map_err(|e| WechatError::Key(format!("certificate: {e}")))?;
    Ok(cert.tbs_certificate().serial_number().as_bytes().iter().map(|b| format!("{b:02X}")).collect())
}

/// Public keys that verify signatures, by serial (a WeChat Pay public key id such as `PUB_KEY_ID_…`, or a
/// platform certificate's serial with the certificate's public key).
#[derive(Clone, Default)]
pub struct PayVerifier {
    keys: Vec<(String, VerifyingKey<Sha256>)>,
}

impl std::fmt::Debug for PayVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let serials: Vec<&str> = self.keys.iter().map(|(s, _)| s.as_str()).collect();
        write!(f, "PayVerifier({serials:?})")
    }
}

impl PayVerifier {
    pub fn new() -> PayVerifier {
        PayVerifier::default()
    }

    /// Adds a key under its serial: a WeChat Pay public key (`-----BEGIN PUBLIC KEY-----`), or a platform
    /// certificate (`-----BEGIN CERTIFICATE-----`), whose public key is taken.
    pub fn add_pem(&mut self, serial: &str, pem: &str) -> Result<(), WechatError> {
        let key = if pem.contains("BEGIN CERTIFICATE") {
            use x509_cert::der::{DecodePem, Encode};
            let cert = x509_cert::Certificate::from_pem(pem.trim().as_bytes())
                .map_err(|e| WechatError::Key(format!("platform certificate: {e}")))?;
            let spki = cert
                .tbs_certificate()
                .subject_public_key_info()
                .to_der()
                .map_err(|e| WechatError::Key(format!("platform certificate: {e}")))?;
            rsa::PublicKey::from_public_key_der(&spki).map_err(|e| WechatError::Key(format!("certificate key: {e}")))?
        } else {
            rsa::PublicKey::from_public_key_pem(pem).map_err(|e| WechatError::Key(format!("public key: {e}")))?
        };
        self.keys.push((serial.to_string(), VerifyingKey::new(key)));
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Checks a Base64 SHA256withRSA signature over `message` with the key named `serial`.
    pub fn verify(&self, serial: &str, message: &[u8], signature_b64: &str) -> Result<(), WechatError> {
        let (_, key) = self
            .keys
            .iter()
            .find(|(s, _)| s == serial)
            .ok_or_else(|| WechatError::Signature(format!("no key with serial {serial:?}")))?;
        let raw = STANDARD.decode(signature_b64.trim()).map_err(|_| WechatError::Signature("not Base64".into()))?;
        let sig = Signature::try_from(raw.as_slice()).map_err(|_| WechatError::Signature("malformed".into()))?;
        key.verify(message, &sig).map_err(|_| WechatError::Signature("does not verify".into()))
    }

    /// Checks the four `Wechatpay-*` headers of an answer or a notification over its raw body, and that the
    /// timestamp is within [`TIMESTAMP_WINDOW_S`] of `now_s`.
    pub fn verify_headers(
        &self,
        serial: &str,
        signature: &str,
        timestamp: &str,
        nonce: &str,
        body: &[u8],
        now_s: i64,
    ) -> Result<(), WechatError> {
        let ts: i64 =
            timestamp.trim().parse().map_err(|_| WechatError::Signature("the timestamp is not a number".into()))?;
        if (now_s - ts).abs() > TIMESTAMP_WINDOW_S {
            return Err(WechatError::Signature(format!("the timestamp is {}s away from now", now_s - ts)));
        }
        self.verify(serial, &response_message(ts, nonce, body), signature)
    }
}

/// The APIv3 key: 32 bytes (the merchant sets it as 32 characters in the merchant platform).
#[derive(Clone)]
pub struct ApiV3Key(Aes256Gcm);

impl std::fmt::Debug for ApiV3Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiV3Key(…)")
    }
}

impl ApiV3Key {
    pub fn new(key: &str) -> Result<ApiV3Key, WechatError> {
        let bytes: [u8; 32] = key
            .as_bytes()
            .try_into()
            .map_err(|_| WechatError::Key(format!("the APIv3 key must be 32 bytes, not {}", key.len())))?;
        Ok(ApiV3Key(Aes256Gcm::new(&bytes.into())))
    }

    /// Opens a notification resource: Base64 ciphertext ‖ tag, a 12-character nonce, the associated data.
    pub fn decrypt(&self, nonce: &str, associated_data: &str, ciphertext_b64: &str) -> Result<Vec<u8>, WechatError> {
        let nonce: [u8; 12] =
            nonce.as_bytes().try_into().map_err(|_| WechatError::Decrypt("the nonce is not 12 bytes".into()))?;
        let ct = STANDARD.decode(ciphertext_b64).map_err(|_| WechatError::Decrypt("not Base64".into()))?;
        if ct.len() < 16 {
            return Err(WechatError::Decrypt("shorter than the tag".into()));
        }
        self.0
            .decrypt(Nonce::from_slice(&nonce), Payload { msg: &ct, aad: associated_data.as_bytes() })
            .map_err(|_| WechatError::Decrypt("the tag does not match (wrong key or altered message)".into()))
    }

    /// The reverse, as WeChat Pay does it (the fakes).
    pub fn encrypt(&self, nonce: &str, associated_data: &str, plaintext: &[u8]) -> Result<String, WechatError> {
        let nonce: [u8; 12] =
            nonce.as_bytes().try_into().map_err(|_| WechatError::Decrypt("the nonce is not 12 bytes".into()))?;
        let ct = self
            .0
            .encrypt(Nonce::from_slice(&nonce), Payload { msg: plaintext, aad: associated_data.as_bytes() })
            .map_err(|_| WechatError::Decrypt("encryption failed".into()))?;
        Ok(STANDARD.encode(ct))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> &'static MerchantKey {
        static K: std::sync::OnceLock<MerchantKey> = std::sync::OnceLock::new();
        K.get_or_init(|| MerchantKey::generate("5157F09EFDC096DE15EBE81A47057A7232F1B8E1"))
    }

    #[test]
    fn messages_end_every_line_in_a_newline() {
        assert_eq!(
            request_message("GET", "/v3/x?mchid=1", 1554208460, "N", ""),
            "GET\n/v3/x?mchid=1\n1554208460\nN\n\n"
        );
        assert_eq!(response_message(1, "n", b"{}"), b"1\nn\n{}\n");
        assert_eq!(pay_sign_message("wx1", "2", "n", "prepay_id=p"), "wx1\n2\nn\nprepay_id=p\n");
    }

    #[test]
    fn a_signature_verifies_with_the_public_half_and_fails_on_any_change() {
        let k = key();
        let mut v = PayVerifier::new();
        v.add_pem(&k.serial, &k.public_pem().unwrap()).unwrap();
        let sig = k.sign(b"message");
        v.verify(&k.serial, b"message", &sig).unwrap();
        assert!(v.verify(&k.serial, b"messagf", &sig).is_err());
        assert!(v.verify("other-serial", b"message", &sig).is_err());
        let mut raw = STANDARD.decode(&sig).unwrap();
        raw[10] ^= 1;
        assert!(v.verify(&k.serial, b"message", &STANDARD.encode(raw)).is_err());
        // PKCS#1 v1.5 is deterministic: the same message signs the same, so the fakes and the client agree byte
        // for byte on what they exchange.
        assert_eq!(sig, k.sign(b"message"));
        // And the key survives a PEM round trip.
        let again = MerchantKey::from_pem(&k.private_pem().unwrap(), "s").unwrap();
        assert_eq!(again.sign(b"message"), sig);
    }

    #[test]
    fn authorization_header_round_trips_in_any_field_order() {
        let k = key();
        let h = authorization("1900009191", k, "POST", "/v3/pay/transactions/jsapi", "{}");
        let f = parse_authorization(&h).unwrap();
        assert_eq!((f.mchid.as_str(), f.serial_no.as_str(), f.nonce_str.len()), ("1900009191", k.serial.as_str(), 32));
        let mut v = PayVerifier::new();
        v.add_pem(&k.serial, &k.public_pem().unwrap()).unwrap();
        let msg = request_message("POST", "/v3/pay/transactions/jsapi", f.timestamp, &f.nonce_str, "{}");
        v.verify(&f.serial_no, msg.as_bytes(), &f.signature).unwrap();
        let reordered = format!(
            "{SCHEME} serial_no=\"{}\",timestamp=\"{}\",signature=\"{}\",nonce_str=\"{}\",mchid=\"{}\"",
            f.serial_no, f.timestamp, f.signature, f.nonce_str, f.mchid
        );
        assert_eq!(parse_authorization(&reordered).unwrap(), f);
        assert!(parse_authorization("Bearer x").is_err());
        assert!(parse_authorization(&format!("{SCHEME} mchid=\"1\"")).is_err());
    }

    #[test]
    fn headers_outside_the_time_window_are_refused() {
        let k = key();
        let mut v = PayVerifier::new();
        v.add_pem(&k.serial, &k.public_pem().unwrap()).unwrap();
        let body = br#"{"id":"1"}"#;
        let sig = k.sign(&response_message(1_000_000, "nonce", body));
        v.verify_headers(&k.serial, &sig, "1000000", "nonce", body, 1_000_000 + 299).unwrap();
        assert!(v.verify_headers(&k.serial, &sig, "1000000", "nonce", body, 1_000_000 + 301).is_err());
        assert!(v.verify_headers(&k.serial, &sig, "1000000", "nonce", b"{\"id\":\"2\"}", 1_000_000).is_err());
    }

    #[test]
    fn a_platform_certificate_verifies_like_a_public_key() {
        // A self-signed certificate and its key made with openssl for this test only.
        let cert = include_str!("../tests/data/platform_cert_test_only.pem");
        let serial = certificate_serial(cert).unwrap();
        assert_eq!(serial, "5157F09EFDC096DE15EBE81A47057A7232F1B8E1");
        let platform =
            MerchantKey::from_pem(include_str!("../tests/data/platform_key_test_only.pem"), &serial).unwrap();
        let mut v = PayVerifier::new();
        v.add_pem(&serial, cert).unwrap();
        let body = br#"{"id":"EV-1"}"#;
        let sig = platform.sign(&response_message(1_700_000_000, "n", body));
        v.verify_headers(&serial, &sig, "1700000000", "n", body, 1_700_000_010).unwrap();
        assert!(
            v.verify_headers(
                &serial,
                &key().sign(&response_message(1_700_000_000, "n", body)),
                "1700000000",
                "n",
                body,
                1_700_000_010
            )
            .is_err()
        );
        assert!(
            PayVerifier::new().add_pem("x", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----").is_err()
        );
    }

    #[test]
    fn aead_round_trip_and_tamper() {
        let key = ApiV3Key::new("0123456789abcdef0123456789abcdef").unwrap();
        let ct = key.encrypt("abcdefghijkl", "transaction", b"{\"a\":1}").unwrap();
        assert_eq!(key.decrypt("abcdefghijkl", "transaction", &ct).unwrap(), b"{\"a\":1}");
        assert!(key.decrypt("abcdefghijkl", "certificate", &ct).is_err(), "other associated data");
        assert!(key.decrypt("abcdefghijkm", "transaction", &ct).is_err(), "other nonce");
        let other = ApiV3Key::new("0123456789abcdef0123456789abcdeX").unwrap();
        assert!(other.decrypt("abcdefghijkl", "transaction", &ct).is_err(), "other key");
        assert!(key.decrypt("short", "transaction", &ct).is_err());
        assert!(key.decrypt("abcdefghijkl", "transaction", "AAAA").is_err());
        assert!(ApiV3Key::new("too short").is_err());
    }
}
