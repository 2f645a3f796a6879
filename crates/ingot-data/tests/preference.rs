//! Preference data in TRL's formats: each side is exactly the SFT encoding of prompt + answer
//! (only the answer trained), the implicit-prompt form finds the shared opening turns, pairs are
//! kept or dropped whole, prompt-only lines are rendered ready for the assistant's turn, and bad
//! lines name the file and line.

use ingot_data::preference::{encode_pair, encode_prompt, load, load_prompts};
use ingot_data::sft::{encode_conversation, Overlong};
use ingot_data::Error;
use ingot_test_support::temp_dir;
use ingot_test_support::tokenizer::ascii_text;
use ingot_tokenizer::{Message, Tokenizer};
use serde_json::{json, Value};

const SMOLLM_TEMPLATE: &str = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}\
{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}\
{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}\
{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

fn char_chat() -> Tokenizer {
    let specials: Vec<String> = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"].map(String::from).to_vec();
    let base = ingot_tokenizer::char_level([ascii_text()], &specials).unwrap();
    let dir = temp_dir("preference-tokenizer");
    base.save(dir.join("tokenizer.json")).unwrap();
    dir.write(
        "tokenizer_config.json",
        json!({"eos_token": "<|im_end|>", "chat_template": SMOLLM_TEMPLATE}).to_string(),
    );
    Tokenizer::from_file(dir.join("tokenizer.json")).unwrap()
}

fn user(text: &str) -> Value {
    json!({"role": "user", "content": text})
}

fn assistant(text: &str) -> Value {
    json!({"role": "assistant", "content": text})
}

/// The trained tokens decoded (special tokens shown).
fn trained_text(tok: &Tokenizer, ids: &[u32], trained: &[bool]) -> String {
    let picked: Vec<u32> = ids.iter().zip(trained).filter(|(_, &t)| t).map(|(&i, _)| i).collect();
    tok.decode(&picked, false).unwrap()
}

#[test]
fn each_side_is_the_sft_encoding_of_prompt_and_answer() {
    let tok = char_chat();
    let prompt = json!([user("Insult my neighbour.")]);
    let (chosen, rejected) =
        (json!([assistant("I won't, but I can help you talk.")]), json!([assistant("Sure: clown.")]));
    let pair =
        encode_pair(&tok, &json!({"prompt": prompt, "chosen": chosen, "rejected": rejected, "margin": 2.5})).unwrap();
    let sft = |answer: &Value| encode_conversation(&tok, &json!({"prompt": prompt, "completion": answer})).unwrap();
    assert_eq!(pair.chosen, sft(&chosen));
    assert_eq!(pair.rejected, sft(&rejected));
    assert_eq!(pair.margin, Some(2.5));
    assert_eq!(trained_text(&tok, &pair.rejected.ids, &pair.rejected.trained), "Sure: clown.<|im_end|>");
    // The prompt's tokens are the same on both sides and trained on neither.
    let untrained = |e: &ingot_data::sft::SftExample| e.trained.iter().take_while(|&&t| !t).count();
    let n = untrained(&pair.chosen);
    assert_eq!(n, untrained(&pair.rejected));
    assert_eq!(pair.chosen.ids[..n], pair.rejected.ids[..n]);

    // The implicit-prompt form gives the same pair.
    let mut full_c = prompt.as_array().unwrap().clone();
    full_c.extend(chosen.as_array().unwrap().clone());
    let mut full_r = prompt.as_array().unwrap().clone();
    full_r.extend(rejected.as_array().unwrap().clone());
    let implicit = encode_pair(&tok, &json!({"chosen": full_c, "rejected": full_r})).unwrap();
    assert_eq!((implicit.chosen, implicit.rejected), (pair.chosen, pair.rejected));

    // Plain text: prompt + answer + EOS, no template.
    let plain = encode_pair(&tok, &json!({"prompt": "Q: 2+2?", "chosen": " 4", "rejected": " 5"})).unwrap();
    assert_eq!(trained_text(&tok, &plain.chosen.ids, &plain.chosen.trained), " 4<|im_end|>");
    assert_eq!(plain.margin, None);
}

#[test]
fn pairs_are_kept_or_dropped_whole_and_errors_name_the_line() {
    let tok = char_chat();
    let dir = temp_dir("preference-load");
    let line = |c: &str, r: &str| {
        json!({"prompt": [user("Hi")], "chosen": [assistant(c)], "rejected": [assistant(r)]}).to_string()
    };
    let long = "x".repeat(200);
    let path =
        dir.write("pairs.jsonl", [line("Hello!", "Go away."), line("Fine.", &long), line("Yes.", "No.")].join("\n"));
    let (pairs, stats) = load(&path, &tok, 120, Overlong::Drop).unwrap();
    assert_eq!(pairs.iter().map(|p| p.line).collect::<Vec<_>>(), vec![1, 3]);
    assert_eq!((stats.pairs, stats.dropped), (2, 1));
    let err = load(&path, &tok, 120, Overlong::Error).unwrap_err();
    assert!(matches!(err, Error::BadJsonLine { line: 2, .. }), "{err}");
    assert!(err.to_string().contains("rejected") && err.to_string().contains("max_len"), "{err}");

    for (text, needle) in [
        ("{\"prompt\": \"a\", \"chosen\": \"b\"}", "\"chosen\" and \"rejected\""),
        ("{\"prompt\": \"a\", \"chosen\": [], \"rejected\": \"c\"}", "all be strings"),
        ("{\"chosen\": \"b\", \"rejected\": \"c\"}", "lists of messages"),
        ("not json", "not JSON"),
        ("{\"prompt\": \"a\", \"chosen\": \"b\", \"rejected\": \"c\", \"margin\": \"big\"}", "margin"),
    ] {
        let path = dir.write("bad.jsonl", format!("{}\n{text}\n", line("a", "b")));
        let err = load(&path, &tok, 500, Overlong::Error).unwrap_err();
        assert!(matches!(err, Error::BadJsonLine { line: 2, .. }), "{text}: {err}");
        assert!(err.to_string().contains(needle) && err.to_string().contains("bad.jsonl"), "{text}: {err}");
    }
    let same = json!({"chosen": [user("Hi"), assistant("a")], "rejected": [user("Hi"), assistant("a")]});
    assert!(encode_pair(&tok, &same).unwrap_err().to_string().contains("same conversation"));
}

#[test]
fn prompts_are_rendered_ready_for_the_assistant() {
    let tok = char_chat();
    let ids = encode_prompt(&tok, &json!({"prompt": [user("Hello")]})).unwrap();
    let expected = tok.chat_template().unwrap().render_prompt(&[Message::user("Hello")], None, true).unwrap();
    assert_eq!(ids, tok.encode_prompt(&expected, false).unwrap());
    assert!(tok.decode(&ids, false).unwrap().ends_with("<|im_start|>assistant\n"));
    assert_eq!(encode_prompt(&tok, &json!({"prompt": "plain"})).unwrap(), tok.encode("plain", true).unwrap());

    let dir = temp_dir("preference-prompts");
    let path = dir.write("p.jsonl", format!("{}\n\n{}\n", json!({"prompt": "a"}), json!({"prompt": "b".repeat(50)})));
    let err = load_prompts(&path, &tok, 20).unwrap_err();
    assert!(matches!(err, Error::BadJsonLine { line: 3, .. }), "{err}");
    assert_eq!(load_prompts(&path, &tok, 100).unwrap().len(), 2);
    let path = dir.write("q.jsonl", "{\"question\": \"a\"}\n");
    assert!(load_prompts(&path, &tok, 100).unwrap_err().to_string().contains("no \"prompt\""));
}
