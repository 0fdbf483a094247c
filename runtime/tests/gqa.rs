//! The fused-attention export (`GroupQueryAttention`, one shared past/present buffer) run
//! by the runtime: same logits, tokens and beams as the Hugging Face graph of the same
//! weights, and rollback, prefix reuse and saved state on its in-place cache.

mod common;

use std::sync::Arc;

use rill::kv_cache::Layout;
use rill::{GenerationConfig, Model, Session, SessionOptions};

fn gqa_model() -> (tempfile::TempDir, Arc<Model>) {
    let (tmp, dir) = common::copy_default_model();
    rill_trainer::onnx::export_folder_with(&dir, rill_trainer::onnx::Graphs::Gqa).unwrap();
    let model = Arc::new(Model::open(&dir, &Default::default()).unwrap());
    assert_eq!(model.graph().cache_layout, Layout::Shared);
    (tmp, model)
}

fn greedy(max_new: usize, beams: usize) -> GenerationConfig {
    GenerationConfig {
        max_new_tokens: Some(max_new),
        do_sample: Some(false),
        num_beams: Some(beams),
        eos_token_id: Some(rill::config::OneOrMany::Many(vec![])),
        ..Default::default()
    }
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn logits_match_the_hf_graph_through_chunked_prefill_and_decoding() {
    let (_tmp, gqa) = gqa_model();
    let hf = common::plain_default_model();
    assert_eq!(hf.graph().cache_layout, Layout::DoubleBuffered);
    let options = SessionOptions {
        prefill_chunk: 16,
        ..Default::default()
    };
    let mut a = Session::new(hf, options.clone()).unwrap();
    let mut b = Session::new(gqa, options).unwrap();
    let prompt: Vec<u32> = (0..40).map(|i| 3 + (i * 37) % 4000).collect();
    let (la, lb) = (
        a.forward(&prompt).unwrap().to_vec(),
        b.forward(&prompt).unwrap().to_vec(),
    );
    assert!(max_diff(&la, &lb) < 1e-4, "prefill: {}", max_diff(&la, &lb));
    for step in 0..10 {
        let next = rill::session::argmax(&la);
        let (la2, lb2) = (
            a.forward(&[next + step]).unwrap().to_vec(),
            b.forward(&[next + step]).unwrap().to_vec(),
        );
        assert!(
            max_diff(&la2, &lb2) < 1e-4,
            "step {step}: {}",
            max_diff(&la2, &lb2)
        );
    }
}

#[test]
fn greedy_and_beam_outputs_equal_the_hf_graph() {
    let (_tmp, gqa) = gqa_model();
    let hf = common::plain_default_model();
    for beams in [1, 3] {
        for prompt in common::PROMPTS {
            let run = |m: &Arc<Model>| {
                let mut s = Session::new(m.clone(), SessionOptions::default()).unwrap();
                s.set_generation_config(greedy(30, beams)).unwrap();
                s.generate(prompt, |_| true).unwrap().tokens
            };
            assert_eq!(run(&gqa), run(&hf), "beams {beams}, prompt {prompt:?}");
        }
    }
}

#[test]
fn rollback_reuse_and_saved_state_work_on_the_shared_cache() {
    let (_tmp, gqa) = gqa_model();
    let mut s = Session::new(gqa.clone(), SessionOptions::default()).unwrap();
    s.set_generation_config(greedy(24, 1)).unwrap();
    let first = s.generate(common::PROMPTS[0], |_| true).unwrap();
    let history = s.history();
    // Roll back into the reply and regenerate: the same tokens again, prompt reused.
    let cut = first.prompt_tokens + 5;
    s.truncate(cut).unwrap();
    s.set_generation_config(greedy(19, 1)).unwrap();
    let again = s.generate_ids(&history[..cut], |_| true).unwrap();
    assert_eq!(again.reused_tokens, cut - 1);
    assert_eq!(again.tokens, first.tokens[5..]);
    // Save, load into a new session, continue: as one uninterrupted run.
    let blob = s.save_state().unwrap();
    let mut t = Session::new(gqa.clone(), SessionOptions::default()).unwrap();
    t.load_state(&blob).unwrap();
    t.set_generation_config(greedy(10, 1)).unwrap();
    let more = t.append_ids(&[], |_| true).unwrap();
    assert_eq!(more.evaluated_tokens, 1);
    let mut whole = Session::new(gqa, SessionOptions::default()).unwrap();
    whole.set_generation_config(greedy(34, 1)).unwrap();
    let expected = whole.generate(common::PROMPTS[0], |_| true).unwrap().tokens;
    assert_eq!([&first.tokens[..], &more.tokens[..]].concat(), expected);
}

#[test]
fn prompt_lookup_decoding_on_the_shared_cache_generates_what_greedy_does() {
    let (_tmp, gqa) = gqa_model();
    let prompt = "And God said, Let there be light: and there was light. And God saw the light, that it was good: and God said,";
    let run = |lookup: usize, max_new: usize| {
        let mut s = Session::new(gqa.clone(), SessionOptions::default()).unwrap();
        s.set_generation_config(GenerationConfig {
            prompt_lookup_num_tokens: Some(lookup),
            ..greedy(max_new, 1)
        })
        .unwrap();
        let out = s.generate(prompt, |_| true).unwrap();
        // A continuation reads the cache the generation left, drafts cut back included.
        s.set_generation_config(greedy(6, 1)).unwrap();
        let more = s.generate_ids(&s.history(), |_| true).unwrap();
        (
            out.tokens,
            out.timings.decode_steps,
            s.history(),
            more.tokens,
        )
    };
    let mut saved = 0;
    for max_new in [7, 19, 40] {
        let (plain, plain_passes, plain_history, plain_more) = run(0, max_new);
        let (fast, fast_passes, fast_history, fast_more) = run(6, max_new);
        assert_eq!(fast, plain, "max_new_tokens {max_new}");
        assert_eq!(fast_history, plain_history);
        assert_eq!(fast_more, plain_more);
        saved += plain_passes as i64 - fast_passes as i64;
    }
    assert!(saved > 0, "drafts were accepted");
}

#[test]
fn a_cache_that_grows_while_the_prompt_runs_gives_the_same_logits() {
    // 700 prompt tokens: a session's cache starts with room for 512 and doubles. Fed as
    // 500 then 200 tokens it grows with 500 in it (copied into the new buffers); fed
    // whole, it grows empty. Both layouts, then greedy steps and a beam search.
    let (_tmp, gqa) = gqa_model();
    let prompt: Vec<u32> = (0..700).map(|i| 3 + (i * 37) % 4000).collect();
    for model in [common::plain_default_model(), gqa] {
        let session = |chunk: usize| {
            let options = SessionOptions {
                prefill_chunk: chunk,
                ..Default::default()
            };
            Session::new(model.clone(), options).unwrap()
        };
        let (mut whole, mut chunked) = (session(1024), session(128));
        let empty = chunked.cache_bytes();
        chunked.forward(&prompt[..500]).unwrap();
        assert_eq!(chunked.cache_bytes(), empty);
        let (a, b) = (
            whole.forward(&prompt).unwrap().to_vec(),
            chunked.forward(&prompt[500..]).unwrap().to_vec(),
        );
        assert!(max_diff(&a, &b) < 1e-4, "prefill: {}", max_diff(&a, &b));
        assert_eq!(
            chunked.cache_bytes(),
            2 * empty,
            "one doubling, to 1,024 tokens"
        );
        let mut next = rill::session::argmax(&a);
        for step in 0..5 {
            let (a, b) = (
                whole.forward(&[next]).unwrap().to_vec(),
                chunked.forward(&[next]).unwrap().to_vec(),
            );
            assert!(max_diff(&a, &b) < 1e-4, "step {step}: {}", max_diff(&a, &b));
            next = rill::session::argmax(&a);
        }
    }
}

#[test]
fn beams_reordered_across_a_growth_agree_between_the_layouts() {
    // A 500-token prompt broadcast to 3 rows, then 30 steps: each layout's cache grows
    // past 512 tokens while its rows are reordered, as in the other layout.
    let (_tmp, gqa) = gqa_model();
    let prompt: Vec<u32> = (0..500).map(|i| 3 + (i * 37) % 4000).collect();
    let run = |m: &Arc<Model>| {
        let mut s = Session::new(m.clone(), SessionOptions::default()).unwrap();
        s.set_generation_config(greedy(30, 3)).unwrap();
        s.generate_ids(&prompt, |_| true).unwrap().tokens
    };
    assert_eq!(run(&gqa), run(&common::plain_default_model()));
}
