//! When timer probes (`timer.ms(100)`, `timer.s(1).randomize(1)`) are due. rstap runs them
//! in its own event loop, between batches of kernel events: a timer fires no earlier than
//! its deadline, and one that falls behind skips the periods it missed rather than firing
//! them all at once.

use std::time::{Duration, Instant};

use crate::resolve::plan::PlannedTimer;

pub struct Timers {
    entries: Vec<Entry>,
    /// xorshift64 state, for randomized intervals.
    random: u64,
}

struct Entry {
    probe: usize,
    point: String,
    period: Duration,
    spread: Duration,
    next: Instant,
}

impl Timers {
    /// The timers of `planned`, each first due one interval after `now`.
    pub fn new(planned: &[PlannedTimer], now: Instant) -> Self {
        let seed = now.elapsed().as_nanos() as u64 ^ u64::from(std::process::id()) << 32;
        let mut timers = Timers {
            entries: Vec::with_capacity(planned.len()),
            random: seed | 1,
        };
        for timer in planned {
            let mut entry = Entry {
                probe: timer.probe,
                point: timer.point.clone(),
                period: Duration::from_nanos(timer.period_ns),
                spread: Duration::from_nanos(timer.randomize_ns),
                next: now,
            };
            entry.next = now + interval(&mut timers.random, entry.period, entry.spread);
            timers.entries.push(entry);
        }
        timers
    }

    /// The earliest deadline, if there are timers.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.entries.iter().map(|entry| entry.next).min()
    }

    /// The probes due at `now` with their points (as `pp()` gives them), earliest first;
    /// each is rescheduled.
    pub fn due(&mut self, now: Instant) -> Vec<(usize, String)> {
        let mut due: Vec<(Instant, usize)> = self
            .entries
            .iter()
            .enumerate()
            .filter(|(_, entry)| entry.next <= now)
            .map(|(i, entry)| (entry.next, i))
            .collect();
        due.sort();
        due.into_iter()
            .map(|(_, i)| {
                let entry = &mut self.entries[i];
                let interval = interval(&mut self.random, entry.period, entry.spread);
                entry.next += interval;
                if entry.next <= now {
                    entry.next = now + interval;
                }
                (entry.probe, entry.point.clone())
            })
            .collect()
    }
}

/// `period`, moved by up to `spread` either way (xorshift64 on `random`).
fn interval(random: &mut u64, period: Duration, spread: Duration) -> Duration {
    if spread.is_zero() {
        return period;
    }
    *random ^= *random << 13;
    *random ^= *random >> 7;
    *random ^= *random << 17;
    let spread_ns = spread.as_nanos() as u64;
    period + Duration::from_nanos(*random % (2 * spread_ns + 1)) - spread
}

#[cfg(test)]
mod tests {
    use super::*;

    fn planned(probe: usize, period_ms: u64, randomize_ms: u64) -> PlannedTimer {
        PlannedTimer {
            probe,
            point: format!("timer.ms({period_ms})"),
            period_ns: period_ms * 1_000_000,
            randomize_ns: randomize_ms * 1_000_000,
        }
    }

    #[test]
    fn timers_fire_in_deadline_order_and_reschedule() {
        let start = Instant::now();
        let mut timers = Timers::new(&[planned(0, 300, 0), planned(1, 100, 0)], start);
        assert_eq!(
            timers.next_deadline(),
            Some(start + Duration::from_millis(100))
        );
        assert!(timers.due(start + Duration::from_millis(50)).is_empty());
        let at = |ms| start + Duration::from_millis(ms);
        assert_eq!(timers.due(at(100)), [(1, "timer.ms(100)".to_string())]);
        assert_eq!(timers.next_deadline(), Some(at(200)));
        let both: Vec<usize> = timers.due(at(300)).into_iter().map(|(p, _)| p).collect();
        // Both due: the 100 ms timer's deadline (200) came first.
        assert_eq!(both, [1, 0]);
    }

    #[test]
    fn randomized_intervals_stay_within_their_spread() {
        let start = Instant::now();
        let mut timers = Timers::new(&[planned(0, 100, 20)], start);
        let mut last = start;
        for _ in 0..50 {
            let next = timers.next_deadline().unwrap();
            let interval = next - last;
            assert!(
                interval >= Duration::from_millis(80) && interval <= Duration::from_millis(120),
                "{interval:?}"
            );
            timers.due(next);
            last = next;
        }
    }
}
