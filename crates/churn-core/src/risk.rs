//! Risk bands: LOW / MEDIUM / HIGH by probability cut-offs stored in the artifact, so every path
//! (online, batch, alerts) bands a score the same way.

use serde::{Deserialize, Serialize};

use crate::error::{CoreError, Result};

/// How urgent a customer's risk is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RiskBand {
    /// Below the MEDIUM cut-off.
    Low,
    /// From the MEDIUM cut-off up to the HIGH one.
    Medium,
    /// From the HIGH cut-off up.
    High,
}

impl RiskBand {
    /// Returns the uppercase name shown to users.
    pub fn as_str(self) -> &'static str {
        match self {
            RiskBand::Low => "LOW",
            RiskBand::Medium => "MEDIUM",
            RiskBand::High => "HIGH",
        }
    }
}

/// Probability cut-offs: below `medium` is LOW, below `high` is MEDIUM, the rest HIGH.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RiskBands {
    /// Probabilities from this one up are MEDIUM.
    pub medium: f64,
    /// Probabilities from this one up are HIGH.
    pub high: f64,
}

impl RiskBands {
    /// Share of the training population banded HIGH by default.
    pub const DEFAULT_HIGH_SHARE: f64 = 0.10;
    /// Share of the training population banded MEDIUM by default.
    pub const DEFAULT_MEDIUM_SHARE: f64 = 0.20;

    /// Returns cut-offs that band the riskiest 10% of training customers HIGH and the next 20%
    /// MEDIUM, from training probabilities at evenly spaced quantiles (0th … 100th).
    pub fn from_quantiles(quantiles: &[f64]) -> Self {
        let at = |share_above: f64| match quantiles.len() {
            0 => 0.5,
            len => {
                let position = (1.0 - share_above) * (len - 1) as f64;
                quantiles[(position.round() as usize).min(len - 1)]
            }
        };
        RiskBands {
            medium: at(Self::DEFAULT_HIGH_SHARE + Self::DEFAULT_MEDIUM_SHARE),
            high: at(Self::DEFAULT_HIGH_SHARE),
        }
    }

    /// Checks that the cut-offs are probabilities in order.
    pub fn validate(&self) -> Result<()> {
        let in_unit = |p: f64| (0.0..=1.0).contains(&p);
        if !in_unit(self.medium) || !in_unit(self.high) || self.medium > self.high {
            return Err(CoreError::InvalidArtifact {
                reason: format!(
                    "risk band cut-offs must satisfy 0 <= medium <= high <= 1, got medium {} and high {}",
                    self.medium, self.high
                ),
            });
        }
        Ok(())
    }

    /// Returns the band of a probability.
    pub fn band(&self, probability: f64) -> RiskBand {
        if probability >= self.high {
            RiskBand::High
        } else if probability >= self.medium {
            RiskBand::Medium
        } else {
            RiskBand::Low
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bands_split_at_the_cut_offs() {
        let bands = RiskBands {
            medium: 0.3,
            high: 0.6,
        };
        assert_eq!(bands.band(0.0), RiskBand::Low);
        assert_eq!(bands.band(0.2999), RiskBand::Low);
        assert_eq!(bands.band(0.3), RiskBand::Medium);
        assert_eq!(bands.band(0.5999), RiskBand::Medium);
        assert_eq!(bands.band(0.6), RiskBand::High);
        assert_eq!(bands.band(1.0), RiskBand::High);
    }

    #[test]
    fn default_cut_offs_are_the_70th_and_90th_percentiles() {
        let quantiles: Vec<f64> = (0..=100).map(|step| f64::from(step) / 200.0).collect();
        let bands = RiskBands::from_quantiles(&quantiles);
        assert_eq!(bands.medium, 0.35);
        assert_eq!(bands.high, 0.45);
    }

    #[test]
    fn cut_offs_out_of_order_or_range_are_refused() {
        for (medium, high) in [(0.7, 0.3), (-0.1, 0.5), (0.2, 1.5), (f64::NAN, 0.5)] {
            let error = RiskBands { medium, high }.validate().unwrap_err();
            assert!(error.to_string().contains("risk band cut-offs"), "{error}");
        }
    }
}
