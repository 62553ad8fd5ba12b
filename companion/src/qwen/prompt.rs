//! The relsim prompt: Qwen's chat template with its default system prompt, one user turn holding
//! the image then `<|query|>`, then the generation prompt.

use std::path::Path;

use anyhow::{bail, Context};
use tokenizers::{AddedToken, Tokenizer};

/// The token whose last hidden state is the image's relational feature.
pub const QUERY_TOKEN: &str = "<|query|>";
/// Qwen2.5's vocabulary with its added tokens: `<|query|>` takes the next id.
pub const EXPECTED_QUERY_ID: u32 = 151_665;

/// What the chat template renders before the image placeholder.
const BEFORE_IMAGE: &str = "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n<|vision_start|>";
/// What follows the image placeholder: the query token, end of turn, generation prompt.
const AFTER_IMAGE: &str = "<|vision_end|><|query|><|im_end|>\n<|im_start|>assistant\n";

/// Reads `tokenizer.json`, or a gzipped copy (`*.gz`, as the test fixtures keep it).
pub fn load_tokenizer(path: &Path) -> anyhow::Result<Tokenizer> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let bytes = if path.extension().is_some_and(|e| e == "gz") {
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&bytes[..]), &mut out)
            .with_context(|| format!("decompressing {}", path.display()))?;
        out
    } else {
        bytes
    };
    Tokenizer::from_bytes(&bytes).map_err(|e| anyhow::anyhow!("{} is not a tokenizer: {e}", path.display()))
}

/// The tokenizer with `<|query|>` added, and the prompt's fixed token ids.
#[derive(Debug, Clone)]
pub struct Prompt {
    pub tokenizer: Tokenizer,
    pub query_token_id: u32,
    before: Vec<u32>,
    after: Vec<u32>,
}

impl Prompt {
    /// Loads `tokenizer.json` (or a gzipped copy, `*.gz`) and adds `<|query|>` as the original code does.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let mut tokenizer = load_tokenizer(path)?;
        let expected = tokenizer.get_vocab_size(true) as u32;
        tokenizer
            .add_special_tokens([AddedToken::from(QUERY_TOKEN, true)])
            .map_err(|e| anyhow::anyhow!("adding <|query|>: {e}"))?;
        let query_token_id = tokenizer.token_to_id(QUERY_TOKEN).context("adding <|query|> failed")?;
        if query_token_id != expected {
            bail!("{}: <|query|> got id {query_token_id}, expected the tokenizer length {expected}", path.display());
        }
        let encode = |text: &str| -> anyhow::Result<Vec<u32>> {
            Ok(tokenizer.encode(text, false).map_err(|e| anyhow::anyhow!("tokenizing the prompt: {e}"))?.get_ids().to_vec())
        };
        let (before, after) = (encode(BEFORE_IMAGE)?, encode(AFTER_IMAGE)?);
        Ok(Self { tokenizer, query_token_id, before, after })
    }

    /// Number of tokens in the vocabulary with `<|query|>` (the resized embedding's rows).
    pub fn len(&self) -> usize {
        self.tokenizer.get_vocab_size(true)
    }

    /// Prompt ids with `image_tokens` copies of `image_pad_id`; returns them with the index of
    /// the first image token and of `<|query|>`.
    pub fn input_ids(&self, image_pad_id: u32, image_tokens: usize) -> (Vec<u32>, usize, usize) {
        let mut ids = self.before.clone();
        let start = ids.len();
        ids.extend(std::iter::repeat_n(image_pad_id, image_tokens));
        ids.extend(&self.after);
        let query = ids.iter().position(|&t| t == self.query_token_id).expect("the prompt holds <|query|>");
        (ids, start, query)
    }
}
