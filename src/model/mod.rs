//! The values several layers share, at the bottom of the crate: the records
//! the metadata store reads and writes, the service layer decides on and
//! the front-ends turn into S3 XML or JSON, and the words (roles, group
//! states, refusal reasons, event kinds) that appear the same on the wire
//! and in SQL. Nothing here does I/O or knows a layer above it.

/// Declares a closed set of words: an enum whose variants are written as
/// the same text on the wire (JSON, events, CLI output) and in SQL, with
/// `as_str`, `FromStr`, `Display` and serde in terms of that text.
macro_rules! wire_words {
    (
        $(#[$meta:meta])*
        pub enum $name:ident { $( $(#[$vmeta:meta])* $variant:ident = $text:literal ),+ $(,)? }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name { $( $(#[$vmeta])* $variant ),+ }

        impl $name {
            /// Every word, in declaration order.
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $text),+ }
            }
        }

        impl std::str::FromStr for $name {
            type Err = crate::model::UnknownWord;

            fn from_str(text: &str) -> Result<Self, Self::Err> {
                match text {
                    $($text => Ok(Self::$variant),)+
                    _ => Err(crate::model::UnknownWord {
                        kind: stringify!($name),
                        text: text.to_owned(),
                    }),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

/// A word that is not one of its set (a role, a state...).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} {text:?}")]
pub struct UnknownWord {
    pub kind: &'static str,
    pub text: String,
}

/// Text that must stay out of logs and panic messages (a password hash,
/// a webhook secret, a token hash): its `Debug` shows `<redacted>`, and
/// its text is reached only through [`Secret::expose`].
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(text: impl Into<String>) -> Self {
        Self(text.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<&str> for Secret {
    fn from(text: &str) -> Self {
        Self::new(text)
    }
}

impl From<String> for Secret {
    fn from(text: String) -> Self {
        Self(text)
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

pub mod accounts;
pub mod audit;
pub mod objects;
pub mod pools;

pub use self::accounts::*;
pub use self::audit::*;
pub use self::objects::*;
pub use self::pools::*;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_do_not_show_in_debug_output() {
        let pool = PoolRecord {
            id: "p".into(),
            name: "sky".into(),
            owner_id: "o".into(),
            bucket: "pool-sky".into(),
            window_secs: 60,
            grace_secs: 0,
            origin_ms: 0,
            max_file_size: 1,
            allowed_types: vec![],
            forbidden_types: vec![],
            allow_empty: false,
            retention_days: 30,
            webhook_url: Some("https://example.com/hook".into()),
            webhook_secret: Some(Secret::new("hunter2")),
            webhook_cursor: 0,
            created_ms: 0,
        };
        let account = AccountRecord {
            id: "u".into(),
            name: "ada".into(),
            role: Role::User,
            created_ms: 0,
            disabled_ms: None,
            password_hash: Some(Secret::new("$argon2id$v=19$hash")),
        };
        let shown = format!("{pool:?} {account:?}");
        assert!(
            !shown.contains("hunter2") && !shown.contains("argon2"),
            "{shown}"
        );
        assert!(
            shown.contains("webhook_secret: Some(<redacted>)"),
            "{shown}"
        );
        assert!(shown.contains("password_hash: Some(<redacted>)"), "{shown}");
        assert!(shown.contains("https://example.com/hook"), "{shown}");
        assert_eq!(Secret::new("hunter2").expose(), "hunter2");
    }
}
