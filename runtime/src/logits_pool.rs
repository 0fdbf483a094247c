//! Logits buffers for prompt chunks, shared by the sessions of one model.
//!
//! The graph returns logits for every position it evaluates: a prompt chunk of 128
//! positions over a 32,000-token vocabulary is 16 MiB of f32. A session keeps only the
//! buffer a decode step needs (one position per row) and borrows a chunk-sized one from
//! its model's pool while it evaluates a chunk, so idle sessions cost their KV cache and
//! not a prompt chunk's logits each. The pool keeps what it lent for the next chunk: at
//! most as many buffers as sessions evaluated chunks at once.

use std::sync::Mutex;

/// Buffers of `u32` (f32 or f16 bits; u32 storage keeps either aligned).
#[derive(Debug, Default)]
pub(crate) struct LogitsPool {
    free: Mutex<Vec<Vec<u32>>>,
}

impl LogitsPool {
    /// A buffer of at least `len` elements: the largest one free, grown when short.
    pub(crate) fn take(&self, len: usize) -> Vec<u32> {
        let mut buffer = {
            let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
            let largest = (0..free.len()).max_by_key(|&i| free[i].len());
            largest.map(|i| free.swap_remove(i)).unwrap_or_default()
        };
        if buffer.len() < len {
            buffer.resize(len, 0);
        }
        buffer
    }

    /// Returns a buffer for the next borrower.
    pub(crate) fn give(&self, buffer: Vec<u32>) {
        self.free
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(buffer);
    }

    /// Elements held by free buffers.
    #[cfg(test)]
    fn free_len(&self) -> usize {
        self.free.lock().unwrap().iter().map(Vec::len).sum()
    }

    /// Free buffers.
    #[cfg(test)]
    pub(crate) fn free_buffers(&self) -> usize {
        self.free.lock().unwrap().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_returned_buffer_is_lent_again_instead_of_a_new_one() {
        let pool = LogitsPool::default();
        let a = pool.take(100);
        assert!(a.len() >= 100);
        let ptr = a.as_ptr();
        pool.give(a);
        let b = pool.take(50);
        assert_eq!(b.as_ptr(), ptr, "the free buffer is reused");
        assert_eq!(pool.free_len(), 0);
        // Two borrowers at once get two buffers; both come back.
        let c = pool.take(10);
        assert_ne!(c.as_ptr(), b.as_ptr());
        pool.give(b);
        pool.give(c);
        assert!(pool.free_len() >= 110);
        // A longer request grows the largest free buffer rather than adding a third.
        let d = pool.take(1000);
        assert!(d.len() >= 1000);
        pool.give(d);
        assert_eq!(pool.free_buffers(), 2);
    }
}
