//! `rill-trainer`: trains Llama-architecture language models on CPU with candle and
//! writes rill model folders (DESIGN.md, "Trainer" and "The model folder").
//!
//! The pieces, each in its own module: the corpus and its held-out split ([`corpus`]),
//! the byte-level BPE tokenizer ([`tokenizer`]), the Hugging Face Llama config
//! ([`config`]) and forward pass ([`model`]), the training techniques ([`schedule`],
//! [`loss`], [`optim`]) and loop ([`train`]), the weights on disk ([`weights`]), the
//! model folder ([`folder`]) and the loss plot ([`plot`]).

pub mod config;
pub mod corpus;
pub mod error;
pub mod folder;
pub mod loss;
pub mod model;
pub mod onnx;
pub mod optim;
pub mod plot;
pub mod quantize;
pub mod sample;
pub mod schedule;
pub mod tokenizer;
pub mod train;
pub mod weights;

pub use error::{Result, TrainerError};
