//! Validated names. A bucket name follows S3's DNS-compatible rules; an
//! object key is any UTF-8 string of 1 to 1024 bytes. Keys are only ever
//! strings in metadata rows, never paths, so `../x` is an ordinary key.

use super::{CoreError, CoreResult};

/// A bucket name that passed S3's naming rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketName(String);

impl BucketName {
    pub fn parse(name: &str) -> CoreResult<Self> {
        let bad = |why: &str| Err(CoreError::InvalidBucketName(format!("{name:?}: {why}")));
        if !(3..=63).contains(&name.len()) {
            return bad("must be 3 to 63 characters long");
        }
        if !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        {
            return bad("only lowercase letters, digits, '-' and '.' are allowed");
        }
        let first = name.as_bytes()[0];
        let last = name.as_bytes()[name.len() - 1];
        if !first.is_ascii_alphanumeric() || !last.is_ascii_alphanumeric() {
            return bad("must begin and end with a letter or digit");
        }
        if name.contains("..") || name.contains(".-") || name.contains("-.") {
            return bad("dots may not be adjacent to dots or hyphens");
        }
        if name.parse::<std::net::Ipv4Addr>().is_ok() {
            return bad("must not look like an IP address");
        }
        if name.starts_with("xn--") || name.ends_with("-s3alias") {
            return bad("reserved prefix or suffix");
        }
        Ok(Self(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An object key: 1 to 1024 bytes of UTF-8 without NUL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectKey(String);

pub const MAX_KEY_BYTES: usize = 1024;

impl ObjectKey {
    pub fn parse(key: &str) -> CoreResult<Self> {
        if key.is_empty() {
            return Err(CoreError::InvalidArgument(
                "the key must not be empty".into(),
            ));
        }
        if key.len() > MAX_KEY_BYTES {
            return Err(CoreError::KeyTooLong);
        }
        if key.contains('\0') {
            // PostgreSQL text cannot hold NUL, so no backend may accept it.
            return Err(CoreError::InvalidArgument(
                "the key must not contain NUL".into(),
            ));
        }
        Ok(Self(key.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_names_follow_s3_rules() {
        for good in ["abc", "my-bucket", "a.b.c", "123", &"a".repeat(63)] {
            assert!(BucketName::parse(good).is_ok(), "{good} should be valid");
        }
        for bad in [
            "ab",
            "ABC",
            "a_b",
            "-ab",
            "ab-",
            "a..b",
            "a.-b",
            "192.168.1.1",
            "xn--ab",
            &"a".repeat(64),
            "a b",
            "ab/",
        ] {
            assert!(BucketName::parse(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn keys_are_any_utf8_up_to_1024_bytes() {
        for good in [
            "../x",
            "a//b",
            "with space",
            "emoji 🦀",
            "/leading",
            &"k".repeat(1024),
        ] {
            assert!(ObjectKey::parse(good).is_ok(), "{good} should be valid");
        }
        assert!(matches!(
            ObjectKey::parse(&"k".repeat(1025)),
            Err(CoreError::KeyTooLong)
        ));
        assert!(ObjectKey::parse("").is_err());
        assert!(ObjectKey::parse("a\0b").is_err());
    }
}
