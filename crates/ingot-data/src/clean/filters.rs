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
// Words: spaCy's English tokenizer, as datatrove's `split_into_words` runs it

/// datatrove's English `split_into_words`: spaCy's English tokenizer with whitespace tokens
/// dropped (see the module docs). Each word is a slice of `text`.
pub fn words(text: &str) -> Vec<&str> {
    let mut out = Vec::with_capacity(text.len() / 5 + 1);
    let mut spans = Vec::with_capacity(16);
    let mut scratch = Vec::with_capacity(8);
    let specials = specials();
    for (start, end) in non_space_runs(text) {
        spans.clear();
        tokenize_chunk(&text[start..end], Some(specials), &mut spans, &mut scratch);
        out.extend(spans.iter().map(|&(a, b)| &text[start + a..start + b]));
    }
    out
}

/// Byte ranges of the runs of non-whitespace (Python's `str.isspace`) in `text`.
fn non_space_runs(text: &str) -> impl Iterator<Item = (usize, usize)> + '_ {
    let mut chars = text.char_indices().peekable();
    std::iter::from_fn(move || {
        while chars.next_if(|&(_, c)| is_py_space(c)).is_some() {}
        let (start, _) = chars.next()?;
        while chars.next_if(|&(_, c)| !is_py_space(c)).is_some() {}
        Some((start, chars.peek().map_or(text.len(), |&(i, _)| i)))
    })
}

/// A token as a byte range of its chunk.
type Span = (usize, usize);

/// spaCy's `Tokenizer._tokenize_affixes` for one whitespace-free chunk, then its
/// `_apply_special_cases` within the chunk (with `specials`; `None` is spaCy's
/// `with_special_cases=False`). Tokens are appended to `out`; `suffixes` is scratch.
fn tokenize_chunk(chunk: &str, specials: Option<&Specials>, out: &mut Vec<Span>, suffixes: &mut Vec<Span>) {
    let first = out.len();
    let is_special = |s: &str| specials.is_some_and(|sp| sp.get(s).is_some());
    let push_special = |s: &str, at: usize, out: &mut Vec<Span>| -> bool {
        let Some(lens) = specials.and_then(|sp| sp.get(s)) else {
            return false;
        };
        let mut a = at;
        for &len in lens.iter() {
            out.push((a, a + len as usize));
            a += len as usize;
        }
        true
    };
    if push_special(chunk, 0, out) {
        return;
    }
    // _split_affixes: peel a prefix and a suffix per round until nothing changes or what is
    // left (or left after one side) is a special case.
    suffixes.clear();
    let (mut start, mut end) = (0, chunk.len());
    let mut last = usize::MAX;
    while start < end && end - start != last {
        let cur = &chunk[start..end];
        // The whole chunk was looked up above.
        if (start, end) != (0, chunk.len()) && is_special(cur) {
            break;
        }
        last = end - start;
        let pre = find_prefix(cur);
        if pre != 0 && start + pre < end && is_special(&chunk[start + pre..end]) {
            out.push((start, start + pre));
            start += pre;
            break;
        }
        let suf = find_suffix(&chunk[start + pre..end]);
        if suf != 0 && start < end - suf && is_special(&chunk[start..end - suf]) {
            suffixes.push((end - suf, end));
            end -= suf;
            break;
        }
        if pre != 0 && suf != 0 && pre + suf <= last {
            out.push((start, start + pre));
            suffixes.push((end - suf, end));
            start += pre;
            end -= suf;
        } else if pre != 0 {
            out.push((start, start + pre));
            start += pre;
        } else if suf != 0 {
            suffixes.push((end - suf, end));
            end -= suf;
        }
    }
    // _attach_tokens: the core is a special case, a URL, or split on infixes.
    if start < end {
        let core = &chunk[start..end];
        if (start, end) == (0, chunk.len()) || !push_special(core, start, out) {
            let infixes_from = out.len();
            push_infix_split(core, start, out);
            if out.len() - infixes_from > 1 && core.contains('.') && url_match(core) {
                out.truncate(infixes_from);
                out.push((start, end));
            }
        }
    }
    out.extend(suffixes.iter().rev());
    if let Some(sp) = specials {
        if out.len() - first >= 2 {
            rejoin_special_cases(chunk, sp, first, out);
        }
    }
}

/// The core split at infixes, as `_attach_tokens` does: `finditer` matches, one at the very
/// start is skipped (it stays with the next piece), empty pieces are dropped.
fn push_infix_split(core: &str, offset: usize, out: &mut Vec<Span>) {
    let mut start = 0;
    let mut i = 0;
    let mut prev: Option<char> = None;
    while i < core.len() {
        let Some(c) = core[i..].chars().next() else { break };
        if let Some(len) = infix_at(core, i, prev, c) {
            if i != 0 {
                if i != start {
                    out.push((offset + start, offset + i));
                }
                out.push((offset + i, offset + i + len));
                start = i + len;
            }
            i += len;
            prev = core[..i].chars().next_back();
        } else {
            i += c.len_utf8();
            prev = Some(c);
        }
    }
    if start < core.len() {
        out.push((offset + start, offset + core.len()));
    }
}

/// spaCy's `_apply_special_cases` within one chunk: a run of tokens that spells a special case
/// and is exactly how the affix rules alone split that case (`Mr` `.` in `Mr.Smith`, `:` `)` in
/// `word:)`) is re-tokenized as the case says. Longest matches first, as spaCy filters them.
fn rejoin_special_cases(chunk: &str, sp: &Specials, first: usize, out: &mut Vec<Span>) {
    let tokens = &out[first..];
    let mut matches: Vec<(usize, usize)> = Vec::new();
    let mut pattern = Vec::new();
    let mut scratch = Vec::new();
    for i in 0..tokens.len() {
        for j in i + 2..=tokens.len() {
            let (a, b) = (tokens[i].0, tokens[j - 1].1);
            if b - a > sp.longest {
                break;
            }
            let s = &chunk[a..b];
            if sp.get(s).is_none() || !sp.rejoinable.contains(s) {
                continue;
            }
            pattern.clear();
            tokenize_chunk(s, None, &mut pattern, &mut scratch);
            if pattern.len() == j - i && pattern.iter().zip(&tokens[i..j]).all(|(p, t)| (p.0 + a, p.1 + a) == *t) {
                matches.push((i, j));
            }
        }
    }
    if matches.is_empty() {
        return;
    }
    // spaCy's `len_start_cmp` order, walked from its end: longest first, then leftmost.
    matches.sort_by(|x, y| (y.1 - y.0).cmp(&(x.1 - x.0)).then(x.0.cmp(&y.0)));
    let mut taken = vec![false; tokens.len()];
    let mut chosen: Vec<(usize, usize)> = Vec::new();
    for (i, j) in matches {
        if !taken[i] && !taken[j - 1] {
            chosen.push((i, j));
        }
        taken[i..j].iter_mut().for_each(|t| *t = true);
    }
    chosen.sort_unstable();
    let old: Vec<Span> = out.drain(first..).collect();
    let mut k = 0;
    for (i, j) in chosen {
        if i < k {
            continue;
        }
        out.extend_from_slice(&old[k..i]);
        let (a, b) = (old[i].0, old[j - 1].1);
        // Matches were found by this lookup, so it succeeds; the `None` arm only keeps tokens.
        match sp.get(&chunk[a..b]) {
            Some(lens) => {
                let mut at = a;
                for &len in lens {
                    out.push((at, at + len as usize));
                    at += len as usize;
                }
            }
            None => out.extend_from_slice(&old[i..j]),
        }
        k = j;
    }
    out.extend_from_slice(&old[k..]);
}

/// Length in bytes of spaCy English's prefix at the start of `s` (0: none). The alternatives
/// are tried in spaCy's order; all but these are one character.
fn find_prefix(s: &str) -> usize {
    let Some(c) = s.chars().next() else { return 0 };
    match c {
        '+' => usize::from(!s[1..].starts_with(|d: char| d.is_ascii_digit())),
        '.' => {
            let dots = s.bytes().take_while(|&b| b == b'.').count();
            if dots >= 2 {
                dots
            } else {
                0
            }
        }
        'U' if s.starts_with("US$") => 3,
        'C' | 'A' if s[1..].starts_with('$') => 2,
        _ if in_class(c, PREFIX_ASCII, PREFIX_CHARS) || is_icon(c) || is_currency_char(c) => c.len_utf8(),
        _ => 0,
    }
}

/// Length in bytes of spaCy English's suffix at the end of `s` (0: none): the match of
/// `re.search` over the alternatives, all anchored at the end, so the one starting first.
fn find_suffix(s: &str) -> usize {
    let dots = s.bytes().rev().take_while(|&b| b == b'.').count();
    if dots >= 2 {
        return dots;
    }
    // Candidate starts, leftmost first: the longest alternative is 5 characters (a unit).
    let mut starts = [0usize; 6];
    let mut n = 0;
    for (i, _) in s.char_indices().rev().take(6) {
        starts[n] = i;
        n += 1;
    }
    for &p in starts[..n].iter().rev() {
        let tail = &s[p..];
        let before = s[..p].chars().next_back();
        if before.is_some_and(|b| b.is_ascii_digit()) && is_unit_or_currency(tail) {
            return s.len() - p;
        }
        let mut cs = tail.chars();
        let (Some(c), rest) = (cs.next(), cs.as_str()) else { continue };
        if rest.is_empty() {
            if in_class(c, SUFFIX_ASCII, SUFFIX_CHARS) || is_icon(c) {
                return s.len() - p;
            }
            if c == '.' && before.is_some_and(|b| dot_suffix_after(&s[..p], b)) {
                return s.len() - p;
            }
        } else if matches!(tail, "……" | "'s" | "'S" | "’s" | "’S") {
            return s.len() - p;
        }
    }
    0
}

/// `tail` is a unit or currency (or `+`), the suffixes that follow a digit.
fn is_unit_or_currency(tail: &str) -> bool {
    tail == "+" || UNITS.contains(&tail) || CURRENCIES.contains(&tail)
}

/// The lookbehinds that let a final `.` be a suffix: after a digit, lower-case letter, `%²-+`,
/// punctuation or a quote; after two upper-case letters; after `°` and a temperature unit.
fn dot_suffix_after(head: &str, b: char) -> bool {
    if b.is_ascii_digit() || is_lower(b) || in_class(b, DOT_AFTER_ASCII, DOT_AFTER) {
        return true;
    }
    let mut back = head.chars().rev();
    let (Some(b1), Some(b2)) = (back.next(), back.next()) else { return false };
    (is_upper(b1) && is_upper(b2)) || (b2 == '°' && matches!(b1, 'F' | 'f' | 'C' | 'c' | 'K' | 'k'))
}

/// Length in bytes of an infix match at byte `i` of `s` (`c` there, `prev` before it), trying
/// spaCy English's alternatives in order.
fn infix_at(s: &str, i: usize, prev: Option<char>, c: char) -> Option<usize> {
    if c.is_ascii_alphanumeric() {
        return None; // no infix starts with a letter or digit
    }
    let rest = &s[i..];
    let next = |skip: usize| rest[skip..].chars().next();
    if c == '.' {
        let dots = rest.bytes().take_while(|&b| b == b'.').count();
        if dots >= 2 {
            return Some(dots);
        }
    }
    if c == '…' || is_icon(c) {
        return Some(c.len_utf8());
    }
    let prev = prev?;
    if prev.is_ascii_digit()
        && matches!(c, '+' | '-' | '*' | '^')
        && next(1).is_some_and(|n| n.is_ascii_digit() || n == '-')
    {
        return Some(1);
    }
    if c == '.'
        && (is_lower(prev) || in_class(prev, QUOTES_ASCII, QUOTES))
        && next(1).is_some_and(|n| is_upper(n) || in_class(n, QUOTES_ASCII, QUOTES))
    {
        return Some(1);
    }
    if c == ',' && is_alpha(prev) && next(1).is_some_and(is_alpha) {
        return Some(1);
    }
    if is_alpha(prev) || prev.is_ascii_digit() {
        if matches!(c, '-' | '–' | '—' | '~') {
            for h in ["-", "–", "—", "--", "---", "——", "~"] {
                if rest.starts_with(h) && next(h.len()).is_some_and(is_alpha) {
                    return Some(h.len());
                }
            }
        }
        if matches!(c, ':' | '<' | '>' | '=' | '/') && next(1).is_some_and(is_alpha) {
            return Some(1);
        }
    }
    None
}

/// spaCy's `URL_MATCH`: an optional scheme and user, a host name with a lower-case top-level
/// domain or a public IPv4 address, an optional port and path.
fn url_match(s: &str) -> bool {
    static RE: OnceLock<Option<(Regex, Regex)>> = OnceLock::new();
    const HEAD: &str = r"^(?:[\w+\-.]{2,}://)?(?:\S+(?::\S*)?@)?";
    const TAIL: &str = r"(?::\d{2,5})?(?:[/?#]\S*)?$";
    let Some((host, ip)) = RE
        .get_or_init(|| {
            let host = r"(?:(?:[A-Za-z0-9\x{a1}-\x{ffff}][A-Za-z0-9\x{a1}-\x{ffff}_-]{0,62})?[A-Za-z0-9\x{a1}-\x{ffff}]\.)+[\p{Ll}\p{Lo}]{2,63}";
            let ip = r"((?:[1-9]\d?|1\d\d|2[01]\d|22[0-3])(?:\.(?:1?\d{1,2}|2[0-4]\d|25[0-5])){2}(?:\.(?:[1-9]\d?|1\d\d|2[0-4]\d|25[0-4])))";
            Some((Regex::new(&format!("{HEAD}{host}{TAIL}")).ok()?, Regex::new(&format!("{HEAD}{ip}{TAIL}")).ok()?))
        })
        .as_ref()
    else {
        return false;
    };
    if host.is_match(s) {
        return true;
    }
    // spaCy's lookaheads refuse private and loopback addresses.
    ip.captures(s).and_then(|c| c.get(1)).is_some_and(|m| {
        let a = m.as_str();
        let second = a.split('.').nth(1).and_then(|o| o.parse::<u32>().ok()).unwrap_or(0);
        !(a.starts_with("10.")
            || a.starts_with("127.")
            || a.starts_with("169.254.")
            || a.starts_with("192.168.")
            || (a.starts_with("172.") && (16..=31).contains(&second)))
    })
}

// ---------------------------------------------------------------------------------------------
// Tokenizer exceptions (spaCy's `lang/tokenizer_exceptions.py` and `lang/en/tokenizer_exceptions.py`)

struct Specials {
    /// Case -> byte lengths of its tokens.
    rules: FxMap<Box<str>, Box<[u8]>>,
    /// Cases the affix rules alone split in two or more tokens (candidates for re-joining).
    rejoinable: FxSet<Box<str>>,
    /// The longest case, in bytes.
    longest: usize,
    /// Bit `256 * first + last` is set when a case starts with byte `first` and ends with byte
    /// `last`: most words fail this test and skip the hash lookup.
    edges: Box<[u64]>,
}

impl Specials {
    /// The tokens' byte lengths of the case `s`, if it is one.
    fn get(&self, s: &str) -> Option<&[u8]> {
        // The length test also keeps a long chunk peeled one affix at a time linear.
        let (&first, &last) = (s.as_bytes().first()?, s.as_bytes().last()?);
        let bit = 256 * first as usize + last as usize;
        if s.len() > self.longest || self.edges[bit / 64] >> (bit % 64) & 1 == 0 {
            return None;
        }
        self.rules.get(s).map(|l| &l[..])
    }
}

fn specials() -> &'static Specials {
    static SPECIALS: OnceLock<Specials> = OnceLock::new();
    SPECIALS.get_or_init(build_specials)
}

fn build_specials() -> Specials {
    let mut rules: FxMap<Box<str>, Box<[u8]>> = FxMap::default();
    let mut add = |pieces: &[&str]| {
        let key: String = pieces.concat();
        let lens: Box<[u8]> = pieces.iter().map(|p| p.len() as u8).collect();
        rules.insert(key.into_boxed_str(), lens);
    };
    let title = |s: &str| -> String {
        let mut cs = s.chars();
        cs.next().map(|c| c.to_uppercase().chain(cs).collect()).unwrap_or_default()
    };
    // Base exceptions, shared by all languages.
    for s in [" ", "\t", "\\t", "\n", "\\n", "\u{2014}", "\u{a0}", "'", "\\\")", "<space>", "''", "C++"] {
        add(&[s]);
    }
    for c in ('a'..='z').chain(['ä', 'ö', 'ü']) {
        add(&[&format!("{c}.")]);
    }
    for e in EMOTICONS.split_whitespace() {
        add(&[e]);
    }
    for u in ["c", "f", "k", "C", "F", "K"] {
        add(&["°", u, "."]);
    }
    // English: pronouns and wh-words with their contractions, each also title-cased.
    let both = |w: &str| [w.to_string(), title(w)];
    for o in both("i") {
        add(&[&o, "'m"]);
        add(&[&o, "m"]);
        add(&[&o, "'m", "a"]);
        add(&[&o, "m", "a"]);
    }
    for p in ["i", "you", "he", "she", "it", "we", "they"] {
        for o in both(p) {
            for tail in
                [&["'ll"][..], &["ll"], &["'ll", "'ve"], &["ll", "ve"], &["'d"], &["d"], &["'d", "'ve"], &["d", "ve"]]
            {
                add(&[&[o.as_str()][..], tail].concat());
            }
        }
    }
    for p in ["i", "you", "we", "they"] {
        for o in both(p) {
            add(&[&o, "'ve"]);
            add(&[&o, "ve"]);
        }
    }
    for p in ["you", "we", "they"] {
        for o in both(p) {
            add(&[&o, "'re"]);
            add(&[&o, "re"]);
        }
    }
    for p in ["he", "she", "it"] {
        for o in both(p) {
            add(&[&o, "'s"]);
            add(&[&o, "s"]);
        }
    }
    for (w, plural, singular) in [
        ("who", false, false),
        ("what", false, false),
        ("when", false, false),
        ("where", false, false),
        ("why", false, false),
        ("how", false, false),
        ("there", false, false),
        ("that", false, true),
        ("this", false, true),
        ("these", true, false),
        ("those", true, false),
    ] {
        for o in both(w) {
            if !plural {
                add(&[&o, "'s"]);
                add(&[&o, "s"]);
            }
            for tail in [&["'ll"][..], &["ll"], &["'ll", "'ve"], &["ll", "ve"]] {
                add(&[&[o.as_str()][..], tail].concat());
            }
            if !singular {
                add(&[&o, "'re"]);
                add(&[&o, "re"]);
                add(&[&o, "'ve"]);
                add(&[&o, "ve"]);
            }
            for tail in [&["'d"][..], &["d"], &["'d", "'ve"], &["d", "ve"]] {
                add(&[&[o.as_str()][..], tail].concat());
            }
        }
    }
    // Verbs with n't (and n't've), modal verbs with 've.
    for v in [
        "ca", "could", "do", "does", "did", "had", "may", "might", "must", "need", "ought", "sha", "should", "wo",
        "would",
    ] {
        for o in both(v) {
            add(&[&o, "n't"]);
            add(&[&o, "nt"]);
            add(&[&o, "n't", "'ve"]);
            add(&[&o, "nt", "ve"]);
        }
    }
    for v in ["could", "might", "must", "should", "would"] {
        for o in both(v) {
            add(&[&o, "'ve"]);
            add(&[&o, "ve"]);
        }
    }
    for v in ["ai", "are", "is", "was", "were", "have", "has", "dare"] {
        for o in both(v) {
            add(&[&o, "n't"]);
            add(&[&o, "nt"]);
        }
    }
    for w in ["doin", "goin", "nothin", "nuthin", "ol", "somethin"] {
        for o in both(w) {
            add(&[&o]);
            add(&[&format!("{o}'")]);
        }
    }
    for w in ["em", "ll", "nuff"] {
        add(&[w]);
        add(&[&format!("'{w}")]);
    }
    for h in 1..=12 {
        let h = h.to_string();
        for period in ["a.m.", "am", "p.m.", "pm"] {
            add(&[&h, period]);
        }
    }
    for pieces in [
        &["y'", "all"][..],
        &["y", "all"],
        &["how", "'d", "'y"],
        &["How", "'d", "'y"],
        &["not", "'ve"],
        &["not", "ve"],
        &["Not", "'ve"],
        &["Not", "ve"],
        &["can", "not"],
        &["Can", "not"],
        &["gon", "na"],
        &["Gon", "na"],
        &["got", "ta"],
        &["Got", "ta"],
        &["let", "'s"],
        &["Let", "'s"],
        &["c'm", "on"],
        &["C'm", "on"],
    ] {
        add(pieces);
    }
    for s in EN_SINGLE_TOKENS.split_whitespace() {
        add(&[s]);
    }
    for s in [
        "Ill", "ill", "Its", "its", "Hell", "hell", "Shell", "shell", "Shed", "shed", "were", "Were", "Well", "well",
        "Whore", "whore",
    ] {
        rules.remove(s);
    }
    // spaCy's `update_exc` adds each case with a typographic apostrophe too.
    let typographic: Vec<(Box<str>, Box<[u8]>)> = rules
        .iter()
        .filter(|(k, _)| k.contains('\''))
        .map(|(k, lens)| {
            // Each piece grows by two bytes per apostrophe ('\'' is 1 byte, '’' is 3).
            let mut at = 0;
            let lens: Box<[u8]> = lens
                .iter()
                .map(|&len| {
                    let piece = &k[at..at + len as usize];
                    at += len as usize;
                    len + 2 * piece.matches('\'').count() as u8
                })
                .collect();
            (k.replace('\'', "’").into_boxed_str(), lens)
        })
        .collect();
    rules.extend(typographic);
    let mut rejoinable = FxSet::default();
    let (mut spans, mut scratch) = (Vec::new(), Vec::new());
    for key in rules.keys() {
        spans.clear();
        tokenize_chunk(key, None, &mut spans, &mut scratch);
        if spans.len() >= 2 {
            rejoinable.insert(key.clone());
        }
    }
    let longest = rules.keys().map(|k| k.len()).max().unwrap_or(0);
    let mut edges = vec![0u64; 1024].into_boxed_slice();
    for k in rules.keys() {
        if let (Some(&first), Some(&last)) = (k.as_bytes().first(), k.as_bytes().last()) {
            let bit = 256 * first as usize + last as usize;
            edges[bit / 64] |= 1 << (bit % 64);
        }
    }
    Specials { rules, rejoinable, longest, edges }
}

/// spaCy's emoticons (base exceptions), one token each.
const EMOTICONS: &str = r#"
:) :-) :)) :-)) :))) :-))) (: (-: =) (= :] :-] [: [-: [= =] :o) (o: :} :-} 8) 8-) (-8 ;) ;-) (; (-;
:( :-( :(( :-(( :((( :-((( ): )-: =( >:( :') :'-) :'( :'-( :/ :-/ =/ =| :| :-| ]= =[ :1 :P :-P :p :-p
:O :-O :o :-o :0 :-0 :() >:o :* :-* :3 :-3 =3 :> :-> :X :-X :x :-x :D :-D ;D ;-D =D xD XD xDD XDD 8D
8-D ^_^ ^__^ ^___^ >.< >.> <.< ._. ;_; -_- -__- v.v V.V v_v V_V o_o o_O O_o O_O 0_o o_0 0_0 o.O O.o
O.O o.o 0.0 o.0 0.o @_@ <3 <33 <333 </3 (^_^) (-_-) (._.) (>_<) (*_*) (¬_¬) ಠ_ಠ ಠ︵ಠ (ಠ_ಠ) ¯\(ツ)/¯
(╯°□°）╯︵┻━┻ ><(((*>
"#;

/// English single-token exceptions: abbreviations, clipped words, states, months.
const EN_SINGLE_TOKENS: &str = "
'S 's \u{2018}S \u{2018}s and/or w/o 're 'Cause 'cause 'cos 'Cos 'coz 'Coz 'cuz 'Cuz 'bout ma'am Ma'am
o'clock O'clock lovin' Lovin' lovin Lovin havin' Havin' havin Havin doin' Doin' doin Doin goin' Goin'
goin Goin Mt. Ak. Ala. Apr. Ariz. Ark. Aug. Calif. Colo. Conn. Dec. Del. Feb. Fla. Ga. Ia. Id. Ill.
Ind. Jan. Jul. Jun. Kan. Kans. Ky. La. Mar. Mass. Mich. Minn. Miss. N.C. N.D. N.H. N.J. N.M. N.Y. Neb.
Nebr. Nev. Nov. Oct. Okla. Ore. Pa. S.C. Sep. Sept. Tenn. Va. Wash. Wis.
'd a.m. Adm. Bros. co. Co. Corp. D.C. Dr. e.g. E.g. E.G. Gen. Gov. i.e. I.e. I.E. Inc. Jr. Ltd. Md.
Messrs. Mo. Mont. Mr. Mrs. Ms. p.m. Ph.D. Prof. Rep. Rev. Sen. St. vs. v.s.
";

// ---------------------------------------------------------------------------------------------
// Character classes

/// spaCy's `LIST_QUOTES`.
const QUOTES: &str = "'\"”“`‘´’‚,„»«「」『』（）〔〕【】《》〈〉\u{2329}\u{232a}⟦⟧";
/// One-character prefixes besides punctuation, quotes, currency and icons.
const PREFIX_CHARS: &str = concat!(
    "§%=—–",
    "…,:;!?¿؟¡()[]{}<>_#*&。？！，、；：～·।،۔؛٪",
    "'\"”“`‘´’‚,„»«「」『』（）〔〕【】《》〈〉\u{2329}\u{232a}⟦⟧",
);
/// One-character suffixes besides icons.
const SUFFIX_CHARS: &str = concat!(
    "…,:;!?¿؟¡()[]{}<>_#*&。？！，、；：～·।،۔؛٪",
    "'\"”“`‘´’‚,„»«「」『』（）〔〕【】《》〈〉\u{2329}\u{232a}⟦⟧",
    "—–",
);
/// spaCy's `LIST_CURRENCY`.
#[rustfmt::skip]
const CURRENCIES: &[&str] = &[
    "$", "£", "€", "¥", "฿", "US$", "C$", "A$", "₽", "﷼", "₴", "₠", "₡", "₢", "₣", "₤", "₥", "₦", "₧", "₨", "₩",
    "₪", "₫", "₭", "₮", "₯", "₰", "₱", "₲", "₳", "₵", "₶", "₷", "₸", "₹", "₺", "₻", "₼", "₾", "₿",
];
/// spaCy's `LIST_UNITS` (`тбكم` is spaCy's own: two entries its list runs together).
#[rustfmt::skip]
const UNITS: &[&str] = &[
    "km", "km²", "km³", "m", "m²", "m³", "dm", "dm²", "dm³", "cm", "cm²", "cm³", "mm", "mm²", "mm³", "ha", "µm",
    "nm", "yd", "in", "ft", "kg", "g", "mg", "µg", "t", "lb", "oz", "m/s", "km/h", "kmh", "mph", "hPa", "Pa",
    "mbar", "mb", "MB", "kb", "KB", "gb", "GB", "tb", "TB", "T", "G", "M", "K", "%", "км", "км²", "км³", "м",
    "м²", "м³", "дм", "дм²", "дм³", "см", "см²", "см³", "мм", "мм²", "мм³", "нм", "кг", "г", "мг", "м/с",
    "км/ч", "кПа", "Па", "мбар", "Кб", "КБ", "кб", "Мб", "МБ", "мб", "Гб", "ГБ", "гб", "Тб", "ТБ", "тбكم",
    "كم²", "كم³", "م", "م²", "م³", "سم", "سم²", "سم³", "مم", "مم²", "مم³", "كم", "غرام", "جرام", "جم", "كغ",
    "ملغ", "كوب", "اكواب",
];

/// The characters of `set` below 128 as a bit mask, for the ASCII fast path of [`in_class`].
const fn ascii_mask(set: &str) -> u128 {
    let bytes = set.as_bytes();
    let (mut mask, mut i) = (0u128, 0);
    while i < bytes.len() {
        if bytes[i] < 128 {
            mask |= 1 << bytes[i];
        }
        i += 1;
    }
    mask
}

/// `c` is one of `set`'s characters (`mask` is `ascii_mask(set)`).
fn in_class(c: char, mask: u128, set: &str) -> bool {
    if c.is_ascii() {
        mask >> (c as u32) & 1 == 1
    } else {
        set.contains(c)
    }
}

const PREFIX_ASCII: u128 = ascii_mask(PREFIX_CHARS);
const SUFFIX_ASCII: u128 = ascii_mask(SUFFIX_CHARS);
const QUOTES_ASCII: u128 = ascii_mask(QUOTES);
/// What a final `.` may follow besides digits and lower-case letters (spaCy's character class
/// `[{al}{e}{p}(?:{q})]`, which takes `|`, `(`, `?`, `:`, `)` literally).
const DOT_AFTER: &str = concat!(
    "%²-+|()?:",
    "…,:;!?¿؟¡()[]{}<>_#*&。？！，、；：～·।،۔؛٪",
    "'\"”“`‘´’‚,„»«「」『』（）〔〕【】《》〈〉\u{2329}\u{232a}⟦⟧",
);
const DOT_AFTER_ASCII: u128 = ascii_mask(DOT_AFTER);

fn is_currency_char(c: char) -> bool {
    matches!(c, '$' | '£' | '€' | '¥' | '฿' | '﷼') || ('\u{20a0}'..='\u{20bf}').contains(&c)
}

fn in_ranges(c: char, ranges: &[(u32, u32)]) -> bool {
    let c = c as u32;
    ranges
        .binary_search_by(|&(lo, hi)| {
            if hi < c {
                std::cmp::Ordering::Less
            } else if lo > c {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        })
        .is_ok()
}

/// spaCy's `LIST_ICONS` (symbols and emoji).
fn is_icon(c: char) -> bool {
    !c.is_ascii() && in_ranges(c, ICONS)
}

/// spaCy's `ALPHA` (approximated outside Latin-1 by Unicode's alphabetic property).
fn is_alpha(c: char) -> bool {
    if c.is_ascii() {
        c.is_ascii_alphabetic()
    } else if (c as u32) < 0x100 {
        ('\u{c0}'..='\u{ff}').contains(&c) && c != '\u{d7}' && c != '\u{f7}'
    } else {
        c.is_alphabetic()
    }
}

/// spaCy's `ALPHA_LOWER`: lower-case letters and letters of scripts without case.
fn is_lower(c: char) -> bool {
    if c.is_ascii() {
        c.is_ascii_lowercase()
    } else if (c as u32) < 0x100 {
        ('\u{df}'..='\u{ff}').contains(&c) && c != '\u{f7}'
    } else {
        c.is_alphabetic() && !c.is_uppercase()
    }
}

/// spaCy's `ALPHA_UPPER`: upper-case letters and letters of scripts without case.
fn is_upper(c: char) -> bool {
    if c.is_ascii() {
        c.is_ascii_uppercase()
    } else if (c as u32) < 0x100 {
        ('\u{c0}'..='\u{de}').contains(&c) && c != '\u{d7}'
    } else {
        c.is_alphabetic() && !c.is_lowercase()
    }
}

/// Python's `str.isspace`.
fn is_py_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// Python's `str.isalpha` for one character (letters; Unicode's alphabetic property outside
/// ASCII, which also counts a few marks and letter-like numerals).
fn is_py_alpha(c: char) -> bool {
    if c.is_ascii() {
        c.is_ascii_alphabetic()
    } else {
        c.is_alphabetic()
    }
}

/// datatrove's `PUNCTUATION_SET`: ASCII punctuation, control characters other than tab and
/// newline, some typographic and CJK marks, and the sentence-terminal marks of all scripts.
fn is_dt_punctuation(c: char) -> bool {
    match c as u32 {
        0x09 | 0x0A => false,
        0x00..=0x1F | 0x7F..=0x9F => true,
        0x20..=0x7E => c.is_ascii_punctuation(),
        _ => DT_PUNCTUATION_EXTRA.contains(c) || is_terminal_punctuation(c),
    }
}

/// The non-ASCII members of datatrove's `PUNCTUATION` string.
const DT_PUNCTUATION_EXTRA: &str = "«´»–—’“”„…∶━►、。〈〉《》「」【】！％（），．１：；？～";

/// datatrove's `TERMINAL_PUNCTUATION` (spaCy's sentencizer uses nearly the same list).
fn is_terminal_punctuation(c: char) -> bool {
    TERMINAL_PUNCTUATION.binary_search(&(c as u32)).is_ok()
}

/// Unicode general category P* (spaCy's `is_punct`), exact for ASCII and Latin-1, by blocks
/// beyond.
fn is_unicode_punct(c: char) -> bool {
    match c as u32 {
        0x00..=0x7F => c.is_ascii_punctuation() && !"$+<=>^`|~".contains(c),
        0xA1 | 0xA7 | 0xAB | 0xB6 | 0xB7 | 0xBB | 0xBF => true,
        0x2010..=0x2027 | 0x2030..=0x2043 | 0x2045..=0x2051 | 0x2053..=0x205E => true,
        0x2E00..=0x2E4F | 0x3001..=0x3003 | 0x3008..=0x3011 | 0x3014..=0x301F => true,
        _ => is_terminal_punctuation(c),
    }
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
struct FxHasher(u64);

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

type FxMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;
type FxSet<K> = HashSet<K, BuildHasherDefault<FxHasher>>;

// ---------------------------------------------------------------------------------------------
// Tables (data from spaCy 3.8's `lang/char_classes.py` and datatrove's `utils/text.py`)

/// spaCy's `_other_symbols` (`LIST_ICONS`), merged ranges of code points.
#[rustfmt::skip]
const ICONS: &[(u32, u32)] = &[
    (0xA6, 0xA6), (0xA9, 0xA9), (0xAE, 0xAE), (0xB0, 0xB0), (0x482, 0x482), (0x58D, 0x58E), (0x60E, 0x60F),
    (0x6DE, 0x6DE), (0x6E9, 0x6E9), (0x6FD, 0x6FE), (0x7F6, 0x7F6), (0x9FA, 0x9FA), (0xB70, 0xB70),
    (0xBF3, 0xBF8), (0xBFA, 0xBFA), (0xC7F, 0xC7F), (0xD4F, 0xD4F), (0xD79, 0xD79), (0xF01, 0xF03),
    (0xF13, 0xF13), (0xF15, 0xF17), (0xF1A, 0xF1F), (0xF34, 0xF34), (0xF36, 0xF36), (0xF38, 0xF38),
    (0xFBE, 0xFC5), (0xFC7, 0xFCC), (0xFCE, 0xFCF), (0xFD5, 0xFD8), (0x109E, 0x109F), (0x1390, 0x1399),
    (0x1940, 0x1940), (0x19DE, 0x19FF), (0x1B61, 0x1B6A), (0x1B74, 0x1B7C), (0x2100, 0x2101), (0x2103, 0x2106),
    (0x2108, 0x2109), (0x2114, 0x2114), (0x2116, 0x2117), (0x211E, 0x2123), (0x2125, 0x2125), (0x2127, 0x2127),
    (0x2129, 0x2129), (0x212E, 0x212E), (0x213A, 0x213B), (0x214A, 0x214A), (0x214C, 0x214D), (0x214F, 0x214F),
    (0x218A, 0x218B), (0x2195, 0x2199), (0x219C, 0x219F), (0x21A1, 0x21A2), (0x21A4, 0x21A5), (0x21A7, 0x21AD),
    (0x21AF, 0x21CD), (0x21D0, 0x21D1), (0x21D3, 0x21D3), (0x21D5, 0x21F3), (0x2300, 0x2307), (0x230C, 0x231F),
    (0x2322, 0x2328), (0x232B, 0x237B), (0x237D, 0x239A), (0x23B4, 0x23DB), (0x23E2, 0x2426), (0x2440, 0x244A),
    (0x249C, 0x24E9), (0x2500, 0x25B6), (0x25B8, 0x25C0), (0x25C2, 0x25F7), (0x2600, 0x266E), (0x2670, 0x2767),
    (0x2794, 0x27BF), (0x2800, 0x28FF), (0x2B00, 0x2B2F), (0x2B45, 0x2B46), (0x2B4D, 0x2B73), (0x2B76, 0x2B95),
    (0x2B98, 0x2BC8), (0x2BCA, 0x2BFE), (0x2CE5, 0x2CEA), (0x2E80, 0x2E99), (0x2E9B, 0x2EF3), (0x2F00, 0x2FD5),
    (0x2FF0, 0x2FFB), (0x3004, 0x3004), (0x3012, 0x3013), (0x3020, 0x3020), (0x3036, 0x3037), (0x303E, 0x303F),
    (0x3190, 0x3191), (0x3196, 0x319F), (0x31C0, 0x31E3), (0x3200, 0x321E), (0x322A, 0x3247), (0x3250, 0x3250),
    (0x3260, 0x327F), (0x328A, 0x32B0), (0x32C0, 0x32FE), (0x3300, 0x33FF), (0x4DC0, 0x4DFF), (0xA490, 0xA4C6),
    (0xA828, 0xA82B), (0xA836, 0xA837), (0xA839, 0xA839), (0xAA77, 0xAA79), (0xFDFD, 0xFDFD), (0xFFE4, 0xFFE4),
    (0xFFE8, 0xFFE8), (0xFFED, 0xFFEE), (0xFFFC, 0xFFFD), (0x10137, 0x1013F), (0x10179, 0x10189),
    (0x1018C, 0x1018E), (0x10190, 0x1019B), (0x101A0, 0x101A0), (0x101D0, 0x101FC), (0x10877, 0x10878),
    (0x10AC8, 0x10AC8), (0x1173F, 0x1173F), (0x16B3C, 0x16B3F), (0x16B45, 0x16B45), (0x1BC9C, 0x1BC9C),
    (0x1D000, 0x1D0F5), (0x1D100, 0x1D126), (0x1D129, 0x1D164), (0x1D16A, 0x1D16C), (0x1D183, 0x1D184),
    (0x1D18C, 0x1D1A9), (0x1D1AE, 0x1D1E8), (0x1D200, 0x1D241), (0x1D245, 0x1D245), (0x1D300, 0x1D356),
    (0x1D800, 0x1D9FF), (0x1DA37, 0x1DA3A), (0x1DA6D, 0x1DA74), (0x1DA76, 0x1DA83), (0x1DA85, 0x1DA86),
    (0x1ECAC, 0x1ECAC), (0x1F000, 0x1F02B), (0x1F030, 0x1F093), (0x1F0A0, 0x1F0AE), (0x1F0B1, 0x1F0BF),
    (0x1F0C1, 0x1F0CF), (0x1F0D1, 0x1F0F5), (0x1F110, 0x1F16B), (0x1F170, 0x1F1AC), (0x1F1E6, 0x1F202),
    (0x1F210, 0x1F23B), (0x1F240, 0x1F248), (0x1F250, 0x1F251), (0x1F260, 0x1F265), (0x1F300, 0x1F3FA),
    (0x1F400, 0x1F6D4), (0x1F6E0, 0x1F6EC), (0x1F6F0, 0x1F6F9), (0x1F700, 0x1F773), (0x1F780, 0x1F7D8),
    (0x1F800, 0x1F80B), (0x1F810, 0x1F847), (0x1F850, 0x1F859), (0x1F860, 0x1F887), (0x1F890, 0x1F8AD),
    (0x1F900, 0x1F90B), (0x1F910, 0x1F93E), (0x1F940, 0x1F970), (0x1F973, 0x1F976), (0x1F97A, 0x1F97A),
    (0x1F97C, 0x1F9A2), (0x1F9B0, 0x1F9B9), (0x1F9C0, 0x1F9C2), (0x1F9D0, 0x1F9FF), (0x1FA60, 0x1FA6D),
];

/// datatrove's `TERMINAL_PUNCTUATION`, sorted code points.
#[rustfmt::skip]
const TERMINAL_PUNCTUATION: &[u32] = &[
    0x21, 0x2E, 0x3F, 0x589, 0x61D, 0x61E, 0x61F, 0x6D4, 0x700, 0x701, 0x702, 0x7F9, 0x837, 0x839, 0x83D, 0x83E,
    0x964, 0x965, 0x104A, 0x104B, 0x1362, 0x1367, 0x1368, 0x166E, 0x1735, 0x1736, 0x17D4, 0x17D5, 0x17D6,
    0x17D9, 0x17DA, 0x1803, 0x1809, 0x1944, 0x1945, 0x1AA8, 0x1AA9, 0x1AAA, 0x1AAB, 0x1B5A, 0x1B5B, 0x1B5E,
    0x1B5F, 0x1B7D, 0x1B7E, 0x1C3B, 0x1C3C, 0x1C7E, 0x1C7F, 0x203C, 0x203D, 0x2047, 0x2048, 0x2049, 0x2E2E,
    0x2E3C, 0x2E53, 0x2E54, 0x3002, 0xA4FF, 0xA60E, 0xA60F, 0xA6F3, 0xA6F7, 0xA876, 0xA877, 0xA8CE, 0xA8CF,
    0xA92F, 0xA9C8, 0xA9C9, 0xAA5D, 0xAA5E, 0xAA5F, 0xAAF0, 0xAAF1, 0xABEB, 0xFE52, 0xFE56, 0xFE57, 0xFF01,
    0xFF0E, 0xFF1F, 0xFF61, 0x10A56, 0x10A57, 0x10F55, 0x10F56, 0x10F57, 0x10F58, 0x10F59, 0x10F86, 0x10F87,
    0x10F88, 0x10F89, 0x11047, 0x11048, 0x110BE, 0x110BF, 0x110C0, 0x110C1, 0x11141, 0x11142, 0x11143, 0x111C5,
    0x111C6, 0x111CD, 0x111DE, 0x111DF, 0x11238, 0x11239, 0x1123B, 0x1123C, 0x112A9, 0x1144B, 0x1144C, 0x115C2,
    0x115C3, 0x115C9, 0x115CA, 0x115CB, 0x115CC, 0x115CD, 0x115CE, 0x115CF, 0x115D0, 0x115D1, 0x115D2, 0x115D3,
    0x115D4, 0x115D5, 0x115D6, 0x115D7, 0x11641, 0x11642, 0x1173C, 0x1173D, 0x1173E, 0x11944, 0x11946, 0x11A42,
    0x11A43, 0x11A9B, 0x11A9C, 0x11C41, 0x11C42, 0x11EF7, 0x11EF8, 0x11F43, 0x11F44, 0x16A6E, 0x16A6F, 0x16AF5,
    0x16B37, 0x16B38, 0x16B44, 0x16E98, 0x1BC9F, 0x1DA88,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn special_cases_are_spacys() {
        // spacy.blank("en").tokenizer.rules has 1347 entries (spaCy 3.8.18).
        let sp = specials();
        assert_eq!(sp.rules.len(), 1347);
        assert_eq!(&*sp.rules["Couldn’t’ve"], &[5, 5, 5]);
        assert!(sp.rejoinable.contains("Mr.") && !sp.rejoinable.contains("dont"));
        assert!(url_match("https://example.com/a-b") && !url_match("well-known"));
        assert!(citation_regex().is_match("[12]"));
    }
}
