//! Chat templates: the Python-isms HF templates rely on, whitespace control, errors.

use ingot_tokenizer::{ChatTemplate, Error, Message};

#[test]
fn python_string_methods_and_block_whitespace() {
    // trim_blocks + lstrip_blocks (as transformers sets them): block tags and their indentation
    // leave no blank lines or spaces behind.
    let source = "\
{% for m in messages %}
    {% if m.role == 'system' %}
[{{ m.role.upper() }}] {{ m.content.strip() }}
    {% elif m.content.startswith('/') %}
cmd: {{ m.content[1:].split(' ') | join(',') }}
    {% else %}
{{ bos_token }}{{ m.role }}: {{ m.content | trim }}{{ eos_token }}
    {% endif %}
{% endfor %}
{% if add_generation_prompt %}
assistant:
{% endif %}";
    let template = ChatTemplate::new(source, "<s>", "</s>").unwrap();
    let messages = [Message::system("  Be brief.  "), Message::user("/run a b"), Message::user(" hi ")];
    assert_eq!(
        template.render(&messages, true).unwrap(),
        "[SYSTEM] Be brief.\ncmd: run,a,b\n<s>user: hi</s>\nassistant:\n"
    );
    assert_eq!(template.render(&messages[2..], false).unwrap(), "<s>user: hi</s>\n");
}

#[test]
fn raise_exception_becomes_a_clear_error() {
    let source = "{% for m in messages %}{% if m.role not in ['user', 'assistant'] %}\
                  {{ raise_exception('Conversation roles must be user/assistant, got ' + m.role) }}\
                  {% endif %}{{ m.content }}{% endfor %}";
    let template = ChatTemplate::new(source, "", "").unwrap();
    assert_eq!(template.render(&[Message::user("ok")], false).unwrap(), "ok");
    let err = template.render(&[Message::system("no")], false).unwrap_err();
    match &err {
        Error::TemplateRaised { message } => {
            assert_eq!(message, "Conversation roles must be user/assistant, got system")
        }
        other => panic!("expected TemplateRaised, got {other:?}"),
    }
    assert!(err.to_string().contains("got system"), "{err}");
}

#[test]
fn tojson_prints_like_python_json_dumps() {
    let template = ChatTemplate::new(
        "{{ {'name': 'calc', 'args': [1, 2.5, true, none], 'note': 'é<&>\"'} | tojson }}|{{ messages[0] | tojson(indent=2) }}",
        "",
        "",
    )
    .unwrap();
    assert_eq!(
        template.render(&[Message::user("hi")], false).unwrap(),
        "{\"name\": \"calc\", \"args\": [1, 2.5, true, null], \"note\": \"é<&>\\\"\"}|{\n  \"role\": \"user\",\n  \"content\": \"hi\"\n}"
    );
}

#[test]
fn tools_are_none_unless_given() {
    let template =
        ChatTemplate::new("{% if tools is none %}no tools{% else %}{{ tools | tojson }}{% endif %}", "", "").unwrap();
    assert_eq!(template.render(&[], false).unwrap(), "no tools");
    let tools = [serde_json::json!({"type": "function", "function": {"name": "add"}})];
    assert_eq!(
        template.render_with_tools(&[], Some(&tools), false).unwrap(),
        "[{\"type\": \"function\", \"function\": {\"name\": \"add\"}}]"
    );
}

#[test]
fn strftime_now_gives_a_date() {
    let template = ChatTemplate::new("{{ strftime_now('%Y-%m-%d') }}", "", "").unwrap();
    let date = template.render(&[], false).unwrap();
    let parts: Vec<&str> = date.split('-').collect();
    assert_eq!(parts.iter().map(|p| p.len()).collect::<Vec<_>>(), [4, 2, 2], "{date}");
    assert!(parts[0].parse::<u32>().unwrap() >= 2024);
}

#[test]
fn syntax_errors_are_reported_when_loading() {
    let err = ChatTemplate::new("{% for m in messages %}{{ m.content }}", "", "").unwrap_err();
    assert!(matches!(err, Error::Template { .. }), "{err:?}");
    assert!(err.to_string().starts_with("chat template: "), "{err}");
}
