//! The MPI engine (feature `mpi`, OpenMPI through the `mpi` crate): one rank per process of an
//! `mpirun` job, collectives over `MPI_COMM_WORLD`.
//!
//! MPI is initialised at [`MPI_THREAD_SERIALIZED`](::mpi::Threading::Serialized) and every call
//! goes through one mutex, so the trainer may call from any thread but never two at once; the
//! kernels' worker threads never call MPI. MPI's default error handler is kept (an MPI error
//! ends the whole job), and [`abort`] ends it on Ingot's own errors and panics, so a failing rank
//! never leaves the others waiting in a collective.

use std::sync::Mutex;

use ::mpi::collective::SystemOperation;
use ::mpi::environment::Universe;
use ::mpi::topology::SimpleCommunicator;
use ::mpi::traits::*;

use super::{check_len, check_root, Collective};
use crate::{Error, Result};

/// Environment variables an MPI launcher sets in each rank (OpenMPI's, PMIx's, MPICH's PMI).
const LAUNCHER_VARS: [&str; 3] = ["OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_SIZE"];

/// Whether this process was started by an MPI launcher (`mpirun`, `srun`).
pub fn launched_by_mpi() -> bool {
    LAUNCHER_VARS.iter().any(|v| std::env::var_os(v).is_some())
}

/// An initialised MPI job. Keep it alive until the program ends: dropping it calls
/// `MPI_Finalize`.
pub struct MpiJob {
    _universe: Universe,
    rank: usize,
    size: usize,
}

impl MpiJob {
    pub fn rank(&self) -> usize {
        self.rank
    }

    pub fn world_size(&self) -> usize {
        self.size
    }
}

/// Under an MPI launcher: initialise MPI and install its world as the process's
/// [`super::world`]. Otherwise `None` and nothing changes (a single process).
pub fn init_from_env() -> Result<Option<MpiJob>> {
    if !launched_by_mpi() {
        return Ok(None);
    }
    let (universe, level) = ::mpi::initialize_with_threading(::mpi::Threading::Serialized).ok_or_else(|| {
        Error::Config("MPI: initialisation failed (MPI was already initialised in this process)".into())
    })?;
    if level < ::mpi::Threading::Serialized {
        return Err(Error::Config(format!(
            "MPI: this MPI library offers thread level {level:?}; Ingot needs Serialized"
        )));
    }
    let world = universe.world();
    let (rank, size) = (world.rank() as usize, world.size() as usize);
    super::install(Box::new(MpiCollective { world: Mutex::new(world), rank, size }))?;
    Ok(Some(MpiJob { _universe: universe, rank, size }))
}

/// End the whole job with `code` (`MPI_Abort` on the world): every rank stops, mpirun exits
/// non-zero. Call it after printing the reason.
pub fn abort(code: i32) -> ! {
    // SAFETY: MPI_Abort may be called at any time after MPI_Init; RSMPI_COMM_WORLD is the world
    // communicator's handle. It does not return.
    unsafe {
        ::mpi::ffi::MPI_Abort(::mpi::ffi::RSMPI_COMM_WORLD, code);
    }
    std::process::exit(code)
}

/// The world communicator behind a mutex (see the module notes).
struct MpiCollective {
    world: Mutex<SimpleCommunicator>,
    rank: usize,
    size: usize,
}

// SAFETY: the communicator is a handle into the MPI library, initialised at
// MPI_THREAD_SERIALIZED: any thread may call MPI as long as no two do so at once, which the
// mutex guarantees.
unsafe impl Send for MpiCollective {}
unsafe impl Sync for MpiCollective {}

impl MpiCollective {
    fn with<R>(&self, f: impl FnOnce(&SimpleCommunicator) -> R) -> Result<R> {
        let world = self.world.lock().map_err(|_| Error::Config("MPI: communicator lock poisoned".into()))?;
        Ok(f(&world))
    }
}

/// MPI counts are C ints.
fn count(len: usize) -> Result<()> {
    if len > i32::MAX as usize {
        return Err(Error::Config(format!("MPI: a buffer of {len} elements exceeds MPI's count limit")));
    }
    Ok(())
}

impl Collective for MpiCollective {
    fn rank(&self) -> usize {
        self.rank
    }

    fn world_size(&self) -> usize {
        self.size
    }

    fn all_reduce_sum_f32(&self, buf: &mut [f32]) -> Result<()> {
        count(buf.len())?;
        let send = buf.to_vec();
        self.with(|w| w.all_reduce_into(&send[..], buf, SystemOperation::sum()))
    }

    fn all_reduce_sum_f64(&self, buf: &mut [f64]) -> Result<()> {
        count(buf.len())?;
        let send = buf.to_vec();
        self.with(|w| w.all_reduce_into(&send[..], buf, SystemOperation::sum()))
    }

    fn broadcast_f32(&self, buf: &mut [f32], root: usize) -> Result<()> {
        check_root(root, self.size)?;
        count(buf.len())?;
        self.with(|w| w.process_at_rank(root as i32).broadcast_into(buf))
    }

    fn all_gather_f32(&self, local: &[f32], out: &mut [f32]) -> Result<()> {
        check_len("all_gather output", out.len(), local.len() * self.size)?;
        count(out.len())?;
        self.with(|w| w.all_gather_into(local, out))
    }

    fn reduce_scatter_sum_f32(&self, input: &[f32], out: &mut [f32]) -> Result<()> {
        check_len("reduce_scatter input", input.len(), out.len() * self.size)?;
        count(input.len())?;
        self.with(|w| w.reduce_scatter_block_into(input, out, SystemOperation::sum()))
    }

    fn barrier(&self) -> Result<()> {
        self.with(|w| w.barrier())
    }
}
