//! Decontamination: find training text that overlaps the evaluation sets Ingot ships, by word
//! n-grams (13, as GPT-3 did), so those documents or spans can be removed and listed.
//!
//! ```text
//! Decontaminator::new(13, [(benchmark, item text), ..])  ->  an index of the items' n-gram hashes
//! Decontaminator::hits(doc)                              ->  Vec<Hit> {benchmark, word, bytes, n-gram}
//! contaminated_spans(&hits)                              ->  merged byte ranges of the doc to cut
//! ```
//!
//! Words are the normalised words of dedup ([`super::minhash::for_each_word`]): lowercase,
//! punctuation a word break, numbers `0`, diacritics dropped. So `"The Answer: 42!"` and
//! `"the answer 17"` are the same three words; casing and punctuation changes do not hide a copy.
//!
//! An item of at least `n` words contributes each of its n-grams that has at least half its words
//! distinct (so "0 0 0 ...", from any table of numbers, is not a hit). An item shorter than `n` words
//! (a short question, a one-sentence passage) contributes itself whole, as GPT-3 used an item
//! whole when it was shorter than the n-gram, but only from [`MIN_WHOLE_ITEM_WORDS`] (8) words:
//! a five-word answer such as "the capital of france is" occurs in innocent text. Shorter items
//! are skipped and counted ([`Decontaminator::skipped_short`]).
//!
//! The index holds one 64-bit hash per distinct n-gram (with the first benchmark that has it),
//! not the text: a false hit needs a 64-bit collision, ~1 in 10^9 documents for an index of 10^7
//! n-grams. Each hit carries the n-gram's words so a person can check it.

use std::collections::HashMap;
use std::ops::Range;

use super::minhash::{combine, for_each_word, hash_bytes, mix64, normalize_word, WORD_SEED};

/// Items shorter than the n-gram are matched whole only from this many words on.
pub const MIN_WHOLE_ITEM_WORDS: usize = 8;

/// One n-gram of a document that is also in a benchmark item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    /// The benchmark's name, as given to [`Decontaminator::new`].
    pub benchmark: String,
    /// Index of the n-gram's first word among the document's normalised words.
    pub ngram_start_word: usize,
    /// Its length in words (`n`, or less for a short item matched whole).
    pub words: usize,
    /// Where it lies in the document, from the start of its first word to the end of its last.
    pub byte_range: Range<usize>,
    /// Its normalised words, joined by spaces.
    pub ngram: String,
}

/// An index of the benchmark items' n-grams (see the module docs).
#[derive(Debug, Clone)]
pub struct Decontaminator {
    n: usize,
    benchmarks: Vec<String>,
    /// n-gram hash -> index into `benchmarks`.
    index: HashMap<u64, u32>,
    /// The n-gram lengths to look for: `n`, and the lengths of short items matched whole.
    lengths: Vec<usize>,
    items: usize,
    skipped_short: usize,
}

/// The hash of a window of word hashes; the length is mixed in so a whole short item never
/// equals a prefix of a longer n-gram.
fn window_hash(words: &[u64]) -> u64 {
    mix64(words.iter().fold(mix64(0xdec0_17a3 ^ words.len() as u64), |h, &w| combine(h, w)))
}

fn word_hashes(text: &str) -> (Vec<u64>, Vec<Range<usize>>) {
    let (mut hashes, mut ranges) = (Vec::new(), Vec::new());
    for_each_word(text, |range, w| {
        hashes.push(hash_bytes(WORD_SEED, w.as_bytes()));
        ranges.push(range);
    });
    (hashes, ranges)
}

/// Whether a window says anything: at least half its words distinct. Runs of one repeated word
/// (a table of numbers normalises to "0 0 0 ..."; a row of dashes) are in benchmarks and in
/// innocent text alike, and are not indexed.
fn informative(window: &[u64]) -> bool {
    let mut distinct: Vec<u64> = window.to_vec();
    distinct.sort_unstable();
    distinct.dedup();
    2 * distinct.len() >= window.len()
}

impl Decontaminator {
    /// Index the items `(benchmark name, text)` by their word `n`-grams (`n` of 0 is taken as 1).
    /// The same n-gram in several benchmarks is reported for the first one given.
    pub fn new(n: usize, sources: impl IntoIterator<Item = (String, String)>) -> Self {
        let n = n.max(1);
        let mut me =
            Self { n, benchmarks: Vec::new(), index: HashMap::new(), lengths: vec![n], items: 0, skipped_short: 0 };
        let mut ids: HashMap<String, u32> = HashMap::new();
        for (benchmark, text) in sources {
            me.items += 1;
            let (words, _) = word_hashes(&text);
            if words.len() < n.min(MIN_WHOLE_ITEM_WORDS) {
                me.skipped_short += 1;
                continue;
            }
            let id = *ids.entry(benchmark).or_insert_with_key(|name| {
                me.benchmarks.push(name.clone());
                (me.benchmarks.len() - 1) as u32
            });
            let m = words.len().min(n);
            if m < n && !me.lengths.contains(&m) {
                me.lengths.push(m);
            }
            for window in words.windows(m).filter(|w| informative(w)) {
                me.index.entry(window_hash(window)).or_insert(id);
            }
        }
        me.lengths.sort_unstable_by(|a, b| b.cmp(a));
        me
    }

    /// The n-gram length.
    pub fn n(&self) -> usize {
        self.n
    }

    /// Items given to [`Decontaminator::new`].
    pub fn items(&self) -> usize {
        self.items
    }

    /// Items left out for having fewer than `min(n, 8)` words.
    pub fn skipped_short(&self) -> usize {
        self.skipped_short
    }

    /// Distinct n-grams in the index.
    pub fn ngrams(&self) -> usize {
        self.index.len()
    }

    /// Every n-gram of `doc` found in a benchmark, by start word, longest first at each start.
    pub fn hits(&self, doc: &str) -> Vec<Hit> {
        let mut hits = Vec::new();
        self.scan(doc, |hit| {
            hits.push(hit);
            true
        });
        hits
    }

    /// Whether `doc` has any hit (stops at the first).
    pub fn is_contaminated(&self, doc: &str) -> bool {
        let mut any = false;
        self.scan(doc, |_| {
            any = true;
            false
        });
        any
    }

    /// Call `found` for each hit in order until it returns false.
    fn scan(&self, doc: &str, mut found: impl FnMut(Hit) -> bool) {
        if self.index.is_empty() {
            return;
        }
        let (words, ranges) = word_hashes(doc);
        let mut buf = String::new();
        for start in 0..words.len() {
            for &m in &self.lengths {
                let Some(window) = words.get(start..start + m) else { continue };
                let Some(&id) = self.index.get(&window_hash(window)) else { continue };
                let mut ngram = String::new();
                for r in &ranges[start..start + m] {
                    normalize_word(&doc[r.clone()], &mut buf);
                    if !ngram.is_empty() {
                        ngram.push(' ');
                    }
                    ngram.push_str(&buf);
                }
                let hit = Hit {
                    benchmark: self.benchmarks[id as usize].clone(),
                    ngram_start_word: start,
                    words: m,
                    byte_range: ranges[start].start..ranges[start + m - 1].end,
                    ngram,
                };
                if !found(hit) {
                    return;
                }
            }
        }
    }
}

/// The byte ranges covered by `hits`, merged where they overlap or touch, in order: what to cut
/// from the document to remove the overlapping spans only.
pub fn contaminated_spans(hits: &[Hit]) -> Vec<Range<usize>> {
    let mut ranges: Vec<Range<usize>> = hits.iter().map(|h| h.byte_range.clone()).collect();
    ranges.sort_by_key(|r| (r.start, r.end));
    let mut merged: Vec<Range<usize>> = Vec::with_capacity(ranges.len());
    for r in ranges {
        match merged.last_mut() {
            Some(last) if r.start <= last.end => last.end = last.end.max(r.end),
            _ => merged.push(r),
        }
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;

    const ITEM: &str = "Which gas do plants absorb from the air during photosynthesis, and what do they release?";

    fn index() -> Decontaminator {
        Decontaminator::new(
            13,
            [
                ("arc_easy".to_string(), ITEM.to_string()),
                ("boolq".to_string(), "Is the sky blue on a clear day at noon?".to_string()), // 10 words: whole
                ("tiny".to_string(), "Yes or no?".to_string()),                               // 3 words: skipped
            ],
        )
    }

    #[test]
    fn finds_copies_through_case_and_punctuation() {
        let d = index();
        assert_eq!((d.items(), d.skipped_short(), d.n()), (3, 1, 13));
        let doc =
            format!("Homework help!\n\nQ: {}\nA: carbon dioxide; oxygen.", ITEM.to_uppercase().replace(',', " --"));
        let hits = d.hits(&doc);
        // The item has 15 words: 3 13-grams.
        assert_eq!(hits.len(), 3, "{hits:#?}");
        assert!(hits.iter().all(|h| h.benchmark == "arc_easy" && h.words == 13));
        assert_eq!(hits[0].ngram, "which gas do plants absorb from the air during photosynthesis and what do");
        assert_eq!(hits[0].ngram_start_word, 3);
        assert!(doc[hits[0].byte_range.clone()].starts_with("WHICH GAS"));
        let spans = contaminated_spans(&hits);
        assert_eq!(spans.len(), 1);
        assert_eq!(&doc[spans[0].clone()], ITEM.to_uppercase().replace(',', " --").trim_end_matches('?'));
        assert!(d.is_contaminated(&doc));

        let short = d.hits("Quick quiz. is the sky BLUE on a clear day, at noon? No idea.");
        assert_eq!(short.len(), 1);
        assert_eq!((short[0].benchmark.as_str(), short[0].words), ("boolq", 10));
        assert!(!d.is_contaminated("Yes or no? Plants absorb gas from the air during the day."));
    }

    #[test]
    fn near_misses_and_odd_input() {
        let d = index();
        // One word changed in every 13-word window: no hit.
        let edited = ITEM.replace("plants", "trees").replace("release", "emit");
        assert!(d.hits(&edited).is_empty());
        for doc in ["", "   ", "日本語のテキスト", &"word ".repeat(100_000)] {
            assert!(d.hits(doc).is_empty());
        }
        let empty = Decontaminator::new(13, Vec::<(String, String)>::new());
        assert!(!empty.is_contaminated(ITEM));
        // n = 0 is taken as 1: every word of an item is then an n-gram.
        assert_eq!(Decontaminator::new(0, [("b".to_string(), "x".to_string())]).hits("a x b").len(), 1);
        assert!(contaminated_spans(&[]).is_empty());
        // A table of numbers normalises to "0 0 0 ...": in benchmarks and in any spreadsheet alike.
        let table = Decontaminator::new(13, [("mmlu".to_string(), (1..40).map(|i| format!("{i} ")).collect())]);
        assert_eq!(table.ngrams(), 0);
        assert!(table.hits(&(100..140).map(|i| format!("{i}, ")).collect::<String>()).is_empty());
    }
}
