//! Logits buffers for prompt chunks, shared by the sessions of one model.
//!
//! The graph returns logits for every position it evaluates: a prompt chunk of 128
//! positions over a 32,000-token vocabulary is 16 MiB of f32. A session keeps only the
//! buffer a decode step needs (one position per row) and borrows a chunk-sized one from
//! its model's pool while it evaluates a chunk, so idle sessions cost their KV cache and
//! not a prompt chunk's logits each. The pool keeps one free buffer, the largest returned,
//! for the next chunk: sessions that evaluate chunks at the same time each borrow one,
//! and all but one are freed when they come back, so a burst of concurrent prompts does
//! not hold its memory for the model's life.

use std::sync::Mutex;

/// Free buffers the pool keeps between chunks.
const MAX_FREE_BUFFERS: usize = 1;

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

    /// Returns a buffer for the next borrower; the pool keeps the larger of it and the
    /// one it holds, and frees the other.
    pub(crate) fn give(&self, buffer: Vec<u32>) {
        let dropped = {
            let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
            free.push(buffer);
            if free.len() > MAX_FREE_BUFFERS {
                let smallest = (0..free.len()).min_by_key(|&i| free[i].len());
                smallest.map(|i| free.swap_remove(i))
            } else {
                None
            }
        };
        drop(dropped); // freed outside the lock
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
        assert_eq!(pool.free_buffers(), 1, "the second buffer back is freed");
        assert!(pool.free_len() >= 100, "the larger one is kept");
        // A longer request grows the free buffer rather than adding another.
        let d = pool.take(1000);
        assert!(d.len() >= 1000);
        pool.give(d);
        assert_eq!(pool.free_buffers(), 1);
        assert!(pool.free_len() >= 1000);
    }
}
