//! Statistics aggregates (`x <<< v`): count, sum, extremes, variance, and the log and
//! linear histograms that `print(@hist_log(x))` draws exactly as SystemTap draws them.

use std::io::Write;

use crate::script::{HistKind, StatsShape};

/// Log histogram buckets: 64 for negative values, one for 0, 63 for positive ones.
const LOG_BUCKETS: usize = 128;
/// The bucket of 0.
const ZERO_BUCKET: usize = 64;
/// SystemTap's bar width, in `@`s.
const BAR_WIDTH: u64 = 50;
/// Empty buckets further than this from a non-empty one are elided (SystemTap's
/// HIST_ELISION).
const ELISION: usize = 2;
/// The most buckets a linear histogram may have, its two outliers included.
pub const MAX_LINEAR_BUCKETS: i64 = 128;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stats {
    count: i64,
    sum: i64,
    min: i64,
    max: i64,
    /// SystemTap's running mean and sum of squared deviations, in its integer arithmetic
    /// (see [`Stats::variance`]), and the variance they give: all of values scaled up by
    /// `shift` bits, `@variance(x, shift)`'s help against truncation.
    shift: u32,
    mean: i64,
    squares: i64,
    running_variance: i64,
    log: Option<Box<[u64; LOG_BUCKETS]>>,
    /// One bucket vector for each linear histogram the script prints of this aggregate.
    linear: Vec<(HistKind, Vec<u64>)>,
}

impl Stats {
    pub fn new(shape: &StatsShape) -> Self {
        Stats {
            count: 0,
            sum: 0,
            min: 0,
            max: 0,
            shift: shape.variance_shift,
            mean: 0,
            squares: 0,
            running_variance: 0,
            log: None,
            linear: shape
                .linear
                .iter()
                .map(|&kind| (kind, vec![0; linear_buckets(kind)]))
                .collect(),
        }
    }

    /// Empties the aggregate (`delete x`), keeping how it is kept.
    pub fn clear(&mut self) {
        (self.count, self.sum, self.min, self.max) = (0, 0, 0, 0);
        (self.mean, self.squares, self.running_variance) = (0, 0, 0);
        self.log = None;
        for (_, buckets) in &mut self.linear {
            buckets.fill(0);
        }
    }

    pub fn add(&mut self, value: i64) {
        let scaled = value.wrapping_shl(self.shift);
        if self.count == 0 {
            (self.min, self.max) = (value, value);
            self.mean = scaled;
        } else {
            self.min = self.min.min(value);
            self.max = self.max.max(value);
            // Welford's update as SystemTap's runtime does it: the deviation truncated to
            // 32 bits, every division truncating.
            let count = self.count + 1;
            let delta = i64::from(scaled.wrapping_sub(self.mean) as i32);
            self.mean = self.mean.wrapping_add(delta / count);
            self.squares = self
                .squares
                .wrapping_add(delta.wrapping_mul(scaled.wrapping_sub(self.mean)));
            self.running_variance = self.squares / (count - 1);
        }
        self.count += 1;
        self.sum = self.sum.wrapping_add(value);
        self.log.get_or_insert_with(|| Box::new([0; LOG_BUCKETS]))[log_bucket(value)] += 1;
        for (kind, buckets) in &mut self.linear {
            if let HistKind::Linear { low, step, .. } = *kind {
                let offset = value.wrapping_sub(low);
                let bucket = if offset < 0 {
                    0
                } else {
                    (offset / step + 1) as usize
                };
                let last = buckets.len() - 1;
                buckets[bucket.min(last)] += 1;
            }
        }
    }

    pub fn count(&self) -> i64 {
        self.count
    }

    pub fn sum(&self) -> i64 {
        self.sum
    }

    /// `None` for an empty aggregate, which SystemTap refuses to take these of.
    pub fn min(&self) -> Option<i64> {
        (self.count > 0).then_some(self.min)
    }

    pub fn max(&self) -> Option<i64> {
        (self.count > 0).then_some(self.max)
    }

    pub fn avg(&self) -> Option<i64> {
        (self.count > 0).then(|| self.sum / self.count)
    }

    /// The sample variance as SystemTap computes it, which is not the exact one: its
    /// integer running mean can lag far behind (0..99 gives 5741, not 841). An array
    /// element's is the running figure; a global aggregate's is recombined from per-CPU
    /// parts, which adds a term for the running mean's error (rstap has one part).
    pub fn variance(&self, global: bool) -> Option<i64> {
        let count = self.count;
        if count == 0 {
            return None;
        }
        let scaled = if global {
            let mean = self.sum.wrapping_shl(self.shift) / count;
            let error = self.mean.wrapping_sub(mean);
            let spread = count.wrapping_mul(error.wrapping_mul(error));
            let within = (count - 1).wrapping_mul(self.running_variance);
            spread
                .wrapping_add(within)
                .checked_div(count - 1)
                .unwrap_or(0)
        } else {
            self.running_variance
        };
        Some(scaled >> (2 * self.shift).min(63))
    }

    /// Draws a histogram of the aggregate. A linear one must be among those `new` was given.
    pub fn write_histogram(&self, kind: HistKind, out: &mut Vec<u8>) {
        let empty = [0u64; LOG_BUCKETS];
        let (buckets, log): (&[u64], bool) = match kind {
            HistKind::Log => (self.log.as_deref().unwrap_or(&empty), true),
            HistKind::Linear { .. } => match self.linear.iter().find(|(k, _)| *k == kind) {
                Some((_, buckets)) => (buckets, false),
                None => return,
            },
        };
        draw(buckets, kind, log, out);
    }
}

fn linear_buckets(kind: HistKind) -> usize {
    match kind {
        HistKind::Linear { low, high, step } => {
            ((high.wrapping_sub(low) / step + 3).clamp(3, MAX_LINEAR_BUCKETS)) as usize
        }
        HistKind::Log => LOG_BUCKETS,
    }
}

/// A value's log bucket: 0 in the middle, one bucket per power of two on either side.
fn log_bucket(value: i64) -> usize {
    let bits = 64 - value.unsigned_abs().leading_zeros() as usize;
    if value < 0 {
        LOG_BUCKETS - (ZERO_BUCKET + bits)
    } else {
        (ZERO_BUCKET + bits).min(LOG_BUCKETS - 1)
    }
}

/// The smallest value in a log bucket, as its row is labelled.
fn log_bucket_value(bucket: usize) -> i64 {
    match bucket {
        ZERO_BUCKET => 0,
        b if b < ZERO_BUCKET => i64::MIN >> b,
        b => 1 << (b - ZERO_BUCKET - 1),
    }
}

/// How many characters `value` prints as.
fn width(value: i64) -> usize {
    let digits = value
        .unsigned_abs()
        .checked_ilog10()
        .map_or(1, |d| d as usize + 1);
    digits + usize::from(value < 0)
}

fn draw(buckets: &[u64], kind: HistKind, log: bool, out: &mut Vec<u8>) {
    let last = buckets.len() - 1;
    let occupied = buckets.iter().position(|&n| n > 0);
    let (mut low, mut high) = match occupied {
        Some(first) => (first, buckets.iter().rposition(|&n| n > 0).unwrap_or(first)),
        None if log => (ZERO_BUCKET, ZERO_BUCKET),
        None => (0, 0),
    };
    let most = buckets.iter().copied().max().unwrap_or(0);
    // Two empty rows of margin either side; a log histogram's rows start at 0 at the
    // lowest unless values below it were seen.
    for _ in 0..2 {
        if low > 0 && !(log && low == ZERO_BUCKET) {
            low -= 1;
        }
        if high < last {
            high += 1;
        }
    }
    let (mut under, mut over) = (false, false);
    let (start, step) = match kind {
        HistKind::Linear { low, step, .. } => (low, step),
        HistKind::Log => (0, 1),
    };
    if !log {
        if low == 0 && buckets[0] == 0 {
            low += 1;
        }
        if high == last && buckets[high] == 0 {
            high -= 1;
        }
        under = low == 0;
        over = high == last;
    }
    let scale = if most <= BAR_WIDTH {
        1
    } else {
        most.div_ceil(BAR_WIDTH)
    };
    let count_width = width(most as i64);
    let value_width = if log {
        width(log_bucket_value(high)).max(width(log_bucket_value(low)))
    } else {
        (width(start) + usize::from(under))
            .max(width(start.wrapping_add(step.wrapping_mul(high as i64))) + usize::from(over))
    }
    .max(5);
    let _ = writeln!(
        out,
        "{:>value_width$} |{} count",
        "value",
        "-".repeat(BAR_WIDTH as usize)
    );
    let mut eliding = false;
    for i in low..=high {
        let near = i.saturating_sub(ELISION).max(low)..=(i + ELISION).min(high);
        if buckets[near].iter().all(|&n| n == 0) {
            eliding = true;
            continue;
        }
        if eliding {
            let _ = writeln!(out, "{:value_width$} ~", "");
            eliding = false;
        }
        let (prefix, value) = if log {
            ("", log_bucket_value(i))
        } else if i == 0 {
            ("<", start)
        } else if i == last {
            (">", start.wrapping_add((i as i64 - 2).wrapping_mul(step)))
        } else {
            ("", start.wrapping_add((i as i64 - 1).wrapping_mul(step)))
        };
        let bar = buckets[i] / scale;
        let _ = writeln!(
            out,
            "{:>pad$}{value} |{}{:>count$}",
            prefix,
            "@".repeat(bar as usize),
            buckets[i],
            pad = value_width.saturating_sub(width(value)),
            count = (BAR_WIDTH - bar) as usize + 1 + count_width,
        );
    }
    out.push(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats_of(values: impl IntoIterator<Item = i64>, linear: &[HistKind]) -> Stats {
        let mut stats = Stats::new(&StatsShape {
            linear: linear.to_vec(),
            variance_shift: 0,
        });
        for value in values {
            stats.add(value);
        }
        stats
    }

    fn drawn(stats: &Stats, kind: HistKind) -> String {
        let mut out = Vec::new();
        stats.write_histogram(kind, &mut out);
        String::from_utf8(out).unwrap()
    }

    /// Rows as SystemTap's testsuite and runtime give them: `value |bar count`.
    fn rows(lines: &[&str]) -> String {
        lines
            .iter()
            .map(|line| format!("{line}\n"))
            .collect::<String>()
            + "\n"
    }

    fn row(label: &str, width: usize, count: u64, bar: usize, count_width: usize) -> String {
        format!(
            "{label:>width$} |{}{count:>pad$}",
            "@".repeat(bar),
            pad = 50 - bar + 1 + count_width
        )
    }

    #[test]
    fn figures_and_systemtaps_variance() {
        let stats = stats_of([1, 2, 3, 4, 8, 100], &[]);
        assert_eq!(
            (
                stats.count(),
                stats.sum(),
                stats.min(),
                stats.max(),
                stats.avg()
            ),
            (6, 118, Some(1), Some(100), Some(19))
        );
        assert_eq!(stats.variance(true), Some(1619));
        assert_eq!(stats_of(0..100, &[]).variance(true), Some(5741));
        assert_eq!(stats_of(0..100, &[]).variance(false), Some(3316));
        assert_eq!(stats_of(1000..10000, &[]).variance(true), Some(47241750));
        assert_eq!(stats_of([5], &[]).variance(true), Some(0));
        assert_eq!(stats_of([-7, 0], &[]).avg(), Some(-3));
        let empty = Stats::new(&StatsShape::default());
        assert_eq!(
            (empty.min(), empty.avg(), empty.variance(true)),
            (None, None, None)
        );
    }

    #[test]
    fn log_histograms_as_systemtap_draws_them() {
        let header = "value |-------------------------------------------------- count";
        let stats = stats_of([1, 2, 3, 4, 8, 100], &[]);
        let expected: Vec<String> = std::iter::once(header.to_string())
            .chain(
                [
                    ("0", 0),
                    ("1", 1),
                    ("2", 2),
                    ("4", 1),
                    ("8", 1),
                    ("16", 0),
                    ("32", 0),
                ]
                .into_iter()
                .chain([("64", 1), ("128", 0), ("256", 0)])
                .map(|(label, n)| row(label, 5, n, n as usize, 1)),
            )
            .collect();
        let expected: Vec<&str> = expected.iter().map(String::as_str).collect();
        assert_eq!(drawn(&stats, HistKind::Log), rows(&expected));

        let zero = stats_of([0], &[]);
        let expected = [
            header.to_string(),
            row("0", 5, 1, 1, 1),
            row("1", 5, 0, 0, 1),
            row("2", 5, 0, 0, 1),
        ];
        let expected: Vec<&str> = expected.iter().map(String::as_str).collect();
        assert_eq!(drawn(&zero, HistKind::Log), rows(&expected));
    }

    #[test]
    fn long_empty_runs_are_elided_and_bars_scaled() {
        let stats = stats_of([-2, -4096], &[]);
        let mut expected =
            vec![" value |-------------------------------------------------- count".to_string()];
        for (label, n) in [
            ("-16384", 0),
            ("-8192", 0),
            ("-4096", 1),
            ("-2048", 0),
            ("-1024", 0),
        ] {
            expected.push(row(label, 6, n, n as usize, 1));
        }
        expected.push("       ~".to_string());
        for (label, n) in [("-8", 0), ("-4", 0), ("-2", 1), ("-1", 0), ("0", 0)] {
            expected.push(row(label, 6, n, n as usize, 1));
        }
        let expected: Vec<&str> = expected.iter().map(String::as_str).collect();
        assert_eq!(drawn(&stats, HistKind::Log), rows(&expected));

        let scaled = stats_of(
            std::iter::repeat_n(1, 120).chain(std::iter::repeat_n(2, 7)),
            &[],
        );
        let text = drawn(&scaled, HistKind::Log);
        assert!(
            text.contains(&format!("    1 |{}{:>14}\n", "@".repeat(40), 120)),
            "{text}"
        );
        assert!(text.contains(&format!("    2 |@@{:>52}\n", 7)), "{text}");
    }

    #[test]
    fn linear_histograms_with_outliers() {
        let over = HistKind::Linear {
            low: 0,
            high: 100,
            step: 10,
        };
        let stats = stats_of(1000..10000, &[over]);
        let expected = [
            "value |-------------------------------------------------- count".to_string(),
            row("90", 5, 0, 0, 4),
            row("100", 5, 0, 0, 4),
            row(">100", 5, 9000, 50, 4),
        ];
        let expected: Vec<&str> = expected.iter().map(String::as_str).collect();
        assert_eq!(drawn(&stats, over), rows(&expected));

        let under = HistKind::Linear {
            low: 1800,
            high: 2500,
            step: 100,
        };
        let stats = stats_of(0..100, &[under]);
        let expected = [
            "value |-------------------------------------------------- count".to_string(),
            row("<1800", 5, 100, 50, 3),
            row("1800", 5, 0, 0, 3),
            row("1900", 5, 0, 0, 3),
        ];
        let expected: Vec<&str> = expected.iter().map(String::as_str).collect();
        assert_eq!(drawn(&stats, under), rows(&expected));

        let gap = HistKind::Linear {
            low: 0,
            high: 1500,
            step: 50,
        };
        let text = drawn(&stats_of([444, 999], &[gap]), gap);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[1..4],
            [
                row("300", 5, 0, 0, 1),
                row("350", 5, 0, 0, 1),
                row("400", 5, 1, 1, 1)
            ]
        );
        assert_eq!(lines[6], "      ~");
        assert_eq!(lines[11], row("1050", 5, 0, 0, 1));
    }
}
