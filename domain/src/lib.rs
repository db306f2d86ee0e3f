//! Pure, wasm-safe domain types and logic for Pairwise: roles, campaigns, the import format,
//! judgment semantics and the DTOs the API and the UI share. No IO here.

pub mod access;
pub mod campaign;
pub mod export;
pub mod generation;
pub mod import;
pub mod item;
pub mod judgment;
pub mod quality;
pub mod training;
pub mod user;
pub mod words;

pub use access::*;
pub use campaign::*;
pub use export::*;
pub use generation::*;
pub use import::*;
pub use item::*;
pub use judgment::*;
pub use training::*;
pub use user::*;

/// A value that failed validation at the edge, with a message fit for the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

impl Invalid {
    pub fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

/// Declares a string-backed enum with `as_str`, `FromStr` and serde in one place.
macro_rules! text_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
        pub enum $name { $($(#[$vmeta])* #[serde(rename = $text)] $variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::Invalid;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok($name::$variant),)+
                    other => Err($crate::Invalid(format!(
                        "unknown {} {other:?} (expected one of: {})",
                        stringify!($name).to_lowercase(),
                        [$($text),+].join(", ")
                    ))),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}
pub(crate) use text_enum;
