//! The wire format of OpenAI-compatible chat completions (`POST /v1/chat/completions`): what the
//! companion answers and what `relsim judge` sends. Only the fields either side uses; unknown
//! fields of a request are ignored, as other compatible servers do.

use serde::{Deserialize, Serialize};

/// The request body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatRequest {
    pub model: String,
    pub messages: Vec<Message>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f32>,
    /// The older name of `max_completion_tokens`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_completion_tokens: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// Text that ends the answer (not included in it): one string or several.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop: Option<Stop>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
}

/// `stop`: a string or a list of strings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Stop {
    One(String),
    Many(Vec<String>),
}

impl Stop {
    /// The stop strings, empty ones left out.
    pub fn strings(&self) -> Vec<String> {
        match self {
            Stop::One(s) => vec![s.clone()],
            Stop::Many(v) => v.clone(),
        }
        .into_iter()
        .filter(|s| !s.is_empty())
        .collect()
    }
}

/// One message of the conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// `system`, `user` or `assistant`.
    pub role: String,
    pub content: Content,
}

/// A message's content: plain text, or parts (texts and images) in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Content {
    Text(String),
    Parts(Vec<Part>),
}

/// One part of a message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Part {
    Text { text: String },
    ImageUrl { image_url: ImageUrl },
}

/// An image by URL: `data:image/...;base64,...`, or (the companion only) `library:ID` for an
/// image of its library.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageUrl {
    pub url: String,
    /// Ignored (the model sees images at their own size).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// The response body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatResponse {
    pub id: String,
    pub object: String,
    pub created: u64,
    pub model: String,
    pub choices: Vec<Choice>,
    pub usage: Usage,
}

/// One answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Choice {
    pub index: usize,
    pub message: AnswerMessage,
    /// `stop` (a stop token or string) or `length` (the token limit).
    pub finish_reason: String,
}

/// The assistant's message in a response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnswerMessage {
    pub role: String,
    /// Null when a server answers with no text (some do, with tool calls).
    pub content: Option<String>,
}

/// Token counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub prompt_tokens: usize,
    pub completion_tokens: usize,
    pub total_tokens: usize,
}

/// `data:` URL of an image file's bytes, with the MIME type read from the bytes themselves.
pub fn image_data_url(bytes: &[u8]) -> String {
    use base64::Engine;
    let mime = image::guess_format(bytes).map(|f| f.to_mime_type()).unwrap_or("application/octet-stream");
    format!("data:{mime};base64,{}", base64::engine::general_purpose::STANDARD.encode(bytes))
}

/// The bytes of a base64 `data:` URL (its MIME type is not trusted: the bytes are decoded as
/// whatever image they are).
pub fn data_url_bytes(url: &str) -> anyhow::Result<Vec<u8>> {
    use base64::Engine;
    let rest = url.strip_prefix("data:").ok_or_else(|| anyhow::anyhow!("not a data: URL"))?;
    let (head, payload) = rest.split_once(',').ok_or_else(|| anyhow::anyhow!("a data: URL needs a comma before its payload"))?;
    anyhow::ensure!(head.ends_with(";base64"), "only base64 data: URLs carry images (`data:image/png;base64,...`)");
    base64::engine::general_purpose::STANDARD.decode(payload.trim()).map_err(|e| anyhow::anyhow!("the data: URL's base64 does not decode: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_read_the_shapes_clients_send() {
        let body = r#"{"model": "m", "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": [{"type": "text", "text": "rate"}, {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA", "detail": "high"}}]}
        ], "temperature": 0.7, "stop": "\n", "max_tokens": 5, "logprobs": false}"#;
        let request: ChatRequest = serde_json::from_str(body).unwrap();
        assert_eq!(request.messages[0].content, Content::Text("be brief".into()));
        let Content::Parts(parts) = &request.messages[1].content else { panic!("parts") };
        assert_eq!(parts[0], Part::Text { text: "rate".into() });
        assert!(matches!(&parts[1], Part::ImageUrl { image_url } if image_url.url.starts_with("data:image/png")));
        assert_eq!(request.stop.unwrap().strings(), ["\n"]);
        assert_eq!(request.max_tokens, Some(5));
        let many: Stop = serde_json::from_str(r#"["a", "", "b"]"#).unwrap();
        assert_eq!(many.strings(), ["a", "b"]);
    }

    #[test]
    fn data_urls_round_trip_image_bytes() {
        let png = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/qwen/images/gradient_56x84.png")).unwrap();
        let url = image_data_url(&png);
        assert!(url.starts_with("data:image/png;base64,"), "{}", &url[..30]);
        assert_eq!(data_url_bytes(&url).unwrap(), png);
        assert!(data_url_bytes("https://example.com/a.png").is_err());
        assert!(data_url_bytes("data:image/png,rawbytes").unwrap_err().to_string().contains("base64"));
        assert!(data_url_bytes("data:image/png;base64,@@@").is_err());
    }
}
