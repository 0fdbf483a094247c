//! An f16 folder (weights, KV cache and activations in f16, logits f32) runs through the
//! same runtime path with an f16 KV cache, close to the f32 model.

mod common;

use std::sync::Arc;

use rill::kv_cache::CacheDtype;
use rill::{Model, ModelOptions, Session, SessionOptions};
use rill_trainer::weights::WeightDtype;

#[test]
fn f16_folder_decodes_close_to_f32() {
    let (_tmp, dir) = common::copy_default_model();
    let (cfg, weights, _) = rill_trainer::folder::open_model(&dir).unwrap();
    let tensors: Vec<_> = weights.load_f32().unwrap().into_iter().collect();
    rill_trainer::folder::write_weights(&dir, &cfg, &tensors, WeightDtype::F16).unwrap();
    rill_trainer::onnx::export_folder(&dir).unwrap();

    let half = Arc::new(Model::open(&dir, &ModelOptions::default()).unwrap());
    assert_eq!(half.graph().cache_dtype, CacheDtype::F16);
    let full = common::default_model();
    let ids = full.tokenize(common::PROMPTS[0]).unwrap();
    let opts = SessionOptions {
        context_len: 128,
        prefill_chunk: 4,
        ..Default::default()
    };
    let (mut a, mut b) = (
        Session::new(full, opts.clone()).unwrap(),
        Session::new(half, opts).unwrap(),
    );
    let (mut la, mut lb) = (
        a.forward(&ids).unwrap().to_vec(),
        b.forward(&ids).unwrap().to_vec(),
    );
    let mut agree = 0;
    for _ in 0..16 {
        let scale = la.iter().fold(1f32, |m, v| m.max(v.abs()));
        let err = la
            .iter()
            .zip(&lb)
            .map(|(x, y)| (x - y).abs())
            .fold(0f32, f32::max);
        assert!(
            err < 0.05 * scale,
            "f16 logits off by {err} (scale {scale})"
        );
        let (ta, tb) = (rill::session::argmax(&la), rill::session::argmax(&lb));
        agree += usize::from(ta == tb);
        la = a.forward(&[ta]).unwrap().to_vec();
        lb = b.forward(&[ta]).unwrap().to_vec(); // same inputs, so steps stay comparable
    }
    assert!(agree >= 14, "greedy choices agreed {agree}/16 times");
}
