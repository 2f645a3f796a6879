//! Calculator items: arithmetic questions of 1 to 4 operations from the question templates
//! ([`template_names`]: direct questions and word problems, some with a distractor number), each
//! with the one calculator expression that answers it and the sentence that states the result.

use std::collections::HashSet;

use rand::rngs::StdRng;
use rand::Rng;

use super::{pick, stream, Split, CALC_STREAM};
use crate::problems::Item;

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

#[cfg(test)]
mod tests {
    use super::*;
    use ingot_tools::{Calculator, Tool};
    use serde_json::json;
    use std::collections::BTreeSet;

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
}
