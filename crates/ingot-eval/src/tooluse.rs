//! Seeded tool-use data: the conversations that teach a small chat model when (and when not) to
//! call its tools, and the held-out items that measure it ([`crate::utilization`]).
//!
//! Three kinds of conversation, each offered a tool set that always holds the tool it needs:
//! - calculator: an arithmetic question of 1 to 4 operations ([`template_names`]: direct questions
//!   and word problems, numbers of 1 to 12 digits, some with a distractor number), one `calculator`
//!   call with one expression, its result, and a final turn ending `The answer is N.`;
//! - search: a question about an invented town, river, mountain, school or lake whose answer is
//!   only in a generated document; one `search` call, its passages (the target among distractor
//!   documents of the same index), and a final turn stating the number;
//! - no tool: greetings, capitals, opposites, translations, definitions, yes/no facts, short
//!   writing and advice, answered directly with a fixed reply written here.
//!
//! Every tool result is what the real tool returned: [`Calculator`] on the expression, and
//! [`SearchTool`] over a [`SearchIndex`] built from the generated documents in a scratch folder.
//! So the model trains on exactly the text it reads at inference. A tool error, a calculator
//! result that differs from the item's answer, or a search that misses its document is a bug of
//! this generator and fails [`conversations`].
//!
//! Train and eval never share a question, for any pair of seeds, because the question space is
//! partitioned rather than sampled apart:
//! - arithmetic questions: a question text belongs to the split given by one bit of its hash
//!   ([`Split::owns`]); drafts of the other split are drawn again;
//! - invented names: the same rule on the name, and every fact question names its subject, so no
//!   town, river, mountain, school or lake of one split exists in the other;
//! - no-tool questions: by subject (the country, the word, the request): every fourth subject of
//!   each category is eval.
//!
//! Determinism: a (split, seed) gives the same items on every run of the same build (rand's
//! `StdRng`); each kind draws from its own stream, and item `i` does not depend on `n`, so the first
//! 30 of 100 items are the 30 items.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use ingot_tools::agent::tool_schema;
use ingot_tools::search::TOOL_SNIPPET_CHARS;
use ingot_tools::{Calculator, SearchIndex, SearchTool, Tool};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

use crate::problems::{Fact, Item};
use crate::{Error, Result};

// ---------------------------------------------------------------------------------------------
// Splits and seeds

/// Which side of the train/eval partition items come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Split {
    Train,
    Eval,
}

impl Split {
    fn tag(self) -> u64 {
        match self {
            Split::Train => 0x7472_6169_6e00_0001,
            Split::Eval => 0x6576_616c_0000_0002,
        }
    }

    /// True when `text` (a question, an invented name) belongs to this split. One bit of a fixed
    /// hash, so the rule is the same on every machine and for every seed.
    pub fn owns(self, text: &str) -> bool {
        let bit = splitmix(fnv1a(text)) & 1;
        bit == match self {
            Split::Train => 0,
            Split::Eval => 1,
        }
    }
}

/// FNV-1a: a hash fixed by its definition (std's hasher may change between Rust releases).
fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

/// splitmix64's finaliser: FNV-1a's low bit is only the parity of its bytes, so mix first.
fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Each generator has its own stream, so more calculator items never shift the facts.
const CALC_STREAM: u64 = 1;
const FACTS_STREAM: u64 = 2;
const PLAIN_STREAM: u64 = 3;
const MIX_STREAM: u64 = 4;
const TOOLS_STREAM: u64 = 5;

fn stream(split: Split, seed: u64, id: u64) -> StdRng {
    StdRng::seed_from_u64(splitmix(splitmix(seed ^ split.tag()) ^ id))
}

fn pick<T: Copy>(rng: &mut StdRng, xs: &[T]) -> T {
    xs[rng.random_range(0..xs.len())]
}

// ---------------------------------------------------------------------------------------------
// Calculator items

/// An arithmetic question, the one calculator expression that answers it, and the final reply.
#[derive(Clone, Debug, PartialEq)]
pub struct CalcProblem {
    /// The question and its exact answer (digits only, as the calculator prints an integer).
    pub item: Item,
    /// What the assistant passes to the calculator; its value is `item.answer`.
    pub expression: String,
    /// The sentence that states the result, before `The answer is N.`.
    pub reply: String,
    /// The template it came from (one of [`template_names`]).
    pub template: &'static str,
    /// Operations in `expression` (1 to 4).
    pub steps: usize,
}

/// What a template draws; `None` when the draw broke a constraint (it is drawn again).
struct Draft {
    question: String,
    expression: String,
    answer: i128,
    reply: String,
}

fn draft(question: String, expression: String, answer: i128, reply: String) -> Option<Draft> {
    Some(Draft { question, expression, answer, reply })
}

/// A template's random source and the choices shared by its numbers.
struct Ctx<'a> {
    rng: &'a mut StdRng,
    /// Numbers of five digits or more are written 12,345,678 (the calculator reads that form).
    commas: bool,
    /// Word problems use quantities of 4 to 9 digits (3 to 5 where more would be absurd) instead
    /// of everyday ones.
    big: bool,
    name: &'static str,
}

impl Ctx<'_> {
    /// Uniform in `lo..=hi`; `lo` if that is empty (the templates keep their ranges non-empty, and
    /// the tests check that no answer is 0 or negative).
    fn range(&mut self, lo: i128, hi: i128) -> i128 {
        self.rng.random_range(lo..=hi.max(lo))
    }

    /// A number of `lo..=hi` digits, each digit count equally likely (so small and huge both occur).
    fn digits(&mut self, lo: u32, hi: u32) -> i128 {
        let d = self.rng.random_range(lo..=hi);
        let low = if d == 1 { 1 } else { 10i128.pow(d - 1) };
        self.rng.random_range(low..10i128.pow(d))
    }

    /// An everyday quantity in `lo..=hi`, or a 4- to 9-digit one in big problems.
    fn qty(&mut self, lo: i128, hi: i128) -> i128 {
        if self.big {
            self.digits(4, 9)
        } else {
            self.range(lo, hi)
        }
    }

    /// [`Ctx::qty`] for quantities that stay believable only up to a few digits (hours of a train
    /// ride, trees in a row): 3 to 5 digits in big problems.
    fn qty_mid(&mut self, lo: i128, hi: i128) -> i128 {
        if self.big {
            self.digits(3, 5)
        } else {
            self.range(lo, hi)
        }
    }

    fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        pick(self.rng, xs)
    }

    /// `a > b`, both of `lo..=hi` digits.
    fn ordered(&mut self, lo: u32, hi: u32) -> (i128, i128) {
        let (a, b) = (self.digits(lo, hi), self.digits(lo, hi));
        if a == b {
            (a + 1, b)
        } else {
            (a.max(b), a.min(b))
        }
    }

    /// A number in `1..total` whose difference from `total` divides by `d`, if there is one.
    fn sub_exact(&mut self, total: i128, d: i128) -> Option<i128> {
        let r = total % d;
        let k_min = if r == 0 { 1 } else { 0 };
        let k_max = (total - 1 - r) / d;
        (total > r + d * k_min && k_max >= k_min).then(|| r + d * self.range(k_min, k_max))
    }

    /// How `x` is written in the question and in the expression.
    fn n(&self, x: i128) -> String {
        let plain = x.to_string();
        if !self.commas || x < 10_000 {
            return plain;
        }
        let mut out = String::new();
        for (i, c) in plain.chars().enumerate() {
            if i > 0 && (plain.len() - i).is_multiple_of(3) {
                out.push(',');
            }
            out.push(c);
        }
        out
    }
}

const NAMES: &[&str] = &[
    "Mara", "Tomas", "Ines", "Kofi", "Yuki", "Ravi", "Lena", "Omar", "Priya", "Diego", "Hana", "Samuel", "Aisha",
    "Mateo", "Chloe", "Jonas", "Leila", "Marco", "Nadia", "Pablo", "Sofia", "Tariq", "Elena", "Felix", "Grace", "Hugo",
    "Amara", "Chen", "Zara", "Liam",
];
const GOODS: &[&str] =
    &["notebooks", "pens", "mugs", "T-shirts", "lamps", "plants", "chairs", "towels", "books", "candles", "plates"];
const PLACES: &[&str] = &["the coast", "the city", "the lake", "the airport", "the mountains", "the market", "work"];
const WIDGETS: &[&str] = &["bolts", "bottles", "bricks", "chips", "tyres", "toys", "valves", "bicycles", "jars"];
const CONTAINERS: &[(&str, &str)] = &[
    ("boxes", "pens"),
    ("crates", "apples"),
    ("shelves", "books"),
    ("bags", "marbles"),
    ("trays", "cookies"),
    ("baskets", "oranges"),
    ("packets", "stickers"),
];
const SMALL_THINGS: &[&str] = &["stickers", "cards", "pencils", "balloons", "marbles", "sweets"];
const PURCHASES: &[&str] = &["bike", "laptop", "holiday", "sofa", "camera"];
const INGREDIENTS: &[&str] = &["flour", "sugar", "rice", "butter", "oats"];
const VENUES: &[&str] = &["zoo", "museum", "aquarium", "circus", "theme park"];

type Template = (&'static str, bool, fn(&mut Ctx) -> Option<Draft>);

/// Every question template: (name, whether it is a word problem, the generator). Direct questions
/// use numbers of up to 12 digits in many spellings of the operators; word problems use everyday
/// quantities, or 4- to 9-digit ones in "big" draws, and may get a distractor number.
const TEMPLATES: &[Template] = &[
    // Direct questions.
    ("times", false, |c| {
        let (a, b) = (c.digits(1, 12), c.digits(1, 12));
        let (x, y, ans) = (c.n(a), c.n(b), a * b);
        draft(format!("What is {x} times {y}?"), format!("{x} * {y}"), ans, format!("{x} times {y} is {ans}."))
    }),
    ("multiplied by", false, |c| {
        let (a, b) = (c.digits(1, 12), c.digits(1, 12));
        let (x, y, ans) = (c.n(a), c.n(b), a * b);
        let reply = format!("{x} multiplied by {y} is {ans}.");
        draft(format!("What is {x} multiplied by {y}?"), format!("{x} * {y}"), ans, reply)
    }),
    ("× sign", false, |c| {
        let (a, b) = (c.digits(1, 12), c.digits(1, 12));
        let (x, y, ans) = (c.n(a), c.n(b), a * b);
        draft(format!("Calculate {x} × {y}."), format!("{x} * {y}"), ans, format!("{x} × {y} = {ans}."))
    }),
    ("* sign", false, |c| {
        let (a, b) = (c.digits(1, 12), c.digits(1, 12));
        let (x, y, ans) = (c.n(a), c.n(b), a * b);
        draft(format!("What is {x} * {y}?"), format!("{x} * {y}"), ans, format!("{x} * {y} = {ans}."))
    }),
    ("product of", false, |c| {
        let (a, b) = (c.digits(1, 12), c.digits(1, 12));
        let (x, y, ans) = (c.n(a), c.n(b), a * b);
        let reply = format!("The product of {x} and {y} is {ans}.");
        draft(format!("What is the product of {x} and {y}?"), format!("{x} * {y}"), ans, reply)
    }),
    ("plus", false, |c| {
        let (a, b) = (c.digits(1, 12), c.digits(1, 12));
        let (x, y, ans) = (c.n(a), c.n(b), a + b);
        draft(format!("What is {x} plus {y}?"), format!("{x} + {y}"), ans, format!("{x} plus {y} is {ans}."))
    }),
    ("sum of two", false, |c| {
        let (a, b) = (c.digits(1, 12), c.digits(1, 12));
        let (x, y, ans) = (c.n(a), c.n(b), a + b);
        let reply = format!("The sum of {x} and {y} is {ans}.");
        draft(format!("What is the sum of {x} and {y}?"), format!("{x} + {y}"), ans, reply)
    }),
    ("minus", false, |c| {
        let (a, b) = c.ordered(1, 12);
        let (x, y, ans) = (c.n(a), c.n(b), a - b);
        draft(format!("What is {x} minus {y}?"), format!("{x} - {y}"), ans, format!("{x} minus {y} is {ans}."))
    }),
    ("difference between", false, |c| {
        let (a, b) = c.ordered(1, 12);
        let (x, y, ans) = (c.n(a), c.n(b), a - b);
        let reply = format!("The difference between {x} and {y} is {ans}.");
        draft(format!("What is the difference between {x} and {y}?"), format!("{x} - {y}"), ans, reply)
    }),
    ("divided by", false, |c| {
        let (b, q) = (c.digits(1, 6), c.digits(1, 6));
        let (x, y) = (c.n(b * q), c.n(b));
        draft(format!("What is {x} divided by {y}?"), format!("{x} / {y}"), q, format!("{x} divided by {y} is {q}."))
    }),
    ("÷ sign", false, |c| {
        let (b, q) = (c.digits(1, 6), c.digits(1, 6));
        let (x, y) = (c.n(b * q), c.n(b));
        draft(format!("What is {x} ÷ {y}?"), format!("{x} / {y}"), q, format!("{x} ÷ {y} = {q}."))
    }),
    ("three terms", false, |c| {
        let (a, b, d) = (c.digits(1, 10), c.digits(1, 10), c.digits(1, 10));
        let (x, y, z, ans) = (c.n(a), c.n(b), c.n(d), a + b + d);
        let expr = format!("{x} + {y} + {z}");
        draft(format!("How much is {expr}?"), expr.clone(), ans, format!("{expr} = {ans}."))
    }),
    ("sum of four", false, |c| {
        let v = [c.digits(1, 9), c.digits(1, 9), c.digits(1, 9), c.digits(1, 9)];
        let s: Vec<String> = v.iter().map(|&x| c.n(x)).collect();
        let ans: i128 = v.iter().sum();
        let question = format!("What is the sum of {}, {}, {} and {}?", s[0], s[1], s[2], s[3]);
        draft(question, s.join(" + "), ans, format!("The sum is {ans}."))
    }),
    ("parenthesised", false, |c| {
        let (a, b, d) = (c.digits(1, 9), c.digits(1, 9), c.digits(1, 6));
        let (x, y, z, ans) = (c.n(a), c.n(b), c.n(d), (a + b) * d);
        let reply = format!("({x} + {y}) × {z} = {ans}.");
        draft(format!("What is ({x} + {y}) × {z}?"), format!("({x} + {y}) * {z}"), ans, reply)
    }),
    ("product minus", false, |c| {
        let (a, b) = (c.digits(1, 6).max(2), c.digits(1, 6).max(2));
        let d = c.range(1, a * b - 1);
        let (x, y, z, ans) = (c.n(a), c.n(b), c.n(d), a * b - d);
        let reply = format!("{x} × {y} − {z} = {ans}.");
        draft(format!("Work out {x} × {y} − {z}."), format!("{x} * {y} - {z}"), ans, reply)
    }),
    ("multiply subtract divide", false, |c| {
        let (a, b, d) = (c.digits(1, 6).max(2), c.digits(1, 6).max(2), c.range(2, 99));
        let k = c.sub_exact(a * b, d)?;
        let (x, y, z, w, ans) = (c.n(a), c.n(b), c.n(k), c.n(d), (a * b - k) / d);
        let question = format!("Take {x}, multiply it by {y}, subtract {z}, then divide the result by {w}.");
        draft(question, format!("({x} * {y} - {z}) / {w}"), ans, format!("The result is {ans}."))
    }),
    ("add multiply add", false, |c| {
        let (a, b, d, e) = (c.digits(1, 8), c.digits(1, 8), c.digits(1, 5), c.digits(1, 8));
        let (x, y, z, w, ans) = (c.n(a), c.n(b), c.n(d), c.n(e), (a + b) * d + e);
        let question = format!("Add {x} and {y}, multiply the total by {z}, then add {w}. What do you get?");
        draft(question, format!("({x} + {y}) * {z} + {w}"), ans, format!("You get {ans}."))
    }),
    ("two products minus", false, |c| {
        let v = [c.digits(1, 5), c.digits(1, 5), c.digits(1, 5), c.digits(1, 5)];
        let total = v[0] * v[1] + v[2] * v[3];
        let e = c.range(1, total - 1);
        let s: Vec<String> = v.iter().map(|&x| c.n(x)).collect();
        let f = c.n(e);
        let (ans, lhs) = (total - e, format!("{} × {} + {} × {} − {f}", s[0], s[1], s[2], s[3]));
        let expr = format!("{} * {} + {} * {} - {f}", s[0], s[1], s[2], s[3]);
        draft(format!("What is {lhs}?"), expr, ans, format!("{lhs} = {ans}."))
    }),
    // Shopping and money.
    ("shopping total", true, |c| {
        let (a, p, item, name) = (c.qty_mid(2, 30), c.range(2, 250), c.pick(GOODS), c.name);
        let (x, y, ans) = (c.n(a), c.n(p), a * p);
        let question = format!("{name} buys {x} {item} at ${y} each. How much does {name} pay in total, in dollars?");
        draft(question, format!("{x} * {y}"), ans, format!("{name} pays ${ans} in total."))
    }),
    ("shopping change", true, |c| {
        let (a, p, item, name) = (c.qty_mid(2, 12), c.range(2, 90), c.pick(GOODS), c.name);
        let cost = a * p;
        let paid = (cost / 50 + c.range(1, 4)) * 50;
        let (x, y, z, ans) = (c.n(a), c.n(p), c.n(paid), paid - cost);
        let question = format!(
            "{name} buys {x} {item} for ${y} each and pays with ${z}. How many dollars of change does {name} get?"
        );
        draft(question, format!("{z} - {x} * {y}"), ans, format!("{name} gets ${ans} in change."))
    }),
    ("two purchases", true, |c| {
        let (a, b, p, q, name) = (c.qty_mid(1, 12), c.range(1, 12), c.range(1, 120), c.range(1, 120), c.name);
        let (i1, i2) = (c.pick(GOODS), c.pick(GOODS));
        if i1 == i2 {
            return None;
        }
        let (w, x, y, z, ans) = (c.n(a), c.n(p), c.n(b), c.n(q), a * p + b * q);
        let question =
            format!("{name} buys {w} {i1} at ${x} each and {y} {i2} at ${z} each. What is the total cost in dollars?");
        draft(question, format!("{w} * {x} + {y} * {z}"), ans, format!("The total cost is ${ans}."))
    }),
    ("packs needed", true, |c| {
        let (k, q, item, name) = (c.range(4, 24), c.qty_mid(2, 30), c.pick(GOODS), c.name);
        let (x, y) = (c.n(k * q), c.n(k));
        let question = format!(
            "A shop sells {item} in packs of {y}. {name} needs exactly {x} {item}. How many packs should {name} buy?"
        );
        draft(question, format!("{x} / {y}"), q, format!("{name} should buy {q} packs."))
    }),
    ("lemonade profit", true, |c| {
        let (a, p, name) = (c.qty_mid(5, 80), c.range(1, 6), c.name);
        let cost = c.range(1, a * p - 1);
        let (x, y, z, ans) = (c.n(a), c.n(p), c.n(cost), a * p - cost);
        let question = format!(
            "{name} sells {x} cups of lemonade at ${y} each and spent ${z} on supplies. What is {name}'s profit in dollars?"
        );
        draft(question, format!("{x} * {y} - {z}"), ans, format!("{name}'s profit is ${ans}."))
    }),
    ("split bill", true, |c| {
        let (k, q) = (c.range(2, 12), c.qty_mid(8, 120));
        let (x, y) = (c.n(k * q), c.n(k));
        let question = format!("{y} friends share a restaurant bill of ${x} equally. How many dollars does each pay?");
        draft(question, format!("{x} / {y}"), q, format!("Each friend pays ${q}."))
    }),
    ("ticket bill", true, |c| {
        let (a, x, f, venue) = (c.range(8, 90), c.qty_mid(1, 12), c.range(2, 6), c.pick(VENUES));
        let b = c.range(3, a - 1);
        let y0 = c.range(1, 15);
        let y = (y0..y0 + f).find(|y| (a * x + b * y) % f == 0)?;
        let (p, q, r, s, t) = (c.n(a), c.n(b), c.n(x), c.n(y), c.n(f));
        let question = format!(
            "Adult tickets to the {venue} cost ${p} and child tickets cost ${q}. A group of {r} adults and {s} children splits the total bill equally between {t} families. How many dollars does each family pay?"
        );
        let ans = (a * x + b * y) / f;
        draft(question, format!("({p} * {r} + {q} * {s}) / {t}"), ans, format!("Each family pays ${ans}."))
    }),
    // Savings and interest-free money.
    ("monthly savings", true, |c| {
        let (a, m, thing, name) = (c.qty(20, 900), c.range(2, 24), c.pick(PURCHASES), c.name);
        let spent = c.range(1, a * m - 1);
        let (x, y, z, ans) = (c.n(a), c.n(m), c.n(spent), a * m - spent);
        let question = format!(
            "{name} saves ${x} every month for {y} months and then spends ${z} on a {thing}. How many dollars are left?"
        );
        draft(question, format!("{x} * {y} - {z}"), ans, format!("{name} has ${ans} left."))
    }),
    ("savings into jars", true, |c| {
        let (k, q, name) = (c.range(2, 12), c.qty(10, 2000), c.name);
        let a = c.range(1, k * q - 1);
        let (x, y, z) = (c.n(a), c.n(k * q - a), c.n(k));
        let question = format!(
            "{name} has ${x} in savings, adds ${y}, and then divides all the money equally among {z} jars. How many dollars go into each jar?"
        );
        draft(question, format!("({x} + {y}) / {z}"), q, format!("Each jar gets ${q}."))
    }),
    ("interest-free loan", true, |c| {
        let (k, q, name) = (c.pick::<i128>(&[3, 4, 6, 10, 12, 18, 24, 36, 48]), c.qty(20, 2500), c.name);
        let (x, y) = (c.n(k * q), c.n(k));
        let question = format!(
            "{name} borrows ${x} from a friend, interest-free, and repays it in {y} equal monthly payments. How many dollars is each payment?"
        );
        draft(question, format!("{x} / {y}"), q, format!("Each payment is ${q}."))
    }),
    ("weekly pocket money", true, |c| {
        let (a, w, name) = (c.qty(10, 400), c.range(2, 52), c.name);
        let b = c.range(1, a - 1);
        let (x, y, z, ans) = (c.n(a), c.n(b), c.n(w), (a - b) * w);
        let question =
            format!("{name} earns ${x} a week and spends ${y} of it. How many dollars does {name} save in {z} weeks?");
        draft(question, format!("({x} - {y}) * {z}"), ans, format!("{name} saves ${ans} in {z} weeks."))
    }),
    ("salary over years", true, |c| {
        let (s, y, name) = (c.qty(800, 9000), c.range(2, 10), c.name);
        let (x, z, ans) = (c.n(s), c.n(y), s * 12 * y);
        let question = format!("{name} earns ${x} a month. How many dollars is that over {z} years?");
        draft(question, format!("{x} * 12 * {z}"), ans, format!("{name} earns ${ans} over {z} years."))
    }),
    ("rent per year", true, |c| {
        let k = c.range(2, 6);
        let r = k * c.qty(100, 900);
        let (x, y, ans) = (c.n(r), c.n(k), r / k * 12);
        let question = format!(
            "The monthly rent of a flat is ${x}. {y} friends share it equally. How many dollars does each friend pay in a year?"
        );
        draft(question, format!("{x} / {y} * 12"), ans, format!("Each friend pays ${ans} a year."))
    }),
    // Travel distances.
    ("train distance", true, |c| {
        let (v, h) = (c.range(40, 320), c.qty_mid(2, 12));
        let (x, y, ans) = (c.n(v), c.n(h), v * h);
        let question = format!("A train travels at {x} km per hour for {y} hours. How many kilometres does it cover?");
        draft(question, format!("{x} * {y}"), ans, format!("The train covers {ans} km."))
    }),
    ("truck three days", true, |c| {
        let (a, b, d) = (c.qty_mid(40, 900), c.qty_mid(40, 900), c.qty_mid(40, 900));
        let (x, y, z, ans) = (c.n(a), c.n(b), c.n(d), a + b + d);
        let question = format!(
            "A truck drove {x} km on Monday, {y} km on Tuesday and {z} km on Wednesday. How many kilometres did it drive in total?"
        );
        draft(question, format!("{x} + {y} + {z}"), ans, format!("The truck drove {ans} km in total."))
    }),
    ("round trips", true, |c| {
        let (d, t, place, name) = (c.qty_mid(3, 300), c.range(2, 30), c.pick(PLACES), c.name);
        let (x, y, ans) = (c.n(d), c.n(t), d * 2 * t);
        let question = format!(
            "{name} drives {x} km to {place} and the same distance back, {y} times a month. How many kilometres does {name} drive each month?"
        );
        draft(question, format!("{x} * 2 * {y}"), ans, format!("{name} drives {ans} km each month."))
    }),
    ("bus route", true, |c| {
        let (d, t, days) = (c.qty_mid(3, 60), c.range(2, 12), c.range(2, 31));
        let (x, y, z, ans) = (c.n(d), c.n(t), c.n(days), d * 2 * t * days);
        let question = format!(
            "A bus route is {x} km long. The bus makes {y} round trips a day, there and back. How many kilometres does it travel in {z} days?"
        );
        draft(question, format!("{x} * 2 * {y} * {z}"), ans, format!("The bus travels {ans} km in {z} days."))
    }),
    ("distance left", true, |c| {
        let (total, place, name) = (c.qty_mid(50, 1500), c.pick(PLACES), c.name);
        let done = c.range(1, total - 1);
        let (x, y, ans) = (c.n(total), c.n(done), total - done);
        let question = format!(
            "The road to {place} is {x} km long. {name} has already driven {y} km. How many kilometres are left?"
        );
        draft(question, format!("{x} - {y}"), ans, format!("{name} has {ans} km left to drive."))
    }),
    ("cyclist", true, |c| {
        let (a, d, e) = (c.qty_mid(10, 120), c.range(2, 14), c.range(5, 90));
        let (x, y, z, ans) = (c.n(a), c.n(d), c.n(e), a * d + e);
        let question = format!(
            "A cyclist rides {x} km every day for {y} days and then {z} km on the last day. How many kilometres does the cyclist ride altogether?"
        );
        draft(question, format!("{x} * {y} + {z}"), ans, format!("The cyclist rides {ans} km altogether."))
    }),
    ("fuel for a trip", true, |c| {
        let (l, d) = (c.range(4, 15), 100 * c.qty_mid(1, 60));
        let (x, y, ans) = (c.n(l), c.n(d), l * d / 100);
        let question =
            format!("A car uses {x} litres of fuel per 100 km. How many litres does it need for a {y} km trip?");
        draft(question, format!("{x} * {y} / 100"), ans, format!("It needs {ans} litres of fuel."))
    }),
    ("daily steps", true, |c| {
        let (s, w, name) = (if c.big { c.digits(5, 8) } else { c.range(2000, 20000) }, c.range(2, 12), c.name);
        let (x, y, ans) = (c.n(s), c.n(w), s * 7 * w);
        let question = format!("{name} walks {x} steps every day. How many steps is that in {y} weeks?");
        draft(question, format!("{x} * 7 * {y}"), ans, format!("That is {ans} steps in {y} weeks."))
    }),
    // Factory output.
    ("factory days", true, |c| {
        let (a, d, w) = (c.qty(50, 5000), c.range(2, 60), c.pick(WIDGETS));
        let (x, y, ans) = (c.n(a), c.n(d), a * d);
        let question = format!("A factory produces {x} {w} per day. How many {w} does it produce in {y} days?");
        draft(question, format!("{x} * {y}"), ans, format!("It produces {ans} {w} in {y} days."))
    }),
    ("factory shifts", true, |c| {
        let (a, s, w) = (c.qty(40, 3000), c.range(2, 3), c.pick(WIDGETS));
        let r = c.range(1, (a * s / 10).max(1));
        let (x, y, z, ans) = (c.n(a), c.n(s), c.n(r), a * s - r);
        let question = format!(
            "A factory makes {x} {w} per shift and runs {y} shifts a day. Each day, {z} of them fail inspection. How many good {w} does it make per day?"
        );
        draft(question, format!("{x} * {y} - {z}"), ans, format!("It makes {ans} good {w} per day."))
    }),
    ("factory boxes", true, |c| {
        let (b, q, w) = (c.range(6, 48), c.qty(10, 900), c.pick(WIDGETS));
        let (x, y) = (c.n(b * q), c.n(b));
        let question = format!("A factory made {x} {w} and packs them in boxes of {y}. How many boxes does it fill?");
        draft(question, format!("{x} / {y}"), q, format!("It fills {q} boxes."))
    }),
    ("machines", true, |c| {
        let (m, p, h) = (c.range(2, 40), c.qty(5, 500), c.range(2, 24));
        let (x, y, z, ans) = (c.n(m), c.n(p), c.n(h), m * p * h);
        let question =
            format!("{x} machines each make {y} parts per hour. How many parts do they make together in {z} hours?");
        draft(question, format!("{x} * {y} * {z}"), ans, format!("Together they make {ans} parts."))
    }),
    ("factory to stores", true, |c| {
        let (s, a, d, w) = (c.range(2, 20), c.qty(100, 5000), c.range(2, 14), c.pick(WIDGETS));
        let k = c.sub_exact(a * d, s)?;
        let (x, y, z, t, ans) = (c.n(a), c.n(d), c.n(k), c.n(s), (a * d - k) / s);
        let question = format!(
            "A factory produces {x} {w} a day for {y} days, keeps {z} in storage, and ships the rest equally to {t} stores. How many {w} does each store get?"
        );
        draft(question, format!("({x} * {y} - {z}) / {t}"), ans, format!("Each store gets {ans} {w}."))
    }),
    // Recipes.
    ("recipe scaling", true, |c| {
        let (b, unit, servings, ing) = (c.range(2, 12), c.qty_mid(10, 150), c.range(2, 60), c.pick(INGREDIENTS));
        let (x, y, z, ans) = (c.n(b * unit), c.n(b), c.n(servings), unit * servings);
        let question = format!(
            "A recipe uses {x} grams of {ing} for {y} servings. How many grams of {ing} are needed for {z} servings?"
        );
        draft(question, format!("{x} / {y} * {z}"), ans, format!("You need {ans} grams of {ing}."))
    }),
    ("eggs to buy", true, |c| {
        let (e, b) = (c.range(2, 6), c.qty_mid(2, 40));
        let have = c.range(1, e * b - 1);
        let (x, y, z, ans) = (c.n(e), c.n(b), c.n(have), e * b - have);
        let question = format!(
            "A cake needs {x} eggs. A baker is making {y} cakes and already has {z} eggs. How many more eggs does the baker need to buy?"
        );
        draft(question, format!("{x} * {y} - {z}"), ans, format!("The baker needs to buy {ans} more eggs."))
    }),
    ("soup stock", true, |c| {
        let (people, ml, t) = (c.range(2, 12), c.qty_mid(100, 2000), c.range(2, 20));
        let (x, y, ans) = (c.n(ml), c.n(t), ml * t);
        let question = format!(
            "A soup recipe for {people} people uses {x} millilitres of stock. How many millilitres of stock are needed to cook it {y} times?"
        );
        draft(question, format!("{x} * {y}"), ans, format!("You need {ans} millilitres of stock."))
    }),
    // Units: mass, length, volume, time.
    ("kilograms to grams", true, |c| {
        let a = if c.big { c.digits(4, 9) } else { c.range(2, 500) };
        let (x, ans) = (c.n(a), a * 1000);
        let question = if c.rng.random_bool(0.5) {
            format!("How many grams are there in {x} kilograms?")
        } else {
            format!("A sack of grain weighs {x} kg. How many grams is that?")
        };
        draft(question, format!("{x} * 1000"), ans, format!("{x} kg is {ans} grams."))
    }),
    ("trail in metres", true, |c| {
        let a = c.qty_mid(2, 90);
        let (x, ans) = (c.n(a), a * 1000);
        let question = format!("A hiking trail is {x} km long. How many metres long is it?");
        draft(question, format!("{x} * 1000"), ans, format!("The trail is {ans} metres long."))
    }),
    ("tank draining", true, |c| {
        let (b, h) = (c.qty(2, 400), c.range(2, 24));
        let left = c.qty(1, 5000);
        let a = b * h + left;
        let (x, y, z) = (c.n(a), c.n(b), c.n(h));
        let question = format!(
            "A tank holds {x} litres of water. {y} litres are drained every hour for {z} hours. How many litres are left in the tank?"
        );
        draft(question, format!("{x} - {y} * {z}"), left, format!("{left} litres are left in the tank."))
    }),
    ("bottles to litres", true, |c| {
        // 250 ml × 4 bottles is one litre, so these counts always give whole litres.
        let (ml, n) = (c.pick::<i128>(&[250, 500, 750, 1250, 1500, 2000]), 4 * c.qty(1, 50));
        let (x, y, ans) = (c.n(n), c.n(ml), n * ml / 1000);
        let question =
            format!("{x} bottles each hold {y} millilitres of juice. How many litres of juice is that in total?");
        draft(question, format!("{x} * {y} / 1000"), ans, format!("That is {ans} litres of juice."))
    }),
    ("hours to minutes", true, |c| {
        let (h, m) = (c.qty(2, 48), c.range(1, 59));
        let (x, y, ans) = (c.n(h), c.n(m), h * 60 + m);
        let question = format!("How many minutes are there in {x} hours and {y} minutes?");
        draft(question, format!("{x} * 60 + {y}"), ans, format!("{x} hours and {y} minutes is {ans} minutes."))
    }),
    ("days to seconds", true, |c| {
        let d = c.qty(2, 30);
        let (x, ans) = (c.n(d), d * 24 * 60 * 60);
        let question = format!("How many seconds are there in {x} days?");
        draft(question, format!("{x} * 24 * 60 * 60"), ans, format!("There are {ans} seconds in {x} days."))
    }),
    ("garden area", true, |c| {
        let (w, l) = (c.range(2, 60), c.qty_mid(2, 60));
        let (x, y, ans) = (c.n(w), c.n(l), w * l);
        let question =
            format!("A garden bed is {x} metres wide and {y} metres long. What is its area in square metres?");
        draft(question, format!("{x} * {y}"), ans, format!("Its area is {ans} square metres."))
    }),
    // Sharing and stock.
    ("share the rest", true, |c| {
        let ((container, thing), name) = (c.pick(CONTAINERS), c.name);
        let (a, b, d) = (c.qty_mid(12, 60), c.range(11, 48), c.range(2, 9));
        let k = c.sub_exact(a * b, d)?;
        let (w, x, y, z, ans) = (c.n(a), c.n(b), c.n(k), c.n(d), (a * b - k) / d);
        let question = format!(
            "{name} has {w} {container} with {x} {thing} in each. {name} gives away {y} {thing}, then shares the rest equally among {z} friends. How many {thing} does each friend get?"
        );
        draft(question, format!("({w} * {x} - {y}) / {z}"), ans, format!("Each friend gets {ans} {thing}."))
    }),
    ("packs gift loss share", true, |c| {
        let (thing, name) = (c.pick(SMALL_THINGS), c.name);
        let (a, b, g, k) = (c.qty_mid(2, 20), c.range(4, 24), c.range(1, 30), c.range(2, 12));
        let l = c.sub_exact(a * b + g, k)?;
        let (v, w, x, y, z, ans) = (c.n(a), c.n(b), c.n(g), c.n(l), c.n(k), (a * b + g - l) / k);
        let question = format!(
            "{name} buys {v} packs of {w} {thing}, receives {x} more as a gift and loses {y}. The rest are shared equally among {z} classmates. How many {thing} does each classmate get?"
        );
        draft(question, format!("({v} * {w} + {x} - {y}) / {z}"), ans, format!("Each classmate gets {ans} {thing}."))
    }),
    ("warehouse trucks", true, |c| {
        let (a, w, t) = (c.qty(10, 500), c.range(5, 80), c.range(2, 12));
        let s = c.range(1, a - 1);
        let base = (a - s) * w;
        let d0 = c.range(1, 500);
        let d = d0 + (t - (base + d0) % t) % t;
        let (p, q, r, u, v, ans) = (c.n(a), c.n(w), c.n(s), c.n(d), c.n(t), (base + d) / t);
        let question = format!(
            "A warehouse holds {p} crates that weigh {q} kg each. {r} crates are shipped out, then a delivery of {u} kg arrives. The total weight is split equally across {v} trucks. How many kilograms does each truck carry?"
        );
        draft(question, format!("(({p} - {r}) * {q} + {u}) / {v}"), ans, format!("Each truck carries {ans} kg."))
    }),
    ("farmer sheds", true, |c| {
        let (a, b, g, e) = (c.qty(50, 2000), c.range(2, 12), c.range(10, 500), c.range(2, 8));
        let d = c.sub_exact(a * b + g, e)?;
        let (p, q, r, s, t, ans) = (c.n(a), c.n(b), c.n(g), c.n(d), c.n(e), (a * b + g - d) / e);
        let question = format!(
            "A farmer harvests {p} kg of potatoes from each of {q} fields and {r} kg from the garden, sells {s} kg, and stores the rest equally in {t} sheds. How many kilograms go into each shed?"
        );
        draft(question, format!("({p} * {q} + {r} - {s}) / {t}"), ans, format!("Each shed holds {ans} kg of potatoes."))
    }),
    ("pencils for classes", true, |c| {
        let (classes, per_box) = (c.range(2, 30), c.pick::<i128>(&[10, 12, 20, 24, 50]));
        let boxes = classes * c.qty(1, 20);
        let (x, y, z, ans) = (c.n(boxes), c.n(per_box), c.n(classes), boxes * per_box / classes);
        let question = format!(
            "A school orders {x} boxes of pencils with {y} pencils in each box and shares them equally among {z} classes. How many pencils does each class get?"
        );
        draft(question, format!("{x} * {y} / {z}"), ans, format!("Each class gets {ans} pencils."))
    }),
    ("orchard", true, |c| {
        let (r, t, k) = (c.range(3, 40), c.qty_mid(5, 60), c.range(10, 200));
        let (x, y, z, ans) = (c.n(r), c.n(t), c.n(k), r * t * k);
        let question = format!(
            "An orchard has {x} rows of {y} apple trees, and each tree gives {z} kg of apples. How many kilograms of apples does the orchard produce?"
        );
        draft(question, format!("{x} * {y} * {z}"), ans, format!("The orchard produces {ans} kg of apples."))
    }),
    ("library stock", true, |c| {
        let (a, b) = (c.qty(500, 20000), c.range(10, 900));
        let d = c.range(1, a - 1);
        let (x, y, z, ans) = (c.n(a), c.n(b), c.n(d), a + b - d);
        let question = format!(
            "A library had {x} books. It bought {y} new books and gave away {z} old ones. How many books does it have now?"
        );
        draft(question, format!("{x} + {y} - {z}"), ans, format!("The library now has {ans} books."))
    }),
];

/// The names of the question templates, direct questions first.
pub fn template_names() -> impl Iterator<Item = &'static str> {
    TEMPLATES.iter().map(|t| t.0)
}

/// A sentence with a number the question does not use. Sentences that name the person only go
/// into questions that name them.
fn distractor(rng: &mut StdRng, name: &str, names_person: bool) -> String {
    let choice = rng.random_range(0..if names_person { 6 } else { 3 });
    match choice {
        0 => format!("It was {} degrees outside that day.", rng.random_range(3..=38)),
        1 => format!("This took place in {}.", rng.random_range(1990..=2024)),
        2 => format!("The manager has worked there for {} years.", rng.random_range(2..=30)),
        3 => format!("{name} is {} years old.", rng.random_range(16..=80)),
        4 => format!("{name} lives at house number {}.", rng.random_range(2..=199)),
        _ => format!("{name} has {} cousins.", rng.random_range(2..=14)),
    }
}

/// Operations in an expression: its `+ - * /` signs (all numbers here are positive).
fn operations(expression: &str) -> usize {
    expression.chars().filter(|c| matches!(c, '+' | '-' | '*' | '/')).count()
}

/// `n` arithmetic problems of `split`, each with its calculator expression and exact answer.
pub fn calculator_problems(split: Split, seed: u64, n: usize) -> Vec<CalcProblem> {
    let mut rng = stream(split, seed, CALC_STREAM);
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(n);
    // Terminates: every template has far more questions than any run asks for, about half of them
    // in each split.
    while out.len() < n {
        let (template, word, make) = TEMPLATES[rng.random_range(0..TEMPLATES.len())];
        let name = pick(&mut rng, NAMES);
        let commas = rng.random_bool(0.2);
        let big = word && rng.random_bool(0.3);
        let Some(mut d) = make(&mut Ctx { rng: &mut rng, commas, big, name }) else { continue };
        if word && rng.random_bool(0.3) {
            let extra = distractor(&mut rng, name, d.question.contains(name));
            d.question = match d.question.find(". ") {
                Some(i) if rng.random_bool(0.5) => format!("{} {extra}{}", &d.question[..i + 1], &d.question[i + 1..]),
                _ => format!("{extra} {}", d.question),
            };
        }
        if !split.owns(&d.question) || !seen.insert(d.question.clone()) {
            continue;
        }
        out.push(CalcProblem {
            item: Item { question: d.question, answer: d.answer.to_string() },
            steps: operations(&d.expression),
            expression: d.expression,
            reply: d.reply,
            template,
        });
    }
    out
}

/// The questions and exact answers of [`calculator_problems`], for the benchmark.
pub fn calculator_items(split: Split, seed: u64, n: usize) -> Vec<Item> {
    calculator_problems(split, seed, n).into_iter().map(|p| p.item).collect()
}

// ---------------------------------------------------------------------------------------------
// Search items: facts about invented places, only in generated documents

/// A fact question with its document, and what a search conversation needs to ask for it.
#[derive(Clone, Debug)]
pub struct SearchProblem {
    /// The document, its file name (unique within one call) and the question with its answer.
    pub fact: Fact,
    /// Every invented name in the document, the question's subject first.
    pub names: Vec<String>,
    /// The subject as the document titles it (`Mount Kalomer`, `Vitan School`).
    pub subject: String,
    /// Words of the document that point at the asked fact (`population`), for the query.
    pub keywords: &'static [&'static str],
    /// The final answer: a sentence stating the number.
    pub reply: String,
}

const SYLLABLES: &[&str] = &[
    "ka", "lo", "mer", "vi", "tan", "sul", "dra", "nek", "oru", "pel", "zan", "qui", "bel", "cor", "fen", "gal", "hol",
    "ith", "jor", "kem", "lum", "mor", "nal", "pra", "rok", "tev", "ul", "var", "wen", "yor",
];

/// A name of `split` not in `used` (which it joins). Two or three syllables; four or five once
/// short names grow scarce, so any `n` terminates.
fn fresh_name(rng: &mut StdRng, split: Split, used: &mut HashSet<String>) -> String {
    for attempt in 0.. {
        let syllables = if attempt < 50 { rng.random_range(2..=3) } else { rng.random_range(4..=5) };
        let parts: Vec<&str> = (0..syllables).map(|_| pick(rng, SYLLABLES)).collect();
        if parts.windows(2).any(|w| w[0] == w[1]) {
            continue; // "Tevtevtev" reads as a typo
        }
        let s = parts.concat();
        let name: String = s[..1].to_uppercase() + &s[1..];
        if split.owns(&s) && used.insert(s) {
            return name;
        }
    }
    unreachable!("the loop above only ends by returning")
}

/// One askable number of a document: its question forms, the reply, and query keywords.
struct Asked {
    answer: u32,
    questions: Vec<String>,
    reply: String,
    keywords: &'static [&'static str],
}

/// Two distinct numbers, so a question's answer is never also the document's other number.
fn two_numbers(rng: &mut StdRng, a: (u32, u32), b: (u32, u32)) -> (u32, u32) {
    let x = rng.random_range(a.0..=a.1);
    loop {
        let y = rng.random_range(b.0..=b.1);
        if y != x {
            return (x, y);
        }
    }
}

const TOWN_FILLER: &[&str] = &[
    "The town is known for its covered market and narrow streets.",
    "Visitors often arrive by the old river ferry.",
    "Local bakeries sell a dark rye bread flavoured with caraway.",
    "A festival with lanterns is held every autumn.",
    "The surrounding hills are planted with vineyards and orchards.",
];
const RIVER_FILLER: &[&str] = &[
    "Its water is clear and cold in spring.",
    "Anglers come from far away for its trout.",
    "Willows line much of its course.",
    "Barges once carried timber along it.",
    "Herons nest along its quieter banks.",
];
const MOUNTAIN_FILLER: &[&str] = &[
    "Its upper slopes stay white for most of the year.",
    "A narrow trail winds up its southern ridge.",
    "Shepherds graze their flocks in the meadows below.",
    "On clear days its summit can be seen from far away.",
    "Pine forests cover its lower slopes.",
];
const SCHOOL_FILLER: &[&str] = &[
    "Its library is open to the public on weekends.",
    "The school choir performs every winter.",
    "Students can join clubs for chess, robotics and drama.",
    "The building has a large garden with vegetable beds.",
    "Its football team plays in bright green shirts.",
];
const LAKE_FILLER: &[&str] = &[
    "Its water is a deep shade of green.",
    "Sailing boats can be hired on the northern shore.",
    "Ducks and swans gather near the reeds.",
    "A path runs all the way around the shore.",
    "In winter the lake sometimes freezes over.",
];

/// A document `# title` whose body holds `facts` and as many filler sentences as fit in what the
/// search tool shows of a passage, so the answer is never cut off.
fn document(rng: &mut StdRng, title: &str, facts: &[String], filler: &[&str]) -> String {
    let mut filler: Vec<&str> = filler.to_vec();
    filler.shuffle(rng);
    let mut sentences: Vec<String> = facts.to_vec();
    for f in filler {
        let mut longer = sentences.clone();
        longer.insert(rng.random_range(0..=longer.len()), f.to_string());
        // The tool shows the passage with its whitespace collapsed, which is this line.
        if format!("# {title} {}", longer.join(" ")).chars().count() > TOOL_SNIPPET_CHARS {
            break;
        }
        sentences = longer;
    }
    format!("# {title}\n\n{}\n", sentences.join(" "))
}

fn search_problem(rng: &mut StdRng, split: Split, used: &mut HashSet<String>, i: usize) -> SearchProblem {
    let name = fresh_name(rng, split, used);
    let mut names = vec![name.clone()];
    let (kind, subject, facts, filler, asked) = match rng.random_range(0..5) {
        0 => {
            let river = fresh_name(rng, split, used);
            names.push(river.clone());
            let (year, pop) = two_numbers(rng, (1100, 1899), (1000, 89_999));
            let facts = vec![
                format!("{name} was founded in {year} on the banks of the {river} river."),
                format!("Today {name} has a population of {pop} people."),
            ];
            let asked = [
                Asked {
                    answer: year,
                    questions: vec![
                        format!("In what year was the town of {name} founded?"),
                        format!("When was {name} founded?"),
                        format!("What year was the town of {name} established?"),
                    ],
                    reply: format!("{name} was founded in {year}."),
                    keywords: &["founded", "town founded", "founded year"],
                },
                Asked {
                    answer: pop,
                    questions: vec![
                        format!("What is the population of the town of {name}?"),
                        format!("How many people live in {name}?"),
                        format!("How many inhabitants does {name} have?"),
                    ],
                    reply: format!("{name} has a population of {pop} people."),
                    keywords: &["population", "town population", "people"],
                },
            ];
            ("town", name.clone(), facts, TOWN_FILLER, asked)
        }
        1 => {
            let (length, bridges) = two_numbers(rng, (12, 980), (2, 60));
            let facts = vec![
                format!("The {name} river is {length} kilometres long."),
                format!("It is crossed by {bridges} bridges on its way to the sea."),
            ];
            let asked = [
                Asked {
                    answer: length,
                    questions: vec![
                        format!("How long is the {name} river?"),
                        format!("What is the length of the {name} river in kilometres?"),
                        format!("How many kilometres long is the {name} river?"),
                    ],
                    reply: format!("The {name} river is {length} kilometres long."),
                    keywords: &["river length", "kilometres long", "long"],
                },
                Asked {
                    answer: bridges,
                    questions: vec![
                        format!("How many bridges cross the {name} river?"),
                        format!("How many bridges span the {name} river?"),
                    ],
                    reply: format!("The {name} river is crossed by {bridges} bridges."),
                    keywords: &["bridges", "river bridges", "crossed bridges"],
                },
            ];
            ("river", format!("The {name} river"), facts, RIVER_FILLER, asked)
        }
        2 => {
            let (height, year) = two_numbers(rng, (300, 5400), (1780, 1990));
            let facts = vec![
                format!("Mount {name} rises {height} metres above sea level."),
                format!("It was first climbed in {year}."),
            ];
            let asked = [
                Asked {
                    answer: height,
                    questions: vec![
                        format!("How high is Mount {name}?"),
                        format!("What is the height of Mount {name} in metres?"),
                        format!("How many metres tall is Mount {name}?"),
                    ],
                    reply: format!("Mount {name} is {height} metres high."),
                    keywords: &["height", "metres", "sea level"],
                },
                Asked {
                    answer: year,
                    questions: vec![
                        format!("In what year was Mount {name} first climbed?"),
                        format!("When was Mount {name} first climbed?"),
                    ],
                    reply: format!("Mount {name} was first climbed in {year}."),
                    keywords: &["first climbed", "climbed"],
                },
            ];
            ("mountain", format!("Mount {name}"), facts, MOUNTAIN_FILLER, asked)
        }
        3 => {
            let (students, year) = two_numbers(rng, (80, 2600), (1850, 2010));
            let facts = vec![format!("{name} School has {students} students."), format!("It was founded in {year}.")];
            let asked = [
                Asked {
                    answer: students,
                    questions: vec![
                        format!("How many students attend {name} School?"),
                        format!("How many students does {name} School have?"),
                        format!("What is the number of students at {name} School?"),
                    ],
                    reply: format!("{name} School has {students} students."),
                    keywords: &["students", "school students"],
                },
                Asked {
                    answer: year,
                    questions: vec![
                        format!("In what year was {name} School founded?"),
                        format!("When was {name} School founded?"),
                    ],
                    reply: format!("{name} School was founded in {year}."),
                    keywords: &["founded", "school founded"],
                },
            ];
            ("school", format!("{name} School"), facts, SCHOOL_FILLER, asked)
        }
        _ => {
            let (depth, area) = two_numbers(rng, (5, 320), (40, 9000));
            let facts = vec![
                format!("Lake {name} is {depth} metres deep at its deepest point."),
                format!("It covers {area} hectares."),
            ];
            let asked = [
                Asked {
                    answer: depth,
                    questions: vec![
                        format!("How deep is Lake {name}?"),
                        format!("What is the maximum depth of Lake {name} in metres?"),
                    ],
                    reply: format!("Lake {name} is {depth} metres deep at its deepest point."),
                    keywords: &["deep", "deepest point", "depth metres"],
                },
                Asked {
                    answer: area,
                    questions: vec![
                        format!("How many hectares does Lake {name} cover?"),
                        format!("What is the area of Lake {name} in hectares?"),
                    ],
                    reply: format!("Lake {name} covers {area} hectares."),
                    keywords: &["hectares", "covers hectares"],
                },
            ];
            ("lake", format!("Lake {name}"), facts, LAKE_FILLER, asked)
        }
    };
    let document = document(rng, &subject, &facts, filler);
    let [first, second] = asked;
    let asked = if rng.random_bool(0.5) { first } else { second };
    let question = asked.questions[rng.random_range(0..asked.questions.len())].clone();
    SearchProblem {
        fact: Fact {
            document,
            file_name: format!("{kind}-{i:04}.md"),
            item: Item { question, answer: asked.answer.to_string() },
        },
        names,
        subject,
        keywords: asked.keywords,
        reply: asked.reply,
    }
}

/// `n` fact questions of `split`, each answerable only from its own document; no two share a name.
pub fn search_problems(split: Split, seed: u64, n: usize) -> Vec<SearchProblem> {
    let mut rng = stream(split, seed, FACTS_STREAM);
    let mut used = HashSet::new();
    (0..n).map(|i| search_problem(&mut rng, split, &mut used, i)).collect()
}

/// The facts of [`search_problems`], for the benchmark (one index over all their documents).
pub fn search_items(split: Split, seed: u64, n: usize) -> Vec<Fact> {
    search_problems(split, seed, n).into_iter().map(|p| p.fact).collect()
}

/// Writes each fact's document to `dir/<file_name>`, creating `dir`.
pub fn write_documents(facts: &[Fact], dir: &Path) -> Result<()> {
    let io = |e: std::io::Error| Error::Input(format!("writing documents to {}: {e}", dir.display()));
    std::fs::create_dir_all(dir).map_err(io)?;
    for f in facts {
        std::fs::write(dir.join(&f.file_name), &f.document).map_err(io)?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// No-tool items: questions a chat model answers from what it knows

/// One subject of a no-tool category: its question forms and the reply to all of them.
struct Subject {
    questions: Vec<String>,
    answer: String,
    /// Whether "Quick question: ..." and "... Thanks!" forms read naturally.
    wrappable: bool,
}

const GREETINGS: &[(&[&str], &str)] = &[
    (&["Hello!", "Hello there."], "Hello! How can I help you today?"),
    (
        &["Hi, how are you?", "How are you doing today?"],
        "I'm doing well, thank you for asking! How can I help you today?",
    ),
    (&["Good morning!", "Good morning to you."], "Good morning! What can I do for you today?"),
    (&["Good evening!"], "Good evening! How can I help?"),
    (
        &["Thank you!", "Thanks a lot for your help."],
        "You're welcome! Let me know if there is anything else I can help with.",
    ),
    (&["Goodbye!", "Bye, see you later."], "Goodbye! Have a great day."),
    (&["What is your name?", "Who are you?"], "I'm an AI assistant. How can I help you?"),
    (
        &["Can you help me?", "Are you able to help me with something?"],
        "Of course! Tell me what you need and I will do my best to help.",
    ),
    (&["Nice to meet you."], "Nice to meet you too! How can I help you today?"),
    (&["Good night!"], "Good night! Sleep well."),
];

const CAPITALS: &[(&str, &str)] = &[
    ("France", "Paris"),
    ("Germany", "Berlin"),
    ("Italy", "Rome"),
    ("Spain", "Madrid"),
    ("Portugal", "Lisbon"),
    ("Japan", "Tokyo"),
    ("China", "Beijing"),
    ("India", "New Delhi"),
    ("Canada", "Ottawa"),
    ("Australia", "Canberra"),
    ("Brazil", "Brasília"),
    ("Argentina", "Buenos Aires"),
    ("Mexico", "Mexico City"),
    ("Egypt", "Cairo"),
    ("Kenya", "Nairobi"),
    ("Nigeria", "Abuja"),
    ("Russia", "Moscow"),
    ("the United Kingdom", "London"),
    ("Ireland", "Dublin"),
    ("Norway", "Oslo"),
    ("Sweden", "Stockholm"),
    ("Finland", "Helsinki"),
    ("Denmark", "Copenhagen"),
    ("Poland", "Warsaw"),
    ("Greece", "Athens"),
    ("Turkey", "Ankara"),
    ("South Korea", "Seoul"),
    ("Thailand", "Bangkok"),
    ("Vietnam", "Hanoi"),
    ("Peru", "Lima"),
    ("Chile", "Santiago"),
    ("Colombia", "Bogotá"),
    ("Austria", "Vienna"),
    ("Hungary", "Budapest"),
    ("the Czech Republic", "Prague"),
    ("Belgium", "Brussels"),
    ("Morocco", "Rabat"),
    ("Ghana", "Accra"),
    ("Ethiopia", "Addis Ababa"),
    ("New Zealand", "Wellington"),
    ("Cuba", "Havana"),
    ("Iceland", "Reykjavik"),
    ("the Philippines", "Manila"),
    ("Pakistan", "Islamabad"),
    ("Iran", "Tehran"),
    ("Saudi Arabia", "Riyadh"),
    ("Ukraine", "Kyiv"),
    ("Switzerland", "Bern"),
];

const OPPOSITES: &[(&str, &str)] = &[
    ("hot", "cold"),
    ("big", "small"),
    ("fast", "slow"),
    ("happy", "sad"),
    ("open", "closed"),
    ("early", "late"),
    ("full", "empty"),
    ("strong", "weak"),
    ("rich", "poor"),
    ("wet", "dry"),
    ("loud", "quiet"),
    ("thick", "thin"),
    ("win", "lose"),
    ("push", "pull"),
    ("day", "night"),
    ("above", "below"),
    ("inside", "outside"),
    ("remember", "forget"),
    ("buy", "sell"),
    ("cheap", "expensive"),
    ("clean", "dirty"),
    ("true", "false"),
    ("ancient", "modern"),
    ("always", "never"),
    ("increase", "decrease"),
    ("accept", "reject"),
    ("friend", "enemy"),
    ("arrive", "depart"),
];

/// (English, language, translation).
const TRANSLATIONS: &[(&str, &str, &str)] = &[
    ("hello", "Spanish", "hola"),
    ("thank you", "Spanish", "gracias"),
    ("water", "Spanish", "agua"),
    ("cat", "Spanish", "gato"),
    ("dog", "Spanish", "perro"),
    ("house", "Spanish", "casa"),
    ("book", "Spanish", "libro"),
    ("red", "Spanish", "rojo"),
    ("hello", "French", "bonjour"),
    ("thank you", "French", "merci"),
    ("water", "French", "eau"),
    ("cat", "French", "chat"),
    ("dog", "French", "chien"),
    ("house", "French", "maison"),
    ("book", "French", "livre"),
    ("goodbye", "French", "au revoir"),
    ("hello", "German", "hallo"),
    ("thank you", "German", "danke"),
    ("water", "German", "Wasser"),
    ("cat", "German", "Katze"),
    ("dog", "German", "Hund"),
    ("house", "German", "Haus"),
    ("book", "German", "Buch"),
    ("good night", "German", "gute Nacht"),
    ("thank you", "Italian", "grazie"),
    ("water", "Italian", "acqua"),
    ("cat", "Italian", "gatto"),
    ("dog", "Italian", "cane"),
    ("book", "Italian", "libro"),
    ("friend", "Italian", "amico"),
];

/// (term with its article, bare term, definition).
const DEFINITIONS: &[(&str, &str, &str)] = &[
    ("photosynthesis", "photosynthesis", "Photosynthesis is the process by which plants, algae and some bacteria use sunlight, water and carbon dioxide to make sugars for energy, releasing oxygen."),
    ("gravity", "gravity", "Gravity is the force by which objects with mass attract one another; on Earth it pulls things toward the ground."),
    ("democracy", "democracy", "Democracy is a system of government in which the people hold power, usually by electing representatives in free elections."),
    ("an atom", "atom", "An atom is the smallest unit of a chemical element, made of a nucleus of protons and neutrons surrounded by electrons."),
    ("a noun", "noun", "A noun is a word that names a person, place, thing or idea, such as \"teacher\", \"city\" or \"happiness\"."),
    ("a verb", "verb", "A verb is a word that describes an action, a state or an occurrence, such as \"run\", \"be\" or \"happen\"."),
    ("a synonym", "synonym", "A synonym is a word that means the same or nearly the same as another word, like \"big\" and \"large\"."),
    ("evaporation", "evaporation", "Evaporation is the process in which a liquid turns into a gas, as when a puddle slowly dries up in the sun."),
    ("a mammal", "mammal", "A mammal is a warm-blooded animal with hair or fur that feeds its young with milk, such as a dog, a whale or a human."),
    ("an ecosystem", "ecosystem", "An ecosystem is a community of living things interacting with each other and with their physical environment."),
    ("a metaphor", "metaphor", "A metaphor is a figure of speech that describes something by saying it is something else, as in \"time is a thief\"."),
    ("inflation", "inflation", "Inflation is the general rise in prices over time, which means the same amount of money buys less than before."),
    ("an algorithm", "algorithm", "An algorithm is a step-by-step set of instructions for solving a problem or carrying out a task."),
    ("a volcano", "volcano", "A volcano is an opening in the Earth's crust through which molten rock, ash and gases escape."),
    ("climate", "climate", "Climate is the typical weather of a region measured over a long period, usually several decades."),
    ("a haiku", "haiku", "A haiku is a short Japanese form of poetry with three lines of five, seven and five syllables."),
    ("friction", "friction", "Friction is the force that resists motion when two surfaces rub against each other."),
    ("an adjective", "adjective", "An adjective is a word that describes a noun, such as \"blue\", \"tall\" or \"happy\"."),
    ("a continent", "continent", "A continent is one of Earth's very large landmasses, such as Africa, Asia or Europe."),
    ("a prime number", "prime number", "A prime number is a whole number greater than one whose only divisors are one and itself, such as two, three, five and seven."),
];

const YES_NO: &[(&str, &str)] = &[
    ("Is the Earth round?", "Yes. The Earth is roughly a sphere, slightly flattened at the poles."),
    ("Is the Sun a star?", "Yes. The Sun is a star: a huge ball of hot gas that makes light and heat by nuclear fusion."),
    ("Can penguins fly?", "No. Penguins are birds, but they cannot fly; they use their wings to swim."),
    ("Is a tomato a fruit?", "Yes. Botanically a tomato is a fruit, because it grows from a flower and holds seeds, although it is usually cooked as a vegetable."),
    ("Is the Moon bigger than the Earth?", "No. The Moon is much smaller than the Earth; its diameter is about a quarter of Earth's."),
    ("Do spiders have six legs?", "No. Spiders have eight legs; insects are the ones with six."),
    ("Is a whale a fish?", "No. A whale is a mammal: it breathes air and feeds its young with milk."),
    ("Does water boil at 100 degrees Celsius at sea level?", "Yes. At sea level, pure water boils at 100 degrees Celsius, which is 212 degrees Fahrenheit."),
    ("Is Mount Everest the highest mountain above sea level?", "Yes. Mount Everest, in the Himalayas, is the highest mountain above sea level."),
    ("Is the Pacific the largest ocean?", "Yes. The Pacific is the largest and deepest of Earth's oceans."),
    ("Do plants need sunlight to grow?", "Yes. Most plants need sunlight, which they use to make their food through photosynthesis."),
    ("Does ice float on water?", "Yes. Ice is less dense than liquid water, so it floats."),
    ("Can humans breathe underwater without equipment?", "No. Humans cannot breathe underwater without equipment such as a scuba tank."),
    ("Is Australia a continent?", "Yes. Australia is both a country and a continent."),
    ("Is the Sahara a desert?", "Yes. The Sahara, in North Africa, is the largest hot desert in the world."),
    ("Are bats birds?", "No. Bats are mammals, and the only mammals that can truly fly."),
    ("Does the Earth go around the Sun?", "Yes. The Earth orbits the Sun, going around it once a year."),
    ("Is gold a metal?", "Yes. Gold is a dense, soft, shiny metal."),
    ("Is Venus closer to the Sun than the Earth is?", "Yes. Venus is the second planet from the Sun, and the Earth is the third."),
    ("Is a dolphin a mammal?", "Yes. Dolphins are mammals: they breathe air and nurse their young."),
    ("Is sound faster than light?", "No. Light travels far faster than sound, which is why you see lightning before you hear thunder."),
];

const WRITING: &[(&[&str], &str)] = &[
    (&["Write a haiku about the sea.", "Could you write a haiku about the sea?"], "Waves fold into foam,\nsalt wind carries gull voices,\nthe tide keeps its time."),
    (&["Write a haiku about autumn.", "Can you write me a haiku about autumn?"], "Red leaves drift and fall,\ncool air smells of wood and rain,\nthe year slows its pace."),
    (&["Write a short thank-you note to a teacher."], "Dear teacher,\nThank you for your patience, encouragement and hard work this year. Your lessons made me curious and confident, and I will remember your class for a long time.\nWith gratitude,\nYour student"),
    (&["Write one sentence describing a sunny morning.", "Describe a sunny morning in one sentence."], "Golden light spilled over the rooftops as birds sang and the warm air promised a bright, easy day."),
    (&["Suggest a name for a pet goldfish.", "What should I name my goldfish?"], "How about \"Bubbles\"? It's cheerful, easy to say, and suits a fish that loves to swim."),
    (&["Write a two-line poem about coffee."], "A warm cup in the quiet dawn,\none sip and all my sleep is gone."),
    (&["Write a short birthday message for a friend.", "Can you write a birthday message for my friend?"], "Happy birthday! I hope your day is full of laughter, good food and the people you love. Here's to a wonderful year ahead!"),
    (&["Give me a title for a story about a lost dog finding its way home."], "How about \"The Long Way Home\"?"),
    (&["Write a polite sentence declining a meeting invitation."], "Thank you for the invitation; unfortunately I am not able to attend the meeting, but I would be glad to catch up another time."),
    (&["Write a slogan for a bakery.", "Come up with a slogan for a bakery."], "\"Fresh from our oven to your table, every morning.\""),
    (&["Write a short apology for being late."], "I'm sorry for being late. I should have planned better, and I appreciate your patience."),
    (&["Describe the colour blue in one sentence."], "Blue is the cool, calm colour of a clear sky and a deep ocean."),
];

const ADVICE: &[(&[&str], &str)] = &[
    (&["How can I sleep better?", "Any tips for sleeping better?"], "Keep a regular sleep schedule, avoid screens and caffeine in the hours before bed, keep your bedroom dark, cool and quiet, and get some daylight and exercise during the day."),
    (&["How do I stay focused while studying?"], "Put your phone away, work in short blocks with short breaks in between, set a clear goal for each session, and study somewhere quiet."),
    (&["Any tips for a job interview?", "How should I prepare for a job interview?"], "Research the company, prepare short examples of your past work, practise answering common questions out loud, arrive a little early, and have a couple of questions ready to ask."),
    (&["How can I drink more water during the day?"], "Carry a refillable bottle, drink a glass with each meal, set reminders on your phone, and add a slice of lemon if you like some flavour."),
    (&["How do I make friends in a new city?"], "Join clubs, classes or sports groups around your interests, say yes to invitations, volunteer, and keep in touch with the people you meet by suggesting a coffee or a walk."),
    (&["How can I reduce stress?", "What are some ways to feel less stressed?"], "Take regular breaks, get enough sleep, move your body every day, talk to people you trust, and try slow breathing or a short walk when you feel tense."),
    (&["How can I save money on groceries?"], "Plan your meals, shop with a list, compare unit prices, choose store brands, cook at home more often, and avoid shopping when you are hungry."),
    (&["How do I start running?", "I want to start running. Any advice?"], "Start slowly with a mix of walking and jogging a few times a week, wear comfortable shoes, build up your time gradually, and rest when your body needs it."),
    (&["How can I learn a new language faster?"], "Practise a little every day, learn the most common words first, listen to podcasts or shows in the language, and speak with native speakers as early as you can."),
    (&["How do I keep a houseplant alive?"], "Give it the light its species likes, water it only when the top of the soil is dry, use a pot with drainage holes, and keep it away from cold draughts."),
];

/// Every no-tool subject, category by category, each tagged with its split: every fourth subject
/// of a category (the second, sixth, ...) is eval.
fn plain_subjects() -> Vec<(Split, Subject)> {
    let mut categories: Vec<Vec<Subject>> = Vec::new();
    let fixed = |rows: &[(&[&str], &str)], wrappable: bool| -> Vec<Subject> {
        rows.iter()
            .map(|(qs, a)| Subject {
                questions: qs.iter().map(|q| q.to_string()).collect(),
                answer: a.to_string(),
                wrappable,
            })
            .collect()
    };
    categories.push(fixed(GREETINGS, false));
    categories.push(fixed(WRITING, false));
    categories.push(fixed(ADVICE, false));
    categories.push(
        CAPITALS
            .iter()
            .map(|(country, capital)| Subject {
                questions: vec![
                    format!("What is the capital of {country}?"),
                    format!("What's the capital city of {country}?"),
                    format!("Which city is the capital of {country}?"),
                ],
                answer: format!("The capital of {country} is {capital}."),
                wrappable: true,
            })
            .collect(),
    );
    categories.push(
        OPPOSITES
            .iter()
            .map(|(w, o)| Subject {
                questions: vec![
                    format!("What is the opposite of \"{w}\"?"),
                    format!("What's the opposite of {w}?"),
                    format!("Give me an antonym of the word \"{w}\"."),
                ],
                answer: format!("The opposite of \"{w}\" is \"{o}\"."),
                wrappable: true,
            })
            .collect(),
    );
    categories.push(
        TRANSLATIONS
            .iter()
            .map(|(w, lang, t)| Subject {
                questions: vec![
                    format!("How do you say \"{w}\" in {lang}?"),
                    format!("Translate \"{w}\" into {lang}."),
                    format!("What is \"{w}\" in {lang}?"),
                ],
                answer: format!("\"{}{}\" in {lang} is \"{t}\".", w[..1].to_uppercase(), &w[1..]),
                wrappable: true,
            })
            .collect(),
    );
    categories.push(
        DEFINITIONS
            .iter()
            .map(|(term, bare, definition)| Subject {
                questions: vec![
                    format!("What is {term}?"),
                    format!("Define {bare}."),
                    format!("What does the word \"{bare}\" mean?"),
                    format!("Can you explain what {term} is?"),
                ],
                answer: definition.to_string(),
                wrappable: true,
            })
            .collect(),
    );
    categories.push(
        YES_NO
            .iter()
            .map(|(q, a)| Subject { questions: vec![q.to_string()], answer: a.to_string(), wrappable: true })
            .collect(),
    );
    categories
        .into_iter()
        .flat_map(|subjects| {
            subjects.into_iter().enumerate().map(|(i, s)| (if i % 4 == 1 { Split::Eval } else { Split::Train }, s))
        })
        .collect()
}

/// Every (question, reply) of `split`: each subject's forms, and the wrapped ones where natural.
fn plain_pool(split: Split) -> Vec<Item> {
    let mut pool = Vec::new();
    for (s, subject) in plain_subjects() {
        if s != split {
            continue;
        }
        for q in &subject.questions {
            let mut forms = vec![q.clone()];
            if subject.wrappable {
                forms.push(format!("Quick question: {q}"));
                forms.push(format!("{q} Thanks!"));
            }
            pool.extend(forms.into_iter().map(|question| Item { question, answer: subject.answer.clone() }));
        }
    }
    pool
}

/// `n` questions of `split` that need no tool, each with the reply a good assistant gives. The
/// pool is dealt in shuffled passes, so no question repeats until all of them have been used.
pub fn no_tool_items(split: Split, seed: u64, n: usize) -> Vec<Item> {
    let pool = plain_pool(split);
    let mut rng = stream(split, seed, PLAIN_STREAM);
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let mut pass = pool.clone();
        pass.shuffle(&mut rng);
        out.extend(pass.into_iter().take(n - out.len()));
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Conversations

/// What a conversation teaches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    Calculator,
    Search,
    NoTool,
}

/// One message of a conversation.
#[derive(Clone, Debug, PartialEq)]
pub enum Turn {
    User(String),
    /// An assistant turn that only calls a tool.
    Call {
        name: String,
        arguments: Value,
    },
    /// What the tool returned, verbatim.
    Result {
        name: String,
        content: String,
    },
    /// An assistant turn in plain text.
    Assistant(String),
}

/// A training conversation: the tools offered (OpenAI schemas) and the messages.
#[derive(Clone, Debug, PartialEq)]
pub struct Conversation {
    pub kind: Kind,
    /// [`tool_schema`] of each tool offered, calculator before search.
    pub tools: Vec<Value>,
    pub turns: Vec<Turn>,
}

impl Conversation {
    /// The user's question (the first turn).
    pub fn question(&self) -> &str {
        match self.turns.first() {
            Some(Turn::User(q)) => q,
            _ => "",
        }
    }

    /// The assistant's final reply (the last turn).
    pub fn final_answer(&self) -> &str {
        match self.turns.last() {
            Some(Turn::Assistant(a)) => a,
            _ => "",
        }
    }
}

/// The conversation as one JSONL record in the OpenAI/TRL chat format with tools:
/// `{"tools": [...], "messages": [{"role": "user", ...}, {"role": "assistant", "content": "",
/// "tool_calls": [{"type": "function", "function": {"name", "arguments"}}]}, {"role": "tool",
/// "name", "content"}, {"role": "assistant", "content"}]}`.
pub fn to_json(c: &Conversation) -> Value {
    let messages: Vec<Value> = c
        .turns
        .iter()
        .map(|t| match t {
            Turn::User(s) => json!({"role": "user", "content": s}),
            Turn::Call { name, arguments } => json!({
                "role": "assistant",
                "content": "",
                "tool_calls": [{"type": "function", "function": {"name": name, "arguments": arguments}}],
            }),
            Turn::Result { name, content } => json!({"role": "tool", "name": name, "content": content}),
            Turn::Assistant(s) => json!({"role": "assistant", "content": s}),
        })
        .collect();
    json!({"tools": c.tools, "messages": messages})
}

/// Shares of each kind in [`conversations`]; they need not sum to 1 (they are normalised).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Mix {
    pub calculator: f64,
    pub search: f64,
    pub no_tool: f64,
}

impl Default for Mix {
    /// Calculator questions have the most surface variety, so they get the largest share; a quarter
    /// that needs no tool keeps the model from calling tools on everything.
    fn default() -> Self {
        Mix { calculator: 0.45, search: 0.30, no_tool: 0.25 }
    }
}

impl Mix {
    /// How many of `n` conversations are of each kind (largest share rounded, the rest no-tool).
    fn counts(&self, n: usize) -> Result<(usize, usize, usize)> {
        let shares = [self.calculator, self.search, self.no_tool];
        let total: f64 = shares.iter().sum();
        if shares.iter().any(|s| !s.is_finite() || *s < 0.0) || total <= 0.0 {
            return Err(Error::Input(format!(
                "tool-use mix: shares must be finite, non-negative and not all zero; got calculator {}, search {}, no tool {}",
                self.calculator, self.search, self.no_tool
            )));
        }
        let calc = ((n as f64) * self.calculator / total).round() as usize;
        let search = (((n as f64) * self.search / total).round() as usize).min(n - calc.min(n));
        let calc = calc.min(n);
        Ok((calc, search, n - calc - search))
    }
}

/// Documents per search index in [`conversations`]: enough that a search returns distractors.
const GROUP_DOCS: std::ops::RangeInclusive<usize> = 4..=12;

/// A scratch folder for the indexes, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Result<Self> {
        static COUNTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("ingot-tooluse-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path)
            .map_err(|e| Error::Input(format!("creating scratch folder {}: {e}", path.display())))?;
        Ok(Scratch(path))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn bug(what: String) -> Error {
    Error::Input(format!("tool-use generator bug: {what}"))
}

/// Builds an index of `facts`' documents under `dir` and opens it as the search tool.
fn search_tool(facts: &[Fact], dir: &Path) -> Result<SearchTool> {
    let (docs, index) = (dir.join("docs"), dir.join("index"));
    write_documents(facts, &docs)?;
    let search_err = |e: ingot_tools::SearchError| Error::Input(format!("indexing {}: {e}", docs.display()));
    SearchIndex::build(&docs, &index).map_err(search_err)?;
    Ok(SearchTool::new(SearchIndex::open(&index).map_err(search_err)?))
}

/// The search call for a problem: its subject or name, often with a keyword, sometimes with `k`.
fn search_call(rng: &mut StdRng, p: &SearchProblem) -> Value {
    let keyword = pick(rng, p.keywords);
    let query = match rng.random_range(0..4) {
        0 => p.subject.clone(),
        1 => format!("{} {keyword}", p.names[0]),
        _ => format!("{} {keyword}", p.subject),
    };
    if rng.random_bool(0.25) {
        json!({"query": query, "k": rng.random_range(2..=5)})
    } else {
        json!({"query": query})
    }
}

/// `n` conversations of `split` in the shares of `mix`, every tool result produced by the real
/// tool. Fails only on a bug of this generator (a tool error, a result that is not the item's
/// answer) or when the scratch folder for the search indexes cannot be written.
pub fn conversations(split: Split, seed: u64, n: usize, mix: &Mix) -> Result<Vec<Conversation>> {
    let (n_calc, n_search, n_plain) = mix.counts(n)?;
    let mut kinds: Vec<Kind> = [(Kind::Calculator, n_calc), (Kind::Search, n_search), (Kind::NoTool, n_plain)]
        .iter()
        .flat_map(|&(k, m)| std::iter::repeat_n(k, m))
        .collect();
    kinds.shuffle(&mut stream(split, seed, MIX_STREAM));
    let scratch = Scratch::new()?;
    let calculator_schema = tool_schema(&Calculator);
    // Every search tool has the same schema; this one only describes it.
    let empty = Fact {
        document: "# Notes\n\nNothing here yet.\n".into(),
        file_name: "notes.md".into(),
        item: Item { question: String::new(), answer: String::new() },
    };
    let search_schema = tool_schema(&search_tool(&[empty], &scratch.0.join("schema"))?);
    let mut rng = stream(split, seed, TOOLS_STREAM);

    let mut calc = Vec::with_capacity(n_calc);
    for p in calculator_problems(split, seed, n_calc) {
        let arguments = json!({"expression": p.expression});
        let out = Calculator.call(&arguments).map_err(|e| bug(format!("calculator on `{}`: {e}", p.expression)))?;
        if out != p.item.answer {
            return Err(bug(format!("`{}` gives {out}, but the item's answer is {}", p.expression, p.item.answer)));
        }
        let tools = if rng.random_bool(0.5) {
            vec![calculator_schema.clone()]
        } else {
            vec![calculator_schema.clone(), search_schema.clone()]
        };
        let turns = vec![
            Turn::User(p.item.question),
            Turn::Call { name: "calculator".into(), arguments },
            Turn::Result { name: "calculator".into(), content: out.clone() },
            Turn::Assistant(format!("{} The answer is {out}.", p.reply)),
        ];
        calc.push(Conversation { kind: Kind::Calculator, tools, turns });
    }

    let mut search = Vec::with_capacity(n_search);
    let problems = search_problems(split, seed, n_search);
    let mut start = 0;
    while start < problems.len() {
        let end = (start + rng.random_range(GROUP_DOCS)).min(problems.len());
        let group = &problems[start..end];
        let facts: Vec<Fact> = group.iter().map(|p| p.fact.clone()).collect();
        let dir = scratch.0.join(format!("group-{start}"));
        let tool = search_tool(&facts, &dir)?;
        for p in group {
            let arguments = search_call(&mut rng, p);
            let out = tool.call(&arguments).map_err(|e| bug(format!("search with {arguments}: {e}")))?;
            if !out.contains(&format!("{}:", p.fact.file_name)) || !out.contains(&p.fact.item.answer) {
                return Err(bug(format!("search with {arguments} did not return {}: {out}", p.fact.file_name)));
            }
            let tools = if rng.random_bool(0.5) {
                vec![search_schema.clone()]
            } else {
                vec![calculator_schema.clone(), search_schema.clone()]
            };
            let turns = vec![
                Turn::User(p.fact.item.question.clone()),
                Turn::Call { name: "search".into(), arguments },
                Turn::Result { name: "search".into(), content: out },
                Turn::Assistant(p.reply.clone()),
            ];
            search.push(Conversation { kind: Kind::Search, tools, turns });
        }
        drop(tool);
        let _ = std::fs::remove_dir_all(&dir);
        start = end;
    }

    let mut plain = Vec::with_capacity(n_plain);
    for item in no_tool_items(split, seed, n_plain) {
        let tools = match rng.random_range(0..3) {
            0 => vec![calculator_schema.clone()],
            1 => vec![search_schema.clone()],
            _ => vec![calculator_schema.clone(), search_schema.clone()],
        };
        plain.push(Conversation {
            kind: Kind::NoTool,
            tools,
            turns: vec![Turn::User(item.question), Turn::Assistant(item.answer)],
        });
    }

    let (mut calc, mut search, mut plain) = (calc.into_iter(), search.into_iter(), plain.into_iter());
    let out = kinds
        .iter()
        .filter_map(|k| match k {
            Kind::Calculator => calc.next(),
            Kind::Search => search.next(),
            Kind::NoTool => plain.next(),
        })
        .collect();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ingot_generate::prompting::extract_answer;
    use std::collections::{BTreeMap, BTreeSet};

    #[test]
    fn items_are_seeded() {
        assert_eq!(calculator_problems(Split::Train, 7, 200), calculator_problems(Split::Train, 7, 200));
        assert_ne!(calculator_items(Split::Train, 7, 50), calculator_items(Split::Train, 8, 50));
        // Item i does not depend on how many were asked for.
        assert_eq!(calculator_items(Split::Eval, 7, 30), calculator_items(Split::Eval, 7, 100)[..30]);
        let docs = |s, seed| -> Vec<(String, String)> {
            search_items(s, seed, 40).into_iter().map(|f| (f.document, f.item.question)).collect()
        };
        assert_eq!(docs(Split::Eval, 3), docs(Split::Eval, 3));
        assert_ne!(docs(Split::Eval, 3), docs(Split::Eval, 4));
        assert_eq!(no_tool_items(Split::Train, 5, 300), no_tool_items(Split::Train, 5, 300));
        assert_ne!(no_tool_items(Split::Train, 5, 30), no_tool_items(Split::Train, 6, 30));
    }

    #[test]
    fn train_and_eval_are_disjoint() {
        let seed = 2026;
        let mut train = HashSet::new();
        let calc = calculator_items(Split::Train, seed, 5000);
        let facts = search_problems(Split::Train, seed, 5000);
        let plain = no_tool_items(Split::Train, seed, 5000);
        train.extend(calc.iter().map(|i| i.question.clone()));
        train.extend(facts.iter().map(|p| p.fact.item.question.clone()));
        train.extend(plain.iter().map(|i| i.question.clone()));
        let train_names: HashSet<String> = facts.iter().flat_map(|p| p.names.iter().cloned()).collect();
        // Eval of the same seed and of another: the partition holds for any pair.
        for eval_seed in [seed, seed + 1] {
            let eval_calc = calculator_items(Split::Eval, eval_seed, 1000);
            let eval_facts = search_problems(Split::Eval, eval_seed, 1000);
            let eval_plain = no_tool_items(Split::Eval, eval_seed, 1000);
            let questions = eval_calc
                .iter()
                .map(|i| &i.question)
                .chain(eval_facts.iter().map(|p| &p.fact.item.question))
                .chain(eval_plain.iter().map(|i| &i.question));
            for q in questions {
                assert!(!train.contains(q), "in both splits: {q}");
            }
            for name in eval_facts.iter().flat_map(|p| &p.names) {
                assert!(!train_names.contains(name), "name in both splits: {name}");
            }
        }
        // Distinct eval questions, so 100 benchmark items are 100 items.
        let eval: HashSet<String> = calculator_items(Split::Eval, seed, 1000).into_iter().map(|i| i.question).collect();
        assert_eq!(eval.len(), 1000);
        let plain: HashSet<String> = no_tool_items(Split::Eval, seed, 100).into_iter().map(|i| i.question).collect();
        assert_eq!(plain.len(), 100);
    }

    #[test]
    fn calculator_expressions_compute_the_answers() {
        let problems = calculator_problems(Split::Train, 11, 3000);
        let mut steps = BTreeSet::new();
        let mut templates = BTreeSet::new();
        let mut digits = BTreeSet::new();
        for p in &problems {
            let out = Calculator.call(&json!({"expression": p.expression})).unwrap();
            assert_eq!(out, p.item.answer, "{} = {}", p.expression, p.item.question);
            assert!(p.item.answer.chars().all(|c| c.is_ascii_digit()), "{}", p.item.answer);
            assert_ne!(p.item.answer, "0", "{}", p.item.question);
            steps.insert(p.steps);
            templates.insert(p.template);
            for n in p.expression.split(|c: char| !c.is_ascii_digit() && c != ',') {
                if !n.is_empty() {
                    digits.insert(n.replace(',', "").len());
                }
            }
        }
        assert_eq!(steps, (1..=4).collect());
        let names: BTreeSet<&str> = TEMPLATES.iter().map(|t| t.0).collect();
        assert_eq!(names.len(), TEMPLATES.len(), "template names are unique");
        assert!(TEMPLATES.len() >= 30 && TEMPLATES.iter().filter(|t| t.1).count() >= 30);
        assert_eq!(templates, names, "every template is produced");
        assert_eq!(digits, (1..=12).collect(), "numbers of 1 to 12 digits");
        assert!(problems.iter().any(|p| p.expression.contains(',')), "thousands separators occur");
        assert!(problems.iter().any(|p| p.item.question.contains("years old")), "distractors occur");
    }

    #[test]
    fn conversations_have_the_chat_format_and_real_tool_results() {
        let convs = conversations(Split::Train, 5, 300, &Mix::default()).unwrap();
        assert_eq!(convs.len(), 300);
        let again = conversations(Split::Train, 5, 300, &Mix::default()).unwrap();
        assert_eq!(convs, again, "seeded");
        let kinds: BTreeMap<String, usize> = convs.iter().fold(BTreeMap::new(), |mut m, c| {
            *m.entry(format!("{:?}", c.kind)).or_default() += 1;
            m
        });
        assert_eq!(kinds.values().sum::<usize>(), 300);
        assert_eq!(kinds["Calculator"], 135);
        assert_eq!(kinds["Search"], 90);
        let calc = tool_schema(&Calculator);
        for c in &convs {
            let v = to_json(c);
            let tools = v["tools"].as_array().unwrap();
            let tool_names: Vec<&str> = tools.iter().map(|t| t["function"]["name"].as_str().unwrap()).collect();
            assert!(tools.iter().all(|t| t["type"] == "function" && t["function"]["parameters"].is_object()));
            if tool_names.contains(&"calculator") {
                assert!(tools.contains(&calc));
            }
            let m = v["messages"].as_array().unwrap();
            assert_eq!(m[0]["role"], "user");
            assert_eq!(m[0]["content"], c.question());
            let last = m.last().unwrap();
            assert_eq!(last["role"], "assistant");
            assert!(last.get("tool_calls").is_none());
            match c.kind {
                Kind::NoTool => {
                    assert_eq!(m.len(), 2);
                    assert!(!last["content"].as_str().unwrap().is_empty());
                }
                Kind::Calculator | Kind::Search => {
                    let name = if c.kind == Kind::Calculator { "calculator" } else { "search" };
                    assert!(tool_names.contains(&name), "the needed tool is offered");
                    assert_eq!(m.len(), 4);
                    assert_eq!(m[1]["role"], "assistant");
                    assert_eq!(m[1]["content"], "");
                    let calls = m[1]["tool_calls"].as_array().unwrap();
                    assert_eq!(calls.len(), 1);
                    assert_eq!(calls[0]["type"], "function");
                    assert_eq!(calls[0]["function"]["name"], name);
                    let args = &calls[0]["function"]["arguments"];
                    assert!(args.is_object());
                    assert_eq!(m[2]["role"], "tool");
                    assert_eq!(m[2]["name"], name);
                    // The tool message is what the real tool returns for the call.
                    let out = m[2]["content"].as_str().unwrap();
                    let final_text = last["content"].as_str().unwrap();
                    if c.kind == Kind::Calculator {
                        assert_eq!(out, Calculator.call(args).unwrap());
                        assert!(final_text.ends_with(&format!("The answer is {out}.")), "{final_text}");
                        assert_eq!(extract_answer(final_text).as_deref(), Some(out));
                    } else {
                        let answer: String =
                            final_text.split(|c: char| !c.is_ascii_digit()).filter(|s| !s.is_empty()).collect();
                        assert!(out.contains(&answer), "{final_text} / {out}");
                        assert!(out.starts_with("[1] "), "{out}");
                    }
                }
            }
        }
    }

    #[test]
    fn calculator_conversations_match_their_items() {
        let mix = Mix { calculator: 1.0, search: 0.0, no_tool: 0.0 };
        let convs = conversations(Split::Eval, 9, 200, &mix).unwrap();
        let items = calculator_items(Split::Eval, 9, 200);
        assert_eq!(convs.len(), items.len());
        for (c, item) in convs.iter().zip(&items) {
            assert_eq!(c.question(), item.question);
            let Turn::Result { content, .. } = &c.turns[2] else { panic!("{:?}", c.turns) };
            assert_eq!(content, &item.answer);
            assert_eq!(extract_answer(c.final_answer()).as_deref(), Some(item.answer.as_str()));
        }
    }

    #[test]
    fn search_answers_are_in_the_tool_output() {
        let mix = Mix { calculator: 0.0, search: 1.0, no_tool: 0.0 };
        let convs = conversations(Split::Eval, 4, 120, &mix).unwrap();
        let facts = search_items(Split::Eval, 4, 120);
        for (c, f) in convs.iter().zip(&facts) {
            assert_eq!(c.question(), f.item.question);
            let Turn::Result { content, .. } = &c.turns[2] else { panic!("{:?}", c.turns) };
            assert!(content.contains(&f.item.answer), "{content}");
            assert!(content.contains(&f.file_name), "{content}");
            assert!(c.final_answer().contains(&f.item.answer), "{}", c.final_answer());
            // The whole document fits in what the tool shows of a passage.
            assert!(f.document.split_whitespace().collect::<Vec<_>>().join(" ").chars().count() <= TOOL_SNIPPET_CHARS);
        }
        // Documents are unique per call, named by kind, and every fact kind occurs.
        let kinds: BTreeSet<&str> = facts.iter().map(|f| f.file_name.split('-').next().unwrap()).collect();
        assert_eq!(kinds, ["lake", "mountain", "river", "school", "town"].into_iter().collect());
    }

    #[test]
    fn written_documents_index_and_answer() {
        let dir = ingot_test_support::temp_dir("tooluse-docs");
        let facts = search_items(Split::Eval, 1, 25);
        write_documents(&facts, &dir.join("docs")).unwrap();
        assert_eq!(dir.list("docs").len(), 25);
        let tool = search_tool(&facts, dir.path()).unwrap();
        for f in &facts {
            // The question itself, as the benchmark's retrieval mode sends it, finds the document.
            let out = tool.call(&json!({"query": f.item.question, "k": 3})).unwrap();
            assert!(out.contains(&f.item.answer), "{}: {out}", f.item.question);
        }
    }

    #[test]
    fn no_tool_subjects_are_distinct_and_split() {
        let subjects = plain_subjects();
        let eval = subjects.iter().filter(|(s, _)| *s == Split::Eval).count();
        assert!(eval * 5 > subjects.len() && eval * 3 < subjects.len(), "{eval} of {}", subjects.len());
        let mut seen = HashSet::new();
        for (_, s) in &subjects {
            assert!(!s.answer.is_empty());
            for q in &s.questions {
                assert!(seen.insert(q.clone()), "asked twice: {q}");
            }
        }
        assert!(plain_pool(Split::Eval).len() >= 100);
    }

    #[test]
    fn mix_is_checked() {
        assert!(Mix { calculator: -1.0, search: 1.0, no_tool: 1.0 }.counts(10).is_err());
        assert!(Mix { calculator: 0.0, search: 0.0, no_tool: 0.0 }.counts(10).is_err());
        assert!(Mix { calculator: f64::NAN, search: 0.0, no_tool: 1.0 }.counts(10).is_err());
        assert_eq!(Mix { calculator: 1.0, search: 1.0, no_tool: 1.0 }.counts(10).unwrap(), (3, 3, 4));
        assert_eq!(Mix { calculator: 1.0, search: 1.0, no_tool: 0.0 }.counts(3).unwrap(), (2, 1, 0));
        assert_eq!(Mix::default().counts(0).unwrap(), (0, 0, 0));
    }
}
