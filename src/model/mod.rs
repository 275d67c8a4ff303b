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

pub mod accounts;
pub mod audit;
pub mod objects;
pub mod pools;

pub use self::accounts::*;
pub use self::audit::*;
pub use self::objects::*;
pub use self::pools::*;
