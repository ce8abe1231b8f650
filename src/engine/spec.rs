//! Which backend answers: a typed name, written `local`, `cloud` or
//! `cloud:NAME` on the command line, in the database and in the UI.
//!
//! One parser, one printer: every front end and table goes through
//! [`BackendSpec`], so adding a kind of backend (a taught model, say) is one
//! more variant here plus the places that must really treat it differently.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum BackendSpec {
    /// The model on this computer.
    #[default]
    Local,
    /// An OpenAI-compatible endpoint described by a cloud profile; `None` is the
    /// first profile (the command line's plain `cloud`).
    Cloud { profile: Option<String> },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown backend '{0}': use local, cloud or cloud:NAME (a profile from `duet cloud list`)")]
pub struct UnknownBackend(pub String);

impl BackendSpec {
    pub fn cloud(profile: &str) -> Self {
        BackendSpec::Cloud { profile: Some(profile.to_string()) }
    }

    pub fn is_local(&self) -> bool {
        matches!(self, BackendSpec::Local)
    }

    /// The cloud profile named, if this is a cloud backend that names one.
    pub fn profile(&self) -> Option<&str> {
        match self {
            BackendSpec::Cloud { profile } => profile.as_deref(),
            BackendSpec::Local => None,
        }
    }
}

impl fmt::Display for BackendSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BackendSpec::Local => f.write_str("local"),
            BackendSpec::Cloud { profile: None } => f.write_str("cloud"),
            BackendSpec::Cloud { profile: Some(p) } => write!(f, "cloud:{p}"),
        }
    }
}

impl FromStr for BackendSpec {
    type Err = UnknownBackend;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "local" => Ok(BackendSpec::Local),
            "cloud" => Ok(BackendSpec::Cloud { profile: None }),
            other => match other.strip_prefix("cloud:").map(str::trim) {
                Some(name) if !name.is_empty() => Ok(BackendSpec::cloud(name)),
                _ => Err(UnknownBackend(s.to_string())),
            },
        }
    }
}

// Stored and sent as its text form, so JSON and the database read `"cloud:lab"`.
impl Serialize for BackendSpec {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for BackendSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_round_trip_through_text() {
        for text in ["local", "cloud", "cloud:lab", "cloud:my profile"] {
            let spec: BackendSpec = text.parse().unwrap();
            assert_eq!(spec.to_string(), text);
        }
        assert_eq!("cloud:lab".parse::<BackendSpec>().unwrap().profile(), Some("lab"));
        assert!("local".parse::<BackendSpec>().unwrap().is_local());
        assert_eq!(" local ".parse::<BackendSpec>(), Ok(BackendSpec::Local));
    }

    #[test]
    fn unknown_kinds_and_empty_profiles_are_refused() {
        for bad in ["cloudy", "cloud:", "cloud: ", "Local", "", "gpu"] {
            let e = bad.parse::<BackendSpec>().unwrap_err();
            assert!(e.to_string().contains("use local, cloud or cloud:NAME"), "{bad}: {e}");
        }
    }

    #[test]
    fn json_holds_the_text_form() {
        let json = serde_json::to_string(&vec![BackendSpec::Local, BackendSpec::cloud("lab")]).unwrap();
        assert_eq!(json, r#"["local","cloud:lab"]"#);
        let back: Vec<BackendSpec> = serde_json::from_str(&json).unwrap();
        assert_eq!(back, vec![BackendSpec::Local, BackendSpec::cloud("lab")]);
        assert!(serde_json::from_str::<BackendSpec>(r#""nope""#).is_err());
    }
}
