//! One `Model` shared by many sessions on several threads gives the same greedy text as
//! one session alone.

mod common;

use std::sync::Arc;

use rill::{GenerationConfig, Session, SessionOptions};

fn greedy(model: &Arc<rill::Model>, prompt: &str) -> String {
    let mut s = Session::new(
        model.clone(),
        SessionOptions {
            context_len: 128,
            prefill_chunk: 16,
            ..Default::default()
        },
    )
    .unwrap();
    s.set_generation_config(GenerationConfig {
        max_new_tokens: Some(32),
        do_sample: Some(false),
        ..Default::default()
    })
    .unwrap();
    s.generate(prompt, |_| true).unwrap().text
}

#[test]
fn eight_sessions_on_four_threads_match_one_session_alone() {
    let model = common::default_model();
    let alone: Vec<String> = common::PROMPTS.iter().map(|p| greedy(&model, p)).collect();
    let handles: Vec<_> = (0..4)
        .map(|t| {
            let model = model.clone();
            std::thread::spawn(move || {
                (0..2)
                    .map(|k| {
                        let i = (t * 2 + k) % common::PROMPTS.len();
                        (i, greedy(&model, common::PROMPTS[i]))
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut count = 0;
    for h in handles {
        for (i, text) in h.join().unwrap() {
            assert_eq!(text, alone[i], "prompt {i} differs under sharing");
            count += 1;
        }
    }
    assert_eq!(count, 8);
}
