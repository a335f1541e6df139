//! "Did you mean": the names closest to one that was not found.

/// How many close names an error suggests.
const SUGGESTIONS: usize = 3;

/// The names among `names` closest to `wanted` by edit distance (wildcards in `wanted`
/// ignored), best first, at most a third of its length away.
pub fn close_names(wanted: &str, names: impl IntoIterator<Item = String>) -> Vec<String> {
    let wanted: String = wanted.chars().filter(|c| !"*?[]!\\".contains(*c)).collect();
    let limit = wanted.len().max(6) / 3;
    let mut scored: Vec<(usize, String)> = names
        .into_iter()
        .map(|name| (strsim::levenshtein(&wanted, &name), name))
        .filter(|&(distance, _)| distance <= limit)
        .collect();
    scored.sort_unstable();
    scored.dedup_by(|a, b| a.1 == b.1);
    scored
        .into_iter()
        .take(SUGGESTIONS)
        .map(|(_, name)| name)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_names_come_best_first_without_wildcards() {
        let names = [
            "tcp_sendmsg",
            "tcp_recvmsg",
            "udp_sendmsg",
            "unrelated_thing",
        ];
        let close = close_names("tcp_sendmsg*", names.map(String::from));
        assert_eq!(close, ["tcp_sendmsg", "udp_sendmsg", "tcp_recvmsg"]);
        assert!(close_names("zzzzzzzz", names.map(String::from)).is_empty());
    }
}
