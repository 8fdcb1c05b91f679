//! A small deterministic mutation engine and the smoke runner the tests drive.
//!
//! No coverage feedback (that is what `scripts/fuzz` and libFuzzer are for): the smoke replays
//! the checked-in corpus, which `scripts/fuzz` refreshes with what coverage found, then mutates
//! it for a bounded time. Everything follows from one seed, printed first, so a failure found
//! in CI reruns with `KEYWARD_FUZZ_SEED`.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// The longest input a mutation produces: well past every real fixture, short enough that one
/// execution stays in the milliseconds.
pub const MAX_INPUT: usize = 64 * 1024;

/// splitmix64: tiny, fast, seedable, good enough to choose mutations.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`0` when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next_u64() % n as u64) as usize
        }
    }

    pub fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }
}

/// Bytes that tend to matter to the parsers fuzzed here.
const INTERESTING: &[u8] = b"\0\x01\x7f\x80\xff\"'<>&;=#./\\%:,{}[]\n\r\t -_+0129azAZ";

/// One to four stacked mutations of `input`: bit flips, byte sets, inserts, deletes,
/// duplications, dictionary tokens, and splices with other `corpus` entries.
pub fn mutate(rng: &mut Rng, input: &[u8], corpus: &[Vec<u8>], dict: &[&[u8]]) -> Vec<u8> {
    let mut data = input.to_vec();
    let rounds = 1 + rng.below(4);
    for _ in 0..rounds {
        let len = data.len();
        match rng.below(11) {
            0 if len > 0 => {
                let at = rng.below(len);
                data[at] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let at = rng.below(len);
                data[at] = INTERESTING[rng.below(INTERESTING.len())];
            }
            2 => {
                let at = rng.below(len + 1);
                let n = 1 + rng.below(8);
                let bytes: Vec<u8> = (0..n).map(|_| rng.next_u64() as u8).collect();
                data.splice(at..at, bytes);
            }
            3 if len > 0 => {
                let at = rng.below(len);
                let n = 1 + rng.below((len - at).min(64));
                data.drain(at..at + n);
            }
            4 if len > 0 => {
                // Duplicate a range: repeated elements, attributes, keys.
                let at = rng.below(len);
                let n = 1 + rng.below((len - at).min(256));
                let copy = data[at..at + n].to_vec();
                let to = rng.below(len + 1);
                data.splice(to..to, copy);
            }
            5 | 6 if !dict.is_empty() => {
                let token = dict[rng.below(dict.len())];
                let at = rng.below(len + 1);
                if rng.chance(2) || at + token.len() > len {
                    data.splice(at..at, token.iter().copied());
                } else {
                    data.splice(at..at + token.len(), token.iter().copied());
                }
            }
            7 if !corpus.is_empty() => {
                // Splice: our prefix, another entry's suffix.
                let other = &corpus[rng.below(corpus.len())];
                let cut = rng.below(len + 1);
                let from = rng.below(other.len() + 1);
                data.truncate(cut);
                data.extend_from_slice(&other[from..]);
            }
            8 if !corpus.is_empty() => {
                // Insert a chunk of another entry.
                let other = &corpus[rng.below(corpus.len())];
                if !other.is_empty() {
                    let from = rng.below(other.len());
                    let n = 1 + rng.below((other.len() - from).min(512));
                    let at = rng.below(len + 1);
                    data.splice(at..at, other[from..from + n].iter().copied());
                }
            }
            9 if len > 0 => {
                // An ASCII digit run becomes a boundary number.
                let at = rng.below(len);
                let numbers: &[&[u8]] = &[
                    b"0",
                    b"-1",
                    b"4294967296",
                    b"9223372036854775807",
                    b"-9223372036854775808",
                    b"1e309",
                    b"0.5",
                ];
                let n = numbers[rng.below(numbers.len())];
                let end = (at..len)
                    .find(|&i| !data[i].is_ascii_digit())
                    .unwrap_or(len)
                    .max(at);
                data.splice(at..end, n.iter().copied());
            }
            _ if len > 1 => {
                // Truncate: every parser meets inputs that stop anywhere.
                let cut = rng.below(len);
                data.truncate(cut.max(1));
            }
            _ => data.push(rng.next_u64() as u8),
        }
    }
    data.truncate(MAX_INPUT);
    data
}

/// The checked-in corpus of `target`, sorted by file name.
pub fn corpus_dir(target: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target)
}

pub fn read_corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = corpus_dir(target);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
        .into_iter()
        .filter_map(|p| {
            let name = p.file_name()?.to_string_lossy().into_owned();
            std::fs::read(&p).ok().map(|bytes| (name, bytes))
        })
        .collect()
}

/// What a smoke run did.
#[derive(Debug, Clone)]
pub struct Report {
    pub target: String,
    pub seed: u64,
    pub replayed: usize,
    pub executions: u64,
    pub elapsed: Duration,
}

fn env_seconds() -> u64 {
    std::env::var("KEYWARD_FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(10)
}

/// The seed: `KEYWARD_FUZZ_SEED` (a number, or `random` for a fresh one per run), else a fixed
/// one, so that the suite's smoke is the same run every time and a red CI means a change broke
/// something, not that a random walk found an old bug; exploring is the long run's job
/// (`scripts/fuzz`) or `KEYWARD_FUZZ_SEED=random`.
fn env_seed() -> u64 {
    const FIXED: u64 = 0x6b65_7977_6172_6421;
    match std::env::var("KEYWARD_FUZZ_SEED") {
        Ok(text) if text.trim() == "random" => {
            // From the standard library's per-process hash keys (no clock).
            use std::hash::{BuildHasher, Hasher};
            std::collections::hash_map::RandomState::new()
                .build_hasher()
                .finish()
        }
        Ok(text) => text.trim().parse().unwrap_or(FIXED),
        Err(_) => FIXED,
    }
}

/// Runs `body` on `data`; on a panic prints what reproduces it and panics with that.
fn execute(target: &str, seed: u64, what: &str, body: fn(&[u8]), data: &[u8]) {
    if let Err(panic) = catch_unwind(AssertUnwindSafe(|| body(data))) {
        let reason = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_else(|| "(no message)".to_owned());
        panic!(
            "fuzz target {target} failed on {what} (KEYWARD_FUZZ_SEED={seed}): {reason}\n\
             input ({} bytes), base64: {}\n\
             hex: {}\n\
             to reproduce, save the bytes as crates/fuzz/corpus/{target}/crash-<name> and rerun \
             `cargo nextest run -p keyward-fuzz -E 'test(/{target}/)'`",
            data.len(),
            STANDARD.encode(data),
            hex::encode(data),
        );
    }
}

/// Replays the checked-in corpus and `extra_seeds` of `target`, then mutates them for
/// `KEYWARD_FUZZ_SECONDS` seconds (10 when unset).
pub fn smoke(target: &str, body: fn(&[u8]), dict: &[&[u8]], extra_seeds: Vec<Vec<u8>>) -> Report {
    let seconds = env_seconds();
    let seed = env_seed();
    eprintln!(
        "fuzz smoke {target}: seed {seed}, {seconds} s (KEYWARD_FUZZ_SEED, KEYWARD_FUZZ_SECONDS)"
    );
    let start = Instant::now();
    let mut pool: Vec<Vec<u8>> = Vec::new();
    let mut replayed = 0;
    for (name, data) in read_corpus(target) {
        execute(target, seed, &format!("corpus file {name}"), body, &data);
        pool.push(data);
        replayed += 1;
    }
    for (i, data) in extra_seeds.into_iter().enumerate() {
        execute(target, seed, &format!("built-in seed #{i}"), body, &data);
        pool.push(data);
        replayed += 1;
    }
    if pool.is_empty() {
        pool.push(Vec::new());
    }
    let seeds = pool.len();
    let mut rng = Rng::new(seed);
    let deadline = start + Duration::from_secs(seconds);
    let mut executions = 0u64;
    while Instant::now() < deadline {
        for _ in 0..32 {
            let parent = &pool[rng.below(pool.len())];
            let data = mutate(&mut rng, parent, &pool, dict);
            executions += 1;
            execute(
                target,
                seed,
                &format!("mutation #{executions}"),
                body,
                &data,
            );
            // Keep a few mutants as parents so mutations stack deeper than one round, without
            // letting them crowd out the seeds.
            if rng.chance(16) {
                if pool.len() < seeds + 256 {
                    pool.push(data);
                } else {
                    let slot = seeds + rng.below(256);
                    pool[slot] = data;
                }
            }
        }
    }
    let report = Report {
        target: target.to_owned(),
        seed,
        replayed,
        executions,
        elapsed: start.elapsed(),
    };
    eprintln!(
        "fuzz smoke {target}: {replayed} corpus inputs, {executions} mutations in {:.1} s ({:.0}/s), no failure",
        report.elapsed.as_secs_f64(),
        executions as f64 / report.elapsed.as_secs_f64().max(0.001)
    );
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_mutations() {
        let corpus = vec![b"abc.def.ghi".to_vec(), b"<a b='c'/>".to_vec()];
        let run = |seed| {
            let mut rng = Rng::new(seed);
            (0..100)
                .map(|i| mutate(&mut rng, &corpus[i % 2], &corpus, &[b"alg"]))
                .collect::<Vec<_>>()
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
        assert!(run(7).iter().all(|m| m.len() <= MAX_INPUT));
    }
}
