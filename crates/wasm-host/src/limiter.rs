//! The per-run resource limiter: linear memory (summed over every memory of the run), table
//! elements, and counts of instances, tables and memories.
//!
//! A custom [`ResourceLimiter`] rather than wasmtime's `StoreLimits`: it caps the *sum* of
//! the run's memories (a component has several core instances, each may have a memory), and
//! it records that a limit was hit, so the outcome can say `memory_limit` rather than guess
//! from a trap message. Like `StoreLimits` with `trap_on_grow_failure`, a refused growth traps
//! at once instead of returning -1 to the guest: a flow that hit its limit is over.

use wasmtime::ResourceLimiter;

/// Instances (core and component) one run may create. A Rust component has about five.
const MAX_INSTANCES: usize = 64;
const MAX_TABLES: usize = 64;
const MAX_MEMORIES: usize = 8;
/// Elements one table may hold (8 bytes or so each, outside the memory limit).
const MAX_TABLE_ELEMENTS: usize = 1_000_000;

/// Which limit a run hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Hit {
    Memory,
    Table,
}

/// The error a refused growth traps with.
#[derive(Debug, thiserror::Error)]
#[error("{what} growth to {desired} refused: over the run's limit of {limit}")]
pub(crate) struct LimitExceeded {
    what: &'static str,
    desired: usize,
    limit: usize,
}

#[derive(Debug)]
pub(crate) struct Limiter {
    memory_limit: usize,
    /// Bytes of linear memory the run holds, over all its memories.
    memory_used: usize,
    pub(crate) hit: Option<Hit>,
}

impl Limiter {
    pub(crate) fn new(memory_limit_bytes: usize) -> Self {
        Self {
            memory_limit: memory_limit_bytes,
            memory_used: 0,
            hit: None,
        }
    }
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let growth = desired.saturating_sub(current);
        let total = self.memory_used.saturating_add(growth);
        if total > self.memory_limit {
            self.hit = Some(Hit::Memory);
            return Err(wasmtime::Error::new(LimitExceeded {
                what: "memory",
                desired: total,
                limit: self.memory_limit,
            }));
        }
        self.memory_used = total;
        Ok(true)
    }

    fn memory_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        // Growth we allowed failed anyway (the pool's slot size, or the host is out of
        // memory): the flow still asked for more than it can have.
        self.hit = Some(Hit::Memory);
        Err(error)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > MAX_TABLE_ELEMENTS {
            self.hit = Some(Hit::Table);
            return Err(wasmtime::Error::new(LimitExceeded {
                what: "table",
                desired,
                limit: MAX_TABLE_ELEMENTS,
            }));
        }
        Ok(true)
    }

    fn table_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.hit = Some(Hit::Table);
        Err(error)
    }

    fn instances(&self) -> usize {
        MAX_INSTANCES
    }

    fn tables(&self) -> usize {
        MAX_TABLES
    }

    fn memories(&self) -> usize {
        MAX_MEMORIES
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_is_summed_over_memories_and_refusal_is_recorded() {
        let mut l = Limiter::new(100);
        assert!(matches!(l.memory_growing(0, 60, None), Ok(true)));
        assert!(matches!(l.memory_growing(0, 40, None), Ok(true)));
        assert_eq!(l.hit, None);
        assert!(l.memory_growing(40, 41, None).is_err());
        assert_eq!(l.hit, Some(Hit::Memory));
    }

    #[test]
    fn tables_are_bounded() {
        let mut l = Limiter::new(100);
        assert!(matches!(l.table_growing(0, 10, None), Ok(true)));
        assert!(l.table_growing(0, MAX_TABLE_ELEMENTS + 1, None).is_err());
        assert_eq!(l.hit, Some(Hit::Table));
    }
}
