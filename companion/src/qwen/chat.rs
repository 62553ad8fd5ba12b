//! Qwen2.5-VL's chat template: turns of text and images rendered as the model was trained to
//! read them (the tokenizer's `chat_template.jinja`, without videos or "Picture N:" labels).

use image::RgbImage;

/// The default system turn the template adds when a chat does not start with one.
pub const DEFAULT_SYSTEM: &str = "You are a helpful assistant.";
/// One image's placeholder; the processor widens `<|image_pad|>` to the image's token count.
pub const IMAGE_PLACEHOLDER: &str = "<|vision_start|><|image_pad|><|vision_end|>";
/// The token the image features replace.
pub const IMAGE_PAD: &str = "<|image_pad|>";

/// Who speaks a turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    System,
    User,
    Assistant,
}

impl Role {
    /// The name the template writes.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
        }
    }

    /// `system`, `user` or `assistant`.
    pub fn parse(name: &str) -> anyhow::Result<Self> {
        match name {
            "system" => Ok(Role::System),
            "user" => Ok(Role::User),
            "assistant" => Ok(Role::Assistant),
            other => anyhow::bail!("unknown chat role `{other}` (system, user or assistant)"),
        }
    }
}

/// A piece of a turn.
#[derive(Debug, Clone)]
pub enum Content {
    Text(String),
    Image(RgbImage),
}

/// One turn of a chat.
#[derive(Debug, Clone)]
pub struct ChatMessage {
    pub role: Role,
    pub content: Vec<Content>,
}

impl ChatMessage {
    /// A turn of plain text.
    pub fn text(role: Role, text: impl Into<String>) -> Self {
        Self { role, content: vec![Content::Text(text.into())] }
    }

    /// A user turn: `images` first, then `text` (the order relsim's prompts use).
    pub fn user_with_images(images: Vec<RgbImage>, text: impl Into<String>) -> Self {
        let mut content: Vec<Content> = images.into_iter().map(Content::Image).collect();
        content.push(Content::Text(text.into()));
        Self { role: Role::User, content }
    }
}

/// The chat as the template writes it, one placeholder per image, and the images in order.
pub fn render(messages: &[ChatMessage], add_generation_prompt: bool) -> (String, Vec<&RgbImage>) {
    let mut text = String::new();
    let mut images = Vec::new();
    if messages.first().is_none_or(|m| m.role != Role::System) {
        text.push_str(&format!("<|im_start|>system\n{DEFAULT_SYSTEM}<|im_end|>\n"));
    }
    for message in messages {
        text.push_str(&format!("<|im_start|>{}\n", message.role.as_str()));
        for part in &message.content {
            match part {
                Content::Text(t) => text.push_str(t),
                Content::Image(image) => {
                    text.push_str(IMAGE_PLACEHOLDER);
                    images.push(image);
                }
            }
        }
        text.push_str("<|im_end|>\n");
    }
    if add_generation_prompt {
        text.push_str("<|im_start|>assistant\n");
    }
    (text, images)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_template_adds_the_default_system_turn_and_one_placeholder_per_image() {
        let image = RgbImage::new(2, 2);
        let chat = [ChatMessage { role: Role::User, content: vec![Content::Image(image.clone()), Content::Text("Hi".into()), Content::Image(image)] }];
        let (text, images) = render(&chat, true);
        assert_eq!(
            text,
            "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>Hi<|vision_start|><|image_pad|><|vision_end|><|im_end|>\n<|im_start|>assistant\n"
        );
        assert_eq!(images.len(), 2);
        let with_system = [ChatMessage::text(Role::System, "Be brief."), ChatMessage::text(Role::User, "Hi")];
        let (text, _) = render(&with_system, false);
        assert_eq!(text, "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n");
        assert!(Role::parse("tool").is_err());
    }
}
