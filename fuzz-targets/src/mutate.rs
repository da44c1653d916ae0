//! Deterministic mutation of seed inputs, for the bounded runs in `cargo test`: the same
//! mutants every run, so a failure found once is found again (libFuzzer does the open-ended
//! search under `cargo fuzz`).

/// SplitMix64: tiny, and its sequence never changes with a dependency's version, so a mutant
/// is named by its seed for good.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n`; 0 when `n` is 0.
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next_u64() % n as u64) as usize
        }
    }

    /// True once in `n` times on average.
    pub fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }

    /// A number decoders tend to get wrong (a limit, a limit ± 1, a sign bit), or any.
    pub fn edgy(&mut self) -> u64 {
        if self.one_in(4) {
            self.next_u64()
        } else {
            EDGES[self.below(EDGES.len())]
        }
    }
}

/// Integers at the edges of the widths the formats use, and the sizes of their headers.
const EDGES: [u64; 20] = [
    0,
    1,
    2,
    16,
    48,
    64,
    0x7f,
    0x80,
    0xff,
    0x7fff,
    0x8000,
    0xffff,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_ffff,
    0x1_0000_0000,
    i64::MAX as u64,
    i64::MIN as u64,
    u64::MAX - 1,
    u64::MAX,
];

/// Applies one to four random mutations to `input`: bit flips, edge values written over an
/// integer of any width, truncation, insertion and removal of runs, duplicated runs, a splice
/// with another input, and `tokens` (a format's meaningful words) dropped in.
pub fn mutate(input: &[u8], others: &[Vec<u8>], tokens: &[&str], rng: &mut Rng) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..1 + rng.below(4) {
        let len = out.len();
        match rng.below(9) {
            0 if len > 0 => {
                let at = rng.below(len);
                out[at] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let width = [1, 2, 4, 8][rng.below(4)].min(len);
                let at = rng.below(len - width + 1);
                let value = rng.edgy().to_le_bytes();
                out[at..at + width].copy_from_slice(&value[..width]);
            }
            2 => out.truncate(rng.below(len + 1)),
            3 => {
                let n = if rng.one_in(8) {
                    rng.below(4096)
                } else {
                    1 + rng.below(32)
                };
                let at = rng.below(len + 1);
                let run: Vec<u8> = (0..n).map(|_| rng.next_u64() as u8).collect();
                out.splice(at..at, run);
            }
            4 if len > 0 => {
                let at = rng.below(len);
                let end = at + 1 + rng.below((len - at).min(64));
                out.drain(at..end);
            }
            5 if len > 0 => {
                let at = rng.below(len);
                let end = at + 1 + rng.below(len - at);
                let run = out[at..end].to_vec();
                let to = rng.below(len + 1);
                out.splice(to..to, run);
            }
            6 if !others.is_empty() => {
                let other = &others[rng.below(others.len())];
                let cut = rng.below(len + 1);
                let from = rng.below(other.len() + 1);
                out.truncate(cut);
                out.extend_from_slice(&other[from..]);
            }
            7 if !tokens.is_empty() => {
                let token = tokens[rng.below(tokens.len())];
                let at = rng.below(len + 1);
                // Tokens are ASCII or whole characters; inserting one between the bytes of
                // another character is itself a fair mutation (the input is bytes).
                out.splice(at..at, token.bytes());
            }
            _ => {
                let at = rng.below(len + 1);
                out.insert(at, rng.edgy() as u8);
            }
        }
    }
    out
}

/// `count` mutants of `seeds`, the same every run for the same `seed`: mutant `i` mutates
/// seed `i % seeds.len()`, splicing with the others.
pub fn mutants<'a>(
    seeds: &'a [Vec<u8>],
    tokens: &'a [&'a str],
    count: usize,
    seed: u64,
) -> impl Iterator<Item = Vec<u8>> + 'a {
    let mut rng = Rng::new(seed);
    (0..count).map(move |i| match seeds.get(i % seeds.len().max(1)) {
        Some(input) => mutate(input, seeds, tokens, &mut rng),
        None => mutate(&[], seeds, tokens, &mut rng),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mutants_are_the_same_every_run_and_differ_from_their_seeds() {
        let seeds = vec![
            b"brokerName=a\nlistenPort=10911\n".to_vec(),
            vec![1, 2, 3, 4],
        ];
        let a: Vec<_> = mutants(&seeds, &["\\u"], 200, 7).collect();
        let b: Vec<_> = mutants(&seeds, &["\\u"], 200, 7).collect();
        assert_eq!(a, b);
        let changed = a
            .iter()
            .enumerate()
            .filter(|(i, m)| **m != seeds[i % 2])
            .count();
        assert!(
            changed > 190,
            "only {changed} of 200 mutants differ from their seed"
        );
        assert!(a.iter().any(|m| m.len() > 64), "no mutant grew");
        assert!(
            a.iter().any(|m| m.is_empty()),
            "no mutant was cut to nothing"
        );
    }
}
