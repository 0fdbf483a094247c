//! The KV cache: owned by rill, in the graph's dtype, and never copied on the host in
//! steady-state decoding. It is allocated for part of the session's context and grows
//! (doubling, up to the context) when a step needs more room, so memory follows the
//! tokens held rather than the context a model allows (131,072 positions for many). Two
//! layouts, one per graph convention:
//!
//! - [`Layout::DoubleBuffered`], for the Hugging Face graph. It reads `past` as a
//!   contiguous `[batch, kv_heads, past, head_dim]` tensor and writes `present` as a
//!   contiguous `[batch, kv_heads, past + new, head_dim]` tensor (its `Concat` copies the
//!   past into the present: the one copy per step that this convention implies, done
//!   inside ONNX Runtime). A present cannot overwrite the past it is computed from, and
//!   its head stride differs, so each cache tensor has two buffers of full capacity: a
//!   step reads one side and writes the other, and `commit` swaps them.
//! - [`Layout::Shared`], for graphs whose attention (ONNX Runtime's
//!   `GroupQueryAttention`) reads and writes one `[batch, kv_heads, capacity, head_dim]`
//!   buffer in place: `past` and `present` are the same memory, a step writes only the
//!   new rows, and rollback is just a shorter length.
//!
//! rill itself copies cache rows only when asked to `truncate` (double-buffered layout:
//! each head's first rows, packed into the other side) or `reorder` (beam search: the
//! rows whose parent is another row).
//!
//! The buffers live in a [`CacheMemory`]: host memory for the CPU provider, the GPU's
//! memory when the model runs on CUDA (`past`/`present` are then bound to device buffers
//! and those copies run on the device). Every copy is a strided block copy between
//! non-overlapping regions, so the same code serves both.

use crate::cache_memory::{Buffer, CacheMemory, Strided};
use crate::error::{Result, RillError};

/// Element type of the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheDtype {
    /// 32-bit floats.
    F32,
    /// 16-bit IEEE floats.
    F16,
}

impl CacheDtype {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            CacheDtype::F32 => 4,
            CacheDtype::F16 => 2,
        }
    }
}

/// Shape of the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheShape {
    /// Decoder layers.
    pub layers: usize,
    /// Rows (sequences or beam hypotheses).
    pub batch: usize,
    /// Key/value heads.
    pub kv_heads: usize,
    /// Head width.
    pub head_dim: usize,
    /// Most tokens it holds (as allocated; [`KvCache::reserve`] grows it).
    pub capacity: usize,
}

/// Which of a layer's two tensors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Keys.
    Key = 0,
    /// Values.
    Value = 1,
}

/// A view of one cache tensor for ONNX Runtime: pointer, byte length, shape.
#[derive(Debug, Clone, Copy)]
pub struct TensorView {
    /// First byte.
    pub ptr: *mut u8,
    /// Bytes covered.
    pub bytes: usize,
    /// `[batch, kv_heads, len, head_dim]`.
    pub shape: [usize; 4],
}

/// How the graph reads and writes the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// `past` and `present` are separate contiguous tensors (Hugging Face graphs).
    DoubleBuffered,
    /// `past` and `present` are one buffer of the full capacity, written in place.
    Shared,
}

/// The cache of one session.
pub struct KvCache {
    shape: CacheShape,
    dtype: CacheDtype,
    layout: Layout,
    memory: CacheMemory,
    /// `sides[s][layer * 2 + kind]`, each `capacity * row_bytes * batch * kv_heads` bytes;
    /// one side in the shared layout.
    sides: Vec<Vec<Buffer>>,
    current: usize,
    len: usize,
    /// Shared layout: one tensor's worth of room for `reorder`, allocated on first use.
    scratch: Option<Buffer>,
    /// The capacity `reserve` may grow to (the session's context).
    max_capacity: usize,
}

impl KvCache {
    /// Allocates a double-buffered cache of `shape` in `dtype` in host memory (zeroed,
    /// length 0).
    pub fn new(shape: CacheShape, dtype: CacheDtype) -> Self {
        Self::with_layout(shape, dtype, Layout::DoubleBuffered)
    }

    /// Allocates a cache in the given layout in host memory.
    pub fn with_layout(shape: CacheShape, dtype: CacheDtype, layout: Layout) -> Self {
        Self::in_memory(shape, dtype, layout, CacheMemory::Host)
            .expect("host allocations do not fail")
    }

    /// Allocates a cache in the given layout in `memory` (the host, or the GPU the
    /// model runs on), for all of `shape.capacity` at once.
    pub fn in_memory(
        shape: CacheShape,
        dtype: CacheDtype,
        layout: Layout,
        memory: CacheMemory,
    ) -> Result<Self> {
        Self::growing(shape, shape.capacity, dtype, layout, memory)
    }

    /// A cache that may hold `shape.capacity` tokens, allocated for `initial` of them
    /// (at most the capacity) and grown by [`KvCache::reserve`].
    pub fn growing(
        shape: CacheShape,
        initial: usize,
        dtype: CacheDtype,
        layout: Layout,
        memory: CacheMemory,
    ) -> Result<Self> {
        // The whole context must be countable, even if it is never allocated.
        Self::tensor_bytes(shape, dtype)?;
        let allocated = CacheShape {
            capacity: initial.clamp(1, shape.capacity.max(1)),
            ..shape
        };
        let sides = Self::allocate(&memory, allocated, dtype, layout)?;
        Ok(KvCache {
            shape: allocated,
            dtype,
            layout,
            memory,
            sides,
            current: 0,
            len: 0,
            scratch: None,
            max_capacity: shape.capacity,
        })
    }

    /// Zeroed buffers for every tensor of `shape`: one side, or two (double-buffered).
    fn allocate(
        memory: &CacheMemory,
        shape: CacheShape,
        dtype: CacheDtype,
        layout: Layout,
    ) -> Result<Vec<Vec<Buffer>>> {
        let bytes = Self::tensor_bytes(shape, dtype)?;
        let side = || {
            (0..shape.layers * 2)
                .map(|_| memory.alloc(bytes))
                .collect::<Result<Vec<_>>>()
        };
        Ok(match layout {
            Layout::DoubleBuffered => vec![side()?, side()?],
            Layout::Shared => vec![side()?],
        })
    }

    /// Makes room for `total` tokens: when that exceeds the allocation, new buffers of
    /// twice the capacity (at least `total`, at most the session's context) take the
    /// live tokens and replace the old ones. Nothing changes when the allocation fails
    /// (an error naming the bytes) or `total` exceeds the context.
    pub fn reserve(&mut self, total: usize) -> Result<()> {
        let old = self.shape;
        if total <= old.capacity {
            return Ok(());
        }
        if total > self.max_capacity {
            return Err(RillError::InvalidArgument(format!(
                "the KV cache holds at most {} tokens, {total} asked for",
                self.max_capacity
            )));
        }
        let grown = CacheShape {
            capacity: old
                .capacity
                .saturating_mul(2)
                .clamp(total, self.max_capacity),
            ..old
        };
        let sides = Self::allocate(&self.memory, grown, self.dtype, self.layout)?;
        // The live tokens: each head's first `len` rows, `stride` rows apart before (all
        // of the capacity, or packed) and after (the new capacity, or packed).
        let row = self.row_bytes();
        let (from_pitch, to_pitch) = match self.layout {
            Layout::Shared => (old.capacity * row, grown.capacity * row),
            Layout::DoubleBuffered => (self.len * row, self.len * row),
        };
        for (from, to) in self.sides[self.current].iter().zip(&sides[0]) {
            self.memory.copy(
                to,
                Strided::new(0, to_pitch),
                from,
                Strided::new(0, from_pitch),
                self.len * row,
                self.blocks(),
            )?;
        }
        self.memory.synchronize()?;
        self.sides = sides;
        self.current = 0;
        self.shape = grown;
        self.scratch = None;
        Ok(())
    }

    /// Bytes of one tensor; an error when the product overflows.
    fn tensor_bytes(shape: CacheShape, dtype: CacheDtype) -> Result<usize> {
        [shape.kv_heads, shape.capacity, shape.head_dim, dtype.size()]
            .iter()
            .try_fold(shape.batch, |acc, &x| acc.checked_mul(x))
            .ok_or(crate::RillError::OutOfMemory {
                what: "the KV cache".into(),
                bytes: usize::MAX,
            })
    }

    /// The layout.
    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// Where the buffers live.
    pub fn memory(&self) -> &CacheMemory {
        &self.memory
    }

    /// Rows between one head's first row and the next head's in the live buffer.
    fn stride(&self) -> usize {
        match self.layout {
            Layout::DoubleBuffered => self.len,
            Layout::Shared => self.shape.capacity,
        }
    }

    /// Bytes of one position of one head.
    fn row_bytes(&self) -> usize {
        self.shape.head_dim * self.dtype.size()
    }

    /// Head blocks in one tensor (`batch * kv_heads`).
    fn blocks(&self) -> usize {
        self.shape.batch * self.shape.kv_heads
    }

    /// Tokens held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it holds no token.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Its shape, with the capacity allocated now.
    pub fn shape(&self) -> CacheShape {
        self.shape
    }

    /// Element type.
    pub fn dtype(&self) -> CacheDtype {
        self.dtype
    }

    /// Bytes allocated (both sides in the double-buffered layout).
    pub fn allocated_bytes(&self) -> usize {
        self.sides.iter().flatten().map(Buffer::len).sum::<usize>()
            + self.scratch.as_ref().map_or(0, Buffer::len)
    }

    fn view(&self, side: usize, layer: usize, kind: Kind, len: usize) -> TensorView {
        let s = self.shape;
        let buf = &self.sides[side][layer * 2 + kind as usize];
        TensorView {
            ptr: buf.ptr(),
            bytes: self.blocks() * len * self.row_bytes(),
            shape: [s.batch, s.kv_heads, len, s.head_dim],
        }
    }

    /// The live cache of `layer`, as the next step's `past` input (the whole buffer in the
    /// shared layout, whose valid length the attention mask gives).
    pub fn past(&self, layer: usize, kind: Kind) -> TensorView {
        match self.layout {
            Layout::DoubleBuffered => self.view(self.current, layer, kind, self.len),
            Layout::Shared => self.view(0, layer, kind, self.shape.capacity),
        }
    }

    /// Where the next step writes `present` for `layer`, holding `len() + new` tokens (the
    /// same buffer as `past` in the shared layout). Panics if that exceeds the capacity
    /// (the session checks first).
    pub fn present(&self, layer: usize, kind: Kind, new: usize) -> TensorView {
        assert!(self.len + new <= self.shape.capacity, "KV cache overflow");
        match self.layout {
            Layout::DoubleBuffered => self.view(1 - self.current, layer, kind, self.len + new),
            Layout::Shared => self.view(0, layer, kind, self.shape.capacity),
        }
    }

    /// Makes the presents of the last step the live cache, now `len() + new` tokens.
    pub fn commit(&mut self, new: usize) {
        assert!(self.len + new <= self.shape.capacity, "KV cache overflow");
        if self.layout == Layout::DoubleBuffered {
            self.current = 1 - self.current;
        }
        self.len += new;
    }

    /// Empties the cache (keeps the memory).
    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// The live side and the other one (double-buffered layout).
    fn live_and_other(&self) -> (&[Buffer], &[Buffer]) {
        (&self.sides[self.current], &self.sides[1 - self.current])
    }

    /// Keeps the first `len` tokens, dropping the rest (rollback): no-op when
    /// `len >= len()`. In the double-buffered layout each head's first rows are copied,
    /// packed, into the other side, which becomes the live one.
    pub fn truncate(&mut self, len: usize) -> Result<()> {
        if len >= self.len {
            return Ok(());
        }
        if self.layout == Layout::DoubleBuffered {
            let row = self.row_bytes();
            let (live, other) = self.live_and_other();
            for (from, to) in live.iter().zip(other) {
                self.memory.copy(
                    to,
                    Strided::new(0, len * row),
                    from,
                    Strided::new(0, self.len * row),
                    len * row,
                    self.blocks(),
                )?;
            }
            self.memory.synchronize()?;
            self.current = 1 - self.current;
        }
        self.len = len;
        Ok(())
    }

    /// Replaces batch row `i` by old row `parents[i]` for every i (beam search), in place:
    /// only rows whose parent is another row are copied, and only the rows both
    /// overwritten and still needed go through a scratch buffer first (the unused side of
    /// a double-buffered tensor). Identity parents copy nothing.
    pub fn reorder(&mut self, parents: &[usize]) -> Result<()> {
        self.reorder_keeping(parents, &vec![0; parents.len()])
    }

    /// As [`KvCache::reorder`], copying row `parents[i]` into row `i` only from position
    /// `keep[i]` on: the caller knows that row `i`'s first `keep[i]` positions already
    /// hold what its parent's do (beam search: the two hypotheses share those tokens, the
    /// prompt at least, whose cache was broadcast to every row). Values past the length
    /// copy nothing.
    pub fn reorder_keeping(&mut self, parents: &[usize], keep: &[usize]) -> Result<()> {
        let s = self.shape;
        if parents.len() != s.batch || keep.len() != s.batch {
            return Err(RillError::InvalidArgument(format!(
                "reorder needs {} parent indices and kept lengths, got {} and {}",
                s.batch,
                parents.len(),
                keep.len()
            )));
        }
        if let Some(p) = parents.iter().find(|&&p| p >= s.batch) {
            return Err(RillError::InvalidArgument(format!(
                "parent index {p} is out of range for batch {}",
                s.batch
            )));
        }
        let keep: Vec<usize> = keep.iter().map(|&k| k.min(self.len)).collect();
        if parents
            .iter()
            .enumerate()
            .all(|(i, &p)| i == p || keep[i] == self.len)
        {
            return Ok(());
        }
        // A row is `kv_heads` segments of `len` positions, `stride` bytes apart: each
        // head's valid positions, in place (shared layout, capacity rows per head) or packed
        // (double-buffered layout, the current side).
        let row = self.row_bytes();
        let rows = RowLayout {
            heads: s.kv_heads,
            stride: self.stride() * row,
            position: row,
            len: self.len,
        };
        if self.layout == Layout::Shared && self.scratch.is_none() {
            self.scratch = Some(self.memory.alloc(Self::tensor_bytes(s, self.dtype)?)?);
        }
        match (self.layout, &self.scratch) {
            (Layout::Shared, Some(scratch)) => {
                for data in &self.sides[0] {
                    rows.reorder(&self.memory, data, scratch, parents, &keep)?;
                }
            }
            _ => {
                // The side not in use is free until the next step writes it: the scratch.
                let (live, other) = self.live_and_other();
                for (data, scratch) in live.iter().zip(other) {
                    rows.reorder(&self.memory, data, scratch, parents, &keep)?;
                }
            }
        }
        self.memory.synchronize()
    }

    /// Appends `new` tokens given on the host, `data[layer][kind]` each laid out
    /// `[batch, kv_heads, new, head_dim]` as raw element bytes (restoring saved state, and
    /// tests). Writes the merged cache into the other side and swaps, exactly as a step of
    /// the graph does.
    pub fn append(&mut self, new: usize, data: &[[&[u8]; 2]]) -> Result<()> {
        let s = self.shape;
        let row = self.row_bytes();
        let bad = |m: String| Err(RillError::InvalidArgument(m));
        if data.len() != s.layers {
            return bad(format!(
                "append needs data for {} layers, got {}",
                s.layers,
                data.len()
            ));
        }
        if self.len + new > self.max_capacity {
            return bad(format!(
                "append of {new} tokens overflows the cache ({} of {})",
                self.len, self.max_capacity
            ));
        }
        let expected = self.blocks() * new * row;
        if let Some(d) = data.iter().flatten().find(|d| d.len() != expected) {
            return bad(format!(
                "append data of {} bytes, expected {expected}",
                d.len()
            ));
        }
        self.reserve(self.len + new)?;
        let s = self.shape;
        let (old, total, blocks) = (self.len, self.len + new, self.blocks());
        let added = Strided::new(0, new * row);
        if self.layout == Layout::Shared {
            let cap = s.capacity * row;
            for (t, buf) in self.sides[0].iter().enumerate() {
                let add = data[t / 2][t % 2];
                let at = Strided::new(old * row, cap);
                self.memory.upload(buf, at, add, added, new * row, blocks)?;
            }
        } else {
            let (live, other) = self.live_and_other();
            for (t, (from, to)) in live.iter().zip(other).enumerate() {
                let add = data[t / 2][t % 2];
                let packed = Strided::new(0, total * row);
                let kept = Strided::new(0, old * row);
                self.memory
                    .copy(to, packed, from, kept, old * row, blocks)?;
                let tail = Strided::new(old * row, total * row);
                self.memory
                    .upload(to, tail, add, added, new * row, blocks)?;
            }
            self.current = 1 - self.current;
        }
        self.memory.synchronize()?;
        self.len = total;
        Ok(())
    }

    /// The live cache of one tensor as raw host bytes `[batch, kv_heads, len, head_dim]`
    /// (gathered from the strided buffer in the shared layout).
    pub fn read(&self, layer: usize, kind: Kind) -> Result<Vec<u8>> {
        let row = self.row_bytes();
        let mut out = vec![0u8; self.blocks() * self.len * row];
        let buf = &self.sides[self.current][layer * 2 + kind as usize];
        self.memory.download(
            &mut out,
            Strided::new(0, self.len * row),
            buf,
            Strided::new(0, self.stride() * row),
            self.len * row,
            self.blocks(),
        )?;
        Ok(out)
    }
}

/// Where a batch row's bytes are inside one cache tensor: `heads` segments of `len`
/// positions of `position` bytes each, `stride` bytes apart, row `i` starting at
/// `i * heads * stride`.
struct RowLayout {
    heads: usize,
    stride: usize,
    position: usize,
    len: usize,
}

impl RowLayout {
    /// Row `row`'s segments from position `from` on, as one strided region.
    fn at(&self, row: usize, from: usize) -> Strided {
        Strided::new(
            row * self.heads * self.stride + from * self.position,
            self.stride,
        )
    }

    /// Makes row `i` of `data` a copy of row `parents[i]` from position `keep[i]` on,
    /// copying only the rows that change, and saving into `scratch` (same size as `data`)
    /// only the rows that are both overwritten and still needed as a source, from the
    /// first position a child reads.
    fn reorder(
        &self,
        memory: &CacheMemory,
        data: &Buffer,
        scratch: &Buffer,
        parents: &[usize],
        keep: &[usize],
    ) -> Result<()> {
        let changed = |i: usize| parents[i] != i && keep[i] < self.len;
        // Row r is saved from the first position any other row copies out of it.
        let saved: Vec<Option<usize>> = (0..parents.len())
            .map(|r| {
                let first = (0..parents.len())
                    .filter(|&i| i != r && parents[i] == r && changed(i))
                    .map(|i| keep[i])
                    .min();
                first.filter(|_| changed(r))
            })
            .collect();
        let width = |from: usize| (self.len - from) * self.position;
        for (r, from) in saved.iter().enumerate() {
            if let Some(from) = *from {
                let at = self.at(r, from);
                memory.copy(scratch, at, data, at, width(from), self.heads)?;
            }
        }
        for i in (0..parents.len()).filter(|&i| changed(i)) {
            let (p, from) = (parents[i], keep[i]);
            let source = if saved[p].is_some() { scratch } else { data };
            memory.copy(
                data,
                self.at(i, from),
                source,
                self.at(p, from),
                width(from),
                self.heads,
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(batch: usize) -> CacheShape {
        CacheShape {
            layers: 2,
            batch,
            kv_heads: 2,
            head_dim: 3,
            capacity: 8,
        }
    }

    #[test]
    fn a_cache_too_large_to_hold_or_to_count_is_an_error() {
        for capacity in [usize::MAX / 4, 1 << 58] {
            let huge = CacheShape {
                capacity,
                ..shape(4)
            };
            for layout in [Layout::DoubleBuffered, Layout::Shared] {
                let e = KvCache::in_memory(huge, CacheDtype::F16, layout, CacheMemory::Host);
                assert!(
                    matches!(e, Err(crate::RillError::OutOfMemory { .. })),
                    "capacity {capacity}"
                );
            }
        }
    }

    /// Element value encoding (layer, kind, batch, head, position, dim).
    fn value(l: usize, k: usize, b: usize, h: usize, t: usize, d: usize) -> f32 {
        (l * 100_000 + k * 10_000 + b * 1000 + h * 100 + t * 10 + d) as f32
    }

    fn block(l: usize, k: usize, batch: usize, from: usize, n: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for b in 0..batch {
            for h in 0..2 {
                for t in from..from + n {
                    for d in 0..3 {
                        out.extend(value(l, k, b, h, t, d).to_le_bytes());
                    }
                }
            }
        }
        out
    }

    fn append(cache: &mut KvCache, from: usize, n: usize) {
        let batch = cache.shape().batch;
        let blocks: Vec<[Vec<u8>; 2]> = (0..2)
            .map(|l| [block(l, 0, batch, from, n), block(l, 1, batch, from, n)])
            .collect();
        let refs: Vec<[&[u8]; 2]> = blocks
            .iter()
            .map(|[k, v]| [k.as_slice(), v.as_slice()])
            .collect();
        cache.append(n, &refs).unwrap();
    }

    fn floats(bytes: &[u8]) -> Vec<f32> {
        bytes
            .chunks(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect()
    }

    fn expected(l: usize, k: usize, parents: &[usize], len: usize) -> Vec<f32> {
        floats(
            &parents
                .iter()
                .flat_map(|&p| {
                    let all = block(l, k, parents.len().max(p + 1), 0, len);
                    let per = all.len() / parents.len().max(p + 1);
                    all[p * per..(p + 1) * per].to_vec()
                })
                .collect::<Vec<u8>>(),
        )
    }

    #[test]
    fn a_growing_cache_keeps_its_tokens_in_both_layouts() {
        for layout in [Layout::DoubleBuffered, Layout::Shared] {
            let host = CacheMemory::Host;
            let mut c = KvCache::growing(shape(2), 2, CacheDtype::F32, layout, host).unwrap();
            let small = c.allocated_bytes();
            append(&mut c, 0, 1);
            assert_eq!(c.shape().capacity, 2, "{layout:?}");
            // 3 tokens: twice the capacity; 5: twice again, the context (8).
            append(&mut c, 1, 2);
            assert_eq!(c.shape().capacity, 4, "{layout:?}");
            append(&mut c, 3, 2);
            assert_eq!(c.shape().capacity, 8, "{layout:?}");
            assert_eq!(c.allocated_bytes(), 4 * small, "{layout:?}");
            for (l, k, kind) in [(0, 0, Kind::Key), (1, 1, Kind::Value)] {
                let got = floats(&c.read(l, kind).unwrap());
                assert_eq!(got, floats(&block(l, k, 2, 0, 5)), "{layout:?}");
            }
            // Beam reorders and rollbacks work on the grown buffers (the shared
            // layout's scratch is made anew for their size).
            c.reorder(&[1, 1]).unwrap();
            assert_eq!(
                floats(&c.read(0, Kind::Key).unwrap()),
                expected(0, 0, &[1, 1], 5)
            );
            c.truncate(3).unwrap();
            assert_eq!(
                floats(&c.read(1, Kind::Value).unwrap()),
                expected(1, 1, &[1, 1], 3)
            );
            // Past the context: an error, and the tokens stay.
            assert!(c.reserve(9).is_err());
            assert_eq!((c.len(), c.shape().capacity), (3, 8));
            assert_eq!(
                floats(&c.read(1, Kind::Value).unwrap()),
                expected(1, 1, &[1, 1], 3)
            );
        }
    }

    #[test]
    fn reserve_goes_straight_to_a_larger_need() {
        let mut c = KvCache::growing(
            shape(1),
            1,
            CacheDtype::F32,
            Layout::Shared,
            CacheMemory::Host,
        )
        .unwrap();
        c.reserve(7).unwrap();
        assert_eq!(c.shape().capacity, 7);
        c.reserve(5).unwrap();
        assert_eq!(c.shape().capacity, 7, "enough room: nothing moves");
        c.reserve(8).unwrap();
        assert_eq!(c.shape().capacity, 8, "doubling stops at the context");
    }

    #[test]
    fn append_lays_out_batch_head_position_dim() {
        let mut c = KvCache::new(shape(2), CacheDtype::F32);
        append(&mut c, 0, 3);
        append(&mut c, 3, 2);
        assert_eq!(c.len(), 5);
        for l in 0..2 {
            for k in 0..2 {
                let kind = if k == 0 { Kind::Key } else { Kind::Value };
                assert_eq!(
                    floats(&c.read(l, kind).unwrap()),
                    floats(&block(l, k, 2, 0, 5))
                );
            }
        }
    }

    #[test]
    fn truncate_keeps_each_heads_first_rows() {
        let mut c = KvCache::new(shape(2), CacheDtype::F32);
        append(&mut c, 0, 6);
        c.truncate(4).unwrap();
        assert_eq!(c.len(), 4);
        assert_eq!(
            floats(&c.read(1, Kind::Value).unwrap()),
            floats(&block(1, 1, 2, 0, 4))
        );
        // Appending after a truncate continues from the new end.
        append(&mut c, 4, 2);
        assert_eq!(
            floats(&c.read(0, Kind::Key).unwrap()),
            floats(&block(0, 0, 2, 0, 6))
        );
        c.truncate(10).unwrap();
        assert_eq!(c.len(), 6, "truncate beyond the length is a no-op");
        c.truncate(0).unwrap();
        assert!(c.is_empty());
    }

    #[test]
    fn reorder_copies_rows_from_their_parents() {
        let mut c = KvCache::new(shape(3), CacheDtype::F32);
        append(&mut c, 0, 4);
        c.reorder(&[2, 0, 0]).unwrap();
        for l in 0..2 {
            assert_eq!(
                floats(&c.read(l, Kind::Key).unwrap()),
                expected(l, 0, &[2, 0, 0], 4)
            );
            assert_eq!(
                floats(&c.read(l, Kind::Value).unwrap()),
                expected(l, 1, &[2, 0, 0], 4)
            );
        }
        assert!(c.reorder(&[0, 1]).is_err());
        assert!(c.reorder(&[0, 1, 3]).is_err());
    }

    /// Parent rows of a 4-row batch: identity, swaps, cycles, shifts, duplicates.
    const PARENT_PATTERNS: [&[usize]; 7] = [
        &[0, 1, 2, 3],
        &[1, 0, 2, 3],
        &[1, 2, 3, 0],
        &[0, 0, 1, 2],
        &[3, 3, 3, 3],
        &[2, 3, 0, 1],
        &[0, 2, 2, 1],
    ];

    #[test]
    fn every_parent_pattern_reorders_like_a_fresh_gather() {
        // Swaps, cycles, shifts, duplicates and identity, applied twice in a row (the second
        // time over already reordered rows), in both layouts.
        for layout in [Layout::DoubleBuffered, Layout::Shared] {
            for first in PARENT_PATTERNS {
                for second in PARENT_PATTERNS {
                    let mut c = KvCache::with_layout(shape(4), CacheDtype::F32, layout);
                    append(&mut c, 0, 5);
                    c.reorder(first).unwrap();
                    c.reorder(second).unwrap();
                    let combined: Vec<usize> = second.iter().map(|&p| first[p]).collect();
                    for l in 0..2 {
                        for (k, kind) in [Kind::Key, Kind::Value].into_iter().enumerate() {
                            assert_eq!(
                                floats(&c.read(l, kind).unwrap()),
                                expected(l, k, &combined, 5),
                                "{layout:?} {first:?} then {second:?}"
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn reorder_keeping_copies_only_past_the_kept_positions() {
        // Row i keeps its own first keep[i] positions and takes its parent's after them;
        // every parent pattern, kept lengths from none to past the end, both layouts.
        let keeps: [&[usize]; 4] = [&[0, 0, 0, 0], &[2, 5, 1, 3], &[4, 0, 9, 2], &[5, 5, 5, 5]];
        let len = 5;
        for layout in [Layout::DoubleBuffered, Layout::Shared] {
            for parents in PARENT_PATTERNS {
                for keep in keeps {
                    let mut c = KvCache::with_layout(shape(4), CacheDtype::F32, layout);
                    append(&mut c, 0, len);
                    c.reorder_keeping(parents, keep).unwrap();
                    for l in 0..2 {
                        for (k, kind) in [Kind::Key, Kind::Value].into_iter().enumerate() {
                            let mut want = Vec::new();
                            for (b, &p) in parents.iter().enumerate() {
                                for h in 0..2 {
                                    for t in 0..len {
                                        let from = if t < keep[b] { b } else { p };
                                        want.extend((0..3).map(|d| value(l, k, from, h, t, d)));
                                    }
                                }
                            }
                            assert_eq!(
                                floats(&c.read(l, kind).unwrap()),
                                want,
                                "{layout:?} parents {parents:?} keep {keep:?}"
                            );
                        }
                    }
                }
            }
        }
        let mut c = KvCache::new(shape(2), CacheDtype::F32);
        assert!(c.reorder_keeping(&[1, 0], &[0]).is_err());
    }

    #[test]
    fn present_views_the_other_side_and_commit_swaps() {
        let mut c = KvCache::new(shape(1), CacheDtype::F16);
        let past = c.past(0, Kind::Key);
        let present = c.present(0, Kind::Key, 3);
        assert_ne!(past.ptr, present.ptr);
        assert_eq!(present.shape, [1, 2, 3, 3]);
        assert_eq!(present.bytes, 2 * 3 * 3 * 2);
        c.commit(3);
        assert_eq!(c.past(0, Kind::Key).ptr, present.ptr);
        assert_eq!(c.len(), 3);
        assert!(
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| c.present(0, Kind::Key, 6)))
                .is_err()
        );
    }

    #[test]
    fn overflowing_append_is_refused() {
        let mut c = KvCache::new(shape(1), CacheDtype::F32);
        append(&mut c, 0, 8);
        let blocks: Vec<[Vec<u8>; 2]> = (0..2)
            .map(|l| [block(l, 0, 1, 8, 1), block(l, 1, 1, 8, 1)])
            .collect();
        let refs: Vec<[&[u8]; 2]> = blocks
            .iter()
            .map(|[k, v]| [k.as_slice(), v.as_slice()])
            .collect();
        assert!(c
            .append(1, &refs)
            .unwrap_err()
            .to_string()
            .contains("overflows"));
    }

    #[test]
    fn the_shared_layout_holds_the_same_rows_as_the_double_buffered_one() {
        let mut a = KvCache::new(shape(3), CacheDtype::F32);
        let mut b = KvCache::with_layout(shape(3), CacheDtype::F32, Layout::Shared);
        let same = |a: &KvCache, b: &KvCache| {
            assert_eq!(a.len(), b.len());
            for l in 0..2 {
                for kind in [Kind::Key, Kind::Value] {
                    assert_eq!(
                        floats(&a.read(l, kind).unwrap()),
                        floats(&b.read(l, kind).unwrap())
                    );
                }
            }
        };
        for c in [&mut a, &mut b] {
            append(c, 0, 3);
            append(c, 3, 2);
        }
        same(&a, &b);
        for c in [&mut a, &mut b] {
            c.reorder(&[1, 1, 0]).unwrap();
        }
        same(&a, &b);
        for c in [&mut a, &mut b] {
            c.truncate(2).unwrap();
            append(c, 2, 4);
        }
        same(&a, &b);
        assert_eq!(b.layout(), Layout::Shared);
        // past and present are one buffer of the full capacity.
        let (past, present) = (b.past(1, Kind::Value), b.present(1, Kind::Value, 1));
        assert_eq!(past.ptr, present.ptr);
        assert_eq!(past.shape, [3, 2, 8, 3]);
        assert!(b.allocated_bytes() < a.allocated_bytes());
    }
}
