//! Words: spaCy's English tokenizer (`spacy.blank("en")`, spaCy 3.8), as datatrove's English
//! `split_into_words` runs it, with its character classes and tokenizer exceptions; the Gopher
//! filters count these words (see `filters.rs` for why it has to agree token for token).

use std::sync::OnceLock;

use regex::Regex;

use super::filters::{FxMap, FxSet};

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
pub(super) fn is_py_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// Python's `str.isalpha` for one character (letters; Unicode's alphabetic property outside
/// ASCII, which also counts a few marks and letter-like numerals).
pub(super) fn is_py_alpha(c: char) -> bool {
    if c.is_ascii() {
        c.is_ascii_alphabetic()
    } else {
        c.is_alphabetic()
    }
}

/// datatrove's `PUNCTUATION_SET`: ASCII punctuation, control characters other than tab and
/// newline, some typographic and CJK marks, and the sentence-terminal marks of all scripts.
pub(super) fn is_dt_punctuation(c: char) -> bool {
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
pub(super) fn is_terminal_punctuation(c: char) -> bool {
    TERMINAL_PUNCTUATION.binary_search(&(c as u32)).is_ok()
}

/// Unicode general category P* (spaCy's `is_punct`), exact for ASCII and Latin-1, by blocks
/// beyond.
pub(super) fn is_unicode_punct(c: char) -> bool {
    match c as u32 {
        0x00..=0x7F => c.is_ascii_punctuation() && !"$+<=>^`|~".contains(c),
        0xA1 | 0xA7 | 0xAB | 0xB6 | 0xB7 | 0xBB | 0xBF => true,
        0x2010..=0x2027 | 0x2030..=0x2043 | 0x2045..=0x2051 | 0x2053..=0x205E => true,
        0x2E00..=0x2E4F | 0x3001..=0x3003 | 0x3008..=0x3011 | 0x3014..=0x301F => true,
        _ => is_terminal_punctuation(c),
    }
}

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
    }
}
