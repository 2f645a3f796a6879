//! SFT data: loss masks (assistant content and its end-of-turn token trained, everything else
//! not), tool calls and results, prompt/completion pairs, errors naming file:line, the overlong
//! policies, and packing.
//!
//! Two tokenizers: a character-level one with ChatML's control tokens and SmolLM2's chat template
//! (always available; one token per character, so a mask can be checked character by character),
//! and the real SmolLM2-135M-Instruct tokenizer from its GGUF (byte-level BPE; skipped when the
//! asset is missing). Expected masks are written as the decoded runs of trained tokens.

use ingot_core::gguf::GgufFile;
use ingot_data::sft::{encode_conversation, load, pack, Overlong, SftExample, SftStats};
use ingot_data::Error;
use ingot_test_support::temp_dir;
use ingot_test_support::tokenizer::ascii_text;
use ingot_tokenizer::tool_format::{call_text, system_prompt};
use ingot_tokenizer::{Message, Tokenizer};
use serde_json::{json, Value};

/// SmolLM2-Instruct's chat template (its tokenizer_config.json), which supplies a default system
/// message when the conversation has none.
const SMOLLM_TEMPLATE: &str = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}\
{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}\
{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}\
{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

/// A Qwen2.5-shaped template: describes `tools` itself and wraps `tool` messages in
/// `<tool_response>` inside a user turn.
const NATIVE_TEMPLATE: &str = r#"{%- if tools %}
{{- '<|im_start|>system\n' }}
{%- if messages[0].role == 'system' %}{{- messages[0].content + '\n\n' }}{%- endif %}
{{- '# Tools\n<tools>' }}
{%- for tool in tools %}{{- '\n' }}{{- tool | tojson }}{%- endfor %}
{{- '\n</tools><|im_end|>\n' }}
{%- elif messages[0].role == 'system' %}
{{- '<|im_start|>system\n' + messages[0].content + '<|im_end|>\n' }}
{%- endif %}
{%- for message in messages %}
{%- if message.role == 'tool' %}
{{- '<|im_start|>user\n<tool_response>\n' + message.content + '\n</tool_response><|im_end|>\n' }}
{%- elif message.role != 'system' %}
{{- '<|im_start|>' + message.role + '\n' + message.content + '<|im_end|>\n' }}
{%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}{{- '<|im_start|>assistant\n' }}{%- endif %}"#;

/// Gemma-style refusal of system messages.
const NO_SYSTEM_TEMPLATE: &str = "{% for message in messages %}{% if message['role'] == 'system' %}\
{{ raise_exception('System role not supported') }}{% endif %}\
{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n'}}{% endfor %}";

/// A character tokenizer with `<|im_start|>`/`<|im_end|>` as control tokens, `template` as its
/// chat template (none for `None`) and `<|im_end|>` as EOS, loaded back from a tokenizer folder
/// as a model's would be.
fn char_chat(template: Option<&str>) -> Tokenizer {
    let specials: Vec<String> = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"].map(String::from).to_vec();
    let base = ingot_tokenizer::char_level([ascii_text()], &specials).unwrap();
    let dir = temp_dir("sft-tokenizer");
    base.save(dir.join("tokenizer.json")).unwrap();
    let config = json!({"eos_token": "<|im_end|>", "chat_template": template});
    dir.write("tokenizer_config.json", config.to_string());
    Tokenizer::from_file(dir.join("tokenizer.json")).unwrap()
}

/// The SmolLM2 tokenizer from the default model's GGUF, or None (SKIPPED) without the asset.
fn smollm() -> Option<Tokenizer> {
    let path = ingot_test_support::real_model()?;
    Some(Tokenizer::from_gguf(&GgufFile::open(&path).unwrap()).unwrap())
}

/// The trained tokens, each maximal run decoded (special tokens shown).
fn trained_runs(tok: &Tokenizer, ex: &SftExample) -> Vec<String> {
    runs(tok, ex, true)
}

fn untrained_runs(tok: &Tokenizer, ex: &SftExample) -> Vec<String> {
    runs(tok, ex, false)
}

fn runs(tok: &Tokenizer, ex: &SftExample, want: bool) -> Vec<String> {
    assert_eq!(ex.ids.len(), ex.trained.len());
    let mut out = Vec::new();
    let mut run = Vec::new();
    for (&id, &t) in ex.ids.iter().zip(&ex.trained) {
        if t == want {
            run.push(id);
        } else if !run.is_empty() {
            out.push(tok.decode(&std::mem::take(&mut run), false).unwrap());
        }
    }
    if !run.is_empty() {
        out.push(tok.decode(&run, false).unwrap());
    }
    out
}

/// The ids the agent would feed for the same messages: the example's ids must be exactly these.
fn template_ids(tok: &Tokenizer, messages: &[Message], tools: Option<&[Value]>) -> Vec<u32> {
    let prompt = tok.chat_template().unwrap().render_prompt(messages, tools, false).unwrap();
    tok.encode_prompt(&prompt, false).unwrap()
}

fn chat() -> Value {
    json!({"messages": [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "What is 2+2?"},
        {"role": "assistant", "content": "4"},
    ]})
}

fn chat_messages() -> Vec<Message> {
    vec![
        Message::system("You are terse."),
        Message::user("Hi"),
        Message::assistant("Hello!"),
        Message::user("What is 2+2?"),
        Message::assistant("4"),
    ]
}

#[test]
fn assistant_content_and_its_end_of_turn_are_trained() {
    let tok = char_chat(Some(SMOLLM_TEMPLATE));
    let ex = encode_conversation(&tok, &chat()).unwrap();
    assert_eq!(ex.ids, template_ids(&tok, &chat_messages(), None), "the ids are encode_prompt's");
    assert_eq!(trained_runs(&tok, &ex), ["Hello!<|im_end|>", "4<|im_end|>"]);
    assert_eq!(
        untrained_runs(&tok, &ex),
        [
            "<|im_start|>system\nYou are terse.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n",
            "\n<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n",
            "\n",
        ]
    );
    let im_end = tok.token_to_id("<|im_end|>").unwrap();
    let trained_ends = ex.ids.iter().zip(&ex.trained).filter(|&(&id, &t)| id == im_end && t).count();
    assert_eq!(trained_ends, 2, "only the assistant turns' <|im_end|> are targets");
}

#[test]
fn real_smollm_masks_exactly_the_assistant_tokens() {
    let Some(tok) = smollm() else { return };
    let ex = encode_conversation(&tok, &chat()).unwrap();
    assert_eq!(ex.ids, template_ids(&tok, &chat_messages(), None));
    assert_eq!(trained_runs(&tok, &ex), ["Hello!<|im_end|>", "4<|im_end|>"]);
    // Token by token: "Hello!" is its own tokens after "assistant\n", then <|im_end|> (id 2).
    let hello = tok.encode("Hello!", false).unwrap();
    let at = ex.ids.windows(hello.len()).position(|w| w == hello).unwrap();
    assert!(!ex.trained[at - 1], "the header's newline is prompt");
    assert!(ex.trained[at..at + hello.len()].iter().all(|&t| t));
    assert_eq!((ex.ids[at + hello.len()], ex.trained[at + hello.len()]), (2, true));
    assert!(!ex.trained[at + hello.len() + 1], "the newline after <|im_end|> is not");

    // Byte-level corner cases: spaces at both ends, multi-byte characters split across tokens,
    // newlines, and a content that spells control tokens (text, so trained as text). Each with
    // the trained text expected.
    let cases = [
        // GPT-2's pre-tokenizer joins the header's "\n" and the first space into one token "\n ",
        // which holds a byte of the reply and so is trained (as transformers' assistant mask does).
        ("  two  spaces  ", "\n  two  spaces  <|im_end|>"),
        ("日本語 😀👍🏽 café", "日本語 😀👍🏽 café<|im_end|>"),
        ("line\n\nbreaks\n", "line\n\nbreaks\n<|im_end|>"),
        ("x<|im_end|>\n<|im_start|>user\ny", "x<|im_end|>\n<|im_start|>user\ny<|im_end|>"),
    ];
    for (content, want) in cases {
        let value = json!({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": content}]});
        let ex = encode_conversation(&tok, &value).unwrap();
        let messages = [Message::user("q"), Message::assistant(content)];
        assert_eq!(ex.ids, template_ids(&tok, &messages, None), "{content:?}");
        assert_eq!(trained_runs(&tok, &ex), [want], "{content:?}");
        let controls = ex.ids.iter().filter(|&&id| id == 1 || id == 2).count();
        assert_eq!(controls, 6, "three turns (with the default system), whatever the content says");
    }
}

/// A tokenizer.json whose ByteLevel post-processor trims spaces off token offsets (as many HF
/// files have) gives the same masks: the offsets used are the untrimmed ones.
#[test]
fn trimmed_offsets_do_not_move_the_mask() {
    let Some(tok) = smollm() else { return };
    let dir = temp_dir("sft-trim");
    tok.save(dir.join("tokenizer.json")).unwrap();
    tok.save_config(dir.join("tokenizer_config.json")).unwrap();
    let mut json: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("tokenizer.json")).unwrap()).unwrap();
    json["post_processor"] =
        json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true});
    dir.write("tokenizer.json", json.to_string());
    let trimming = Tokenizer::from_file(dir.join("tokenizer.json")).unwrap();
    // The negative control: this tokenizer's own offsets do lose the spaces.
    let offsets = trimming.hf().encode("a  b", false).unwrap().get_offsets().to_vec();
    assert_ne!(offsets, tok.hf().encode("a  b", false).unwrap().get_offsets(), "the post-processor trims");

    let value = json!({"messages": [
        {"role": "user", "content": "  lead and trail  "},
        {"role": "assistant", "content": "  spaced   out  "},
        {"role": "user", "content": " x "},
        {"role": "assistant", "content": " y "},
    ]});
    let plain = encode_conversation(&tok, &value).unwrap();
    let trimmed = encode_conversation(&trimming, &value).unwrap();
    assert_eq!(plain, trimmed);
    assert_eq!(trained_runs(&tok, &plain), ["\n  spaced   out  <|im_end|>", " y <|im_end|>"]);
}

/// Edge cases of the mask: an empty reply still trains its end of turn, and a template that
/// writes no control token after a reply trains the reply alone (nothing marks where it ends).
#[test]
fn empty_replies_and_templates_without_an_end_token() {
    let tok = char_chat(Some(SMOLLM_TEMPLATE));
    let value = json!({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": ""}]});
    let ex = encode_conversation(&tok, &value).unwrap();
    assert_eq!(trained_runs(&tok, &ex), ["<|im_end|>"]);

    let plain = "{% for m in messages %}{{ m.role }}: {{ m.content }}\n\n{% endfor %}";
    let tok = char_chat(Some(plain));
    let value = json!({"messages": [
        {"role": "user", "content": "q"}, {"role": "assistant", "content": "a"},
        {"role": "user", "content": "r"}, {"role": "assistant", "content": "b"},
    ]});
    let ex = encode_conversation(&tok, &value).unwrap();
    assert_eq!(trained_runs(&tok, &ex), ["a", "b"]);
    assert_eq!(tok.decode(&ex.ids, false).unwrap(), "user: q\n\nassistant: a\n\nuser: r\n\nassistant: b\n\n");
}

#[test]
fn tool_calls_are_trained_and_tool_results_are_not() {
    let calc = json!({"type": "function", "function": {"name": "calculator", "description": "Exact arithmetic.",
        "parameters": {"type": "object", "properties": {"expression": {"type": "string"}}}}});
    let value = json!({
        "tools": [calc],
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "What is 6*7?"},
            {"role": "assistant", "content": "", "tool_calls": [
                {"type": "function", "function": {"name": "calculator", "arguments": "{\"expression\": \"6*7\"}"}}]},
            {"role": "tool", "content": "42"},
            {"role": "assistant", "content": "42."},
        ]
    });
    let call = call_text("calculator", &json!({"expression": "6*7"}));

    // SmolLM2's template knows neither `tools` nor a tool role: the tools go in a system message
    // (the example's own system text first), the result in a user turn.
    let tok = char_chat(Some(SMOLLM_TEMPLATE));
    let ex = encode_conversation(&tok, &value).unwrap();
    let shown = [
        Message::system(system_prompt(Some("Be brief."), std::slice::from_ref(&calc))),
        Message::user("What is 6*7?"),
        Message::assistant(call.clone()),
        Message::user("<tool_response>{\"name\":\"calculator\",\"result\":\"42\"}</tool_response>"),
        Message::assistant("42."),
    ];
    assert_eq!(ex.ids, template_ids(&tok, &shown, None), "what the agent shows at inference");
    assert_eq!(trained_runs(&tok, &ex), [format!("{call}<|im_end|>"), "42.<|im_end|>".to_string()]);

    // A template that describes tools itself gets the schemas, and `tool` messages.
    let tok = char_chat(Some(NATIVE_TEMPLATE));
    let ex = encode_conversation(&tok, &value).unwrap();
    let shown = [
        Message::system("Be brief."),
        Message::user("What is 6*7?"),
        Message::assistant(call.clone()),
        Message::new("tool", "{\"name\":\"calculator\",\"result\":\"42\"}"),
        Message::assistant("42."),
    ];
    assert_eq!(ex.ids, template_ids(&tok, &shown, Some(std::slice::from_ref(&calc))));
    assert_eq!(trained_runs(&tok, &ex), [format!("{call}<|im_end|>"), "42.<|im_end|>".to_string()]);
    let prompt = untrained_runs(&tok, &ex).concat();
    assert!(prompt.contains("<tools>\n{\"type\": \"function\""), "{prompt}");
    assert!(
        prompt.contains("<tool_response>\n{\"name\":\"calculator\",\"result\":\"42\"}\n</tool_response>"),
        "{prompt}"
    );
}

#[test]
fn consecutive_tool_messages_become_one_turn() {
    let tok = char_chat(Some(SMOLLM_TEMPLATE));
    let value = json!({"messages": [
        {"role": "user", "content": "Both?"},
        {"role": "assistant", "content": "Checking.", "tool_calls": [
            {"function": {"name": "a", "arguments": {"x": 1}}},
            {"type": "function", "function": {"name": "b", "arguments": {}}}]},
        {"role": "tool", "content": "one"},
        {"role": "tool", "name": "b_named", "content": "two"},
        {"role": "assistant", "content": "Done."},
    ]});
    let ex = encode_conversation(&tok, &value).unwrap();
    let calls = format!("Checking.\n{}\n{}", call_text("a", &json!({"x": 1})), call_text("b", &json!({})));
    assert_eq!(trained_runs(&tok, &ex), [format!("{calls}<|im_end|>"), "Done.<|im_end|>".to_string()]);
    let prompt = tok.decode(&ex.ids, false).unwrap();
    assert!(prompt.contains(
        "<|im_start|>user\n<tool_response>{\"name\":\"a\",\"result\":\"one\"}</tool_response>\n\
         <tool_response>{\"name\":\"b_named\",\"result\":\"two\"}</tool_response><|im_end|>"
    ));
    // system (the tool description), user, assistant, results, assistant.
    assert_eq!(prompt.matches("<|im_start|>").count(), 5);
}

#[test]
fn prompt_completion_pairs_train_the_completion_and_eos() {
    let tok = char_chat(None);
    let ex = encode_conversation(&tok, &json!({"prompt": "Q: 2+2?\nA:", "completion": " 4"})).unwrap();
    let mut want = tok.encode("Q: 2+2?\nA:", false).unwrap();
    let n_prompt = want.len();
    want.extend(tok.encode(" 4", false).unwrap());
    want.push(tok.eos_id().unwrap());
    assert_eq!(ex.ids, want);
    assert!(ex.trained[..n_prompt].iter().all(|&t| !t));
    assert!(ex.trained[n_prompt..].iter().all(|&t| t));
    assert_eq!(trained_runs(&tok, &ex), [" 4<|im_end|>"]);

    // Conversational prompt/completion: the prompt's assistant turn is context, not a target.
    let tok = char_chat(Some(SMOLLM_TEMPLATE));
    let value = json!({
        "prompt": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}, {"role": "user", "content": "c"}],
        "completion": [{"role": "assistant", "content": "d"}],
    });
    let ex = encode_conversation(&tok, &value).unwrap();
    assert_eq!(trained_runs(&tok, &ex), ["d<|im_end|>"]);
    assert!(!ex.trained[0], "nothing predicts the first token");
}

/// Write `lines` as a JSONL file and load it; an error must start with the file's path.
#[allow(clippy::result_large_err)] // the crate's own error type, as `load` returns it
fn load_lines(
    tok: &Tokenizer,
    lines: &[&str],
    max_len: usize,
    overlong: Overlong,
) -> Result<(Vec<SftExample>, SftStats), Error> {
    let dir = temp_dir("sft-load");
    let path = dir.write("data.jsonl", lines.join("\n"));
    load(&path, tok, max_len, overlong).inspect_err(|e| {
        let text = e.to_string();
        assert!(text.starts_with(&path.display().to_string()), "names the file: {text}");
    })
}

#[test]
fn bad_lines_are_named_by_file_and_line() {
    let tok = char_chat(Some(SMOLLM_TEMPLATE));
    let good = r#"{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}"#;
    let cases = [
        (r#"{"messages": [{"role": "user", "content": "hi"}"#, "not JSON"),
        (r#"{"text": "hi"}"#, "neither \"messages\" nor \"prompt\" and \"completion\""),
        (r#"{"prompt": "hi"}"#, "must both be strings"),
        (r#"{"messages": [{"role": "user", "content": "hi"}]}"#, "no assistant turn"),
        (r#"{"messages": [{"role": "bot", "content": "hi"}]}"#, "messages[0] has role 'bot'; use \"system\""),
        (r#"{"messages": [{"role": "user", "content": 3}]}"#, "messages[0].content must be a string"),
        (
            r#"{"messages": [{"role": "user", "content": "hi"}, {"role": "tool", "content": "42"}, {"role": "assistant", "content": "ok"}]}"#,
            "messages[1] is a tool result but no tool call precedes it",
        ),
        (
            r#"{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": "{oops"}}]}]}"#,
            "messages[1].tool_calls[0]: arguments is a string but not JSON",
        ),
        (
            r#"{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": [1]}}]}]}"#,
            "messages[1].tool_calls[0]: arguments must be a JSON object",
        ),
        (
            r#"{"messages": [{"role": "user", "content": "q", "tool_calls": [{"function": {"name": "f"}}]}, {"role": "assistant", "content": "a"}]}"#,
            "messages[0] has tool_calls but only assistant messages make calls",
        ),
        (r#"{"messages": {"role": "user"}}"#, "\"messages\" must be a list of messages"),
        (r#"[1, 2]"#, "expected a JSON object"),
    ];
    for (bad, want) in cases {
        // The bad line is line 3: an empty line 2 is skipped but still counted.
        let err = load_lines(&tok, &[good, "", bad, good], 1000, Overlong::Error).unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, Error::BadJsonLine { line: 3, .. }), "{text}");
        assert!(text.contains(":3: ") && text.contains(want), "{bad}: {text}");
    }

    // The template's own refusal, with file:line.
    let tok = char_chat(Some(NO_SYSTEM_TEMPLATE));
    let with_system = r#"{"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}"#;
    let err = load_lines(&tok, &[good, with_system], 1000, Overlong::Error).unwrap_err().to_string();
    assert!(err.contains(":2: chat template rejected the conversation: 'System role not supported'"), "{err}");

    // Chat data for a tokenizer without a template; an empty file.
    let err = load_lines(&char_chat(None), &[good], 1000, Overlong::Error).unwrap_err().to_string();
    assert!(err.contains(":1: a conversation needs a chat template"), "{err}");
    let err = load_lines(&tok, &["", "  "], 1000, Overlong::Error).unwrap_err().to_string();
    assert!(err.contains("holds no examples"), "{err}");
}

#[test]
fn overlong_examples_follow_the_policy() {
    let tok = char_chat(None);
    let short = r#"{"prompt": "ab", "completion": "cd"}"#; // 5 tokens with EOS
    let long = r#"{"prompt": "abcdefgh", "completion": "ijklmnop"}"#; // 17 tokens
    let prompt_only_long = r#"{"prompt": "abcdefghijklmnop", "completion": "q"}"#; // 18: nothing trained in 10
    let lines = [short, long, prompt_only_long, short];

    let err = load_lines(&tok, &lines, 10, Overlong::Error).unwrap_err().to_string();
    assert!(err.contains(":2: the example is 17 tokens long, more than max_len 10"), "{err}");
    assert!(err.contains("\"truncate\" or \"drop\""), "says what to do: {err}");

    let (examples, stats) = load_lines(&tok, &lines, 10, Overlong::Drop).unwrap();
    assert_eq!(examples.iter().map(|e| e.line).collect::<Vec<_>>(), [1, 4]);
    assert_eq!(stats, SftStats { examples: 2, tokens: 10, trained_tokens: 6, truncated: 0, dropped: 2 });

    let (examples, stats) = load_lines(&tok, &lines, 10, Overlong::Truncate).unwrap();
    assert_eq!(examples.iter().map(|e| e.line).collect::<Vec<_>>(), [1, 2, 4]);
    let full = encode_conversation(&tok, &serde_json::from_str(long).unwrap()).unwrap();
    assert_eq!(examples[1].ids, full.ids[..10]);
    assert_eq!(examples[1].trained, full.trained[..10]);
    // The truncated example keeps "ij" trained; the prompt-only one has nothing left and is dropped.
    assert_eq!(stats, SftStats { examples: 3, tokens: 20, trained_tokens: 8, truncated: 1, dropped: 1 });

    // Every example dropped is an error, not an empty data set.
    let err = load_lines(&tok, &[long], 10, Overlong::Drop).unwrap_err().to_string();
    assert!(err.contains("all 1 examples were dropped"), "{err}");

    // Configs spell the policy in lowercase.
    let policies: Vec<Overlong> = serde_json::from_str(r#"["error", "truncate", "drop"]"#).unwrap();
    assert_eq!(policies, [Overlong::Error, Overlong::Truncate, Overlong::Drop]);
    assert_eq!(Overlong::default(), Overlong::Error);
}

#[test]
fn load_keeps_file_order_and_counts_tokens() {
    let tok = char_chat(Some(SMOLLM_TEMPLATE));
    let lines: Vec<String> = (0..40)
        .map(|i| {
            if i % 3 == 0 {
                json!({"prompt": format!("p{i}"), "completion": format!("c{i}")}).to_string()
            } else {
                json!({"messages": [{"role": "user", "content": format!("u{i}")}, {"role": "assistant", "content": format!("a{i}")}]}).to_string()
            }
        })
        .collect();
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    let (examples, stats) = load_lines(&tok, &refs, 1000, Overlong::Error).unwrap();
    assert_eq!(examples.iter().map(|e| e.line).collect::<Vec<_>>(), (1..=40).collect::<Vec<_>>());
    for (line, ex) in lines.iter().zip(&examples) {
        let alone = encode_conversation(&tok, &serde_json::from_str(line).unwrap()).unwrap();
        assert_eq!((&alone.ids, &alone.trained), (&ex.ids, &ex.trained));
    }
    assert_eq!(stats.examples, 40);
    assert_eq!(stats.tokens, examples.iter().map(|e| e.ids.len()).sum::<usize>());
    assert_eq!(stats.trained_tokens, examples.iter().flat_map(|e| &e.trained).filter(|&&t| t).count());
}

/// Examples of the given lengths with recognisable ids (example k, token i -> 1000 k + i).
fn examples_of(lengths: &[usize]) -> Vec<SftExample> {
    lengths
        .iter()
        .enumerate()
        .map(|(k, &n)| SftExample {
            ids: (0..n as u32).map(|i| 1000 * k as u32 + i).collect(),
            trained: (0..n).map(|i| i % 2 == 1).collect(),
            line: k + 1,
        })
        .collect()
}

#[test]
fn packing_is_greedy_in_order_and_loses_nothing() {
    let lengths = [3, 4, 2, 9, 1, 1, 12, 5, 5, 8, 2];
    let examples = examples_of(&lengths);
    let seq_len = 10;
    let rows = pack(&examples, seq_len);
    assert_eq!(rows, pack(&examples, seq_len), "deterministic");
    let grouping: Vec<Vec<usize>> = rows.iter().map(|r| r.examples.clone()).collect();
    assert_eq!(grouping, [vec![0, 1, 2], vec![3, 4], vec![5], vec![6], vec![7, 8], vec![9, 10]]);

    let mut next = 0;
    for (r, row) in rows.iter().enumerate() {
        let n = row.ids.len();
        assert!(n <= seq_len || row.examples.len() == 1, "only a lone example may exceed seq_len");
        assert_eq!((row.trained.len(), row.positions.len(), row.segments.len()), (n, n, n));
        // Greedy: the next example would not have fitted.
        if let Some(&following) = rows.get(r + 1).map(|next_row| &next_row.examples[0]) {
            assert!(n + examples[following].ids.len() > seq_len);
        }
        let mut at = 0;
        for (segment, &k) in row.examples.iter().enumerate() {
            assert_eq!(k, next, "in order, none skipped");
            next += 1;
            let ex = &examples[k];
            let span = at..at + ex.ids.len();
            assert_eq!(row.ids[span.clone()], ex.ids[..]);
            assert_eq!(row.trained[span.clone()], ex.trained[..]);
            assert_eq!(row.positions[span.clone()], (0..ex.ids.len() as u32).collect::<Vec<_>>()[..]);
            assert!(row.segments[span.clone()].iter().all(|&s| s == segment as u32));
            at = span.end;
        }
    }
    assert_eq!(next, examples.len());
    assert!(pack(&[], 8).is_empty());
}
