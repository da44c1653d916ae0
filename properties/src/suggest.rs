//! "Did you mean ...?" for unknown keys.

/// The candidate nearest to `key` by edit distance, if it is near enough to be a plausible
/// typo: at most 2 edits, or a quarter of the key's length for long keys. Letter case is
/// ignored (`listenport` is one slip away from `listenPort`, not several). Ties go to the
/// earlier candidate, so callers list their preferred names first.
pub(crate) fn nearest<'a>(
    key: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let length = key.chars().count();
    let limit = (length / 4).max(2);
    let mut best: Option<(usize, &'a str)> = None;
    for candidate in candidates {
        // The difference in length is a lower bound of the distance: a long key (a pasted
        // paragraph, a runaway continuation line) is not compared with every known key
        // character by character, which took quadratic time.
        if length.abs_diff(candidate.chars().count()) > limit {
            continue;
        }
        let distance = edit_distance(key, candidate);
        if distance <= limit && best.is_none_or(|(d, _)| distance < d) {
            best = Some((distance, candidate));
        }
    }
    best.map(|(_, candidate)| candidate)
}

/// Levenshtein distance over characters, ignoring ASCII case.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().map(|c| c.to_ascii_lowercase()).collect();
    let b: Vec<char> = b.chars().map(|c| c.to_ascii_lowercase()).collect();
    // One row of the classic dynamic-programming table at a time.
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    let mut current = vec![0; b.len() + 1];
    for (i, ca) in a.iter().enumerate() {
        current[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != cb);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        std::mem::swap(&mut previous, &mut current);
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances() {
        assert_eq!(edit_distance("", ""), 0);
        assert_eq!(edit_distance("abc", ""), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("brokerRol", "brokerRole"), 1);
        assert_eq!(edit_distance("ListenPORT", "listenPort"), 0);
    }

    #[test]
    fn suggests_only_plausible_typos() {
        let keys = ["brokerRole", "brokerName", "listenPort", "storePathRootDir"];
        assert_eq!(nearest("brokerRol", keys), Some("brokerRole"));
        assert_eq!(nearest("listenport", keys), Some("listenPort"));
        assert_eq!(nearest("brokerNmae", keys), Some("brokerName"));
        assert_eq!(nearest("storePathRoot", keys), Some("storePathRootDir"));
        assert_eq!(nearest("flushDiskType", keys), None);
        assert_eq!(nearest("x", keys), None);
    }

    #[test]
    fn a_long_key_is_answered_at_once() {
        // Found by the properties_parse fuzz target: a comment line holding a `=` given as a
        // --set override became a 100-character key compared with every known key.
        let keys = ["brokerRole", "brokerName", "listenPort", "storePathRootDir"];
        let long = "brokerRole".repeat(1_000_000);
        let started = std::time::Instant::now();
        assert_eq!(nearest(&long, keys), None);
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
        assert_eq!(nearest("brokerRoleX", keys), Some("brokerRole"));
    }
}
