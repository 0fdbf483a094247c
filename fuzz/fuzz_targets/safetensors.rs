//! `model.safetensors` validation: any file is mapped and checked against a small Llama
//! config (f32, f16 or quantized) or refused with an error; nothing panics or reads
//! outside the map.
#![no_main]

use std::io::Write;

use libfuzzer_sys::fuzz_target;

const FLOAT: &str = r#"{"vocab_size": 16, "hidden_size": 8, "intermediate_size": 16,
  "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 1,
  "head_dim": 4, "tie_word_embeddings": true}"#;
const QUANTIZED: &str = r#"{"vocab_size": 16, "hidden_size": 8, "intermediate_size": 16,
  "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 1,
  "head_dim": 4, "tie_word_embeddings": true, "quantization_config": {
  "quant_method": "matmul_nbits", "bits": 4, "group_size": 16, "sym": false,
  "accuracy_level": 4, "quantize_embeddings": true}}"#;

fuzz_target!(|data: &[u8]| {
    let Some((&which, bytes)) = data.split_first() else {
        return;
    };
    let text = if which & 1 == 0 { FLOAT } else { QUANTIZED };
    let cfg = rill::ModelConfig::parse(text, std::path::Path::new("config.json")).unwrap();
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(bytes).unwrap();
    file.flush().unwrap();
    if let Ok(w) = rill::weights::MappedWeights::open(file.path(), &cfg) {
        // Every accepted tensor lies inside the file.
        for t in w.tensors.values() {
            assert!(t.range.end <= w.file_size(), "{t:?} outside the file");
        }
    }
});
