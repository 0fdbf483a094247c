//! The processors. Each doc comment names the transformers class it reproduces.

/// `TemperatureLogitsWarper`: divides every logit by `t` (> 0).
pub fn temperature(logits: &mut [f32], t: f32) {
    for x in logits {
        *x /= t;
    }
}

/// Softmax in f32 (max-subtracted), as `torch.softmax` on CPU.
fn softmax(values: &[f32]) -> Vec<f32> {
    let max = values.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exps: Vec<f32> = values.iter().map(|v| (v - max).exp()).collect();
    let sum: f32 = exps.iter().sum();
    exps.into_iter().map(|e| e / sum).collect()
}

/// Indices of `values` sorted ascending (descending when `desc`), ties by index.
fn argsort(values: &[f32], desc: bool) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..values.len()).collect();
    if desc {
        idx.sort_by(|&a, &b| values[b].total_cmp(&values[a]).then(a.cmp(&b)));
    } else {
        idx.sort_by(|&a, &b| values[a].total_cmp(&values[b]).then(a.cmp(&b)));
    }
    idx
}

/// `TopKLogitsWarper`: keeps the tokens whose logit is at least the k-th largest (ties
/// with it kept), `max(k, min_keep)` of them at least.
pub fn top_k(logits: &mut [f32], k: usize, min_keep: usize) {
    let k = k.max(min_keep).min(logits.len());
    if k == 0 || k == logits.len() {
        return;
    }
    let threshold = kth_largest(logits, k);
    for x in logits.iter_mut() {
        // A select, not a branch around a store: the loop vectorises.
        *x = if *x < threshold {
            f32::NEG_INFINITY
        } else {
            *x
        };
    }
}

/// The k-th largest value (1-based), by selection rather than a sort: a min-heap of the k
/// largest seen so far, which rejects most values with one comparison.
fn kth_largest(values: &[f32], k: usize) -> f32 {
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;
    struct Key(f32);
    impl PartialEq for Key {
        fn eq(&self, other: &Self) -> bool {
            self.0.total_cmp(&other.0).is_eq()
        }
    }
    impl Eq for Key {}
    impl PartialOrd for Key {
        fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
            Some(self.cmp(other))
        }
    }
    impl Ord for Key {
        fn cmp(&self, other: &Self) -> std::cmp::Ordering {
            self.0.total_cmp(&other.0)
        }
    }
    let mut heap: BinaryHeap<Reverse<Key>> = values[..k].iter().map(|&v| Reverse(Key(v))).collect();
    let mut min = heap.peek().expect("k > 0").0 .0;
    for block in values[k..].chunks(16) {
        // Once the heap holds large values almost every block is skipped after one
        // vectorised maximum of its keys.
        let block_max = block.iter().fold(i32::MIN, |m, &v| m.max(order_key(v)));
        if block_max <= order_key(min) {
            continue;
        }
        for &v in block {
            if v.total_cmp(&min).is_gt() {
                heap.pop();
                heap.push(Reverse(Key(v)));
                min = heap.peek().expect("k > 0").0 .0;
            }
        }
    }
    min
}

/// An integer that orders as `f32::total_cmp` orders the floats.
pub fn order_key(v: f32) -> i32 {
    let bits = v.to_bits() as i32;
    bits ^ (((bits >> 31) as u32) >> 1) as i32
}

/// `TopPLogitsWarper`: keeps the smallest set of most likely tokens whose probability
/// reaches `p` (tokens whose ascending cumulative probability is at most `1 - p` go),
/// at least `min_keep` of them.
pub fn top_p(logits: &mut [f32], p: f32, min_keep: usize) {
    let order = argsort(logits, false);
    let sorted: Vec<f32> = order.iter().map(|&i| logits[i]).collect();
    let probs = softmax(&sorted);
    let n = logits.len();
    let mut cumulative = 0f32;
    for (rank, (&i, prob)) in order.iter().zip(probs).enumerate() {
        cumulative += prob;
        if cumulative <= 1.0 - p && rank < n.saturating_sub(min_keep) {
            logits[i] = f32::NEG_INFINITY;
        }
    }
}

/// `MinPLogitsWarper`: removes tokens whose probability is below `min_p` times the top
/// probability, keeping the `min_keep` most likely.
pub fn min_p(logits: &mut [f32], min_p: f32, min_keep: usize) {
    let probs = softmax(logits);
    let top = probs.iter().copied().fold(0f32, f32::max);
    let threshold = min_p * top;
    let keep: Vec<usize> = argsort(logits, true).into_iter().take(min_keep).collect();
    for (i, (x, prob)) in logits.iter_mut().zip(&probs).enumerate() {
        if *prob < threshold && !keep.contains(&i) {
            *x = f32::NEG_INFINITY;
        }
    }
}

/// `TypicalLogitsWarper` (locally typical sampling, Meister et al. 2022): keeps the
/// tokens whose surprisal is closest to the entropy until their mass reaches `mass`.
pub fn typical_p(logits: &mut [f32], mass: f32, min_keep: usize) {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let log_sum = logits.iter().map(|v| (v - max).exp()).sum::<f32>().ln();
    let logp: Vec<f32> = logits.iter().map(|v| v - max - log_sum).collect();
    let entropy: f32 = -logp
        .iter()
        .map(|&l| {
            let t = l * l.exp();
            if t.is_nan() {
                0.0
            } else {
                t
            }
        })
        .sum::<f32>();
    let shifted: Vec<f32> = logp.iter().map(|&l| (-l - entropy).abs()).collect();
    let order = argsort(&shifted, false);
    let sorted_logits: Vec<f32> = order.iter().map(|&i| logits[i]).collect();
    let probs = softmax(&sorted_logits);
    let mut cumulative = 0f32;
    let mut last = 0usize;
    for prob in &probs {
        cumulative += prob;
        if cumulative < mass {
            last += 1;
        }
    }
    let last = last.min(logits.len() - 1);
    let cut = shifted[order[last]];
    for (rank, &i) in order.iter().enumerate() {
        if shifted[i] > cut && rank >= min_keep {
            logits[i] = f32::NEG_INFINITY;
        }
    }
}

/// `RepetitionPenaltyLogitsProcessor` (Keskar et al. 2019): each token already in
/// `context` has its logit divided by `penalty` when positive, multiplied when negative.
pub fn repetition_penalty(logits: &mut [f32], context: &[u32], penalty: f32) {
    let mut seen = vec![false; logits.len()];
    for &t in context {
        if let Some(s) = seen.get_mut(t as usize) {
            *s = true;
        }
    }
    for (x, _) in logits.iter_mut().zip(&seen).filter(|(_, &s)| s) {
        *x = if *x < 0.0 { *x * penalty } else { *x / penalty };
    }
}

/// The tokens that would complete an n-gram of size `n` already present in `context`.
pub fn banned_ngram_tokens(context: &[u32], n: usize) -> Vec<u32> {
    if n == 0 || context.len() + 1 < n {
        return Vec::new();
    }
    let prefix = &context[context.len() + 1 - n..];
    context
        .windows(n)
        .filter(|w| &w[..n - 1] == prefix)
        .map(|w| w[n - 1])
        .collect()
}

/// `NoRepeatNGramLogitsProcessor`: bans every token that would complete an n-gram of
/// size `n` already present in `context`.
pub fn no_repeat_ngram(logits: &mut [f32], context: &[u32], n: usize) {
    for t in banned_ngram_tokens(context, n) {
        if let Some(x) = logits.get_mut(t as usize) {
            *x = f32::NEG_INFINITY;
        }
    }
}

/// `SequenceBiasLogitsProcessor`: adds `bias` to the last token of each sequence whose
/// earlier tokens end `context` (single tokens: always).
pub fn sequence_bias(logits: &mut [f32], context: &[u32], biases: &[(Vec<u32>, f32)]) {
    for (seq, bias) in biases {
        let Some((&last, prefix)) = seq.split_last() else {
            continue;
        };
        if context.ends_with(prefix) {
            if let Some(x) = logits.get_mut(last as usize) {
                *x += bias;
            }
        }
    }
}

/// `NoBadWordsLogitsProcessor`: bans the last token of each sequence in `bad_words`
/// whose earlier tokens end `context` (single tokens: always). Sequences that are just
/// an end-of-sequence id are ignored, as transformers does.
pub fn bad_words(logits: &mut [f32], context: &[u32], bad_words: &[Vec<u32>], eos: &[u32]) {
    let biases: Vec<(Vec<u32>, f32)> = bad_words
        .iter()
        .filter(|w| !(w.len() == 1 && eos.contains(&w[0])))
        .map(|w| (w.clone(), f32::NEG_INFINITY))
        .collect();
    sequence_bias(logits, context, &biases);
}

/// Presence and frequency penalties (OpenAI's definition; no transformers equivalent):
/// each token's logit loses `frequency * count + presence * (count > 0)`, counting its
/// occurrences in `generated` (the tokens produced so far, not the prompt).
pub fn presence_frequency(logits: &mut [f32], generated: &[u32], presence: f32, frequency: f32) {
    let mut counts: Vec<(u32, u32)> = Vec::new();
    let mut sorted = generated.to_vec();
    sorted.sort_unstable();
    for t in sorted {
        match counts.last_mut() {
            Some((last, n)) if *last == t => *n += 1,
            _ => counts.push((t, 1)),
        }
    }
    for (t, n) in counts {
        if let Some(x) = logits.get_mut(t as usize) {
            *x -= frequency * n as f32 + presence;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kth_largest_agrees_with_a_full_sort() {
        let mut state = 12345u64;
        let mut next = || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 33) as u32
        };
        for len in [1usize, 15, 16, 17, 100, 4096, 5000] {
            // Few distinct values (ties), both zeros, negatives, -inf.
            let values: Vec<f32> = (0..len)
                .map(|_| match next() % 10 {
                    0 => f32::NEG_INFINITY,
                    1 => -0.0,
                    2 => 0.0,
                    n => (next() % 50) as f32 * 0.25 - 6.0 + n as f32,
                })
                .collect();
            let mut sorted = values.clone();
            sorted.sort_by(|a, b| b.total_cmp(a));
            for k in [1, 2, 7, 50, len / 2 + 1, len] {
                let k = k.min(len);
                let got = kth_largest(&values, k);
                assert_eq!(got.to_bits(), sorted[k - 1].to_bits(), "len {len} k {k}");
            }
        }
    }
}
