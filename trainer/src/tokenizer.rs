//! Byte-level BPE tokenizer: training on the corpus, saving in the Hugging Face format.
//!
//! Every byte is in the base alphabet, so any UTF-8 text round-trips. Ids 0, 1 and 2 are
//! the special tokens `<s>` (BOS), `</s>` (EOS) and `<pad>`; the post-processor prepends
//! BOS, as Llama tokenizers do.

use std::path::Path;

use tokenizers::decoders::DecoderWrapper;
use tokenizers::models::bpe::{BpeTrainerBuilder, BPE};
use tokenizers::normalizers::NormalizerWrapper;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::processors::template::TemplateProcessing;
use tokenizers::processors::PostProcessorWrapper;
use tokenizers::{AddedToken, Tokenizer, TokenizerBuilder};

use crate::error::{io_err, Result, TrainerError};

/// Beginning-of-sequence token.
pub const BOS: &str = "<s>";
/// End-of-sequence token.
pub const EOS: &str = "</s>";
/// Padding token.
pub const PAD: &str = "<pad>";
/// Id of [`BOS`].
pub const BOS_ID: u32 = 0;
/// Id of [`EOS`].
pub const EOS_ID: u32 = 1;
/// Id of [`PAD`].
pub const PAD_ID: u32 = 2;
const SPECIALS: [&str; 3] = [BOS, EOS, PAD];

/// The smallest vocabulary a byte-level BPE can have: every byte plus the special tokens.
pub const MIN_VOCAB: usize = 256 + SPECIALS.len();

/// Trains a byte-level BPE of `vocab_size` tokens on `documents`.
pub fn train<'a>(
    documents: impl Iterator<Item = &'a str> + Send,
    vocab_size: usize,
) -> Result<Tokenizer> {
    if vocab_size < MIN_VOCAB {
        return Err(TrainerError::VocabTooSmall {
            requested: vocab_size,
            minimum: MIN_VOCAB,
            specials: SPECIALS.len(),
        });
    }
    let tok_err = |e: tokenizers::Error| TrainerError::Tokenizer(e.to_string());
    let mut trainer = BpeTrainerBuilder::new()
        .vocab_size(vocab_size)
        .min_frequency(2)
        .show_progress(false)
        .special_tokens(
            SPECIALS
                .iter()
                .map(|s| AddedToken::from(*s, true))
                .collect(),
        )
        .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
        .build();
    let byte_level = ByteLevel::new(false, true, true);
    let template = TemplateProcessing::builder()
        .try_single(format!("{BOS} $A"))
        .and_then(|b| b.try_pair(format!("{BOS} $A {BOS} $B")))
        .map_err(|e| TrainerError::Tokenizer(e.to_string()))?
        .special_tokens(vec![(BOS, BOS_ID)])
        .build()
        .map_err(|e| TrainerError::Tokenizer(e.to_string()))?;
    let mut tokenizer = TokenizerBuilder::<
        BPE,
        NormalizerWrapper,
        PreTokenizerWrapper,
        PostProcessorWrapper,
        DecoderWrapper,
    >::new()
    .with_model(BPE::default())
    .with_normalizer(None)
    .with_pre_tokenizer(Some(byte_level.into()))
    .with_post_processor(Some(template.into()))
    .with_decoder(Some(byte_level.into()))
    .build()
    .map_err(tok_err)?;
    tokenizer.train(&mut trainer, documents).map_err(tok_err)?;
    let tokenizer: Tokenizer = tokenizer.into();
    for (id, token) in SPECIALS.iter().enumerate() {
        if tokenizer.token_to_id(token) != Some(id as u32) {
            return Err(TrainerError::Tokenizer(format!(
                "special token {token} did not get id {id}"
            )));
        }
    }
    Ok(tokenizer)
}

/// Encodes text into ids without special tokens.
pub fn encode(tokenizer: &Tokenizer, text: &str) -> Result<Vec<u32>> {
    let enc = tokenizer
        .encode(text, false)
        .map_err(|e| TrainerError::Tokenizer(e.to_string()))?;
    Ok(enc.get_ids().to_vec())
}

/// Decodes ids to text, dropping special tokens.
pub fn decode(tokenizer: &Tokenizer, ids: &[u32]) -> Result<String> {
    tokenizer
        .decode(ids, true)
        .map_err(|e| TrainerError::Tokenizer(e.to_string()))
}

/// Loads `tokenizer.json`.
pub fn load(path: &Path) -> Result<Tokenizer> {
    if !path.exists() {
        return Err(TrainerError::MissingFile(path.to_path_buf()));
    }
    Tokenizer::from_file(path)
        .map_err(|e| TrainerError::Tokenizer(format!("{}: {e}", path.display())))
}

/// Writes `tokenizer.json` and `tokenizer_config.json` into `dir`.
pub fn save(tokenizer: &Tokenizer, dir: &Path, max_length: usize) -> Result<()> {
    let path = dir.join("tokenizer.json");
    tokenizer
        .save(&path, true)
        .map_err(|e| TrainerError::Tokenizer(format!("{}: {e}", path.display())))?;
    let config = serde_json::json!({
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": BOS,
        "eos_token": EOS,
        "pad_token": PAD,
        "unk_token": null,
        "add_bos_token": true,
        "add_eos_token": false,
        "clean_up_tokenization_spaces": false,
        "model_max_length": max_length,
        "chat_template": CHAT_TEMPLATE,
    });
    let path = dir.join("tokenizer_config.json");
    let text = serde_json::to_string_pretty(&config).expect("json");
    std::fs::write(&path, text + "\n").map_err(io_err(&path))
}

/// A plain chat template for base models: each message on its own line after its role.
const CHAT_TEMPLATE: &str = "{{ bos_token }}{% for message in messages %}{{ message['role'] }}: {{ message['content'] }}\n{% endfor %}{% if add_generation_prompt %}assistant:{% endif %}";
