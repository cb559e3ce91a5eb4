//! Descriptor similarity for the vector task kinds (cross_match, clustering, roc): compact
//! blocks of unit descriptors, the tile kernel with fused top-k and threshold filtering,
//! connected components and ROC statistics. Pure computation: no AWS here.
//!
//! The pieces fit one data flow. A collect stage packs objects into [`block::Block`]s
//! (unit-normalised once, so cosine similarity is a dot product) and stores their bytes.
//! Each match subtask takes one pair of blocks and calls [`kernel::top_k`] (cross match,
//! roc) or [`kernel::edges`] (clustering); the kernel multiplies in fixed-size tiles and
//! filters each tile as it is produced, so its memory does not grow with the blocks
//! (beyond the threshold pass's int8 copies of them, a quarter of their size). The
//! per-block results combine afterwards: [`kernel::merge_top_k`] keeps the best of each
//! reference across candidate blocks, [`components::DisjointSets`] joins the edges into
//! clusters, and [`roc::roc`] and [`roc::hit_top`] turn the scored pairs into curves.
//! Everything here is single-threaded and deterministic (ties break by id), so results
//! do not depend on how a task was split into subtasks.

pub mod block;
pub mod components;
pub mod decimal;
#[cfg(target_arch = "x86_64")]
mod int8;
pub mod kernel;
pub mod roc;
