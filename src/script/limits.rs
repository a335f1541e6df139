//! SystemTap's limits on what a script may do, with its defaults, settable as stap's are
//! with `-D NAME=VALUE`.

/// The limits a run enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// MAXMAPENTRIES: elements of an array declared without a size.
    pub map_entries: usize,
    /// MAXACTION_INTERRUPTIBLE (MAXACTION times 10 unless set): what one probe run may do.
    /// rstap charges loop iterations against it.
    pub actions: u32,
    /// MAXNESTING, if set: how deep function calls may nest (else worked out from the
    /// script's calls, as SystemTap does).
    pub nesting: Option<usize>,
    /// MAXSTRINGLEN: strings hold at most one byte less.
    pub string_len: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            map_entries: 2048,
            actions: 10_000,
            nesting: None,
            string_len: crate::output::printf::MAX_STRING_LEN,
        }
    }
}

impl Limits {
    /// Applies `-D NAME=VALUE`; an error says why it cannot be.
    pub fn set(&mut self, name: &str, value: &str) -> Result<(), String> {
        let number =
            || {
                value.parse::<u64>().ok().filter(|&n| n > 0).ok_or_else(|| {
                    format!("-D {name}={value}: the value must be a positive number")
                })
            };
        let fits = |n: u64| u32::try_from(n).map_err(|_| format!("-D {name}={value}: too large"));
        match name {
            "MAXMAPENTRIES" => self.map_entries = number()? as usize,
            "MAXACTION" => self.actions = fits(number()?.saturating_mul(10))?,
            "MAXACTION_INTERRUPTIBLE" => self.actions = fits(number()?)?,
            "MAXNESTING" => self.nesting = Some(number()? as usize),
            // Below 2 a string could hold nothing; the ceiling is SystemTap's printf buffer.
            "MAXSTRINGLEN" => match number()? {
                n @ 2..=8192 => self.string_len = n as usize,
                _ => return Err(format!("-D {name}={value}: must be from 2 to 8192")),
            },
            "MAXERRORS"
            | "MAXSKIPPED"
            | "MAXTRYLOCK"
            | "MAXBACKTRACE"
            | "MINSTACKSPACE"
            | "STP_OVERLOAD_THRESHOLD"
            | "STP_OVERLOAD_INTERVAL" => {
                return Err(format!(
                    "-D {name}: not supported yet; rstap keeps SystemTap's default"
                ))
            }
            _ => {
                return Err(format!(
                    "-D {name}: not a limit rstap knows (MAXMAPENTRIES, MAXACTION, \
                     MAXACTION_INTERRUPTIBLE, MAXNESTING, MAXSTRINGLEN)"
                ))
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defines_set_limits_or_say_why_not() {
        let mut limits = Limits::default();
        limits.set("MAXMAPENTRIES", "10").unwrap();
        limits.set("MAXACTION", "50").unwrap();
        assert_eq!((limits.map_entries, limits.actions), (10, 500));
        limits.set("MAXACTION_INTERRUPTIBLE", "7").unwrap();
        limits.set("MAXNESTING", "3").unwrap();
        assert_eq!((limits.actions, limits.nesting), (7, Some(3)));
        assert!(limits
            .set("MAXACTION", "0")
            .unwrap_err()
            .contains("positive"));
        limits.set("MAXSTRINGLEN", "1024").unwrap();
        assert_eq!(limits.string_len, 1024);
        assert!(limits
            .set("MAXSTRINGLEN", "1")
            .unwrap_err()
            .contains("from 2"));
        assert!(limits
            .set("MAXERRORS", "3")
            .unwrap_err()
            .contains("not supported yet"));
        assert!(limits.set("NOPE", "1").unwrap_err().contains("not a limit"));
    }
}
