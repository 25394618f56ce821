//! The rollout policy (`rollout:`): how the uploads a revision changes are spread in
//! waves, whether each wave is read back before the next, how many failures halt it, and
//! the least pause between waves.

use std::time::Duration;

/// A number of instances: a count, or a percentage of a whole.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Amount {
    /// So many instances.
    Count(u32),
    /// This percentage (0 to 100) of them.
    Percent(u8),
}

impl Amount {
    /// Reads `2` or `10%`; `Err` with why.
    pub fn parse(written: &str) -> Result<Self, String> {
        let text = written.trim();
        if let Some(percent) = text.strip_suffix('%') {
            return match percent.trim().parse::<u8>() {
                Ok(p) if p <= 100 => Ok(Self::Percent(p)),
                _ => Err(format!(
                    "`{written}` is not a percentage from 0% to 100% (whole numbers)"
                )),
            };
        }
        match text.parse::<u32>() {
            Ok(n) if text.bytes().all(|b| b.is_ascii_digit()) => Ok(Self::Count(n)),
            _ => Err(format!(
                "`{written}` is neither a count of instances (such as 2) nor a percentage \
                 (such as 10%)"
            )),
        }
    }

    /// How many of `whole` instances it is, rounded up (a wave of 10% of 5 is 1).
    pub fn of_ceil(self, whole: usize) -> usize {
        match self {
            Self::Count(n) => (n as usize).min(whole),
            Self::Percent(p) => (whole * usize::from(p)).div_ceil(100),
        }
    }

    /// How many of `whole` instances it is, rounded down (5% failures of 10 is 0).
    pub fn of_floor(self, whole: usize) -> usize {
        match self {
            Self::Count(n) => n as usize,
            Self::Percent(p) => whole * usize::from(p) / 100,
        }
    }
}

impl std::fmt::Display for Amount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Count(n) => write!(f, "{n}"),
            Self::Percent(p) => write!(f, "{p}%"),
        }
    }
}

/// `rollout:`, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RolloutPolicy {
    /// Cumulative: how many of the changed instances have the new picture once each wave
    /// is done. The last wave takes them all, whatever it says.
    pub waves: Vec<Amount>,
    /// Read each upload back (perceptually, as drift does) before the wave counts as landed.
    pub verify: bool,
    /// More failures than this in one wave halt the rollout (of the wave's own instances).
    pub max_failures: Amount,
    /// Least time between a wave landing and the next one starting.
    pub pause: Duration,
}

impl Default for RolloutPolicy {
    fn default() -> Self {
        Self {
            waves: vec![Amount::Percent(100)],
            verify: false,
            max_failures: Amount::Count(0),
            pause: Duration::ZERO,
        }
    }
}

impl RolloutPolicy {
    /// The cumulative size of each wave for `changed` instances: increasing, at least one
    /// each, the last one all of them. Waves that would add nobody are left out.
    pub fn cuts(&self, changed: usize) -> Vec<usize> {
        let mut cuts: Vec<usize> = Vec::with_capacity(self.waves.len() + 1);
        for wave in &self.waves {
            let size = wave.of_ceil(changed).max(1).min(changed);
            if cuts.last().is_none_or(|&last| size > last) {
                cuts.push(size);
            }
        }
        if cuts.last().is_none_or(|&last| last < changed) {
            cuts.push(changed);
        }
        cuts.retain(|&c| c > 0);
        cuts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(waves: &[&str]) -> RolloutPolicy {
        RolloutPolicy {
            waves: waves.iter().map(|w| Amount::parse(w).unwrap()).collect(),
            ..RolloutPolicy::default()
        }
    }

    #[test]
    fn waves_are_cumulative_counts_of_the_changed_instances() {
        assert_eq!(policy(&["2", "10%", "100%"]).cuts(100), vec![2, 10, 100]);
        assert_eq!(policy(&["1", "10%", "100%"]).cuts(5), vec![1, 5]);
        // The last wave takes everyone, even when the list stops short.
        assert_eq!(policy(&["1", "50%"]).cuts(10), vec![1, 5, 10]);
        // A wave never adds nobody, and one instance is one wave.
        assert_eq!(policy(&["5", "3", "100%"]).cuts(20), vec![5, 20]);
        assert_eq!(policy(&["2", "10%", "100%"]).cuts(1), vec![1]);
        assert!(policy(&["2"]).cuts(0).is_empty());
    }

    #[test]
    fn amounts_read_counts_and_percentages_and_refuse_the_rest() {
        assert_eq!(Amount::parse("10%"), Ok(Amount::Percent(10)));
        assert_eq!(Amount::parse("3"), Ok(Amount::Count(3)));
        assert!(Amount::parse("101%").is_err());
        assert!(Amount::parse("-1").is_err());
        assert!(
            Amount::parse("ten")
                .unwrap_err()
                .contains("neither a count")
        );
        assert_eq!(Amount::Percent(5).of_floor(10), 0);
        assert_eq!(Amount::Percent(5).of_floor(100), 5);
        assert_eq!(Amount::Percent(10).of_ceil(5), 1);
    }
}
