//! The seam between the trainer and a distributed engine: the collectives data-parallel training
//! and ZeRO-1 need, over buffers of f32 (gradients, parameters, optimizer shards) and f64 (loss
//! and token counts).
//!
//! [`SingleProcess`] is the default: one rank, every collective the identity. Engines that span
//! processes (MPI over CPUs, NCCL over GPUs) implement the same trait behind their cargo features;
//! the trainer calls it at fixed points of a step (see [`crate::trainer`]) and never knows which
//! one runs.
//!
//! A process belongs to one job, so the job's collective is process-wide: the binary installs
//! the engine's once at start-up ([`install`], e.g. [`mpi::init_from_env`] under `mpirun`) and
//! [`crate::Trainer::run`] uses [`world`], so every recipe runs data-parallel with no change.

use std::sync::OnceLock;

use crate::Result;

#[cfg(feature = "mpi")]
pub mod mpi;

static WORLD: OnceLock<Box<dyn Collective>> = OnceLock::new();

/// The job this process belongs to: the installed collective, else [`SingleProcess`].
pub fn world() -> &'static dyn Collective {
    match WORLD.get() {
        Some(c) => c.as_ref(),
        None => &SingleProcess,
    }
}

/// Make `c` this process's [`world`]; once only, before any training starts.
pub fn install(c: Box<dyn Collective>) -> Result<()> {
    WORLD.set(c).map_err(|_| crate::Error::Config("collective: a job collective is already installed".into()))
}

/// Collective operations over all ranks of a job. Every rank must make the same calls in the same
/// order with buffers of the same lengths, as MPI requires; the sums are elementwise.
pub trait Collective: Send + Sync {
    /// This process's rank, `0..world_size()`.
    fn rank(&self) -> usize;
    /// How many ranks the job has.
    fn world_size(&self) -> usize;
    /// Every rank's `buf` becomes the elementwise sum over ranks.
    fn all_reduce_sum_f32(&self, buf: &mut [f32]) -> Result<()>;
    /// [`Collective::all_reduce_sum_f32`] for f64 (losses, token counts).
    fn all_reduce_sum_f64(&self, buf: &mut [f64]) -> Result<()>;
    /// Every rank's `buf` becomes rank `root`'s.
    fn broadcast_f32(&self, buf: &mut [f32], root: usize) -> Result<()>;
    /// `out` (world_size x `local.len()`) becomes every rank's `local`, in rank order.
    fn all_gather_f32(&self, local: &[f32], out: &mut [f32]) -> Result<()>;
    /// `input` (world_size x `out.len()`) summed over ranks; each rank keeps its own slice.
    fn reduce_scatter_sum_f32(&self, input: &[f32], out: &mut [f32]) -> Result<()>;
    /// Returns once every rank has called it.
    fn barrier(&self) -> Result<()>;

    /// Rank 0 writes checkpoints, metrics and plots; the others only compute.
    fn is_main(&self) -> bool {
        self.rank() == 0
    }
}

/// One process: rank 0 of 1, every collective the identity.
#[derive(Clone, Copy, Debug, Default)]
pub struct SingleProcess;

impl Collective for SingleProcess {
    fn rank(&self) -> usize {
        0
    }

    fn world_size(&self) -> usize {
        1
    }

    fn all_reduce_sum_f32(&self, _buf: &mut [f32]) -> Result<()> {
        Ok(())
    }

    fn all_reduce_sum_f64(&self, _buf: &mut [f64]) -> Result<()> {
        Ok(())
    }

    fn broadcast_f32(&self, _buf: &mut [f32], root: usize) -> Result<()> {
        check_root(root, 1)
    }

    fn all_gather_f32(&self, local: &[f32], out: &mut [f32]) -> Result<()> {
        check_len("all_gather output", out.len(), local.len())?;
        out.copy_from_slice(local);
        Ok(())
    }

    fn reduce_scatter_sum_f32(&self, input: &[f32], out: &mut [f32]) -> Result<()> {
        check_len("reduce_scatter input", input.len(), out.len())?;
        out.copy_from_slice(input);
        Ok(())
    }

    fn barrier(&self) -> Result<()> {
        Ok(())
    }
}

/// A root rank outside the job is a caller's bug, reported rather than a panic in an engine.
pub fn check_root(root: usize, world: usize) -> Result<()> {
    if root >= world {
        return Err(crate::Error::Config(format!("collective: root rank {root} is not in a job of {world}")));
    }
    Ok(())
}

/// Buffer lengths the collective's contract fixes.
pub fn check_len(what: &str, got: usize, want: usize) -> Result<()> {
    if got != want {
        return Err(crate::Error::Config(format!("collective: {what} has {got} elements, expected {want}")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_process_is_the_identity_and_checks_its_arguments() {
        let c = SingleProcess;
        assert_eq!((c.rank(), c.world_size(), c.is_main()), (0, 1, true));
        let mut buf = [1.0f32, -2.0];
        c.all_reduce_sum_f32(&mut buf).unwrap();
        c.broadcast_f32(&mut buf, 0).unwrap();
        assert_eq!(buf, [1.0, -2.0]);
        let mut out = [0.0f32; 2];
        c.all_gather_f32(&buf, &mut out).unwrap();
        assert_eq!(out, buf);
        c.reduce_scatter_sum_f32(&[3.0, 4.0], &mut out).unwrap();
        assert_eq!(out, [3.0, 4.0]);
        assert!(c.broadcast_f32(&mut buf, 1).unwrap_err().to_string().contains("root rank 1"));
        assert!(c.all_gather_f32(&buf, &mut [0.0; 3]).is_err());
        c.barrier().unwrap();
    }
}
