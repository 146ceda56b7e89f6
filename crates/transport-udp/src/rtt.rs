//! Round-trip estimation and the retransmission timeout (RFC 6298 §2, with
//! RFC 9002's ACK delay): SRTT and RTTVAR with α = 1/8 and β = 1/4,
//! `RTO = SRTT + max(granularity, 4·RTTVAR) + max_ack_delay`, clamped to
//! `[min_rto, max_rto]`, doubled on every timeout in a row.

use std::time::Duration;

use crate::config::RetransmitConfig;

/// Clock granularity `G` of RFC 6298: 1 ms (RFC 9002's kGranularity).
const GRANULARITY: Duration = Duration::from_millis(1);

/// The estimator of one session.
#[derive(Debug, Clone)]
pub(crate) struct RttEstimator {
    srtt: Option<Duration>,
    rttvar: Duration,
    latest: Duration,
    /// Timeouts in a row without an acknowledgement in between.
    backoff: u32,
    cfg: RetransmitConfig,
}

impl RttEstimator {
    pub(crate) const fn new(cfg: RetransmitConfig) -> Self {
        Self {
            srtt: None,
            rttvar: Duration::ZERO,
            latest: Duration::ZERO,
            backoff: 0,
            cfg,
        }
    }

    /// Takes a sample from a record transmitted once (record counters are
    /// never reused, so every sample is unambiguous: Karn's rule holds by
    /// construction). `ack_delay` is what the receiver reported.
    pub(crate) fn sample(&mut self, rtt: Duration, ack_delay: Duration) {
        let rtt = rtt
            .checked_sub(ack_delay.min(self.cfg.max_ack_delay))
            .filter(|r| !r.is_zero())
            .unwrap_or(rtt);
        self.latest = rtt;
        match self.srtt {
            None => {
                self.srtt = Some(rtt);
                self.rttvar = rtt / 2;
            }
            Some(srtt) => {
                let delta = srtt.abs_diff(rtt);
                self.rttvar = (self.rttvar * 3 + delta) / 4;
                self.srtt = Some((srtt * 7 + rtt) / 8);
            }
        }
    }

    /// An acknowledgement arrived: the backoff ends (RFC 6298 §5.7).
    pub(crate) const fn reset_backoff(&mut self) {
        self.backoff = 0;
    }

    /// The retransmission timer fired.
    pub(crate) const fn on_timeout(&mut self) {
        self.backoff = self.backoff.saturating_add(1);
    }

    pub(crate) const fn srtt(&self) -> Option<Duration> {
        self.srtt
    }

    /// The most recent sample.
    pub(crate) const fn latest(&self) -> Duration {
        self.latest
    }

    /// The current retransmission timeout, backoff included.
    pub(crate) fn rto(&self) -> Duration {
        let base = self.srtt.map_or(self.cfg.initial_rto, |srtt| {
            srtt + (self.rttvar * 4).max(GRANULARITY) + self.cfg.max_ack_delay
        });
        let base = base.clamp(self.cfg.min_rto, self.cfg.max_rto);
        base.saturating_mul(1 << self.backoff.min(16))
            .min(self.cfg.max_rto)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    #[test]
    fn rfc6298_first_and_later_samples() {
        let mut r = RttEstimator::new(RetransmitConfig::default());
        assert_eq!(r.rto(), Duration::from_secs(1), "initial RTO");
        r.sample(ms(100), Duration::ZERO);
        // SRTT 100, RTTVAR 50: 100 + 200 + 5.
        assert_eq!(r.rto(), ms(305));
        r.sample(ms(200), Duration::ZERO);
        // RTTVAR = 3/4·50 + 1/4·100 = 62.5; SRTT = 7/8·100 + 1/8·200 = 112.5.
        assert_eq!(r.srtt(), Some(Duration::from_micros(112_500)));
        assert_eq!(r.rto(), Duration::from_micros(112_500 + 250_000 + 5_000));
    }

    #[test]
    fn backoff_doubles_to_the_cap_and_resets() {
        let mut r = RttEstimator::new(RetransmitConfig::default());
        r.sample(ms(100), Duration::ZERO);
        let mut seen = Vec::new();
        for _ in 0..6 {
            r.on_timeout();
            seen.push(r.rto());
        }
        assert_eq!(
            seen,
            [ms(610), ms(1220), ms(2440), ms(4880), ms(8000), ms(8000)]
        );
        r.reset_backoff();
        assert_eq!(r.rto(), ms(305));
    }

    #[test]
    fn ack_delay_is_subtracted_up_to_its_maximum() {
        let mut r = RttEstimator::new(RetransmitConfig::default());
        r.sample(ms(50), ms(100));
        assert_eq!(r.latest(), ms(45));
    }
}
