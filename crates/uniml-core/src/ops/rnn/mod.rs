//! Recurrent ops: `LSTM`, `GRU`, `RNN`. They share direction/activation/layout
//! handling and the f32 staging in [`common`]; each kernel projects all
//! timesteps' inputs with one GEMM, then runs one small recurrent GEMM per step.

pub mod common;
pub mod gru;
pub mod lstm;
pub mod simple;

pub use common::{Activation, Direction, RnnCommon};
pub use gru::Gru;
pub use lstm::Lstm;
pub use simple::Rnn;
