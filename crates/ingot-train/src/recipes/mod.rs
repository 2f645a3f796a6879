//! One file per training method, each with the same skeleton (setup, train, save) and a header
//! listing what it supports, assumes and raises. Recipes wire library pieces together; the maths
//! (losses, optimizer, schedule) lives in the library.

pub mod dpo;
pub mod grpo;
pub mod ppo;
pub mod pretrain;
pub mod reward;
pub mod scaling;
pub mod sft;
mod tune;
