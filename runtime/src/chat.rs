//! Chat templates: the model folder's `tokenizer_config.json` `chat_template` (Jinja, as
//! transformers' `apply_chat_template` renders it) turns a list of messages into the
//! prompt text the model was trained on.
//!
//! The environment is the one transformers renders in: blocks trimmed (`trim_blocks`,
//! `lstrip_blocks`), loop controls, Python string methods, transformers' `tojson`,
//! `raise_exception`, `strftime_now` (local time) and `{% generation %}` blocks,
//! `True`/`False`/`None` written as Python writes them, and the folder's special tokens,
//! `tools` and `documents` (none) in the context. Message content is text or a list of
//! parts, passed to the template as given. runtime/tests/chat_templates.rs checks the text against transformers'
//! own renderer byte for byte.

mod python_compat;

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{io_err, Result, RillError};

pub use python_compat::strftime_utc;

/// One message of a conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// `system`, `user` or `assistant` (the template decides what it accepts).
    pub role: String,
    /// The text or parts; `None` (JSON `null`) for an assistant turn that only calls
    /// tools, as OpenAI-style messages write it.
    pub content: Option<ChatContent>,
    /// Any other keys of the message (`name`, `tool_calls`, ...), passed to the template
    /// as they are.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// What a message says: a string, or a list of parts as OpenAI-style and multimodal chat
/// messages write it (`[{"type": "text", "text": "..."}, {"type": "image"}]`). Parts reach
/// the template as they are, as transformers passes them: templates written for them
/// (Gemma 3's, Llama 3.2 Vision's) render the text parts; a template that expects a
/// string decides what a list gives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum ChatContent {
    /// Plain text.
    Text(String),
    /// A list of parts (objects with a `type`, text parts with a `text`).
    Parts(Vec<serde_json::Value>),
}

impl<'de> Deserialize<'de> for ChatContent {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        match serde_json::Value::deserialize(d)? {
            serde_json::Value::String(text) => Ok(ChatContent::Text(text)),
            serde_json::Value::Array(parts) => Ok(ChatContent::Parts(parts)),
            other => Err(serde::de::Error::custom(format!(
                "a message's `content` is a string, null or a list of parts, not {other}"
            ))),
        }
    }
}

impl ChatContent {
    /// The text a reply continues from: the string, or the last part with a string
    /// `text` (transformers' rule for `continue_final_message`).
    pub fn final_text(&self) -> Option<&str> {
        match self {
            ChatContent::Text(text) => Some(text),
            ChatContent::Parts(parts) => parts
                .iter()
                .rev()
                .find_map(|p| p.get("text").and_then(serde_json::Value::as_str)),
        }
    }
}

impl ChatMessage {
    /// A message from `role`.
    pub fn new(role: &str, content: &str) -> Self {
        ChatMessage {
            role: role.to_string(),
            content: Some(ChatContent::Text(content.to_string())),
            extra: Default::default(),
        }
    }
}

/// A compiled chat template with the special-token strings it may refer to.
pub struct ChatTemplate {
    env: minijinja::Environment<'static>,
    /// `bos_token`, `eos_token` and the folder's other `*_token` entries, by name.
    tokens: BTreeMap<String, String>,
}

impl std::fmt::Debug for ChatTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatTemplate").finish_non_exhaustive()
    }
}

const NAME: &str = "chat_template";

/// A special token in `tokenizer_config.json`: a string or an `AddedToken` object.
fn token_text(v: Option<&serde_json::Value>) -> String {
    match v {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(serde_json::Value::Object(o)) => o
            .get("content")
            .and_then(|c| c.as_str())
            .unwrap_or_default()
            .to_string(),
        _ => String::new(),
    }
}

impl ChatTemplate {
    /// Reads the folder `dir`'s template as transformers' tokenizer does:
    /// `chat_template.jinja` (where transformers 4.52 and later save it), else
    /// `tokenizer_config.json`'s `chat_template` (a list of named templates, transformers'
    /// older form, uses the one named `default`), else a processor's `chat_template.json`
    /// (multimodal checkpoints); `None` where none exists. The special tokens come from
    /// `tokenizer_config.json`.
    pub fn load(dir: &Path) -> Result<Option<ChatTemplate>> {
        let config_path = dir.join("tokenizer_config.json");
        let jinja_path = dir.join("chat_template.jinja");
        let config: serde_json::Value = if config_path.exists() {
            let text = std::fs::read_to_string(&config_path).map_err(io_err(&config_path))?;
            serde_json::from_str(&text).map_err(|e| RillError::Config {
                path: config_path.clone(),
                message: format!("not valid JSON: {e}"),
            })?
        } else {
            serde_json::Value::Null
        };
        let processor_path = dir.join("chat_template.json");
        let (source, path) = if jinja_path.exists() {
            let source = std::fs::read_to_string(&jinja_path).map_err(io_err(&jinja_path))?;
            (source, jinja_path)
        } else if config.get("chat_template").is_none_or(|t| t.is_null()) && processor_path.exists()
        {
            // A multimodal checkpoint's processor template (Gemma 3's), where the
            // tokenizer has none.
            let text = std::fs::read_to_string(&processor_path).map_err(io_err(&processor_path))?;
            let bad = |message: String| RillError::Config {
                path: processor_path.clone(),
                message,
            };
            let json: serde_json::Value =
                serde_json::from_str(&text).map_err(|e| bad(format!("not valid JSON: {e}")))?;
            match json.get("chat_template") {
                Some(serde_json::Value::String(s)) => (s.clone(), processor_path),
                _ => return Err(bad("no `chat_template` string".into())),
            }
        } else {
            let bad = |message: String| RillError::Config {
                path: config_path.clone(),
                message,
            };
            let source = match config.get("chat_template") {
                None | Some(serde_json::Value::Null) => return Ok(None),
                Some(serde_json::Value::String(s)) => s.clone(),
                Some(serde_json::Value::Array(list)) => list
                    .iter()
                    .find(|t| t.get("name").and_then(|n| n.as_str()) == Some("default"))
                    .and_then(|t| t.get("template")?.as_str())
                    .ok_or_else(|| bad("chat_template is a list without a `default` entry".into()))?
                    .to_string(),
                Some(other) => {
                    return Err(bad(format!("chat_template must be a string, got {other}")))
                }
            };
            (source, config_path)
        };
        let mut template = Self::new(
            &source,
            &token_text(config.get("bos_token")),
            &token_text(config.get("eos_token")),
        )
        .map_err(|e| RillError::Config {
            path,
            message: e.to_string(),
        })?;
        // transformers passes every special token of the tokenizer (`unk_token`,
        // `pad_token`, ...), not only the two every template uses.
        if let Some(config) = config.as_object() {
            for (key, value) in config {
                if key.ends_with("_token") && !template.tokens.contains_key(key) {
                    if let v @ (serde_json::Value::String(_) | serde_json::Value::Object(_)) = value
                    {
                        template.tokens.insert(key.clone(), token_text(Some(v)));
                    }
                }
            }
        }
        Ok(Some(template))
    }

    /// Compiles a template (Jinja source as in `tokenizer_config.json`).
    pub fn new(source: &str, bos_token: &str, eos_token: &str) -> Result<ChatTemplate> {
        let mut env = minijinja::Environment::new();
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.set_formatter(python_compat::python_formatter);
        env.add_filter("tojson", python_compat::tojson);
        env.add_function("strftime_now", python_compat::strftime_now);
        // transformers' templates call Python string methods (`.strip()`, `.startswith()`).
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function(
            "raise_exception",
            |msg: String| -> std::result::Result<String, minijinja::Error> {
                Err(minijinja::Error::new(
                    minijinja::ErrorKind::InvalidOperation,
                    msg,
                ))
            },
        );
        let source = python_compat::generation_blocks_as_plain_blocks(source).into_owned();
        env.add_template_owned(NAME, source)
            .map_err(|e| RillError::ChatTemplate(format!("the template does not compile: {e}")))?;
        let tokens = BTreeMap::from([
            ("bos_token".to_string(), bos_token.to_string()),
            ("eos_token".to_string(), eos_token.to_string()),
        ]);
        Ok(ChatTemplate { env, tokens })
    }

    /// Renders `messages`; with `add_generation_prompt` the text ends where the
    /// assistant's reply begins.
    pub fn render(&self, messages: &[ChatMessage], add_generation_prompt: bool) -> Result<String> {
        self.render_request(&ChatRequest::from(messages), add_generation_prompt)
    }

    /// Renders a [`ChatRequest`]: its messages, tools, documents and other variables, as
    /// `apply_chat_template(messages, tools=..., documents=..., **variables)` does.
    pub fn render_request(
        &self,
        request: &ChatRequest,
        add_generation_prompt: bool,
    ) -> Result<String> {
        let template = self
            .env
            .get_template(NAME)
            .map_err(|e| RillError::ChatTemplate(e.to_string()))?;
        let mut context: BTreeMap<&str, minijinja::Value> = self
            .tokens
            .iter()
            .map(|(k, v)| (k.as_str(), minijinja::Value::from(v.as_str())))
            .collect();
        for (key, value) in &request.variables {
            if RESERVED.contains(&key.as_str()) {
                return Err(RillError::InvalidArgument(format!(
                    "`{key}` is set by the call, not a template variable"
                )));
            }
            context.insert(key, minijinja::Value::from_serialize(value));
        }
        context.insert(
            "messages",
            minijinja::Value::from_serialize(&request.messages),
        );
        context.insert("add_generation_prompt", add_generation_prompt.into());
        context.insert("tools", minijinja::Value::from_serialize(&request.tools));
        context.insert(
            "documents",
            minijinja::Value::from_serialize(&request.documents),
        );
        if request.continue_final_message && add_generation_prompt {
            return Err(RillError::InvalidArgument(
                "continue_final_message and add_generation_prompt exclude each other: continue the final message, or start a new one".into(),
            ));
        }
        let rendered = template
            .render(context)
            .map_err(|e| RillError::ChatTemplate(format!("rendering failed: {e}")))?;
        if request.continue_final_message {
            return continue_final_message(rendered, &request.messages);
        }
        Ok(rendered)
    }
}

/// Cuts `rendered` after the final message's text, as transformers does for
/// `continue_final_message`: the model then goes on with that message (an assistant
/// reply begun by the caller) instead of starting a new one.
fn continue_final_message(rendered: String, messages: &[ChatMessage]) -> Result<String> {
    let final_text = messages
        .last()
        .and_then(|m| m.content.as_ref()?.final_text())
        .ok_or_else(|| {
            RillError::InvalidArgument(
                "continue_final_message needs a final message with text".into(),
            )
        })?;
    let stripped = final_text.trim();
    let at = rendered.rfind(stripped).ok_or_else(|| {
        RillError::ChatTemplate(
            "continue_final_message: the final message does not appear in the rendered chat (the template changes it)".into(),
        )
    })?;
    let leading_trimmed = final_text.trim_start();
    // Where the template kept the message's trailing spaces, they stay; else they go.
    let end = if rendered.get(at..at + leading_trimmed.len()) == Some(final_text) {
        at + leading_trimmed.len()
    } else {
        at + stripped.len()
    };
    Ok(rendered[..end].to_string())
}

/// Context names a request's variables cannot take (the call or the request's own
/// fields set them).
const RESERVED: [&str; 4] = ["add_generation_prompt", "messages", "tools", "documents"];

/// A conversation to render, with what transformers' `apply_chat_template` passes to the
/// template besides the messages. As JSON: `{"messages": [...], "tools": [...],
/// "documents": [...], "enable_thinking": false, ...}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatRequest {
    /// The conversation.
    pub messages: Vec<ChatMessage>,
    /// Tool (function) schemas as transformers takes them (JSON schema objects); `None`
    /// renders as the template's `none`.
    #[serde(default)]
    pub tools: Option<Vec<serde_json::Value>>,
    /// Documents for retrieval-augmented templates (`{"title", "text"}` objects).
    #[serde(default)]
    pub documents: Option<Vec<serde_json::Value>>,
    /// transformers' `continue_final_message`: the text ends inside the final message
    /// (an assistant reply the caller began) so that the model continues it; excludes
    /// `add_generation_prompt` (a chat then renders without it).
    #[serde(default)]
    pub continue_final_message: bool,
    /// Any other template variable (`enable_thinking`, `date_string`, ...), as keyword
    /// arguments of `apply_chat_template`; they may override special tokens.
    #[serde(flatten)]
    pub variables: serde_json::Map<String, serde_json::Value>,
}

impl From<&[ChatMessage]> for ChatRequest {
    fn from(messages: &[ChatMessage]) -> Self {
        ChatRequest {
            messages: messages.to_vec(),
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LLAMA_LIKE: &str = "{{ bos_token }}{% for m in messages %}{% if m['role'] == 'system' %}{{ m['content'].strip() }}\n{% else %}{{ m['role'] }}: {{ m['content'] }}{{ eos_token if m['role'] == 'assistant' else '' }}\n{% endif %}{% endfor %}{% if add_generation_prompt %}assistant:{% endif %}";

    #[test]
    fn renders_messages_with_special_tokens_and_python_methods() {
        let t = ChatTemplate::new(LLAMA_LIKE, "<s>", "</s>").unwrap();
        let msgs = [
            ChatMessage::new("system", "  Be brief.  "),
            ChatMessage::new("user", "Hi"),
            ChatMessage::new("assistant", "Hello"),
            ChatMessage::new("user", "Bye"),
        ];
        assert_eq!(
            t.render(&msgs, true).unwrap(),
            "<s>Be brief.\nuser: Hi\nassistant: Hello</s>\nuser: Bye\nassistant:"
        );
        assert!(!t.render(&msgs, false).unwrap().ends_with("assistant:"));
    }

    #[test]
    fn raise_exception_and_bad_syntax_are_errors() {
        let t = ChatTemplate::new(
            "{% if messages[0]['role'] != 'user' %}{{ raise_exception('first must be user') }}{% endif %}",
            "",
            "",
        )
        .unwrap();
        let e = t
            .render(&[ChatMessage::new("assistant", "x")], true)
            .unwrap_err();
        assert!(e.to_string().contains("first must be user"), "{e}");
        assert!(ChatTemplate::new("{% for %}", "", "").is_err());
    }

    #[test]
    fn content_is_text_parts_or_null_and_nothing_else() {
        let parse = |json: &str| serde_json::from_str::<ChatMessage>(json);
        let parts = parse(r#"{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}, {"type": "image"}]}"#).unwrap();
        assert_eq!(parts.content.unwrap().final_text(), Some("b"));
        assert_eq!(
            parse(r#"{"role": "user", "content": null}"#)
                .unwrap()
                .content,
            None
        );
        let e = parse(r#"{"role": "user", "content": 5}"#).unwrap_err();
        assert!(
            e.to_string().contains("string, null or a list of parts"),
            "{e}"
        );
        // Round trip: a message serialises as it was given.
        let text = r#"{"role":"user","content":[{"type":"text","text":"a"}],"name":"x"}"#;
        assert_eq!(serde_json::to_string(&parse(text).unwrap()).unwrap(), text);
    }

    #[test]
    fn loads_from_tokenizer_config_in_both_forms() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("tokenizer_config.json");
        std::fs::write(&p, r#"{"bos_token": {"content": "<s>"}, "chat_template": [{"name": "default", "template": "{{ bos_token }}{{ messages[0].content }}"}]}"#).unwrap();
        let t = ChatTemplate::load(dir.path()).unwrap().unwrap();
        assert_eq!(
            t.render(&[ChatMessage::new("user", "x")], false).unwrap(),
            "<s>x"
        );
        std::fs::write(&p, r#"{"bos_token": "<s>"}"#).unwrap();
        assert!(ChatTemplate::load(dir.path()).unwrap().is_none());
        std::fs::write(&p, r#"{"chat_template": 3}"#).unwrap();
        assert!(ChatTemplate::load(dir.path()).is_err());
    }

    #[test]
    fn chat_template_jinja_comes_first_as_in_transformers() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("tokenizer_config.json");
        let jinja = dir.path().join("chat_template.jinja");
        let user = [ChatMessage::new("user", "x")];
        // transformers 4.52+ saves the template beside the config, not in it (Jinja
        // drops the template's last newline, as transformers' jinja2 does).
        std::fs::write(&config, r#"{"eos_token": "</s>"}"#).unwrap();
        std::fs::write(&jinja, "{{ messages[0].content }}{{ eos_token }}\n").unwrap();
        let t = ChatTemplate::load(dir.path()).unwrap().unwrap();
        assert_eq!(t.render(&user, false).unwrap(), "x</s>");
        // Where both exist, the file wins (transformers: "they take priority").
        std::fs::write(&config, r#"{"eos_token": "</s>", "chat_template": "old"}"#).unwrap();
        let t = ChatTemplate::load(dir.path()).unwrap().unwrap();
        assert_eq!(t.render(&user, false).unwrap(), "x</s>");
        // Without a tokenizer_config.json, no special tokens.
        std::fs::remove_file(&config).unwrap();
        let t = ChatTemplate::load(dir.path()).unwrap().unwrap();
        assert_eq!(t.render(&user, false).unwrap(), "x");
        // A processor's chat_template.json, where the tokenizer has no template.
        std::fs::remove_file(&jinja).unwrap();
        let processor = dir.path().join("chat_template.json");
        std::fs::write(
            &processor,
            r#"{"chat_template": "[{{ messages[0].content }}]"}"#,
        )
        .unwrap();
        let t = ChatTemplate::load(dir.path()).unwrap().unwrap();
        assert_eq!(t.render(&user, false).unwrap(), "[x]");
        std::fs::write(
            &config,
            r#"{"chat_template": "<{{ messages[0].content }}>"}"#,
        )
        .unwrap();
        let t = ChatTemplate::load(dir.path()).unwrap().unwrap();
        assert_eq!(t.render(&user, false).unwrap(), "<x>");
        std::fs::remove_file(&config).unwrap();
        std::fs::write(&processor, r#"{"template": 1}"#).unwrap();
        assert!(ChatTemplate::load(dir.path()).is_err());
        std::fs::write(&jinja, "{% if %}").unwrap();
        let e = ChatTemplate::load(dir.path()).unwrap_err().to_string();
        assert!(e.contains("chat_template.jinja"), "{e}");
    }
}
