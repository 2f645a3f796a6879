//! Seeded generators of held-out test items for the utilization features: multi-step arithmetic
//! word problems, and facts that exist only in a generated folder of documents. Items are made
//! when the benchmark runs, from a seed, so no code was written against them.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// A question with its exact answer.
#[derive(Clone, Debug, PartialEq)]
pub struct Item {
    pub question: String,
    pub answer: String,
}

const ITEMS: &[(&str, &str)] =
    &[("boxes", "pens"), ("crates", "apples"), ("shelves", "books"), ("bags", "marbles"), ("trays", "cookies")];
const NAMES: &[&str] = &["Mara", "Tomas", "Ines", "Kofi", "Yuki", "Ravi", "Lena", "Omar"];

/// `n` three-step word problems: a × b, minus c, split among d people (answers are integers).
pub fn arithmetic_problems(n: usize, seed: u64) -> Vec<Item> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            let (container, thing) = ITEMS[rng.random_range(0..ITEMS.len())];
            let name = NAMES[rng.random_range(0..NAMES.len())];
            let d = rng.random_range(2..9u64);
            let a = rng.random_range(12..60u64);
            let b = rng.random_range(11..48u64);
            // Choose c so that a·b − c divides evenly by d.
            let total = a * b;
            let mut c = rng.random_range(10..total / 3);
            c += (total - c) % d;
            let answer = (total - c) / d;
            Item {
                question: format!(
                    "{name} has {a} {container} with {b} {thing} in each. {name} gives away {c} {thing}, then shares the rest equally among {d} friends. How many {thing} does each friend get?"
                ),
                answer: answer.to_string(),
            }
        })
        .collect()
}

/// A made-up fact about a made-up place, and a question whose answer is only in that fact.
#[derive(Clone, Debug)]
pub struct Fact {
    pub document: String,
    pub file_name: String,
    pub item: Item,
}

const SYLLABLES: &[&str] = &["ka", "lo", "mer", "vi", "tan", "sul", "dra", "nek", "oru", "pel", "zan", "qui"];

fn invented_name(rng: &mut StdRng) -> String {
    let n = rng.random_range(2..4);
    let s: String = (0..n).map(|_| SYLLABLES[rng.random_range(0..SYLLABLES.len())]).collect();
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => s,
    }
}

/// `n` documents, each stating an invented town's founding year and population among filler
/// sentences, with one question per document.
pub fn local_facts(n: usize, seed: u64) -> Vec<Fact> {
    let mut rng = StdRng::seed_from_u64(seed);
    let filler = [
        "The town is known for its covered market and narrow streets.",
        "Visitors often arrive by the old river ferry.",
        "Local bakeries sell a dark rye bread flavoured with caraway.",
        "A festival with lanterns is held every autumn.",
        "The surrounding hills are planted with vineyards and orchards.",
    ];
    (0..n)
        .map(|i| {
            let town = invented_name(&mut rng);
            let river = invented_name(&mut rng);
            let year = rng.random_range(1100..1900u32);
            let population = rng.random_range(1000..90000u32);
            let mut sentences: Vec<String> = filler.iter().map(|s| s.to_string()).collect();
            sentences.insert(
                rng.random_range(0..sentences.len()),
                format!("{town} was founded in {year} on the banks of the {river} river."),
            );
            sentences.insert(
                rng.random_range(0..sentences.len()),
                format!("Today {town} has a population of {population} people."),
            );
            let (question, answer) = if rng.random_bool(0.5) {
                (format!("In what year was the town of {town} founded?"), year.to_string())
            } else {
                (format!("What is the population of the town of {town}?"), population.to_string())
            };
            Fact {
                document: format!("# {town}\n\n{}\n", sentences.join(" ")),
                file_name: format!("town-{i:03}.md"),
                item: Item { question, answer },
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problems_are_seeded_and_answers_exact() {
        let a = arithmetic_problems(50, 1);
        assert_eq!(a, arithmetic_problems(50, 1));
        assert_ne!(a, arithmetic_problems(50, 2));
        for item in &a {
            let nums: Vec<u64> =
                item.question.split(|c: char| !c.is_ascii_digit()).filter_map(|s| s.parse().ok()).collect();
            let (x, y, c, d) = (nums[0], nums[1], nums[2], nums[3]);
            assert_eq!((x * y - c) % d, 0, "{}", item.question);
            assert_eq!(((x * y - c) / d).to_string(), item.answer);
        }
    }

    #[test]
    fn facts_contain_their_answers() {
        for f in local_facts(20, 3) {
            assert!(f.document.contains(&f.item.answer), "{}", f.document);
        }
    }
}
