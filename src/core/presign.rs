//! SigV4 presigned GET URLs, for share links made through the JSON API. The
//! S3 port checks them like any client's (s3s), so a link carries exactly
//! the rights of the key that signed it and stops working when it expires or
//! the key is revoked.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// At most seven days, as S3 allows.
pub const MAX_EXPIRY_SECS: u64 = 7 * 24 * 3600;

const UNRESERVED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

fn encode(value: &str) -> String {
    percent_encoding::utf8_percent_encode(value, UNRESERVED).to_string()
}

fn hmac(key: &[u8], data: &str) -> Vec<u8> {
    // HMAC accepts keys of any length.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("any key length");
    mac.update(data.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

/// What a presigned URL needs.
pub struct PresignRequest<'a> {
    /// `http://host:port` of the S3 port as clients reach it.
    pub endpoint: &'a str,
    pub region: &'a str,
    pub access_key: &'a str,
    pub secret: &'a str,
    pub bucket: &'a str,
    pub key: &'a str,
    pub expires_secs: u64,
    /// Signing time, unix seconds.
    pub now_secs: i64,
}

/// A presigned GET URL (path-style).
pub fn presign_get(request: &PresignRequest<'_>) -> String {
    let time = chrono::DateTime::from_timestamp(request.now_secs, 0).unwrap_or_default();
    let amz_date = time.format("%Y%m%dT%H%M%SZ").to_string();
    let date = time.format("%Y%m%d").to_string();
    let scope = format!("{date}/{}/s3/aws4_request", request.region);
    let host = request
        .endpoint
        .split("://")
        .nth(1)
        .unwrap_or(request.endpoint)
        .trim_end_matches('/');
    let path = format!(
        "/{}/{}",
        encode(request.bucket),
        request
            .key
            .split('/')
            .map(encode)
            .collect::<Vec<_>>()
            .join("/")
    );
    let query = [
        ("X-Amz-Algorithm", "AWS4-HMAC-SHA256".to_owned()),
        (
            "X-Amz-Credential",
            format!("{}/{scope}", request.access_key),
        ),
        ("X-Amz-Date", amz_date.clone()),
        ("X-Amz-Expires", request.expires_secs.to_string()),
        ("X-Amz-SignedHeaders", "host".to_owned()),
    ]
    .iter()
    .map(|(k, v)| format!("{k}={}", encode(v)))
    .collect::<Vec<_>>()
    .join("&");
    let canonical = format!("GET\n{path}\n{query}\nhost:{host}\n\nhost\nUNSIGNED-PAYLOAD");
    let to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        hex::encode(Sha256::digest(canonical.as_bytes()))
    );
    let mut key = hmac(format!("AWS4{}", request.secret).as_bytes(), &date);
    for part in [request.region, "s3", "aws4_request"] {
        key = hmac(&key, part);
    }
    let signature = hex::encode(hmac(&key, &to_sign));
    format!(
        "{}{path}?{query}&X-Amz-Signature={signature}",
        request.endpoint.trim_end_matches('/')
    )
}

/// The signature of a console share link (`/share/{bucket}/{key}`) for an
/// object, made with the secret of the key that shares it. The link names
/// that key and its expiry; changing any part of it breaks the signature.
pub fn share_signature(secret: &str, bucket: &str, key: &str, expires_secs: i64) -> String {
    hex::encode(hmac(
        secret.as_bytes(),
        &format!("cistern share v1\n{bucket}\n{key}\n{expires_secs}"),
    ))
}

/// Whether `signature` is the share signature of these parts (compared
/// through digests, so the time taken does not tell where they differ).
pub fn share_signature_matches(
    secret: &str,
    bucket: &str,
    key: &str,
    expires_secs: i64,
    signature: &str,
) -> bool {
    let expected = share_signature(secret, bucket, key, expires_secs);
    Sha256::digest(expected.as_bytes()) == Sha256::digest(signature.as_bytes())
}
