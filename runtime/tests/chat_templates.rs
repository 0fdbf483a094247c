//! Chat templates rendered as transformers renders them (`apply_chat_template`):
//! tests/reference/fixtures/chat_templates.json holds templates in the styles of the
//! model families users load, conversations, and transformers' own output for each
//! (tests/reference/make_chat_fixtures.py regenerates it). rill's text must equal it byte
//! for byte: a prompt that differs by a newline is a different prompt to the model.

mod common;

use rill::chat::{ChatMessage, ChatRequest, ChatTemplate};
use serde_json::Value;

fn fixture() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/reference/fixtures/chat_templates.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The fixture's template `name`, with its special tokens.
fn fixture_template(f: &Value, name: &str) -> ChatTemplate {
    let token = |key: &str| f[key].as_str().unwrap().to_string();
    let source = f["templates"][name].as_str().unwrap();
    ChatTemplate::new(source, &token("bos_token"), &token("eos_token")).unwrap()
}

#[test]
fn templates_render_as_transformers_renders_them() {
    let f = fixture();
    let mut failures = Vec::new();
    let cases = f["cases"].as_array().unwrap();
    for case in cases {
        let name = case["template"].as_str().unwrap();
        let template = fixture_template(&f, name);
        let conversation = case["messages"].as_str().unwrap();
        let messages: Vec<ChatMessage> =
            serde_json::from_value(f["conversations"][conversation].clone()).unwrap();
        let add = case["add_generation_prompt"].as_bool().unwrap();
        let got = template.render(&messages, add);
        let label = format!("{name} on {conversation} (add_generation_prompt {add})");
        match (&case["expected"], got) {
            (Value::String(expected), Ok(text)) if *expected == text => {}
            (Value::String(expected), Ok(text)) => failures.push(format!(
                "{label}:\n--- transformers\n{expected:?}\n--- rill\n{text:?}"
            )),
            (Value::String(_), Err(e)) => failures.push(format!("{label}: rill failed: {e}")),
            (_, Ok(text)) => failures.push(format!(
                "{label}: transformers raised {}, rill rendered {text:?}",
                case["error"]
            )),
            (_, Err(e)) => {
                let wanted = case["error"].as_str().unwrap();
                if !e.to_string().contains(wanted) {
                    failures.push(format!("{label}: error {e} does not carry {wanted:?}"));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} renders differ:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n\n")
    );
}

#[test]
fn strftime_now_formats_as_python_does() {
    let f = fixture();
    for case in f["strftime"].as_array().unwrap() {
        let (t, format) = (
            case["timestamp"].as_i64().unwrap(),
            case["format"].as_str().unwrap(),
        );
        let got = rill::chat::strftime_utc(t, format).unwrap();
        assert_eq!(got, case["expected"].as_str().unwrap(), "{format} at {t}");
    }
    assert!(
        rill::chat::strftime_utc(0, "%Q").is_err(),
        "an unknown directive is an error"
    );
}

#[test]
fn tools_documents_and_template_variables_render_as_transformers_renders_them() {
    let f = fixture();
    let requests = f["requests"].as_array().unwrap();
    assert!(requests.len() >= 10);
    for case in requests {
        let name = case["template"].as_str().unwrap();
        let template = fixture_template(&f, name);
        // The request as a caller writes it: messages, tools, documents, other variables.
        let mut json = serde_json::json!({
            "messages": f["conversations"][case["messages"].as_str().unwrap()],
            "tools": case["tools"],
            "documents": case["documents"],
        });
        for (key, value) in case["variables"].as_object().unwrap() {
            json[key] = value.clone();
        }
        let request: ChatRequest = serde_json::from_value(json).unwrap();
        let add = case["add_generation_prompt"].as_bool().unwrap();
        let got = template.render_request(&request, add).unwrap();
        assert_eq!(
            got,
            case["expected"].as_str().unwrap(),
            "{name} with {}",
            case["variables"]
        );
    }
    // A variable cannot take a name the call sets.
    let template = ChatTemplate::new("{{ add_generation_prompt }}", "", "").unwrap();
    let request: ChatRequest =
        serde_json::from_str(r#"{"messages": [], "add_generation_prompt": true}"#).unwrap();
    assert!(template.render_request(&request, false).is_err());
    // continue_final_message excludes a generation prompt, and needs a final text.
    let template = fixture_template(&f, "chatml");
    let request: ChatRequest = serde_json::from_value(serde_json::json!({
        "messages": f["conversations"]["prefill"], "continue_final_message": true
    }))
    .unwrap();
    assert!(template.render_request(&request, true).is_err());
    let request: ChatRequest = serde_json::from_str(
        r#"{"messages": [{"role": "assistant", "content": null}], "continue_final_message": true}"#,
    )
    .unwrap();
    assert!(template.render_request(&request, false).is_err());
}

#[test]
fn a_chat_continues_the_final_message_it_was_given() {
    let model = common::default_model();
    let request: ChatRequest = serde_json::from_str(
        r#"{"messages": [{"role": "user", "content": "Who made the heaven?"},
                         {"role": "assistant", "content": "In the beginning"}],
            "continue_final_message": true}"#,
    )
    .unwrap();
    let text = model.apply_chat_request(&request, false).unwrap();
    assert!(text.ends_with("assistant: In the beginning"), "{text:?}");
    let mut s = rill::Session::new(model.clone(), Default::default()).unwrap();
    let config = rill::GenerationConfig {
        max_new_tokens: Some(6),
        do_sample: Some(false),
        ..Default::default()
    };
    s.set_generation_config(config).unwrap();
    let out = s.chat_request(&request, |_| true).unwrap();
    // The prompt is the rendered text, cut inside the assistant's message.
    assert_eq!(
        s.history()[..out.prompt_tokens],
        model.encode(&text, false).unwrap()[..]
    );
}

/// `strftime_now` is local time, as transformers' `datetime.now()`: this test runs itself
/// in child processes with POSIX `TZ` zones (no time zone database needed), each printing
/// the rendered minute, and compares it with what `date` prints in that zone.
#[test]
fn strftime_now_is_local_time() {
    const FORMAT: &str = "%Y-%m-%d %H:%M";
    if std::env::var_os("RILL_TEST_PRINT_NOW").is_some() {
        let source = format!("{{{{ strftime_now('{FORMAT}') }}}}");
        let text = ChatTemplate::new(&source, "", "")
            .unwrap()
            .render(&[], false)
            .unwrap();
        println!("NOW<{text}>");
        return;
    }
    let date = |tz: &str| {
        let out = std::process::Command::new("date")
            .arg(format!("+{FORMAT}"))
            .env("TZ", tz)
            .output()
            .expect("`date` runs");
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    // UTC, 5:30 ahead, 9 behind, 14 ahead (POSIX signs are inverted).
    for tz in ["UTC0", "XST-5:30", "YST9", "ZST-14"] {
        let before = date(tz);
        let child = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "strftime_now_is_local_time", "--nocapture"])
            .env("RILL_TEST_PRINT_NOW", "1")
            .env("TZ", tz)
            .output()
            .unwrap();
        let after = date(tz);
        let stdout = String::from_utf8_lossy(&child.stdout);
        let now = stdout
            .split("NOW<")
            .nth(1)
            .and_then(|s| s.split('>').next())
            .unwrap_or_else(|| panic!("the child printed no time: {stdout}"));
        assert!(
            now == before || now == after,
            "TZ={tz}: rendered {now}, `date` printed {before} / {after}"
        );
    }
}
