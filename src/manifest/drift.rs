//! What to do when the live picture is not the manifest's: `drift: off | warn | heal`.

use std::fmt;
use std::str::FromStr;

/// How the daemon treats an instance whose live picture drifted from its desired one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum DriftMode {
    /// Never read the live picture.
    Off,
    /// Read it about once per `driftInterval`; report `drifted`, send nothing.
    #[default]
    Warn,
    /// As `warn`, then send the picture again, under the usual throttle and backoff.
    Heal,
}

impl fmt::Display for DriftMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Off => "off",
            Self::Warn => "warn",
            Self::Heal => "heal",
        })
    }
}

impl FromStr for DriftMode {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "off" => Ok(Self::Off),
            "warn" => Ok(Self::Warn),
            "heal" => Ok(Self::Heal),
            _ => Err(format!(
                "`{text}` is not a drift mode; expected one of: off, warn, heal"
            )),
        }
    }
}
