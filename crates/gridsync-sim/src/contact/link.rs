//! The simulated byte pipe between two devices in contact: one reliable, ordered stream per
//! direction, with a bandwidth, a one-way latency and segment loss.
//!
//! Bytes are cut into segments; each transmission of a segment occupies the sender's channel
//! for `segment / bandwidth`, and is lost with probability `loss`. A lost segment is sent
//! again one retransmission timeout later (without stalling the segments behind it on the
//! channel, as with selective acknowledgements), and because the stream is ordered no segment
//! is delivered before the ones ahead of it: a loss costs the whole stream that much time.
//! What is in the pipe when the contact ends is lost with it.

use rand::Rng;
use rand::rngs::StdRng;

use crate::contact::SimTime;

/// The properties of one contact's link (the same both ways).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct LinkProfile {
    /// Bytes per second the sender's channel carries.
    pub bandwidth: u64,
    /// One-way latency, microseconds.
    pub latency: SimTime,
    /// Chance that one transmission of a segment is lost.
    pub loss: f64,
    /// Bytes per segment.
    pub segment: usize,
    /// Retransmission timeout after a lost transmission, microseconds.
    pub rto: SimTime,
}

impl LinkProfile {
    /// Local Wi-Fi between phones or laptops: `bandwidth` bytes/s, `latency_ms` one way, 20 %
    /// segment loss, 1,200-byte segments, a timeout of twice the round trip (at least 50 ms).
    pub fn wifi(bandwidth: u64, latency_ms: u64) -> LinkProfile {
        let latency = latency_ms * 1000;
        LinkProfile {
            bandwidth: bandwidth.max(1),
            latency,
            loss: 0.2,
            segment: 1200,
            rto: (4 * latency).max(50_000),
        }
    }
}

/// Counters of one direction of a link.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PipeStats {
    /// Bytes handed to the pipe by the session.
    pub bytes: u64,
    /// Bytes put on the channel, retransmissions included.
    pub wire_bytes: u64,
    /// Segment transmissions lost.
    pub lost_segments: u64,
}

/// One direction of a link.
#[derive(Debug)]
pub struct Pipe {
    profile: LinkProfile,
    /// When the sender's channel is next free.
    busy_until: SimTime,
    /// Arrival time of the last segment queued: later ones cannot arrive before it.
    last_arrival: SimTime,
    stats: PipeStats,
}

impl Pipe {
    pub fn new(profile: LinkProfile) -> Pipe {
        Pipe {
            profile,
            busy_until: 0,
            last_arrival: 0,
            stats: PipeStats::default(),
        }
    }

    /// Queues `bytes` sent at `now`; returns each segment with its arrival time, in order.
    pub fn send(
        &mut self,
        now: SimTime,
        bytes: &[u8],
        rng: &mut StdRng,
    ) -> Vec<(SimTime, Vec<u8>)> {
        let profile = self.profile;
        let mut arrivals = Vec::with_capacity(bytes.len() / profile.segment + 1);
        for segment in bytes.chunks(profile.segment) {
            let transmit = (segment.len() as u64 * 1_000_000).div_ceil(profile.bandwidth);
            let start = self.busy_until.max(now);
            self.busy_until = start + transmit;
            self.stats.wire_bytes += segment.len() as u64;
            let mut done = self.busy_until;
            while rng.random_bool(profile.loss) {
                // The retransmission uses the channel too, one timeout after the loss.
                self.stats.lost_segments += 1;
                self.stats.wire_bytes += segment.len() as u64;
                self.busy_until += transmit;
                done += profile.rto + transmit;
            }
            let arrival = (done + profile.latency).max(self.last_arrival);
            self.last_arrival = arrival;
            arrivals.push((arrival, segment.to_vec()));
        }
        self.stats.bytes += bytes.len() as u64;
        arrivals
    }

    /// Whether bytes sent are still travelling at `now`.
    pub fn busy_at(&self, now: SimTime) -> bool {
        self.last_arrival > now
    }

    pub fn stats(&self) -> PipeStats {
        self.stats
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    fn arrivals(loss: f64, seed: u64) -> Vec<(SimTime, Vec<u8>)> {
        let mut profile = LinkProfile::wifi(100_000, 10);
        profile.loss = loss;
        let mut pipe = Pipe::new(profile);
        let bytes: Vec<u8> = (0..=255u8).cycle().take(12_000).collect();
        pipe.send(0, &bytes, &mut StdRng::seed_from_u64(seed))
    }

    #[test]
    fn delivers_every_byte_in_order_after_latency_and_transmission_time() {
        let got = arrivals(0.0, 1);
        assert_eq!(got.len(), 10);
        let joined: Vec<u8> = got.iter().flat_map(|(_, b)| b.clone()).collect();
        let sent: Vec<u8> = (0..=255u8).cycle().take(12_000).collect();
        assert_eq!(joined, sent);
        // 1,200 bytes at 100 kB/s take 12 ms; plus 10 ms latency.
        assert_eq!(got[0].0, 22_000);
        assert_eq!(got[9].0, 130_000);
    }

    #[test]
    fn loss_delays_the_stream_but_never_reorders_it() {
        let clean = arrivals(0.0, 7);
        let lossy = arrivals(0.2, 7);
        assert!(lossy.last().expect("segments").0 > clean.last().expect("segments").0);
        assert!(lossy.windows(2).all(|w| w[0].0 <= w[1].0));
        let mut profile = LinkProfile::wifi(100_000, 10);
        profile.loss = 0.2;
        let mut pipe = Pipe::new(profile);
        pipe.send(0, &[0; 120_000], &mut StdRng::seed_from_u64(3));
        let stats = pipe.stats();
        assert_eq!(stats.bytes, 120_000);
        // About a quarter more transmissions than segments at 20 % loss.
        assert!((10..=50).contains(&stats.lost_segments), "{stats:?}");
        assert_eq!(stats.wire_bytes, 120_000 + stats.lost_segments * 1200);
    }
}
