//! Document filters: each Gopher and C4 rule on crafted documents just inside and just past
//! its threshold (with the other rules off, so the one under test decides), datatrove's
//! Python quirks that move documents across thresholds, the word splitter against spaCy's
//! output, and inputs that must not panic or go quadratic.
//!
//! Expected words come from datatrove 0.10.1's `split_into_words` (spaCy 3.8.18's English
//! tokenizer), run by hand; `scripts/clean-compare` checks the same on thousands of documents.

use ingot_data::clean::filters::{
    c4_lines, gopher_quality, gopher_repetition, words, C4Config, FilterConfig, GopherQualityConfig,
    GopherRepetitionConfig, Verdict,
};

/// `n` plain words with three stop words among them: passes every default quality rule.
fn plain(n: usize) -> String {
    const POOL: [&str; 9] = ["the", "quiet", "river", "and", "green", "valley", "with", "tall", "trees"];
    (0..n).map(|i| POOL[i % POOL.len()]).collect::<Vec<_>>().join(" ")
}

/// Only the rule under test: every other quality threshold off.
fn quality_only(set: impl FnOnce(&mut GopherQualityConfig)) -> GopherQualityConfig {
    let mut cfg = GopherQualityConfig {
        enabled: true,
        min_doc_words: 0,
        max_doc_words: 0,
        min_avg_word_length: 0.0,
        max_avg_word_length: 0.0,
        max_symbol_word_ratio: 0.0,
        max_bullet_lines_ratio: 0.0,
        max_ellipsis_lines_ratio: 0.0,
        max_non_alpha_words_ratio: 0.0,
        min_stop_words: 0,
        stop_words: GopherQualityConfig::default().stop_words,
    };
    set(&mut cfg);
    cfg
}

fn repetition_only(set: impl FnOnce(&mut GopherRepetitionConfig)) -> GopherRepetitionConfig {
    let mut cfg = GopherRepetitionConfig {
        enabled: true,
        dup_line_frac: 0.0,
        dup_para_frac: 0.0,
        dup_line_char_frac: 0.0,
        dup_para_char_frac: 0.0,
        top_n_grams: vec![],
        dup_n_grams: vec![],
    };
    set(&mut cfg);
    cfg
}

const KEEP: Verdict = Verdict::Keep;
fn drop(reason: &'static str) -> Verdict {
    Verdict::Drop(reason)
}

#[test]
fn words_match_spacy_english() {
    let text = "Hello, world. I don't know--really? It's Mr. Smith's (e.g. 3km) U.S.A. well-known a/b x=y 1-2 \
                'tis o'er... \"quoted\" $5 10% ;)  done";
    let expected = [
        "Hello", ",", "world", ".", "I", "do", "n't", "know", "--", "really", "?", "It", "'s", "Mr.", "Smith", "'s",
        "(", "e.g.", "3", "km", ")", "U.S.A.", "well", "-", "known", "a", "/", "b", "x", "=", "y", "1", "-", "2", "'",
        "tis", "o'er", "...", "\"", "quoted", "\"", "$", "5", "10", "%", ";)", "done",
    ];
    assert_eq!(words(text), expected);
}

#[test]
fn words_special_cases_and_their_second_pass() {
    // Exceptions without apostrophes split too; the excluded ones ("well", "its") do not.
    assert_eq!(words("dont cant wed well its Im"), ["do", "nt", "ca", "nt", "we", "d", "well", "its", "I", "m"]);
    assert_eq!(words("5pm 12a.m. cannot gonna"), ["5", "pm", "12", "a.m.", "can", "not", "gon", "na"]);
    // Affix rules split "Mr" "." inside "Mr.Smith"; spaCy's matcher joins the case again.
    assert_eq!(words("Mr.Smith"), ["Mr.", "Smith"]);
    assert_eq!(words("(Dr.)"), ["(", "Dr.", ")"]);
    // A URL is one token although its ':' and '/' are infixes elsewhere.
    assert_eq!(words("see https://example.com/a-b/c, then"), ["see", "https://example.com/a-b/c", ",", "then"]);
    assert_eq!(words("a:b"), ["a", ":", "b"]);
    // Only Python's whitespace separates chunks (\x1c is whitespace to Python, U+200B is not).
    assert_eq!(words("a\u{1c}b\u{200b}c\u{a0}d"), ["a", "b\u{200b}c", "d"]);
    assert!(words("").is_empty() && words(" \n\t ").is_empty());
}

#[test]
fn gopher_quality_word_count_bounds() {
    let cfg = quality_only(|c| c.min_doc_words = 50);
    assert_eq!(gopher_quality(&plain(49), &cfg), drop("gopher_short_doc"));
    assert_eq!(gopher_quality(&plain(50), &cfg), KEEP);
    // Punctuation-only tokens are not words for this rule.
    assert_eq!(gopher_quality(&format!("{} , . !", plain(49)), &cfg), drop("gopher_short_doc"));
    let cfg = quality_only(|c| c.max_doc_words = 60);
    assert_eq!(gopher_quality(&plain(60), &cfg), KEEP);
    assert_eq!(gopher_quality(&plain(61), &cfg), drop("gopher_long_doc"));
}

#[test]
fn gopher_quality_mean_word_length() {
    let cfg = quality_only(|c| {
        c.min_avg_word_length = 3.0;
        c.max_avg_word_length = 10.0;
    });
    assert_eq!(gopher_quality(&["cat"; 50].join(" "), &cfg), KEEP); // exactly 3
    let short = format!("{} ab", ["cat"; 49].join(" ")); // 149 / 50 = 2.98
    assert_eq!(gopher_quality(&short, &cfg), drop("gopher_below_avg_threshold"));
    assert_eq!(gopher_quality(&["abcdefghij"; 50].join(" "), &cfg), KEEP); // exactly 10
    let long = format!("{} abcdefghijk", ["abcdefghij"; 49].join(" "));
    assert_eq!(gopher_quality(&long, &cfg), drop("gopher_above_avg_threshold"));
}

#[test]
fn gopher_quality_hashes_and_ellipses_per_word() {
    let cfg = quality_only(|c| c.max_symbol_word_ratio = 0.1);
    // "x#y" stays one token: 10 hashes in 100 words is the limit, 11 is past it.
    let with = |k: usize, sym: &str| format!("{} {}", vec![sym; k].join(" "), plain(100 - k));
    assert_eq!(gopher_quality(&with(10, "x#y"), &cfg), KEEP);
    assert_eq!(gopher_quality(&with(11, "x#y"), &cfg), drop("gopher_too_many_hashes"));
    // "..." is a token of its own; "…" counts as well.
    assert_eq!(gopher_quality(&with(10, "..."), &cfg), KEEP);
    assert_eq!(gopher_quality(&with(11, "..."), &cfg), drop("gopher_too_many_ellipsis"));
    assert_eq!(gopher_quality(&with(11, "…"), &cfg), drop("gopher_too_many_ellipsis"));
}

#[test]
fn gopher_quality_bullet_and_ellipsis_lines() {
    let lines = |n: usize, bullets: usize, prefix: &str| {
        (0..n).map(|i| format!("{}{}", if i < bullets { prefix } else { "" }, plain(10))).collect::<Vec<_>>().join("\n")
    };
    let cfg = quality_only(|c| c.max_bullet_lines_ratio = 0.9);
    assert_eq!(gopher_quality(&lines(10, 9, "  - "), &cfg), KEEP);
    assert_eq!(gopher_quality(&lines(10, 10, "  - "), &cfg), drop("gopher_too_many_bullets"));
    assert_eq!(gopher_quality(&lines(10, 10, "• "), &cfg), drop("gopher_too_many_bullets"));
    let ending = |n: usize, k: usize| {
        (0..n).map(|i| format!("{}{}", plain(10), if i < k { " ... " } else { "" })).collect::<Vec<_>>().join("\r\n")
    };
    let cfg = quality_only(|c| c.max_ellipsis_lines_ratio = 0.3);
    assert_eq!(gopher_quality(&ending(10, 3), &cfg), KEEP);
    assert_eq!(gopher_quality(&ending(10, 4), &cfg), drop("gopher_too_many_end_ellipsis"));
}

#[test]
fn gopher_quality_alphabetic_share_and_stop_words() {
    let cfg = quality_only(|c| c.max_non_alpha_words_ratio = 0.8);
    let with_numbers = |k: usize| format!("{} {}", vec!["123"; k].join(" "), plain(100 - k));
    assert_eq!(gopher_quality(&with_numbers(20), &cfg), KEEP);
    assert_eq!(gopher_quality(&with_numbers(21), &cfg), drop("gopher_below_alpha_threshold"));
    // Punctuation tokens count as words here: "word ," pairs are half alphabetic.
    assert_eq!(gopher_quality(&["word ,"; 30].join(" "), &cfg), drop("gopher_below_alpha_threshold"));

    let cfg = quality_only(|c| c.min_stop_words = 2);
    assert_eq!(gopher_quality("the cat sat on a mat, the end", &cfg), drop("gopher_enough_stop_words"));
    assert_eq!(gopher_quality("the cat and the mat", &cfg), KEEP);
    // Case-sensitive, whole tokens: "The", "AND", "other" do not count.
    assert_eq!(gopher_quality("The cat AND other mats", &cfg), drop("gopher_enough_stop_words"));
}

#[test]
fn gopher_quality_defaults_and_switches() {
    let cfg = GopherQualityConfig::default();
    assert_eq!(gopher_quality(&plain(200), &cfg), KEEP);
    assert_eq!(gopher_quality("", &cfg), drop("gopher_short_doc"));
    let off = GopherQualityConfig { enabled: false, ..cfg };
    assert_eq!(gopher_quality("", &off), KEEP);
    // Everything off except stop words: no words at all must not divide by zero.
    assert_eq!(gopher_quality("", &quality_only(|c| c.min_stop_words = 2)), drop("gopher_enough_stop_words"));
    assert_eq!(gopher_quality(" , ", &quality_only(|c| c.max_avg_word_length = 10.0)), KEEP);
}

#[test]
fn gopher_repetition_lines_and_paragraphs() {
    // 10 paragraphs, 3 repeating an earlier one: 0.3 is the limit.
    let paras = |dups: usize| {
        (0..10)
            .map(|i| if i < dups { "same paragraph".to_string() } else { format!("paragraph {i}") })
            .collect::<Vec<_>>()
    };
    let cfg = repetition_only(|c| c.dup_para_frac = 0.3);
    assert_eq!(gopher_repetition(&paras(4).join("\n\n"), &cfg), KEEP); // 3 repeats of 10
    assert_eq!(gopher_repetition(&paras(5).join("\n\n\n"), &cfg), drop("dup_para_frac"));
    let cfg = repetition_only(|c| c.dup_line_frac = 0.3);
    assert_eq!(gopher_repetition(&paras(4).join("\n"), &cfg), KEEP);
    assert_eq!(gopher_repetition(&paras(5).join("\n"), &cfg), drop("dup_line_frac"));
    // re.split("\n+") on the unstripped text: the empty first and last pieces repeat.
    assert_eq!(gopher_repetition("\nx\n", &cfg), drop("dup_line_frac"));
    // Character shares: 2 repeats of 10 characters in 50.
    let text = "aaaaaaaaaa\n\nbbbbbbbbbb\n\naaaaaaaaaa\n\naaaaaaaaaa"; // 46 chars, 20 repeated
    let cfg = repetition_only(|c| c.dup_para_char_frac = 20.0 / 46.0);
    assert_eq!(gopher_repetition(text, &cfg), KEEP);
    let cfg = repetition_only(|c| c.dup_para_char_frac = 19.9 / 46.0);
    assert_eq!(gopher_repetition(text, &cfg), drop("dup_para_char_frac"));
    let cfg = repetition_only(|c| c.dup_line_char_frac = 19.9 / 46.0);
    assert_eq!(gopher_repetition(text, &cfg), drop("dup_line_char_frac"));
    assert_eq!(gopher_repetition("", &GopherRepetitionConfig::default()), drop("empty"));
}

#[test]
fn gopher_repetition_top_n_grams() {
    // "ab cd" twice: 5 characters x 2 of 17.
    let text = "ab cd ab cd ef gh";
    let at = |frac: f64| repetition_only(|c| c.top_n_grams = vec![(2, frac)]);
    assert_eq!(gopher_repetition(text, &at(10.0 / 17.0)), KEEP);
    assert_eq!(gopher_repetition(text, &at(9.9 / 17.0)), drop("top_2_gram"));
    // A tie goes to the n-gram seen first ("a bb", 4 of 8), not the longest ("bb ccc").
    assert_eq!(gopher_repetition("a bb ccc", &at(0.5)), KEEP);
    assert_eq!(gopher_repetition("a bb ccc", &at(0.49)), drop("top_2_gram"));
    // Fewer words than n: the rule is skipped.
    assert_eq!(gopher_repetition("one", &at(0.0)), KEEP);
}

#[test]
fn gopher_repetition_duplicated_n_grams_join_without_spaces() {
    // "ab c d e f" and "a bc d e f" both concatenate to "abcdef": a repeat of 6 in 21.
    let text = "ab c d e f a bc d e f";
    let at = |frac: f64| repetition_only(|c| c.dup_n_grams = vec![(5, frac)]);
    assert_eq!(gopher_repetition(text, &at(6.0 / 21.0)), KEEP);
    assert_eq!(gopher_repetition(text, &at(5.9 / 21.0)), drop("duplicated_5_n_grams"));
    // A repeat skips the scan past itself: in ten "x" (19 characters) the 5-gram at 1 repeats
    // the one at 0, and the scan jumps to 6, where no 5-gram fits: 5 of 19.
    let text = ["x"; 10].join(" ");
    assert_eq!(gopher_repetition(&text, &at(5.0 / 19.0)), KEEP);
    assert_eq!(gopher_repetition(&text, &at(4.9 / 19.0)), drop("duplicated_5_n_grams"));
}

#[test]
fn gopher_repetition_defaults_keep_prose_and_drop_spam() {
    let cfg = GopherRepetitionConfig::default();
    let prose = "It was the best of times, it was the worst of times; the age of wisdom and of foolishness.\n\
                 We had everything before us, we had nothing before us, and we were all going direct elsewhere.";
    assert_eq!(gopher_repetition(prose, &cfg), KEEP);
    let spam = ["buy cheap pills now"; 20].join(" ");
    assert_eq!(gopher_repetition(&spam, &cfg), drop("top_2_gram"));
    assert!(cfg.validate().is_ok());
    assert!(GopherRepetitionConfig { dup_n_grams: vec![(0, 0.1)], ..cfg.clone() }.validate().is_err());
    assert!(GopherRepetitionConfig { top_n_grams: vec![(17, 0.1)], ..cfg }.validate().is_err());
}

#[test]
fn c4_removes_boilerplate_lines() {
    let cfg = C4Config { min_num_sentences: 0, ..C4Config::default() };
    let text = "  Home | About | Contact  \n\
                This line has a proper ending.\n\
                Too short.\n\
                Please enable JavaScript to view this page.\n\
                This site uses cookies to improve things.\n\
                The king was crowned in 1066.[1] He ruled for years.[citation needed]\n\
                Ends with an ellipsis so it goes...\n\
                \"A quoted sentence ends here.\"";
    let kept = c4_lines(text, &cfg).unwrap();
    assert_eq!(
        kept,
        "This line has a proper ending.\nThe king was crowned in 1066. He ruled for years.\n\"A quoted sentence ends here.\""
    );
    let long_word = format!("A line with {} in it.", "x".repeat(1001));
    assert_eq!(c4_lines(&long_word, &cfg).unwrap(), "");
    let ok_word = format!("A line with {} in it.", "x".repeat(1000));
    assert_eq!(c4_lines(&ok_word, &cfg).unwrap(), ok_word);
}

#[test]
fn c4_drops_pages() {
    let cfg = C4Config::default();
    let five = "One sentence here. Two sentences here. Three of them now.\nFour is this one. And five ends it.";
    assert_eq!(c4_lines(five, &cfg).unwrap(), five);
    let four = "One sentence here. Two sentences here.\nThree of them now. Four is this one.";
    assert_eq!(c4_lines(four, &cfg), Err("too_few_sentences"));
    let lorem = format!("{five}\nLorem Ipsum dolor sit amet.");
    assert_eq!(c4_lines(&lorem, &cfg), Err("lorem_ipsum"));
    let code = format!("{five}\nint main() {{ return 0; }}.");
    assert_eq!(c4_lines(&code, &cfg), Err("curly_bracket"));
    // A curly bracket in a line that is removed anyway does not drop the page.
    assert_eq!(c4_lines(&format!("{five}\n{{ no ending"), &cfg).unwrap(), five);
    let off = C4Config { enabled: false, ..cfg };
    assert_eq!(c4_lines("{", &off).unwrap(), "{");
}

#[test]
fn filter_config_runs_all_in_order() {
    let cfg = FilterConfig::default();
    assert!(cfg.validate().is_ok());
    // Repetition runs first (FineWeb's order), and in two words one 2-gram is everything.
    assert_eq!(cfg.check("too short"), Err("top_2_gram"));
    let mut quality_first = cfg.clone();
    quality_first.gopher_repetition.enabled = false;
    assert_eq!(quality_first.check("too short"), Err("gopher_short_doc"));
    let spam = ["buy cheap pills now."; 30].join("\n");
    assert_eq!(cfg.check(&spam), Err("dup_line_frac"));
    let toml_like: FilterConfig =
        serde_json::from_str(r#"{"gopher_quality": {"enabled": false}, "c4": {"min_num_sentences": 0}}"#).unwrap();
    assert!(!toml_like.gopher_quality.enabled && toml_like.gopher_repetition.enabled);
    assert!(serde_json::from_str::<FilterConfig>(r#"{"c4": {"min_sentences": 1}}"#).is_err());
}

#[test]
fn hostile_inputs_finish_and_never_panic() {
    let big = 2_000_000;
    let inputs = [
        "a".repeat(big),
        "(".repeat(big),
        ".".repeat(big),
        "a-".repeat(big / 2),
        "a.B".repeat(big / 3),
        "'s".repeat(big / 2),
        "Mr.".repeat(big / 3),
        "http://x.com/".repeat(big / 13),
        "\n".repeat(big),
        "é…😀\u{1c}\u{2028}".repeat(big / 12),
        "word ".repeat(big / 5),
    ];
    let start = std::time::Instant::now();
    let cfg = FilterConfig::default();
    for text in &inputs {
        let _ = words(text);
        let _ = cfg.check(text);
        let _ = c4_lines(text, &C4Config::default());
    }
    // Linear work: well under a second each in release, even on a loaded machine.
    assert!(start.elapsed().as_secs() < 60, "took {:?}", start.elapsed());
}
