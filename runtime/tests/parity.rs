//! The runtime against the trainer's own forward pass (candle): logits at every step
//! within 1e-4, and greedy continuations identical token for token.

mod common;

use candle_core::{Device, Tensor};
use rill::{Session, SessionOptions};

const NEW_TOKENS: usize = 64;

#[test]
fn logits_and_greedy_tokens_match_candle_for_three_prompts() {
    let model = common::default_model();
    let (_, _, reference) = rill_trainer::folder::open_model(&common::default_model_dir()).unwrap();
    for prompt in common::PROMPTS {
        let ids = model.tokenize(prompt).unwrap();
        // rill: prefill, then one token at a time, greedily, recording every step's logits.
        let mut session = Session::new(
            model.clone(),
            SessionOptions {
                context_len: 256,
                prefill_chunk: 5,
                ..Default::default()
            },
        )
        .unwrap();
        let mut steps = vec![session.forward(&ids).unwrap().to_vec()];
        let mut tokens = ids.clone();
        for _ in 0..NEW_TOKENS {
            let next = rill::session::argmax(steps.last().unwrap());
            tokens.push(next);
            steps.push(session.forward(&[next]).unwrap().to_vec());
        }
        // candle: the whole sequence at once.
        let input = Tensor::new(tokens.as_slice(), &Device::Cpu)
            .unwrap()
            .unsqueeze(0)
            .unwrap();
        let all = reference
            .forward(&input)
            .unwrap()
            .squeeze(0)
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        let mut worst = 0f32;
        for (k, got) in steps.iter().enumerate() {
            let want = &all[ids.len() - 1 + k];
            let err = got
                .iter()
                .zip(want)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            worst = worst.max(err);
            assert!(
                err < 1e-4,
                "{prompt:?} step {k}: max |rill - candle| = {err}"
            );
        }
        // Greedy continuation from candle alone.
        let greedy =
            rill_trainer::sample::generate(&reference, &ids, NEW_TOKENS, 0.0, 1, &[], 0).unwrap();
        assert_eq!(
            &tokens[ids.len()..],
            greedy.as_slice(),
            "{prompt:?}: greedy tokens differ"
        );
        println!("{prompt:?}: {NEW_TOKENS} greedy tokens identical, worst logit error {worst:.2e}");
    }
}

#[test]
fn generate_streams_the_greedy_continuation() {
    let model = common::default_model();
    let mut session = Session::new(model.clone(), SessionOptions::default()).unwrap();
    let greedy = rill::GenerationConfig {
        max_new_tokens: Some(24),
        do_sample: Some(false),
        repetition_penalty: Some(1.0),
        ..Default::default()
    };
    session.set_generation_config(greedy).unwrap();
    let mut pieces = String::new();
    let out = session
        .generate(common::PROMPTS[0], |p| {
            pieces.push_str(p);
            true
        })
        .unwrap();
    assert_eq!(pieces, out.text);
    assert_eq!(out.text, model.detokenize(&out.tokens).unwrap());
    assert!(out.tokens.len() <= 24);
    let ids = model.tokenize(common::PROMPTS[0]).unwrap();
    let (_, _, reference) = rill_trainer::folder::open_model(&common::default_model_dir()).unwrap();
    let greedy = rill_trainer::sample::generate(
        &reference,
        &ids,
        24,
        0.0,
        1,
        &model.eos_ids(&session.generation_config()),
        0,
    )
    .unwrap();
    let expected: Vec<u32> = greedy
        .into_iter()
        .filter(|t| !model.eos_ids(&session.generation_config()).contains(t))
        .collect();
    assert_eq!(out.tokens, expected);
}
