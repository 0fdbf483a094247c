//! Each processor against transformers' own output on the same inputs
//! (tests/reference/fixtures/processors.json, written by
//! tests/reference/make_sampler_fixtures.py with transformers 4.53).

use serde_json::Value;

fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| match x {
            Value::String(s) if s == "-inf" => f32::NEG_INFINITY,
            Value::String(s) if s == "inf" => f32::INFINITY,
            other => other.as_f64().unwrap() as f32,
        })
        .collect()
}

fn param(p: &Value, key: &str) -> f64 {
    p[key].as_f64().unwrap()
}

#[test]
fn every_processor_matches_transformers_within_1e_5() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/reference/fixtures/processors.json"
    );
    let fixture: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let vocab = fixture["vocab"].as_u64().unwrap() as usize;
    let scores = floats(&fixture["scores"]);
    let ids: Vec<Vec<u32>> = fixture["input_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            row.as_array()
                .unwrap()
                .iter()
                .map(|t| t.as_u64().unwrap() as u32)
                .collect()
        })
        .collect();
    let mut checked = 0;
    for case in fixture["cases"].as_array().unwrap() {
        let name = case["processor"].as_str().unwrap();
        let p = &case["params"];
        let keep = p
            .get("min_tokens_to_keep")
            .and_then(Value::as_u64)
            .unwrap_or(1) as usize;
        let expected = floats(&case["output"]);
        for (row, context) in ids.iter().enumerate() {
            let mut got = scores[row * vocab..(row + 1) * vocab].to_vec();
            match name {
                "temperature" => {
                    rill_samplers::temperature(&mut got, param(p, "temperature") as f32)
                }
                "top_k" => rill_samplers::top_k(&mut got, param(p, "top_k") as usize, keep),
                "top_p" => rill_samplers::top_p(&mut got, param(p, "top_p") as f32, keep),
                "min_p" => rill_samplers::min_p(&mut got, param(p, "min_p") as f32, keep),
                "typical_p" => {
                    rill_samplers::typical_p(&mut got, param(p, "typical_p") as f32, keep)
                }
                "repetition_penalty" => rill_samplers::repetition_penalty(
                    &mut got,
                    context,
                    param(p, "repetition_penalty") as f32,
                ),
                "no_repeat_ngram_size" => rill_samplers::no_repeat_ngram(
                    &mut got,
                    context,
                    param(p, "no_repeat_ngram_size") as usize,
                ),
                "bad_words_ids" => {
                    let words: Vec<Vec<u32>> =
                        serde_json::from_value(p["bad_words_ids"].clone()).unwrap();
                    rill_samplers::bad_words(&mut got, context, &words, &[1]);
                }
                "sequence_bias" => {
                    let biases: Vec<(Vec<u32>, f32)> =
                        serde_json::from_value(p["sequence_bias"].clone()).unwrap();
                    rill_samplers::sequence_bias(&mut got, context, &biases);
                }
                "min_length" => rill_samplers::min_length(
                    &mut got,
                    context.len(),
                    param(p, "min_length") as usize,
                    &[1],
                ),
                "min_new_tokens" => rill_samplers::min_length(
                    &mut got,
                    context.len() - param(p, "prompt_length") as usize,
                    param(p, "min_new_tokens") as usize,
                    &[1],
                ),
                "suppress_tokens" => {
                    let tokens: Vec<u32> =
                        serde_json::from_value(p["suppress_tokens"].clone()).unwrap();
                    rill_samplers::suppress_tokens(&mut got, &tokens);
                }
                "begin_suppress_tokens" => {
                    let tokens: Vec<u32> =
                        serde_json::from_value(p["begin_suppress_tokens"].clone()).unwrap();
                    let begin = param(p, "begin_index") as usize;
                    rill_samplers::begin_suppress_tokens(&mut got, context.len(), begin, &tokens);
                }
                "epsilon_cutoff" => {
                    rill_samplers::epsilon_cutoff(&mut got, param(p, "epsilon_cutoff") as f32, keep)
                }
                "eta_cutoff" => {
                    rill_samplers::eta_cutoff(&mut got, param(p, "eta_cutoff") as f32, keep)
                }
                other => panic!("no processor for fixture case {other}"),
            }
            let want = &expected[row * vocab..(row + 1) * vocab];
            let mut filtered = 0;
            for (i, (g, w)) in got.iter().zip(want).enumerate() {
                if w.is_infinite() || g.is_infinite() {
                    assert_eq!(g, w, "{name} {p} row {row} token {i}");
                    filtered += usize::from(w.is_infinite());
                } else {
                    assert!(
                        (g - w).abs() <= 1e-5,
                        "{name} {p} row {row} token {i}: {g} vs {w}"
                    );
                }
            }
            if matches!(
                name,
                "top_k" | "top_p" | "min_p" | "typical_p" | "epsilon_cutoff" | "eta_cutoff"
            ) {
                assert!(
                    filtered > 0 && filtered < vocab,
                    "{name} {p}: the fixture exercises filtering ({filtered})"
                );
            }
            checked += 1;
        }
    }
    assert_eq!(checked, 54, "27 settings x 2 rows");
}

#[test]
fn presence_and_frequency_penalties_follow_their_formula() {
    let mut logits = vec![1.0f32; 6];
    rill_samplers::presence_frequency(&mut logits, &[2, 4, 2, 2], 0.5, 0.25);
    assert_eq!(
        logits,
        vec![1.0, 1.0, 1.0 - 0.75 - 0.5, 1.0, 1.0 - 0.25 - 0.5, 1.0]
    );
}
