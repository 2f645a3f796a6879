//! Document quality filters with datatrove's semantics and defaults: Gopher quality, Gopher
//! repetition, and C4's line rules (which strip boilerplate lines and may drop the page).
//!
//! ```text
//! words(text)                        text -> Vec<&str>      datatrove's English `split_into_words`
//! gopher_quality(text, cfg)          text -> Verdict        GopherQualityFilter
//! gopher_repetition(text, cfg)       text -> Verdict        GopherRepetitionFilter
//! c4_lines(text, cfg)                text -> Ok(kept text) | Err(reason)   C4QualityFilter
//! FilterConfig::check(text)          all three, in FineWeb's order, one tokenization
//! ```
//!
//! The reference is datatrove 0.10.1 (`pipeline/filters/gopher_quality_filter.py`,
//! `gopher_repetition_filter.py`, `c4_filters.py`, `utils/text.py`), and a `Drop` carries the
//! reason string datatrove writes (`gopher_short_doc`, `dup_line_frac`, `top_2_gram`, ...), so
//! the two can be compared line by line (`scripts/clean-compare`).
//!
//! Design decisions:
//! - Every count is in Unicode code points, as Python's `len` counts, and every split follows
//!   Python's own rules (`str.splitlines`, `str.strip`, `str.split`, `re.split("\n+")`), since
//!   the thresholds are ratios of these counts and a different line or character count moves
//!   documents across them.
//! - Words come from datatrove's English word tokenizer, which is spaCy's rule-based English
//!   tokenizer (`spacy.blank("en")`, spaCy 3.8), not NLTK's. It is reproduced here: split on
//!   whitespace, then peel prefixes and suffixes, split on infixes, and apply the tokenizer
//!   exceptions (contractions `don't` -> `do n't`, abbreviations `Mr.`, emoticons, times
//!   `5pm` -> `5 pm`), including spaCy's second pass that re-joins exceptions split by the
//!   affix rules (`Mr.Smith` -> `Mr.` `Smith`). Word counts, lengths and identities all feed the
//!   thresholds (punctuation tokens count towards `n_words` in the alphabetic share), so the
//!   splitter has to agree token for token (it does on 8,851 of the 8,854 documents of
//!   `scripts/clean-compare`). Known differences: spaCy's letter classes are hand-made lists of
//!   scripts, here they are Unicode's alphabetic, lower- and upper-case properties (the same on
//!   ASCII and Latin-1); spaCy's re-joining pass also matches runs of tokens across a single
//!   space, and such a match, discarded because its text holds the space, can block a real one
//!   next to it (`commas): ')` gives `) :` there, `):` here). C4's sentence count follows spaCy's
//!   sentencizer with datatrove's terminal punctuation as the sentence ends and Unicode's
//!   punctuation blocks for spaCy's `is_punct`.
//! - The n-gram checks count exactly what datatrove counts: top n-grams by word identity (the
//!   first-seen n-gram wins a tie, as `Counter.most_common` does), duplicated n-grams by their
//!   concatenation without spaces (`"".join`), keyed by a 64-bit polynomial hash of the bytes.
//! - Thresholds are plain numbers; 0 switches a check off, as a falsy value does in datatrove.
//!   A degenerate input datatrove would divide by zero on (no words with the length rule off)
//!   skips the ratio checks instead. Nothing here panics on any `&str`; cost is linear in the
//!   text, whatever the line lengths.
//! - The functions are pure and allocate only their working sets, so rayon workers share one
//!   config by reference.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::OnceLock;

use regex::Regex;
use serde::{Deserialize, Serialize};

pub use super::words::words;
use super::words::{is_dt_punctuation, is_py_alpha, is_py_space, is_terminal_punctuation, is_unicode_punct};
use crate::error::{Error, Result};

/// A filter's decision. `Drop` carries datatrove's reason name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Keep,
    Drop(&'static str),
}

impl Verdict {
    /// datatrove's name for the decision: `"keep"` or the drop reason.
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Keep => "keep",
            Verdict::Drop(reason) => reason,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Configuration

/// Gopher's quality rules (Rae et al. 2021, appendix A1), datatrove's `GopherQualityFilter`.
/// Each threshold is datatrove's default; 0 switches that check off.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GopherQualityConfig {
    /// Run this filter at all.
    pub enabled: bool,
    /// Drop documents with fewer words (words with a character outside punctuation).
    pub min_doc_words: usize,
    /// Drop documents with more words.
    pub max_doc_words: usize,
    /// Drop documents whose mean word length (in characters, of the same words) is below this.
    pub min_avg_word_length: f64,
    /// ... or above this.
    pub max_avg_word_length: f64,
    /// Drop documents with more `#`, or more ellipses (`...`, `…`), per word (all tokens).
    pub max_symbol_word_ratio: f64,
    /// Drop documents with a larger share of lines starting with a bullet (`•`, `-`).
    pub max_bullet_lines_ratio: f64,
    /// Drop documents with a larger share of lines ending with an ellipsis.
    pub max_ellipsis_lines_ratio: f64,
    /// Drop documents where a smaller share of tokens holds an alphabetic character. (datatrove's
    /// name; it is a minimum.)
    pub max_non_alpha_words_ratio: f64,
    /// Drop documents holding fewer distinct stop words (case-sensitive, whole tokens).
    pub min_stop_words: usize,
    /// The stop words: Gopher's eight.
    pub stop_words: Vec<String>,
}

impl Default for GopherQualityConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            min_doc_words: 50,
            max_doc_words: 100_000,
            min_avg_word_length: 3.0,
            max_avg_word_length: 10.0,
            max_symbol_word_ratio: 0.1,
            max_bullet_lines_ratio: 0.9,
            max_ellipsis_lines_ratio: 0.3,
            max_non_alpha_words_ratio: 0.8,
            min_stop_words: 2,
            stop_words: ["the", "be", "to", "of", "and", "that", "have", "with"].map(String::from).to_vec(),
        }
    }
}

/// Gopher's repetition rules (appendix A1, table A1), datatrove's `GopherRepetitionFilter`.
/// Fractions are of the document's characters unless named `_frac` of elements; 0 switches a
/// line or paragraph check off, and an empty n-gram list switches those off.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GopherRepetitionConfig {
    /// Run this filter at all.
    pub enabled: bool,
    /// Drop documents where more than this share of lines (split on runs of `\n`) repeat an
    /// earlier line.
    pub dup_line_frac: f64,
    /// ... of paragraphs (split on two or more `\n`).
    pub dup_para_frac: f64,
    /// Drop documents where repeated lines hold more than this share of the characters.
    pub dup_line_char_frac: f64,
    /// ... repeated paragraphs.
    pub dup_para_char_frac: f64,
    /// `(n, fraction)`: drop documents where the most frequent word n-gram, times its count,
    /// covers more than `fraction` of the characters.
    pub top_n_grams: Vec<(usize, f64)>,
    /// `(n, fraction)`: drop documents where n-grams repeating an earlier one (scanned left to
    /// right, skipping past each repeat) cover more than `fraction` of the characters.
    pub dup_n_grams: Vec<(usize, f64)>,
}

impl Default for GopherRepetitionConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            dup_line_frac: 0.3,
            dup_para_frac: 0.3,
            dup_line_char_frac: 0.2,
            dup_para_char_frac: 0.2,
            top_n_grams: vec![(2, 0.2), (3, 0.18), (4, 0.16)],
            dup_n_grams: vec![(5, 0.15), (6, 0.14), (7, 0.13), (8, 0.12), (9, 0.11), (10, 0.10)],
        }
    }
}

/// The largest n an n-gram rule may use (the reason names are static strings).
pub const MAX_N_GRAM: usize = 16;

impl GopherRepetitionConfig {
    /// Refuse n-gram sizes outside `1..=MAX_N_GRAM`.
    pub fn validate(&self) -> Result<()> {
        for (what, rules) in [("top_n_grams", &self.top_n_grams), ("dup_n_grams", &self.dup_n_grams)] {
            if let Some((n, _)) = rules.iter().find(|(n, _)| !(1..=MAX_N_GRAM).contains(n)) {
                return Err(Error::Invalid(format!(
                    "gopher_repetition.{what} has n = {n}; n-gram sizes must be 1 to {MAX_N_GRAM}"
                )));
            }
        }
        Ok(())
    }
}

/// C4's rules (Raffel et al. 2020, section 2.2), datatrove's `C4QualityFilter` with lines split
/// on line breaks (its default). Lines failing a line rule are removed (boilerplate); the page
/// is dropped for lorem ipsum, a curly bracket, or too few sentences in what is left.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct C4Config {
    /// Run this filter at all.
    pub enabled: bool,
    /// Remove Wikipedia-style citations (`[1]`, `[edit]`, `[citation needed]`) from lines.
    pub remove_citations: bool,
    /// Remove lines not ending in `.` `?` `!` `"` `'`, or ending in `...`.
    pub filter_no_terminal_punct: bool,
    /// Drop pages with fewer sentences left than this (0: off; datatrove's -1).
    pub min_num_sentences: usize,
    /// Remove lines with fewer whitespace-separated words (0: off; datatrove's -1).
    pub min_words_per_line: usize,
    /// Remove lines with a word longer than this many characters (0: off; datatrove's -1).
    pub max_word_length: usize,
    /// Drop pages containing "lorem ipsum" (any case).
    pub filter_lorem_ipsum: bool,
    /// Remove lines mentioning "javascript" (any case).
    pub filter_javascript: bool,
    /// Drop pages with a `{` in a kept line.
    pub filter_curly_bracket: bool,
    /// Remove lines mentioning terms of use, privacy or cookie policies, or cookie use.
    pub filter_policy: bool,
}

impl Default for C4Config {
    fn default() -> Self {
        Self {
            enabled: true,
            remove_citations: true,
            filter_no_terminal_punct: true,
            min_num_sentences: 5,
            min_words_per_line: 3,
            max_word_length: 1000,
            filter_lorem_ipsum: true,
            filter_javascript: true,
            filter_curly_bracket: true,
            filter_policy: true,
        }
    }
}

/// The `[filters]` table of `ingot data clean`: each filter with its thresholds, each one
/// switched off by its own `enabled = false`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FilterConfig {
    pub gopher_repetition: GopherRepetitionConfig,
    pub gopher_quality: GopherQualityConfig,
    pub c4: C4Config,
}

impl FilterConfig {
    /// Refuse settings the filters cannot honour.
    pub fn validate(&self) -> Result<()> {
        self.gopher_repetition.validate()
    }

    /// Run the enabled filters in FineWeb's order (repetition, quality, C4), splitting words
    /// once for both Gopher filters: the text C4 keeps (borrowed when C4 is off), or the first
    /// drop reason.
    pub fn check<'t>(&self, text: &'t str) -> std::result::Result<Cow<'t, str>, &'static str> {
        if self.gopher_repetition.enabled || self.gopher_quality.enabled {
            let words = words(text);
            if let Verdict::Drop(reason) = gopher_repetition_words(text, &words, &self.gopher_repetition) {
                return Err(reason);
            }
            if let Verdict::Drop(reason) = gopher_quality_words(text, &words, &self.gopher_quality) {
                return Err(reason);
            }
        }
        if self.c4.enabled {
            return c4_lines(text, &self.c4).map(Cow::Owned);
        }
        Ok(Cow::Borrowed(text))
    }
}

// ---------------------------------------------------------------------------------------------
// Gopher quality

/// datatrove's `GopherQualityFilter.filter` (see [`GopherQualityConfig`]).
pub fn gopher_quality(text: &str, cfg: &GopherQualityConfig) -> Verdict {
    if !cfg.enabled {
        return Verdict::Keep;
    }
    gopher_quality_words(text, &words(text), cfg)
}

/// [`gopher_quality`] on words already split by [`words`]`(text)`.
pub fn gopher_quality_words(text: &str, words: &[&str], cfg: &GopherQualityConfig) -> Verdict {
    if !cfg.enabled {
        return Verdict::Keep;
    }
    let n_words = words.len();
    // Words with a character outside datatrove's punctuation set; their count and mean length.
    let (mut n_content, mut content_chars, mut n_alpha) = (0usize, 0usize, 0usize);
    for w in words {
        if w.chars().any(|c| !is_dt_punctuation(c)) {
            n_content += 1;
            content_chars += char_len(w);
        }
        if w.chars().any(is_py_alpha) {
            n_alpha += 1;
        }
    }
    if cfg.min_doc_words > 0 && n_content < cfg.min_doc_words {
        return Verdict::Drop("gopher_short_doc");
    }
    if cfg.max_doc_words > 0 && n_content > cfg.max_doc_words {
        return Verdict::Drop("gopher_long_doc");
    }
    // np.mean of nothing is nan, which passes both comparisons.
    if n_content > 0 {
        let mean = content_chars as f64 / n_content as f64;
        if cfg.min_avg_word_length != 0.0 && mean < cfg.min_avg_word_length {
            return Verdict::Drop("gopher_below_avg_threshold");
        }
        if cfg.max_avg_word_length != 0.0 && mean > cfg.max_avg_word_length {
            return Verdict::Drop("gopher_above_avg_threshold");
        }
    }
    if n_words > 0 && cfg.max_symbol_word_ratio != 0.0 {
        let per_word = |count: usize| count as f64 / n_words as f64;
        if per_word(text.bytes().filter(|&b| b == b'#').count()) > cfg.max_symbol_word_ratio {
            return Verdict::Drop("gopher_too_many_hashes");
        }
        let ellipses = text.matches("...").count() + text.matches('…').count();
        if per_word(ellipses) > cfg.max_symbol_word_ratio {
            return Verdict::Drop("gopher_too_many_ellipsis");
        }
    }
    let (mut n_lines, mut bullets, mut end_ellipses) = (0usize, 0usize, 0usize);
    for line in py_splitlines(text) {
        n_lines += 1;
        let head = py_lstrip(line);
        bullets += usize::from(head.starts_with('•') || head.starts_with('-'));
        let tail = py_rstrip(line);
        end_ellipses += usize::from(tail.ends_with("...") || tail.ends_with('…'));
    }
    if n_lines > 0 {
        if cfg.max_bullet_lines_ratio != 0.0 && bullets as f64 / n_lines as f64 > cfg.max_bullet_lines_ratio {
            return Verdict::Drop("gopher_too_many_bullets");
        }
        if cfg.max_ellipsis_lines_ratio != 0.0 && end_ellipses as f64 / n_lines as f64 > cfg.max_ellipsis_lines_ratio {
            return Verdict::Drop("gopher_too_many_end_ellipsis");
        }
    }
    if n_words > 0
        && cfg.max_non_alpha_words_ratio != 0.0
        && (n_alpha as f64 / n_words as f64) < cfg.max_non_alpha_words_ratio
    {
        return Verdict::Drop("gopher_below_alpha_threshold");
    }
    if cfg.min_stop_words > 0 && distinct_stop_words(words, &cfg.stop_words) < cfg.min_stop_words {
        return Verdict::Drop("gopher_enough_stop_words");
    }
    Verdict::Keep
}

/// How many of `stop_words` occur among `words` (exact, case-sensitive matches).
fn distinct_stop_words(words: &[&str], stop_words: &[String]) -> usize {
    let longest = stop_words.iter().map(|s| s.len()).max().unwrap_or(0);
    let mut seen = vec![false; stop_words.len()];
    let index: Option<FxMap<&str, usize>> =
        (stop_words.len() > 16).then(|| stop_words.iter().enumerate().map(|(i, s)| (s.as_str(), i)).collect());
    for w in words.iter().filter(|w| w.len() <= longest) {
        let hit = match &index {
            Some(index) => index.get(w).copied(),
            None => stop_words.iter().position(|s| s == w),
        };
        if let Some(i) = hit {
            seen[i] = true;
        }
    }
    seen.iter().filter(|&&s| s).count()
}

// ---------------------------------------------------------------------------------------------
// Gopher repetition

/// datatrove's `GopherRepetitionFilter.filter` (see [`GopherRepetitionConfig`]).
pub fn gopher_repetition(text: &str, cfg: &GopherRepetitionConfig) -> Verdict {
    if !cfg.enabled {
        return Verdict::Keep;
    }
    gopher_repetition_words(text, &words(text), cfg)
}

/// [`gopher_repetition`] on words already split by [`words`]`(text)`.
pub fn gopher_repetition_words(text: &str, words: &[&str], cfg: &GopherRepetitionConfig) -> Verdict {
    if !cfg.enabled {
        return Verdict::Keep;
    }
    if text.is_empty() {
        return Verdict::Drop("empty");
    }
    let n_chars = char_len(text) as f64;

    // Paragraphs: re.split(r"\n{2,}", text.strip()).
    let (n, dups, dup_chars) = duplicates(split_newline_runs(py_strip(text), 2));
    if cfg.dup_para_frac != 0.0 && dups as f64 / n as f64 > cfg.dup_para_frac {
        return Verdict::Drop("dup_para_frac");
    }
    if cfg.dup_para_char_frac != 0.0 && dup_chars as f64 / n_chars > cfg.dup_para_char_frac {
        return Verdict::Drop("dup_para_char_frac");
    }
    // Lines: re.split("\n+", text), unstripped, so a leading and a trailing "" can repeat.
    let (n, dups, dup_chars) = duplicates(split_newline_runs(text, 1));
    if cfg.dup_line_frac != 0.0 && dups as f64 / n as f64 > cfg.dup_line_frac {
        return Verdict::Drop("dup_line_frac");
    }
    if cfg.dup_line_char_frac != 0.0 && dup_chars as f64 / n_chars > cfg.dup_line_char_frac {
        return Verdict::Drop("dup_line_char_frac");
    }

    if cfg.top_n_grams.is_empty() && cfg.dup_n_grams.is_empty() {
        return Verdict::Keep;
    }
    let mut grams = WordGrams::new(words);
    for &(n, frac) in &cfg.top_n_grams {
        if n == 0 || words.len() < n {
            continue;
        }
        if grams.top_n_gram_chars(n) as f64 / n_chars > frac {
            return Verdict::Drop(TOP_N_GRAM.get(n).copied().unwrap_or("top_n_gram"));
        }
    }
    for &(n, frac) in &cfg.dup_n_grams {
        if n == 0 {
            continue;
        }
        if grams.duplicated_n_gram_chars(n) as f64 / n_chars > frac {
            return Verdict::Drop(DUP_N_GRAMS.get(n).copied().unwrap_or("duplicated_n_grams"));
        }
    }
    Verdict::Keep
}

/// `(elements, elements equal to an earlier one, characters in those)`: datatrove's
/// `find_duplicates` plus the element count.
fn duplicates<'a>(elements: impl Iterator<Item = &'a str>) -> (usize, usize, usize) {
    let mut seen: FxSet<&str> = FxSet::default();
    let (mut n, mut dups, mut dup_chars) = (0, 0, 0);
    for e in elements {
        n += 1;
        if !seen.insert(e) {
            dups += 1;
            dup_chars += char_len(e);
        }
    }
    (n, dups, dup_chars)
}

/// `re.split("\n{min,}", text)`: the pieces between runs of at least `min` newlines (a shorter
/// run stays inside its piece). Always at least one piece.
fn split_newline_runs(text: &str, min: usize) -> impl Iterator<Item = &str> {
    let bytes = text.as_bytes();
    let mut start = 0;
    let mut i = 0;
    let mut done = false;
    std::iter::from_fn(move || {
        if done {
            return None;
        }
        while i < bytes.len() {
            if bytes[i] == b'\n' {
                let run_start = i;
                while i < bytes.len() && bytes[i] == b'\n' {
                    i += 1;
                }
                if i - run_start >= min {
                    let piece = &text[start..run_start];
                    start = i;
                    return Some(piece);
                }
            } else {
                i += 1;
            }
        }
        done = true;
        Some(&text[start..])
    })
}

#[rustfmt::skip]
const TOP_N_GRAM: [&str; MAX_N_GRAM + 1] = [
    "top_0_gram", "top_1_gram", "top_2_gram", "top_3_gram", "top_4_gram", "top_5_gram", "top_6_gram",
    "top_7_gram", "top_8_gram", "top_9_gram", "top_10_gram", "top_11_gram", "top_12_gram", "top_13_gram",
    "top_14_gram", "top_15_gram", "top_16_gram",
];
#[rustfmt::skip]
const DUP_N_GRAMS: [&str; MAX_N_GRAM + 1] = [
    "duplicated_0_n_grams", "duplicated_1_n_grams", "duplicated_2_n_grams", "duplicated_3_n_grams",
    "duplicated_4_n_grams", "duplicated_5_n_grams", "duplicated_6_n_grams", "duplicated_7_n_grams",
    "duplicated_8_n_grams", "duplicated_9_n_grams", "duplicated_10_n_grams", "duplicated_11_n_grams",
    "duplicated_12_n_grams", "duplicated_13_n_grams", "duplicated_14_n_grams", "duplicated_15_n_grams",
    "duplicated_16_n_grams",
];

/// Per-word facts the n-gram rules share: an id per distinct word, character counts (prefix
/// sums), and a polynomial hash of the bytes with the multiplier's power, so the hash of a
/// concatenation folds from its words' hashes.
struct WordGrams {
    ids: Vec<u32>,
    /// `chars_before[i]`: characters in words `[0, i)`; `words + 1` entries.
    chars_before: Vec<usize>,
    hash: Vec<u64>,
    power: Vec<u64>,
    /// Working sets, kept across n so each n reuses the allocation.
    counts: FxMap<u128, (u32, u32)>,
    seen: FxSet<u64>,
}

/// Odd multiplier of the byte hash (mod 2^64).
const HASH_BASE: u64 = 0x9E37_79B9_7F4A_7C15;

impl WordGrams {
    fn new(words: &[&str]) -> Self {
        let mut intern: FxMap<&str, u32> = FxMap::default();
        intern.reserve(words.len() / 2);
        let mut ids = Vec::with_capacity(words.len());
        let mut chars_before = Vec::with_capacity(words.len() + 1);
        let mut hash = Vec::with_capacity(words.len());
        let mut power = Vec::with_capacity(words.len());
        chars_before.push(0);
        for w in words {
            let next = intern.len() as u32;
            ids.push(*intern.entry(w).or_insert(next));
            chars_before.push(chars_before.last().copied().unwrap_or(0) + char_len(w));
            let (mut h, mut p) = (0u64, 1u64);
            for &b in w.as_bytes() {
                h = h.wrapping_mul(HASH_BASE).wrapping_add(u64::from(b) + 1);
                p = p.wrapping_mul(HASH_BASE);
            }
            hash.push(h);
            power.push(p);
        }
        Self { ids, chars_before, hash, power, counts: FxMap::default(), seen: FxSet::default() }
    }

    fn chars(&self, from: usize, to: usize) -> usize {
        self.chars_before[to] - self.chars_before[from]
    }

    /// datatrove's `find_top_duplicate(get_n_grams(words, n))`: characters of the most
    /// frequent n-gram joined by spaces, times its count; among equally frequent n-grams the
    /// one seen first. Needs `n <= words`.
    fn top_n_gram_chars(&mut self, n: usize) -> usize {
        let windows = self.ids.len() + 1 - n;
        // n-gram -> (count, first start). Up to four ids pack exactly into the key.
        let mut counts = std::mem::take(&mut self.counts);
        counts.clear();
        counts.reserve(windows);
        for i in 0..windows {
            let key = self.ids_key(i, n);
            counts.entry(key).and_modify(|(c, _)| *c += 1).or_insert((1, i as u32));
        }
        let top = counts.values().max_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1))).copied();
        self.counts = counts;
        let Some((count, first)) = top else {
            return 0;
        };
        let first = first as usize;
        (self.chars(first, first + n) + n - 1) * count as usize
    }

    fn ids_key(&self, i: usize, n: usize) -> u128 {
        let ids = &self.ids[i..i + n];
        if n <= 4 {
            ids.iter().enumerate().fold(0u128, |k, (j, &id)| k | (u128::from(id) << (32 * j)))
        } else {
            // Two independent 64-bit hashes of the id sequence: collisions are out of reach.
            let (mut a, mut b) = (0u64, 0x243F_6A88_85A3_08D3u64);
            for &id in ids {
                a = (a.rotate_left(5) ^ u64::from(id)).wrapping_mul(0x51_7C_C1_B7_27_22_0A_95);
                b = (b ^ u64::from(id)).wrapping_mul(0x0000_0100_0000_01B3).rotate_left(29);
            }
            (u128::from(a) << 64) | u128::from(b)
        }
    }

    /// datatrove's `find_all_duplicate(words, n)`: scanning left to right, an n-gram (its words
    /// concatenated) seen before adds its characters and the scan jumps past it.
    fn duplicated_n_gram_chars(&mut self, n: usize) -> usize {
        let len = self.ids.len();
        if len < n {
            return 0;
        }
        let mut seen = std::mem::take(&mut self.seen);
        seen.clear();
        seen.reserve(len + 1 - n);
        let (mut repeated, mut i) = (0, 0);
        while i + n <= len {
            let h = (i..i + n).fold(0u64, |h, k| h.wrapping_mul(self.power[k]).wrapping_add(self.hash[k]));
            if seen.insert(h) {
                i += 1;
            } else {
                repeated += self.chars(i, i + n);
                i += n;
            }
        }
        self.seen = seen;
        repeated
    }
}

// ---------------------------------------------------------------------------------------------
// C4 line rules

const POLICY_SUBSTRINGS: [&str; 6] =
    ["terms of use", "privacy policy", "cookie policy", "uses cookies", "use of cookies", "use cookies"];

fn citation_regex() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    // A constant pattern; `Regex::new` cannot fail on it, and a test builds it.
    RE.get_or_init(|| Regex::new(r"\[\d*\]|\[edit\]|\[citation needed\]").unwrap_or_else(|_| unreachable!()))
}

/// datatrove's `C4QualityFilter.filter` (see [`C4Config`]): the kept lines joined by `\n`
/// (stripped), or the reason the page is dropped (`lorem_ipsum`, `curly_bracket`,
/// `too_few_sentences`). With the filter off, the text as it is.
pub fn c4_lines(text: &str, cfg: &C4Config) -> std::result::Result<String, &'static str> {
    if !cfg.enabled {
        return Ok(text.to_string());
    }
    let mut kept = String::with_capacity(text.len());
    let mut lower = String::new();
    let (mut sentences, mut n_kept) = (0usize, 0usize);
    for line in py_splitlines(text) {
        let line = py_strip(line);
        let mut n_words = 0usize;
        let mut too_long = false;
        for w in line.split(is_py_space).filter(|w| !w.is_empty()) {
            n_words += 1;
            too_long |= cfg.max_word_length > 0 && w.len() > cfg.max_word_length && char_len(w) > cfg.max_word_length;
        }
        if too_long {
            continue;
        }
        let line = if cfg.remove_citations && line.contains('[') {
            citation_regex().replace_all(line, "")
        } else {
            Cow::Borrowed(line)
        };
        if cfg.filter_no_terminal_punct && (!line.ends_with(['.', '?', '!', '"', '\'']) || line.ends_with("...")) {
            continue;
        }
        if n_words < cfg.min_words_per_line {
            continue;
        }
        lower.clear();
        lower.push_str(&line);
        lower.make_ascii_lowercase();
        if cfg.filter_lorem_ipsum && lower.contains("lorem ipsum") {
            return Err("lorem_ipsum");
        }
        if cfg.filter_javascript && lower.contains("javascript") {
            continue;
        }
        if cfg.filter_curly_bracket && line.contains('{') {
            return Err("curly_bracket");
        }
        if cfg.filter_policy && POLICY_SUBSTRINGS.iter().any(|p| lower.contains(p)) {
            continue;
        }
        if cfg.min_num_sentences > 0 {
            sentences += count_sentences(&line);
        }
        if n_kept > 0 {
            kept.push('\n');
        }
        n_kept += 1;
        kept.push_str(&line);
    }
    if sentences < cfg.min_num_sentences {
        return Err("too_few_sentences");
    }
    Ok(py_strip(&kept).to_string())
}

/// Sentences in one line as spaCy's rule-based `sentencizer` (datatrove's English
/// `split_into_sentences`) finds them: a sentence ends at a token that is a sentence-final
/// mark, and the next one starts at the first later token that is not punctuation.
fn count_sentences(line: &str) -> usize {
    let tokens = words(line);
    if tokens.is_empty() {
        return 0;
    }
    let (mut sentences, mut seen_end) = (1, false);
    for t in tokens {
        let is_end = t.chars().count() == 1 && t.chars().all(is_terminal_punctuation);
        if seen_end && !is_end && !t.chars().all(is_unicode_punct) {
            sentences += 1;
            seen_end = false;
        } else if is_end {
            seen_end = true;
        }
    }
    sentences
}

// ---------------------------------------------------------------------------------------------
// Python string semantics

/// Python's `len`: code points.
fn char_len(s: &str) -> usize {
    if s.is_ascii() {
        s.len()
    } else {
        s.chars().count()
    }
}

fn py_strip(s: &str) -> &str {
    s.trim_matches(is_py_space)
}

fn py_lstrip(s: &str) -> &str {
    s.trim_start_matches(is_py_space)
}

fn py_rstrip(s: &str) -> &str {
    s.trim_end_matches(is_py_space)
}

/// Python's `str.splitlines()`: breaks at `\n`, `\r`, `\r\n`, `\v`, `\f`, `\x1c`-`\x1e`, `\x85`,
/// U+2028 and U+2029; no empty piece after a final break.
fn py_splitlines(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let found = rest.char_indices().find(|&(_, c)| {
            matches!(
                c,
                '\n' | '\r' | '\u{0b}' | '\u{0c}' | '\u{1c}' | '\u{1d}' | '\u{1e}' | '\u{85}' | '\u{2028}' | '\u{2029}'
            )
        });
        let line;
        match found {
            None => {
                line = rest;
                rest = "";
            }
            Some((i, c)) => {
                line = &rest[..i];
                let mut next = i + c.len_utf8();
                if c == '\r' && rest[next..].starts_with('\n') {
                    next += 1;
                }
                rest = &rest[next..];
            }
        }
        Some(line)
    })
}

// ---------------------------------------------------------------------------------------------
// A fast hasher for the short keys here (rustc's FxHash); no adversary chooses them.

#[derive(Default, Clone, Copy)]
pub(super) struct FxHasher(u64);

const FX_SEED: u64 = 0x51_7C_C1_B7_27_22_0A_95;

impl FxHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(FX_SEED);
    }
}

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.add(u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut buf = [0u8; 8];
            buf[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(buf) ^ ((rest.len() as u64) << 59));
        }
    }
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }
    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }
    fn write_u128(&mut self, i: u128) {
        self.add(i as u64);
        self.add((i >> 64) as u64);
    }
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

pub(super) type FxMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;
pub(super) type FxSet<K> = HashSet<K, BuildHasherDefault<FxHasher>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn citations_are_found() {
        assert!(citation_regex().is_match("[12]"));
    }
}
