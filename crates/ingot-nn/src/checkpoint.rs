//! Activation checkpointing (Chen et al. 2016, "Training deep nets with sublinear memory cost";
//! PyTorch's `torch.utils.checkpoint`): a block's forward keeps none of its intermediate tensors,
//! only its input; backward runs the block again from that input and backpropagates through the
//! fresh copy. Memory for activations falls from every tensor of every layer to one tensor per
//! layer plus one layer's worth; the price is a second forward of each block (~1/3 more compute).
//!
//! How: [`Checkpointing::apply`] runs the block as a candle custom op on its input. The op's
//! forward evaluates the block and keeps only the output's values; its backward recomputes the
//! block on a copy of the input made a variable, backpropagates `sum(output · grad_output)`, and
//! returns the input's gradient to candle's backward pass. The gradients of the block's
//! parameters cannot travel through a custom op, so they are summed into the checkpointing's own
//! store, which the trainer adds to the gradients of the step ([`Checkpointing::take_grads`]).
//!
//! Dropout draws the same masks in the recomputation as in the forward: every [`DropoutState`]
//! is snapshotted before the block's forward and set back to that snapshot for the recomputation
//! (then restored), so a run trains identically with and without checkpointing.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use candle_core::{CpuStorage, CustomOp1, Layout, Shape, Tensor, TensorId, Var};
use candle_nn::VarMap;

use crate::dropout::{DropoutSnapshot, DropoutState};

/// A block: input hidden states → output hidden states.
pub type Block = Arc<dyn Fn(&Tensor) -> candle_core::Result<Tensor> + Send + Sync>;

/// The checkpointing of one model: its trainable variables, its dropout states, and the
/// parameter gradients the recomputed blocks produced.
pub struct Checkpointing {
    vars: VarMap,
    dropout: Vec<Arc<DropoutState>>,
    grads: Mutex<HashMap<TensorId, (Tensor, Tensor)>>,
}

impl std::fmt::Debug for Checkpointing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checkpointing").finish_non_exhaustive()
    }
}

impl Checkpointing {
    /// `vars`: every variable a block may use (the model's trainable ones); `dropout`: every
    /// dropout state a block may draw from.
    pub fn new(vars: VarMap, dropout: Vec<Arc<DropoutState>>) -> Arc<Self> {
        Arc::new(Self { vars, dropout, grads: Mutex::default() })
    }

    /// `block(x)`, keeping only `x` for backward. An input that carries no gradient (the first
    /// block's, over a frozen embedding) is made a variable, so that backward reaches the block.
    pub fn apply(self: &Arc<Self>, x: &Tensor, block: Block) -> candle_core::Result<Tensor> {
        let input = if x.track_op() { x.clone() } else { Var::from_tensor(x)?.into_inner() };
        let dropout = self.dropout.iter().map(|d| d.snapshot()).collect();
        input.apply_op1(Recompute { block, owner: self.clone(), dropout })
    }

    /// The parameter gradients summed over the blocks recomputed since the last call, as
    /// (variable, gradient); the store is left empty.
    pub fn take_grads(&self) -> Vec<(Tensor, Tensor)> {
        self.grads.lock().map(|mut g| g.drain().map(|(_, pair)| pair).collect()).unwrap_or_default()
    }

    fn add_grad(&self, var: &Tensor, grad: &Tensor) -> candle_core::Result<()> {
        let mut store = self.grads.lock().map_err(|_| candle_core::Error::Msg("checkpoint gradients lock".into()))?;
        match store.get_mut(&var.id()) {
            Some((_, sum)) => *sum = (&*sum + grad)?,
            None => {
                store.insert(var.id(), (var.clone(), grad.clone()));
            }
        }
        Ok(())
    }
}

struct Recompute {
    block: Block,
    owner: Arc<Checkpointing>,
    /// Each dropout state as it was before the block's forward.
    dropout: Vec<DropoutSnapshot>,
}

impl CustomOp1 for Recompute {
    fn name(&self) -> &'static str {
        "ingot-checkpoint"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = match (storage, layout.contiguous_offsets()) {
            (CpuStorage::F32(v), Some((a, b))) => {
                Tensor::from_slice(&v[a..b], layout.shape(), &candle_core::Device::Cpu)?
            }
            _ => candle_core::bail!("activation checkpointing needs contiguous f32 hidden states"),
        };
        // The block's graph lives only inside this call: the values are copied out below.
        let y = (self.block)(&x)?;
        let shape = y.shape().clone();
        Ok((CpuStorage::F32(y.flatten_all()?.to_vec1::<f32>()?), shape))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad_res: &Tensor) -> candle_core::Result<Option<Tensor>> {
        let x = Var::from_tensor(&arg.detach())?;
        let now: Vec<DropoutSnapshot> = self.owner.dropout.iter().map(|d| d.snapshot()).collect();
        for (state, snap) in self.owner.dropout.iter().zip(&self.dropout) {
            state.restore(snap.clone());
        }
        let y = (self.block)(x.as_tensor());
        for (state, snap) in self.owner.dropout.iter().zip(now) {
            state.restore(snap);
        }
        let grads = (y? * grad_res.detach())?.sum_all()?.backward()?;
        for var in self.owner.vars.all_vars() {
            if let Some(g) = grads.get(var.as_tensor()) {
                self.owner.add_grad(var.as_tensor(), g)?;
            }
        }
        Ok(grads.get(x.as_tensor()).cloned())
    }
}
