//! Personal data in text: e-mail addresses, IPv4/IPv6 addresses, phone numbers and payment card
//! numbers, found and replaced by placeholders, with counts.
//!
//! ```text
//! PiiScrubber::new(&cfg).scrub(text)  ->  (text with placeholders, PiiCounts {email, ip, phone, card})
//! PiiScrubber::find(text)             ->  Vec<PiiSpan> {range, kind}, in text order, not overlapping
//! ```
//!
//! Placeholders (configurable): `<EMAIL>`, `<IP_ADDRESS>`, `<PHONE>`, `<CARD>`. datatrove's
//! `PIIFormatter` substitutes plausible fakes (`email@example.com`, unused IPs) so the text still
//! reads naturally; markers are used here so a model never learns fake addresses as facts, and so
//! what was removed stays visible.
//!
//! Each kind is a regular expression for candidates followed by checks in code (Rust's `regex` has
//! no look-around), and a candidate must not run into a letter or digit on either side:
//! - E-mail: `local@domain.tld`, ASCII only. The domain needs at least one dot and a TLD of two or
//!   more letters, so `user@localhost`, `a@b` and `a@b.c` are not addresses (nor is `name@2x.png`,
//!   a retina image: image extensions are not TLDs).
//! - IPv4: four dot-separated decimal octets 0..=255 without leading zeros, not part of a longer
//!   dotted sequence (`1.2.3.4.5` is a version, `999.1.1.1` no address) and not right after the
//!   word "version". A bare `1.2.3.4` in other contexts is taken as an address.
//! - IPv6: whatever `std::net::Ipv6Addr` parses, compressed forms included (`::1`,
//!   `2001:db8::ff00:42:8329`, `::ffff:192.0.2.1`), holding at least one decimal digit so that
//!   C++-style `a::b` is not one. Times (`12:30:45`), MAC addresses (6 groups) and fingerprints
//!   (16 or 20 groups) do not parse; eight colon-separated hex groups do, and are replaced.
//! - Phone: an international number `+CC` followed by digit groups (spaces, dots, dashes, one
//!   parenthesised group), 8 to 15 digits in all as E.164 allows; or a North American number
//!   `(NXX) NXX-XXXX` / `NXX-NXX-XXXX` / `NXX.NXX.XXXX` with an optional leading `1`, whose area
//!   code starts with 2-9. Bare digit runs, 7-digit local numbers, dates, ISBNs and times are not
//!   phone numbers.
//! - Card: 13 to 19 digits, contiguous or in groups of 3 to 6 digits after a first group of 4,
//!   with one kind of separator (space or dash), a first digit 2-6 (the card networks' ranges)
//!   and a valid Luhn check digit, so 9 in 10 random 16-digit numbers are not cards.
//!
//! With `public_ips_only` (datatrove's default, off here), addresses that identify nobody are
//! left: private, loopback, link-local, documentation, multicast and reserved ranges.
//! Where matches overlap, the one that starts first wins (then the longer one).

use std::borrow::Cow;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::ops::{Add, AddAssign, Range};
use std::sync::LazyLock;

use regex::Regex;
use serde::{Deserialize, Serialize};

/// How many of each kind were replaced.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PiiCounts {
    pub email: u64,
    pub ip: u64,
    pub phone: u64,
    pub card: u64,
}

impl PiiCounts {
    pub fn total(&self) -> u64 {
        self.email + self.ip + self.phone + self.card
    }

    fn bump(&mut self, kind: PiiKind) {
        match kind {
            PiiKind::Email => self.email += 1,
            PiiKind::Card => self.card += 1,
            PiiKind::Ip => self.ip += 1,
            PiiKind::Phone => self.phone += 1,
        }
    }
}

impl Add for PiiCounts {
    type Output = Self;
    fn add(mut self, rhs: Self) -> Self {
        self += rhs;
        self
    }
}

impl AddAssign for PiiCounts {
    fn add_assign(&mut self, rhs: Self) {
        self.email += rhs.email;
        self.ip += rhs.ip;
        self.phone += rhs.phone;
        self.card += rhs.card;
    }
}

/// Which kinds to replace, and with what.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PiiConfig {
    pub email: bool,
    pub ip: bool,
    pub phone: bool,
    pub card: bool,
    /// Leave IP addresses that are not globally routable (private, loopback, link-local,
    /// documentation, multicast, reserved). datatrove does; off by default so that every address
    /// in scraped text goes.
    pub public_ips_only: bool,
    pub email_placeholder: String,
    pub ip_placeholder: String,
    pub phone_placeholder: String,
    pub card_placeholder: String,
}

impl Default for PiiConfig {
    fn default() -> Self {
        Self {
            email: true,
            ip: true,
            phone: true,
            card: true,
            public_ips_only: false,
            email_placeholder: "<EMAIL>".into(),
            ip_placeholder: "<IP_ADDRESS>".into(),
            phone_placeholder: "<PHONE>".into(),
            card_placeholder: "<CARD>".into(),
        }
    }
}

/// A kind of personal data. The order is the priority when two matches start at the same place
/// and are as long.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PiiKind {
    Email,
    Card,
    Ip,
    Phone,
}

/// One match: the bytes `range` of the text are a `kind`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PiiSpan {
    pub range: Range<usize>,
    pub kind: PiiKind,
}

static EMAIL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"[A-Za-z0-9._%+-]+@(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)+[A-Za-z]{2,63}")
        .expect("the e-mail pattern is valid")
});
/// A run of digits and dots starting and ending with a digit (split and checked in code).
static IPV4: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"[0-9][0-9.]*[0-9]").expect("the IPv4 pattern is valid"));
/// A run of hex digits, colons and dots holding at least one colon (parsed by std).
static IPV6: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"[0-9A-Fa-f.]*:[0-9A-Fa-f:.]*").expect("the IPv6 pattern is valid"));
static PHONE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(concat!(
        // International: +CC, an optional (area), digit groups.
        r"\+[0-9]{1,3}(?:[ .-]?\([0-9]{1,4}\))?(?:[ .-]?[0-9]{1,5}){1,6}",
        // North American: optional 1, (NXX) or NXX, NXX, XXXX.
        r"|(?:1[ .-]?)?(?:\([2-9][0-9]{2}\)[ .-]?|[2-9][0-9]{2}[ .-])[0-9]{3}[ .-][0-9]{4}",
    ))
    .expect("the phone pattern is valid")
});
/// Digit groups joined by single spaces or dashes (card windows are chosen in code).
static DIGIT_GROUPS: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"[0-9]+(?:[ -][0-9]+)*").expect("the digit-group pattern is valid"));

/// Image extensions, which follow `@` in retina file names (`icon@2x.png`) but are no TLDs.
const IMAGE_EXTENSIONS: &[&str] = &["png", "jpg", "jpeg", "gif", "svg", "webp", "bmp", "ico", "tif", "tiff", "avif"];

/// Finds and replaces personal data (see the module docs).
#[derive(Debug, Clone)]
pub struct PiiScrubber {
    cfg: PiiConfig,
}

impl PiiScrubber {
    pub fn new(cfg: &PiiConfig) -> Self {
        Self { cfg: cfg.clone() }
    }

    /// Every match of the enabled kinds, in text order, none overlapping.
    pub fn find(&self, text: &str) -> Vec<PiiSpan> {
        // Every kind needs a digit or an '@': most lines have neither.
        if !text.bytes().any(|b| b.is_ascii_digit() || b == b'@') {
            return Vec::new();
        }
        let mut spans = Vec::new();
        if self.cfg.email && text.contains('@') {
            spans.extend(find_emails(text).map(|range| PiiSpan { range, kind: PiiKind::Email }));
        }
        if self.cfg.card {
            spans.extend(find_cards(text).into_iter().map(|range| PiiSpan { range, kind: PiiKind::Card }));
        }
        if self.cfg.ip {
            let public_only = self.cfg.public_ips_only;
            spans.extend(find_ips(text, public_only).map(|range| PiiSpan { range, kind: PiiKind::Ip }));
        }
        let mut kept = first_wins(spans);
        // Phone numbers last, stopping short of the others: "+1 555 123 4567 4111 1111 1111 1111"
        // is a phone number and a card, not a 15-digit phone number and the rest.
        if self.cfg.phone {
            let phones = find_phones(text, &kept);
            kept.extend(phones.into_iter().map(|range| PiiSpan { range, kind: PiiKind::Phone }));
            kept = first_wins(kept);
        }
        kept
    }

    /// `text` with each match replaced by its kind's placeholder (borrowed when nothing matched),
    /// and the count of each kind.
    pub fn scrub<'a>(&self, text: &'a str) -> (Cow<'a, str>, PiiCounts) {
        let spans = self.find(text);
        let mut counts = PiiCounts::default();
        if spans.is_empty() {
            return (Cow::Borrowed(text), counts);
        }
        let mut out = String::with_capacity(text.len());
        let mut at = 0;
        for span in spans {
            out.push_str(&text[at..span.range.start]);
            out.push_str(match span.kind {
                PiiKind::Email => &self.cfg.email_placeholder,
                PiiKind::Card => &self.cfg.card_placeholder,
                PiiKind::Ip => &self.cfg.ip_placeholder,
                PiiKind::Phone => &self.cfg.phone_placeholder,
            });
            counts.bump(span.kind);
            at = span.range.end;
        }
        out.push_str(&text[at..]);
        (Cow::Owned(out), counts)
    }
}

/// The spans sorted, keeping of overlapping ones the first to start (then the longer one).
fn first_wins(mut spans: Vec<PiiSpan>) -> Vec<PiiSpan> {
    spans.sort_by_key(|s| (s.range.start, std::cmp::Reverse(s.range.end), s.kind));
    let mut kept: Vec<PiiSpan> = Vec::with_capacity(spans.len());
    for span in spans {
        if kept.last().is_none_or(|last| span.range.start >= last.range.end) {
            kept.push(span);
        }
    }
    kept
}

// ---------------------------------------------------------------------------------------------
// Boundaries

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// The two characters before `at` (nearest first).
fn before(text: &str, at: usize) -> (Option<char>, Option<char>) {
    let mut it = text[..at].chars().rev();
    (it.next(), it.next())
}

/// The two characters from `at` on.
fn after(text: &str, at: usize) -> (Option<char>, Option<char>) {
    let mut it = text[at..].chars();
    (it.next(), it.next())
}

/// Whether `range` stands on its own: no letter or digit touches it, nor a `.`, `-` or `/`
/// that continues into one (`12-555-123-4567`, `555-123-4567.5`).
fn stands_alone(text: &str, range: &Range<usize>) -> bool {
    let joins = |near: Option<char>, far: Option<char>| match near {
        Some(c) if is_word_char(c) => true,
        Some('.' | '-' | '/') => far.is_some_and(char::is_alphanumeric),
        _ => false,
    };
    let (b1, b2) = before(text, range.start);
    let (a1, a2) = after(text, range.end);
    !joins(b1, b2) && !joins(a1, a2)
}

// ---------------------------------------------------------------------------------------------
// E-mail

fn find_emails(text: &str) -> impl Iterator<Item = Range<usize>> + '_ {
    EMAIL.find_iter(text).filter_map(|m| {
        let s = m.as_str();
        // A local part does not start with a dot ("...john@x.com" is john@x.com).
        let start = m.start() + (s.len() - s.trim_start_matches('.').len());
        let at = m.start() + s.find('@')?;
        let local = &text[start..at];
        if local.is_empty() || local.ends_with('.') {
            return None;
        }
        let tld = s.rsplit('.').next()?;
        if IMAGE_EXTENSIONS.iter().any(|e| tld.eq_ignore_ascii_case(e)) {
            return None;
        }
        match after(text, m.end()).0 {
            Some(c) if is_word_char(c) || c == '-' || c == '@' => None,
            _ => Some(start..m.end()),
        }
    })
}

// ---------------------------------------------------------------------------------------------
// IP addresses

fn find_ips(text: &str, public_only: bool) -> impl Iterator<Item = Range<usize>> + '_ {
    let v4 = IPV4.find_iter(text).filter_map(move |m| {
        let ip = parse_ipv4(m.as_str())?;
        let (b1, _) = before(text, m.start());
        let (a1, a2) = after(text, m.end());
        let touches = b1.is_some_and(|c| is_word_char(c) || c == '.')
            || a1.is_some_and(is_word_char)
            || (a1 == Some('.') && a2.is_some_and(char::is_alphanumeric));
        let prefix = text[..m.start()].trim_end();
        let cut = prefix.len().saturating_sub(7);
        let after_version = prefix.is_char_boundary(cut) && prefix[cut..].eq_ignore_ascii_case("version");
        (!touches && !after_version && (!public_only || is_global_v4(ip))).then(|| m.range())
    });
    let v6 = text.contains(':').then(|| IPV6.find_iter(text)).into_iter().flatten().filter_map(move |m| {
        let mut s = m.as_str().trim_end_matches('.');
        if s.ends_with(':') && !s.ends_with("::") {
            s = &s[..s.len() - 1];
        }
        if !s.bytes().any(|b| b.is_ascii_digit()) {
            return None;
        }
        let ip: Ipv6Addr = s.parse().ok()?;
        let range = m.start()..m.start() + s.len();
        let (a1, a2) = after(text, range.end);
        let touches = before(text, range.start).0.is_some_and(is_word_char)
            || a1.is_some_and(is_word_char)
            || (a1 == Some(':') && a2.is_some_and(|c| c.is_ascii_hexdigit() || c == ':'));
        (!touches && (!public_only || is_global_v6(ip))).then_some(range)
    });
    v4.chain(v6)
}

/// Four decimal octets 0..=255 without leading zeros (`010` could be octal: refused).
fn parse_ipv4(s: &str) -> Option<Ipv4Addr> {
    let mut octets = [0u8; 4];
    let mut parts = s.split('.');
    for octet in &mut octets {
        let part = parts.next()?;
        if part.is_empty() || part.len() > 3 || (part.len() > 1 && part.starts_with('0')) {
            return None;
        }
        *octet = part.parse().ok()?;
    }
    parts.next().is_none().then_some(Ipv4Addr::from(octets))
}

/// Not private, loopback, link-local, shared (CGNAT), documentation, benchmarking, multicast,
/// reserved, broadcast nor "this network".
fn is_global_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(a == 0
        || a == 10
        || a == 127
        || a >= 224
        || (a == 100 && (64..128).contains(&b))
        || (a == 169 && b == 254)
        || (a == 172 && (16..32).contains(&b))
        || (a == 192 && b == 168)
        || (a == 192 && b == 0 && (c == 0 || c == 2))
        || (a == 198 && (b == 18 || b == 19))
        || (a == 198 && b == 51 && c == 100)
        || (a == 203 && b == 0 && c == 113))
}

/// Not unspecified, loopback, unique-local, link-local, documentation nor multicast; an
/// IPv4-mapped address is judged by its IPv4 part.
fn is_global_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_global_v4(v4);
    }
    let s = ip.segments();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || (s[0] & 0xfe00) == 0xfc00
        || (s[0] & 0xffc0) == 0xfe80
        || (s[0] == 0x2001 && s[1] == 0x0db8)
        || (s[0] & 0xff00) == 0xff00)
}

// ---------------------------------------------------------------------------------------------
// Phone numbers

/// Phone numbers outside the sorted, disjoint `taken` spans (a candidate running into one is
/// cut short before it).
fn find_phones(text: &str, taken: &[PiiSpan]) -> Vec<Range<usize>> {
    let mut found = Vec::new();
    let mut pos = 0;
    while let Some(m) = PHONE.find_at(text, pos) {
        let next = taken.partition_point(|s| s.range.end <= m.start());
        let limit = match taken.get(next) {
            Some(s) if s.range.start <= m.start() => {
                pos = s.range.end;
                continue;
            }
            Some(s) => s.range.start.min(m.end()),
            None => m.end(),
        };
        match accept_phone(text, m.start()..limit, m.end()) {
            Some(range) => {
                pos = range.end;
                found.push(range);
            }
            // A candidate that runs into other text may hide a real number one character on.
            None => pos = m.start() + text[m.start()..].chars().next().map_or(1, char::len_utf8),
        }
    }
    found
}

/// The phone number in the candidate `range` (the match ended at `matched_end`, perhaps later),
/// if it is one: an international number is cut back group by group to at most 15 digits (a
/// trailing year or count is not part of it).
fn accept_phone(text: &str, range: Range<usize>, matched_end: usize) -> Option<Range<usize>> {
    let s = &text[range.clone()];
    if !s.starts_with('+') {
        return (range.end == matched_end && stands_alone(text, &range)).then_some(range);
    }
    let mut end = range.start + s.trim_end_matches([' ', '.', '-', '(']).len();
    loop {
        let digits = text[range.start..end].bytes().filter(u8::is_ascii_digit).count();
        if digits < 8 {
            return None;
        }
        let candidate = range.start..end;
        if digits <= 15 && stands_alone(text, &candidate) {
            return Some(candidate);
        }
        // Drop the last group and the separator before it.
        let trimmed = text[range.start..end].trim_end_matches(|c: char| c.is_ascii_digit());
        let trimmed = trimmed.trim_end_matches([' ', '.', '-']);
        if trimmed.len() <= 1 || trimmed.ends_with(')') {
            return None;
        }
        end = range.start + trimmed.len();
    }
}

// ---------------------------------------------------------------------------------------------
// Card numbers

fn find_cards(text: &str) -> Vec<Range<usize>> {
    let mut found = Vec::new();
    for m in DIGIT_GROUPS.find_iter(text) {
        if m.len() < 13 {
            continue;
        }
        let (b1, _) = before(text, m.start());
        let (a1, _) = after(text, m.end());
        if b1.is_some_and(is_word_char) || a1.is_some_and(is_word_char) {
            continue;
        }
        // The groups: (byte range in text, separator before it or None for the first).
        let mut groups: Vec<(Range<usize>, Option<u8>)> = Vec::new();
        let bytes = text.as_bytes();
        let mut i = m.start();
        while i < m.end() {
            let sep = (i > m.start()).then(|| bytes[i - 1]);
            let start = i;
            while i < m.end() && bytes[i].is_ascii_digit() {
                i += 1;
            }
            groups.push((start..i, sep));
            i += 1; // the separator
        }
        let mut g = 0;
        while g < groups.len() {
            match card_window(text, &groups, g) {
                Some(last) => {
                    found.push(groups[g].0.start..groups[last].0.end);
                    g = last + 1;
                }
                None => g += 1,
            }
        }
    }
    found
}

/// The last group of the longest card number starting at group `first`, if any.
fn card_window(text: &str, groups: &[(Range<usize>, Option<u8>)], first: usize) -> Option<usize> {
    // Inside a dash-joined run a window must not start or end at a dash (`12-4111-...`).
    let dash_before = groups[first].1 == Some(b'-');
    let len = |g: usize| groups[g].0.len();
    let digits_of = |a: usize, b: usize| -> String { (a..=b).map(|g| &text[groups[g].0.clone()]).collect() };
    if (13..=19).contains(&len(first)) {
        let dash_after = groups.get(first + 1).is_some_and(|g| g.1 == Some(b'-'));
        return (!dash_before && !dash_after && is_card(&digits_of(first, first))).then_some(first);
    }
    if len(first) != 4 || dash_before {
        return None;
    }
    let last_possible = (first + 5).min(groups.len() - 1);
    for last in (first + 1..=last_possible).rev() {
        let sep = groups[first + 1].1;
        let uniform = (first + 1..=last).all(|g| groups[g].1 == sep && (3..=6).contains(&len(g)));
        let digits: usize = (first..=last).map(len).sum();
        let dash_after = groups.get(last + 1).is_some_and(|g| g.1 == Some(b'-'));
        if uniform && (13..=19).contains(&digits) && !dash_after && is_card(&digits_of(first, last)) {
            return Some(last);
        }
    }
    None
}

/// A first digit 2-6 and a valid Luhn check digit.
fn is_card(digits: &str) -> bool {
    matches!(digits.as_bytes().first(), Some(b'2'..=b'6')) && luhn(digits)
}

/// The Luhn check: from the right, double every second digit (less 9 if over 9); the sum is a
/// multiple of 10.
fn luhn(digits: &str) -> bool {
    let sum: u32 = digits
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b - b'0');
            if i % 2 == 1 {
                let d2 = d * 2;
                if d2 > 9 {
                    d2 - 9
                } else {
                    d2
                }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(text: &str) -> Vec<(String, PiiKind)> {
        PiiScrubber::new(&PiiConfig::default())
            .find(text)
            .into_iter()
            .map(|s| (text[s.range].to_string(), s.kind))
            .collect()
    }

    /// Each string must come back unchanged.
    fn assert_untouched(cases: &[&str]) {
        for case in cases {
            assert_eq!(kinds(case), vec![], "{case:?} must not match");
        }
    }

    /// Each `(text, expected match, kind)`: exactly that one match.
    fn assert_found(cases: &[(&str, &str, PiiKind)]) {
        for (text, want, kind) in cases {
            assert_eq!(kinds(text), vec![(want.to_string(), *kind)], "in {text:?}");
        }
    }

    #[test]
    fn emails() {
        assert_found(&[
            ("write to john.doe+tag@example.co.uk today", "john.doe+tag@example.co.uk", PiiKind::Email),
            ("<a.b_c-d@mail-server.example.org>", "a.b_c-d@mail-server.example.org", PiiKind::Email),
            ("Mail me at X@Y.COM.", "X@Y.COM", PiiKind::Email),
            ("...jane@example.com", "jane@example.com", PiiKind::Email),
            ("path/to/user@example.com", "user@example.com", PiiKind::Email),
        ]);
        // The rule: a dot in the domain and a TLD of two or more letters.
        assert_untouched(&[
            "user@localhost",
            "a@b",
            "a@b.c",
            "ssh root@server",
            "@handle and @user.name",
            "icon@2x.png logo@3x.JPG",
            "a@b.com1",
            "email@",
            "@example.com",
        ]);
    }

    #[test]
    fn ipv4() {
        assert_found(&[
            ("server 8.8.8.8 answered", "8.8.8.8", PiiKind::Ip),
            ("at 192.168.0.1.", "192.168.0.1", PiiKind::Ip),
            ("(255.255.255.255)", "255.255.255.255", PiiKind::Ip),
            ("connect 10.0.0.1:8080 now", "10.0.0.1", PiiKind::Ip),
            ("root@203.0.113.9", "203.0.113.9", PiiKind::Ip),
            ("hosts 0.0.0.0...", "0.0.0.0", PiiKind::Ip),
        ]);
        assert_untouched(&[
            "version 1.2.3.4.5 released",
            "999.1.1.1",
            "1.2.3.256",
            "1.2.3",
            "192.168.01.1",
            "v1.2.3.4",
            "Version 1.2.3.4",
            "libfoo-1.2.3.4.tar.gz",
            "on 2024.01.15 and 15.01.2024",
            "pi is 3.14159, e is 2.71828",
            "1.2.3.4a",
            "a1.2.3.4",
        ]);
    }

    #[test]
    fn ipv6() {
        assert_found(&[
            ("loopback ::1 only", "::1", PiiKind::Ip),
            ("2001:db8::ff00:42:8329", "2001:db8::ff00:42:8329", PiiKind::Ip),
            ("full 2001:0db8:85a3:0000:0000:8a2e:0370:7334.", "2001:0db8:85a3:0000:0000:8a2e:0370:7334", PiiKind::Ip),
            ("[fe80::1]:443", "fe80::1", PiiKind::Ip),
            ("mapped ::ffff:192.0.2.128 here", "::ffff:192.0.2.128", PiiKind::Ip),
            ("ends with 2001:db8::", "2001:db8::", PiiKind::Ip),
            ("see fe80::1: it", "fe80::1", PiiKind::Ip),
        ]);
        assert_untouched(&[
            "at 12:30:45 sharp",
            "12:30",
            "John 3:16",
            "ratio 1:2:3",
            "MAC 00:1a:2b:3c:4d:5e",
            "std::vector<int> and a::b and ::",
            "sha256 e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "md5 d41d8cd98f00b204e9800998ecf8427e",
            "fingerprint 16:27:ac:a5:76:28:2d:36:63:1b:56:4d:eb:df:a6:48",
            "x2001:db8::1",
            "2001:db8::1g",
            "Note: see 1:00",
        ]);
    }

    #[test]
    fn phones() {
        assert_found(&[
            ("call +1 (555) 123-4567 now", "+1 (555) 123-4567", PiiKind::Phone),
            ("call 555-123-4567.", "555-123-4567", PiiKind::Phone),
            ("(555) 123-4567", "(555) 123-4567", PiiKind::Phone),
            ("555.123.4567", "555.123.4567", PiiKind::Phone),
            ("1-800-555-0199", "1-800-555-0199", PiiKind::Phone),
            ("London +44 20 7946 0958", "+44 20 7946 0958", PiiKind::Phone),
            ("Paris +33 1 23 45 67 89.", "+33 1 23 45 67 89", PiiKind::Phone),
            ("Berlin +49-30-1234567", "+49-30-1234567", PiiKind::Phone),
            ("tel:+14155552671", "+14155552671", PiiKind::Phone),
            ("+44 20 7946 0958 2024", "+44 20 7946 0958", PiiKind::Phone),
        ]);
        assert_untouched(&[
            "on 2023-10-05 at 12:30:45",
            "10/05/2023",
            "ISBN 978-3-16-148410-0",
            "ISBN 0-306-40615-2",
            "ISBN-13: 9780306406157",
            "order 1234567890",
            "555-1234",
            "100 200 3000",
            "555-123-45678",
            "12-555-123-4567",
            "+1 2 3",
            "+12345678901234567890",
            "score +3 4",
            "x555-123-4567",
        ]);
    }

    #[test]
    fn cards() {
        assert_found(&[
            ("card 4111 1111 1111 1111 exp 12/27", "4111 1111 1111 1111", PiiKind::Card),
            ("4111-1111-1111-1111", "4111-1111-1111-1111", PiiKind::Card),
            ("4111111111111111.", "4111111111111111", PiiKind::Card),
            ("amex 3782 822463 10005", "3782 822463 10005", PiiKind::Card),
            ("mc 5500 0000 0000 0004 2024", "5500 0000 0000 0004", PiiKind::Card),
            ("on 2023-10-05 4111 1111 1111 1111", "4111 1111 1111 1111", PiiKind::Card),
        ]);
        assert_untouched(&[
            "4111 1111 1111 1112",
            "4111111111111112",
            "9111111111111111",
            "4111 1111-1111 1111",
            "41111 111 1111 1111",
            "12-4111-1111-1111-1111",
            "4111111111111111x",
            "id 12345678901234567890123",
            "ISBN 9783161484100",
        ]);
        assert!(luhn("79927398713") && !luhn("79927398710"));
    }

    #[test]
    fn scrub_replaces_counts_and_borrows_when_clean() {
        let scrubber = PiiScrubber::new(&PiiConfig::default());
        let text = "Mail a@example.com or b@example.org, call 555-123-4567, pay 4111 1111 1111 1111 from ::1";
        let (out, counts) = scrubber.scrub(text);
        assert_eq!(out, "Mail <EMAIL> or <EMAIL>, call <PHONE>, pay <CARD> from <IP_ADDRESS>");
        assert_eq!(counts, PiiCounts { email: 2, ip: 1, phone: 1, card: 1 });
        assert_eq!(counts.total(), 5);
        let mut sum = counts;
        sum += counts;
        assert_eq!(sum, counts + counts);
        assert_eq!(sum.email, 4);

        // A phone number running into a card stops before it.
        assert_eq!(
            kinds("+1 555 123 4567 4111 1111 1111 1111"),
            vec![("+1 555 123 4567".to_string(), PiiKind::Phone), ("4111 1111 1111 1111".to_string(), PiiKind::Card)]
        );

        let (out, counts) = scrubber.scrub("nothing to see, version 1.2.3.4.5 at 12:30");
        assert!(matches!(out, Cow::Borrowed(_)));
        assert_eq!(counts, PiiCounts::default());
    }

    #[test]
    fn config_switches_kinds_placeholders_and_public_ips() {
        let cfg: PiiConfig = serde_json::from_str(
            r#"{"phone": false, "email_placeholder": "email@example.com", "public_ips_only": true}"#,
        )
        .unwrap();
        assert!(serde_json::from_str::<PiiConfig>(r#"{"phones": false}"#).is_err());
        let scrubber = PiiScrubber::new(&cfg);
        let (out, counts) =
            scrubber.scrub("x@example.com 555-123-4567 127.0.0.1 192.168.1.1 ::1 2001:db8::1 8.8.8.8 2606:4700::1111");
        assert_eq!(
            out,
            "email@example.com 555-123-4567 127.0.0.1 192.168.1.1 ::1 2001:db8::1 <IP_ADDRESS> <IP_ADDRESS>"
        );
        assert_eq!(counts, PiiCounts { email: 1, ip: 2, phone: 0, card: 0 });
    }

    #[test]
    fn odd_input_never_panics() {
        let scrubber = PiiScrubber::new(&PiiConfig::default());
        let huge_digits = "1 2 3-4.5:6 ".repeat(20_000);
        let huge_line = format!("{}a@example.com{}", "x".repeat(200_000), "9".repeat(100_000));
        let many = "+1 555 123 4567 4111 1111 1111 1111 1.2.3.4 ::1 ".repeat(2_000);
        let cases = [
            "",
            "@",
            "+",
            ":",
            "::",
            ":::::::::",
            "..........",
            "@@@@.@@",
            "é@ü.日本",
            "📞 +1 (555) 123-4567 📞",
            "电话：+86 10 1234 5678，邮箱：张@example.cn",
            "١٢٣-٤٥٦-٧٨٩٠ (Arabic-Indic digits)",
            "\u{0}\u{1}\u{7f}5\u{200b}55-123-4567",
            huge_digits.as_str(),
            huge_line.as_str(),
            many.as_str(),
        ];
        for case in cases {
            let (out, counts) = scrubber.scrub(case);
            assert!(out.len() <= case.len() + 16 * counts.total() as usize);
        }
        let (_, counts) = scrubber.scrub(&many);
        assert_eq!(counts, PiiCounts { email: 0, ip: 4000, phone: 2000, card: 2000 });
        assert_eq!(kinds("📞 +1 (555) 123-4567 📞"), vec![("+1 (555) 123-4567".to_string(), PiiKind::Phone)]);
    }
}
