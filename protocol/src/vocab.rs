//! Purposes and data categories (spec §6): a small built-in vocabulary taken from the W3C Data
//! Privacy Vocabulary (DPV 2.x, prefixes `dpv:` and `pd:`), plus extension URIs.
//!
//! A term is either one of the built-in compact identifiers below or an absolute `https://`
//! or `urn:` URI naming an extension term. Matching is exact string equality: a consent for
//! `dpv:Marketing` does not cover `dpv:DirectMarketing`.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Built-in purposes (DPV `dpv:` purpose concepts).
pub const PURPOSES: &[&str] = &[
    "dpv:ServiceProvision",
    "dpv:ServicePersonalisation",
    "dpv:ServiceOptimisation",
    "dpv:CustomerCare",
    "dpv:CustomerRelationshipManagement",
    "dpv:Marketing",
    "dpv:DirectMarketing",
    "dpv:Advertising",
    "dpv:PersonalisedAdvertising",
    "dpv:ResearchAndDevelopment",
    "dpv:FraudPreventionAndDetection",
    "dpv:LegalCompliance",
];

/// Built-in personal-data categories (DPV `pd:` concepts).
pub const CATEGORIES: &[&str] = &[
    "pd:Name",
    "pd:EmailAddress",
    "pd:TelephoneNumber",
    "pd:Contact",
    "pd:Location",
    "pd:Demographic",
    "pd:Preference",
    "pd:Interest",
    "pd:PurchasesAndSpendingHabit",
    "pd:Transactional",
    "pd:Financial",
    "pd:Health",
    "pd:BrowsingBehaviour",
];

/// Longest extension URI accepted.
pub const MAX_TERM_LEN: usize = 256;

fn is_extension(s: &str) -> bool {
    let rest = s.strip_prefix("https://").or_else(|| s.strip_prefix("urn:"));
    rest.is_some_and(|r| !r.is_empty()) && s.len() <= MAX_TERM_LEN && s.bytes().all(|b| b.is_ascii_graphic())
}

macro_rules! term {
    ($(#[$doc:meta])* $name:ident, $list:ident, $what:expr) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Accepts a built-in identifier or an extension URI.
            pub fn new(s: impl Into<String>) -> Result<Self, String> {
                let s = s.into();
                if $list.contains(&s.as_str()) || is_extension(&s) {
                    Ok(Self(s))
                } else {
                    Err(format!("{s:?} is neither a built-in {} nor an https:// or urn: URI", $what))
                }
            }

            /// The identifier as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// Whether this is an extension URI rather than a built-in term.
            pub fn is_extension(&self) -> bool {
                !$list.contains(&self.0.as_str())
            }
        }

        impl TryFrom<String> for $name {
            type Error = String;
            fn try_from(s: String) -> Result<Self, String> {
                Self::new(s)
            }
        }

        impl From<$name> for String {
            fn from(t: $name) -> String {
                t.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{:?}", self.0)
            }
        }
    };
}

term!(
    /// Why data is processed: a DPV purpose or an extension URI.
    Purpose,
    PURPOSES,
    "purpose"
);
term!(
    /// What kind of personal data: a DPV personal-data category or an extension URI.
    Category,
    CATEGORIES,
    "data category"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_and_extensions() {
        assert!(Purpose::new("dpv:Marketing").is_ok());
        assert!(!Purpose::new("dpv:Marketing").unwrap().is_extension());
        assert!(Purpose::new("https://vendor.example/purposes/loyalty").unwrap().is_extension());
        assert!(Category::new("urn:example:shoe-size").is_ok());
        assert!(Purpose::new("marketing").is_err());
        assert!(Purpose::new("pd:Name").is_err(), "a category is not a purpose");
        assert!(Category::new("https://").is_err());
        assert!(Category::new("https://a b").is_err());
        assert!(Category::new(format!("https://{}", "a".repeat(MAX_TERM_LEN))).is_err());
    }

    #[test]
    fn bad_terms_fail_to_decode() {
        let mut buf = Vec::new();
        ciborium::into_writer(&"dpv:Nope", &mut buf).unwrap();
        assert!(ciborium::from_reader::<Purpose, _>(buf.as_slice()).is_err());
    }
}
