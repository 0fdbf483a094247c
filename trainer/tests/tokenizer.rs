//! The byte-level BPE tokenizer: round trips and its limits.

use rill_trainer::tokenizer::{self, BOS_ID, EOS_ID, MIN_VOCAB, PAD_ID};
use rill_trainer::TrainerError;

const DOCS: &[&str] = &[
    "In the beginning God created the heaven and the earth.",
    "The function returns a list of the lines in the file.",
    "And the earth was without form, and void.",
    "Return a new dictionary initialized from an optional positional argument.",
];

#[test]
fn round_trips_ascii_multibyte_and_emoji() {
    let tok = tokenizer::train(DOCS.iter().copied().cycle().take(200), 400).unwrap();
    for text in [
        "In the beginning",
        "  leading spaces, tabs\tand\nnewlines ",
        "naïve café, Øresund, Straße, ĳ",
        "日本語のテキストと한국어",
        "emoji: 🦀🚀 and a family 👨‍👩‍👧 and flags 🇫🇷",
        "",
    ] {
        let ids = tokenizer::encode(&tok, text).unwrap();
        assert_eq!(tokenizer::decode(&tok, &ids).unwrap(), text, "ids {ids:?}");
    }
}

#[test]
fn special_tokens_have_fixed_ids_and_bos_is_prepended() {
    let tok = tokenizer::train(DOCS.iter().copied().cycle().take(50), 300).unwrap();
    assert_eq!(tok.token_to_id("<s>"), Some(BOS_ID));
    assert_eq!(tok.token_to_id("</s>"), Some(EOS_ID));
    assert_eq!(tok.token_to_id("<pad>"), Some(PAD_ID));
    let with_specials = tok.encode("the earth", true).unwrap();
    assert_eq!(with_specials.get_ids()[0], BOS_ID);
    assert_eq!(
        &with_specials.get_ids()[1..],
        tokenizer::encode(&tok, "the earth").unwrap()
    );
    assert!(tok.get_vocab_size(true) <= 300);
}

#[test]
fn saved_tokenizer_loads_back_identically() {
    let tok = tokenizer::train(DOCS.iter().copied().cycle().take(50), 320).unwrap();
    let dir = tempfile::tempdir().unwrap();
    tokenizer::save(&tok, dir.path(), 128).unwrap();
    let back = tokenizer::load(&dir.path().join("tokenizer.json")).unwrap();
    let text = "And the earth was a function 🦀";
    assert_eq!(
        tokenizer::encode(&back, text).unwrap(),
        tokenizer::encode(&tok, text).unwrap()
    );
    let cfg: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("tokenizer_config.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(cfg["bos_token"], "<s>");
    assert_eq!(cfg["eos_token"], "</s>");
}

#[test]
fn vocab_smaller_than_the_byte_alphabet_is_refused() {
    let err = tokenizer::train(DOCS.iter().copied(), 200).unwrap_err();
    assert!(
        matches!(err, TrainerError::VocabTooSmall { requested: 200, minimum, .. } if minimum == MIN_VOCAB)
    );
    assert!(err.to_string().contains("at least 259"), "{err}");
}
