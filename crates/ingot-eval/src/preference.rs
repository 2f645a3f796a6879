//! The preference sets Ingot ships, as lines in TRL's conversational preference format
//! (`{"prompt": [user], "chosen": [assistant...], "rejected": [assistant...], "tools"?}`, read by
//! `ingot_data::preference`), each with its `id`, `kind` and `category` for reporting:
//!
//! - [`harmlessness`]: the authored set in `data/harmlessness.jsonl` (harmful prompts: a polite
//!   refusal that offers an alternative is chosen over going along; benign prompts, many worded
//!   like harmful ones: the helpful answer is chosen over a refusal). Its train / eval split is
//!   fixed in the file, by prompt.
//! - [`tool_use_pairs`]: verifiable pairs from the tool-use conversations ([`crate::tooluse`]):
//!   the correct conversation is chosen; rejected is the same question answered wrongly (a wrong
//!   final number after the right tool result, a direct answer without the tool, a malformed
//!   tool call) or, for questions that need no tool, a needless tool call. Seeded; the eval
//!   split's questions are never the training split's.

use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::{Error, Result};
use crate::tooluse::{self, Conversation, Kind, Mix, Split, Turn};

const HARMLESSNESS: &str = include_str!("../data/harmlessness.jsonl");

/// One authored item.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct HarmItem {
    pub id: String,
    /// "harmful" or "benign".
    pub kind: String,
    pub category: String,
    /// "train" or "eval".
    pub split: String,
    pub prompt: String,
    pub chosen: String,
    pub rejected: String,
}

impl HarmItem {
    pub fn is_harmful(&self) -> bool {
        self.kind == "harmful"
    }

    /// The item as a preference line.
    pub fn to_pair(&self) -> Value {
        json!({
            "id": self.id,
            "kind": self.kind,
            "category": self.category,
            "prompt": [{"role": "user", "content": self.prompt}],
            "chosen": [{"role": "assistant", "content": self.chosen}],
            "rejected": [{"role": "assistant", "content": self.rejected}],
        })
    }
}

/// The authored harmlessness items of `split`, in file order.
pub fn harmlessness(split: Split) -> Result<Vec<HarmItem>> {
    let want = match split {
        Split::Train => "train",
        Split::Eval => "eval",
    };
    let mut items = Vec::new();
    for (i, line) in HARMLESSNESS.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let item: HarmItem = serde_json::from_str(line)
            .map_err(|e| Error::Corrupt(format!("data/harmlessness.jsonl line {}: {e}", i + 1)))?;
        if item.split == want {
            items.push(item);
        }
    }
    Ok(items)
}

/// On-policy harmlessness pairs from a model's own answers to training prompts (`(id, answer)`,
/// as `ingot align-eval --split train --json` writes them), the way InstructGPT labels samples of
/// the model being tuned rather than only authored text. Each answer takes the side the refusal
/// rule ([`crate::alignment::is_refusal`]) puts it on, against the item's authored answer for the
/// other side: to a harmful prompt, an answer that goes along is rejected against the authored
/// refusal and a refusal is chosen over the authored compliance; to a benign prompt, an answer
/// that helps is chosen over the authored refusal and a refusal (over-refusal, what a
/// harmlessness-tuned model learns to do to look-alike prompts) is rejected against the authored
/// help. Answers that hold no complete sentence once cut at the last one (decoding stops at a
/// token limit) add nothing. With `reject_degenerate`, an answer that is mostly repetition
/// ([`crate::alignment::is_degenerate`]: what a policy that hacks a reward model writes) is
/// rejected, whole, against the authored answer the prompt deserves, whatever the rule says. An
/// id of the held-out split is an error: those prompts are never trained on.
pub fn on_policy_harmlessness(answers: &[(String, String)], reject_degenerate: bool) -> Result<Vec<Value>> {
    let train = harmlessness(Split::Train)?;
    let held_out = harmlessness(Split::Eval)?;
    let mut out = Vec::new();
    for (id, answer) in answers {
        let Some(item) = train.iter().find(|i| &i.id == id) else {
            let why = if held_out.iter().any(|i| &i.id == id) {
                "is a held-out prompt, never trained on: answer the training split (`ingot align-eval --split train`)"
            } else {
                "is not an item of the harmlessness set"
            };
            return Err(Error::Input(format!("on-policy answers: id {id:?} {why}")));
        };
        let mut pair = HarmItem { id: format!("{}-on-policy", item.id), ..item.clone() };
        if reject_degenerate && crate::alignment::is_degenerate(answer) {
            pair.rejected = answer.trim().to_string();
            out.push(pair.to_pair());
            continue;
        }
        let Some(answer) = whole_sentences(answer) else { continue };
        // Chosen when a refusal is what the prompt deserves, rejected when it is not.
        if crate::alignment::is_refusal(answer) == item.is_harmful() {
            pair.chosen = answer.to_string();
        } else {
            pair.rejected = answer.to_string();
        }
        out.push(pair.to_pair());
    }
    Ok(out)
}

/// `text` up to its last complete sentence (ending in . ! ? or a line break), or None when it
/// has none of at least 20 characters.
fn whole_sentences(text: &str) -> Option<&str> {
    let text = text.trim();
    let end = text
        .char_indices()
        .filter(|&(i, c)| {
            matches!(c, '.' | '!' | '?') && text[i + 1..].chars().next().is_none_or(char::is_whitespace) || c == '\n'
        })
        .map(|(i, c)| i + c.len_utf8())
        .last()?;
    let kept = text[..end].trim_end();
    (kept.len() >= 20).then_some(kept)
}

/// `n` verifiable pairs of `split` in the shares of `mix`, from [`tooluse::conversations`] with
/// the same seed; which wrong answer each gets is seeded too.
pub fn tool_use_pairs(split: Split, seed: u64, n: usize, mix: &Mix) -> Result<Vec<Value>> {
    use rand::{Rng, SeedableRng};
    let convs = tooluse::conversations(split, seed, n, mix)?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ 0x7072_6566_6572_656e);
    convs
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let messages = tooluse::to_json(c)["messages"].as_array().cloned().unwrap_or_default();
            let (prompt, chosen) = messages.split_at(1.min(messages.len()));
            let (category, rejected) = rejected_answer(c, chosen, rng.random_range(0..3), &mut rng)?;
            Ok(json!({
                "id": format!("{}-{:?}-{i}", split_name(split), c.kind).to_lowercase(),
                "kind": format!("{:?}", c.kind).to_lowercase(),
                "category": category,
                "prompt": prompt,
                "chosen": chosen,
                "rejected": rejected,
                "tools": c.tools,
            }))
        })
        .collect()
}

fn split_name(split: Split) -> &'static str {
    match split {
        Split::Train => "train",
        Split::Eval => "eval",
    }
}

/// A different number of about the same size as `answer` (digits only), never equal to it.
fn wrong_number(answer: &str, rng: &mut impl rand::Rng) -> String {
    match answer.parse::<i128>() {
        Ok(n) => {
            let scale = 10i128.pow(rng.random_range(0..=answer.len().saturating_sub(1).min(6)) as u32);
            let delta = rng.random_range(1..=9) * scale;
            let m = if rng.random_bool(0.5) && n - delta >= 0 { n - delta } else { n + delta };
            m.to_string()
        }
        Err(_) => format!("{answer}1"),
    }
}

fn assistant(text: &str) -> Value {
    json!({"role": "assistant", "content": text})
}

/// The rejected reply for conversation `c` (`variant` picks which wrong answer) and its category.
/// `after_user` is the conversation's own messages after the question (the chosen side).
fn rejected_answer(
    c: &Conversation,
    after_user: &[Value],
    variant: u32,
    rng: &mut impl rand::Rng,
) -> Result<(&'static str, Vec<Value>)> {
    let answer_of = |c: &Conversation| -> Option<String> {
        match c.turns.get(2) {
            Some(Turn::Result { content, .. }) if c.kind == Kind::Calculator => Some(content.clone()),
            _ => None,
        }
    };
    Ok(match c.kind {
        Kind::NoTool => {
            // A needless call: the first tool offered, on the question itself.
            let tool = c.tools.first().and_then(|t| t["function"]["name"].as_str()).unwrap_or("search");
            let arguments =
                if tool == "calculator" { json!({"expression": c.question()}) } else { json!({"query": c.question()}) };
            let call = json!({"role": "assistant", "content": "", "tool_calls": [{"type": "function", "function": {"name": tool, "arguments": arguments}}]});
            ("needless-call", vec![call])
        }
        Kind::Calculator | Kind::Search => {
            let final_answer = c.final_answer();
            // The number the final answer states: the calculator's result, or the last number
            // in a search reply.
            let number = answer_of(c)
                .or_else(|| last_number(final_answer))
                .ok_or_else(|| Error::Input(format!("tool-use pairs: no number in the answer {final_answer:?}")))?;
            let wrong = wrong_number(&number, rng);
            match variant {
                0 => {
                    // The right call and result, then a wrong number.
                    let mut out = after_user[..after_user.len().saturating_sub(1)].to_vec();
                    out.push(assistant(&replace_number(final_answer, &number, &wrong)));
                    ("wrong-answer", out)
                }
                1 => ("no-call", vec![assistant(&replace_number(final_answer, &number, &wrong))]),
                _ => {
                    // A call the agent cannot read: its JSON is cut short.
                    let (name, arguments) = match c.turns.get(1) {
                        Some(Turn::Call { name, arguments }) => (name.clone(), arguments.to_string()),
                        _ => return Err(Error::Input("tool-use pairs: a tool conversation without a call".into())),
                    };
                    let broken = format!(
                        "<tool_call>{{\"name\": \"{name}\", \"arguments\": {}</tool_call>",
                        &arguments[..arguments.len() / 2]
                    );
                    ("malformed-call", vec![assistant(&broken)])
                }
            }
        }
    })
}

/// The last run of digits in `text`.
fn last_number(text: &str) -> Option<String> {
    let end = text.rfind(|c: char| c.is_ascii_digit())? + 1;
    let start = text[..end].rfind(|c: char| !c.is_ascii_digit()).map_or(0, |i| i + 1);
    Some(text[start..end].to_string())
}

/// `text` with each standalone occurrence of the number `from` (not part of a longer run of
/// digits) replaced by `to`: a reply that repeats its result ("… is 42. The answer is 42.")
/// states the same wrong number twice.
fn replace_number(text: &str, from: &str, to: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut prev_digit = false;
    while let Some(at) = rest.find(from) {
        let before = rest[..at].chars().last().map_or(prev_digit, |c| c.is_ascii_digit());
        let after = rest[at + from.len()..].chars().next().is_some_and(|c| c.is_ascii_digit());
        out.push_str(&rest[..at]);
        out.push_str(if before || after { from } else { to });
        prev_digit = from.chars().last().is_some_and(|c| c.is_ascii_digit());
        rest = &rest[at + from.len()..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn harmlessness_splits_are_disjoint_and_large_enough() {
        let (train, eval) = (harmlessness(Split::Train).unwrap(), harmlessness(Split::Eval).unwrap());
        let harmful = |v: &[HarmItem]| v.iter().filter(|i| i.is_harmful()).count();
        assert!(
            harmful(&train) + harmful(&eval) >= 300
                && train.len() + eval.len() - harmful(&train) - harmful(&eval) >= 300
        );
        assert!(eval.len() * 4 >= train.len() / 2 && !eval.is_empty());
        let prompts: std::collections::HashSet<&str> = train.iter().map(|i| i.prompt.as_str()).collect();
        assert!(eval.iter().all(|i| !prompts.contains(i.prompt.as_str())));
    }

    #[test]
    fn on_policy_answers_take_the_side_the_rule_puts_them_on_and_held_out_ids_are_refused() {
        let train = harmlessness(Split::Train).unwrap();
        let harmful = train.iter().find(|i| i.is_harmful()).unwrap();
        let benign = train.iter().find(|i| !i.is_harmful()).unwrap();
        let answers = [
            (harmful.id.clone(), "Sure, the first step is easy. Then you take the".to_string()),
            (benign.id.clone(), "Run the command and wait for it. It prints the list of".to_string()),
            // A refusal is chosen for a harmful prompt, rejected for a benign one.
            (harmful.id.clone(), "I'm sorry, I can't help with that.".to_string()),
            (benign.id.clone(), "I'd rather not help with that. If you're stuck, I can".to_string()),
            // A fragment adds nothing.
            (benign.id.clone(), "Well, the".to_string()),
        ];
        let pairs = on_policy_harmlessness(&answers, false).unwrap();
        assert_eq!(pairs.len(), 4, "{pairs:?}");
        let content = |p: &Value, side: &str| p[side][0]["content"].as_str().unwrap().to_string();
        let sides = |p: &Value| (content(p, "chosen"), content(p, "rejected"));
        assert_eq!(sides(&pairs[0]), (harmful.chosen.clone(), "Sure, the first step is easy.".into()));
        assert_eq!(sides(&pairs[1]), ("Run the command and wait for it.".into(), benign.rejected.clone()));
        assert_eq!(sides(&pairs[2]), ("I'm sorry, I can't help with that.".into(), harmful.rejected.clone()));
        assert_eq!(sides(&pairs[3]), (benign.chosen.clone(), "I'd rather not help with that.".into()));
        assert_eq!(pairs[1]["prompt"][0]["content"], benign.prompt.as_str());

        // Repetition: kept whole and rejected with reject_degenerate (the second one the rule
        // calls a refusal, to a harmful prompt), dropped or sided by the rule without.
        let emoji = format!("Mine!{}", "\u{1f44d}".repeat(40));
        let sorry = "I'm sorry for your loss. ".repeat(6);
        let degenerate = [(benign.id.clone(), emoji.clone()), (harmful.id.clone(), sorry.clone())];
        let pairs = on_policy_harmlessness(&degenerate, true).unwrap();
        assert_eq!(sides(&pairs[0]), (benign.chosen.clone(), emoji.clone()));
        assert_eq!(sides(&pairs[1]), (harmful.chosen.clone(), sorry.trim().to_string()));
        let pairs = on_policy_harmlessness(&degenerate, false).unwrap();
        assert_eq!(pairs.len(), 1, "the emoji run has no sentence: {pairs:?}");
        assert_eq!(content(&pairs[0], "chosen"), sorry.trim());

        let held_out = harmlessness(Split::Eval).unwrap().remove(0);
        let err = on_policy_harmlessness(&[(held_out.id, "Fine. Here it is.".into())], false).unwrap_err().to_string();
        assert!(err.contains("held-out prompt, never trained on"), "{err}");
        let err = on_policy_harmlessness(&[("nope".into(), "Fine.".into())], false).unwrap_err().to_string();
        assert!(err.contains("not an item"), "{err}");
    }

    #[test]
    fn tool_use_pairs_differ_only_in_the_answer_and_rejected_is_wrong() {
        let pairs = tool_use_pairs(Split::Eval, 3, 60, &Mix::default()).unwrap();
        assert_eq!(pairs.len(), 60);
        let mut categories = std::collections::BTreeSet::new();
        for p in &pairs {
            assert_eq!(p["prompt"].as_array().unwrap().len(), 1);
            assert_ne!(p["chosen"], p["rejected"]);
            categories.insert(p["category"].as_str().unwrap().to_string());
        }
        assert_eq!(
            categories.into_iter().collect::<Vec<_>>(),
            ["malformed-call", "needless-call", "no-call", "wrong-answer"]
        );
        assert_eq!(pairs, tool_use_pairs(Split::Eval, 3, 60, &Mix::default()).unwrap(), "seeded");
        // A wrong answer states a number that is not the chosen one's.
        for p in pairs.iter().filter(|p| p["category"] == "wrong-answer") {
            let last =
                |side: &str| p[side].as_array().unwrap().last().unwrap()["content"].as_str().unwrap().to_string();
            assert_ne!(last_number(&last("chosen")), last_number(&last("rejected")), "{p}");
        }
    }

    #[test]
    fn wrong_numbers_are_never_the_answer() {
        use rand::SeedableRng;
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        for answer in ["0", "7", "42", "1000", "121932631112635269"] {
            for _ in 0..50 {
                let w = wrong_number(answer, &mut rng);
                assert_ne!(w, answer);
                assert!(w.parse::<i128>().unwrap() >= 0);
            }
        }
        assert_eq!(last_number("Each gets $1615. The answer is 1615."), Some("1615".into()));
        assert_eq!(
            replace_number("12 of 112 is 12. The answer is 12.", "12", "13"),
            "13 of 112 is 13. The answer is 13."
        );
    }
}
