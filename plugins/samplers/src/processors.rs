//! The processors. Each doc comment names the transformers class it reproduces.

/// `TemperatureLogitsWarper`: divides every logit by `t` (> 0).
pub fn temperature(logits: &mut [f32], t: f32) {
    for x in logits {
        *x /= t;
    }
}

/// `e^x` for `x <= 0` (a logit minus the row's maximum), within 2 ulp of `f32::exp`, in
/// operations the compiler vectorises (`f32::exp` is a library call per value): `2^n`
/// times a polynomial in the remainder `x - n ln 2` (Cephes' `expf` coefficients).
/// Values below -87 (probabilities under 1e-38) give 0. For NaN-free `x <= 0` only (a
/// NaN gives ~1e-38, and `x > 88` overflows into garbage): callers pass a value minus its
/// row's maximum.
pub fn exp_nonpositive(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    const ROUND: f32 = 12_582_912.0; // 1.5 * 2^23: adding it rounds to an integer
    let underflow = x < -87.0;
    let x = x.max(-87.0);
    let shifted = x * LOG2E + ROUND;
    let n = shifted - ROUND;
    let r = x - n * LN2_HI - n * LN2_LO;
    let poly = ((((1.987_569_1e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2)
        * r
        + 1.666_666_5e-1)
        * r
        + 0.5;
    let e_r = poly * r * r + r + 1.0;
    // 2^n from n's bits: the integer sits in the low mantissa bits of `shifted`.
    let n_int = (shifted.to_bits() as i32).wrapping_sub(0x4B40_0000);
    let two_n = f32::from_bits(((n_int + 127) as u32) << 23);
    if underflow {
        0.0
    } else {
        e_r * two_n
    }
}

/// Softmax in f32 (max-subtracted), as `torch.softmax` on CPU.
fn softmax(values: &[f32]) -> Vec<f32> {
    let max = values.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exps: Vec<f32> = values.iter().map(|v| exp_nonpositive(v - max)).collect();
    let sum = sum_exact(&exps) as f32;
    exps.into_iter().map(|e| e / sum).collect()
}

/// The sum of `values` in f64 over eight lanes (vectorised): a sequential f32 sum over
/// a large vocabulary drifts by 1e-5, enough to move top-p's cut.
fn sum_exact(values: &[f32]) -> f64 {
    let mut lanes = [0f64; 8];
    let mut chunks = values.chunks_exact(8);
    for chunk in &mut chunks {
        for (lane, &v) in lanes.iter_mut().zip(chunk) {
            *lane += v as f64;
        }
    }
    lanes.iter().sum::<f64>() + chunks.remainder().iter().map(|&v| v as f64).sum::<f64>()
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

/// Indices of the `k` largest values, largest first (ties: lower index first, as a
/// descending stable sort lists them), found by selection, not a sort of all of them.
pub fn top_indices(values: &[f32], k: usize) -> Vec<usize> {
    let cmp = |a: &usize, b: &usize| values[*b].total_cmp(&values[*a]).then(a.cmp(b));
    let k = k.min(values.len());
    if k == 0 {
        return Vec::new();
    }
    if k <= 64 && values.len() > 8 * k {
        // Few out of many (a beam step: 2k of k × vocab; min-p's kept few): one pass keeping the best k
        // sorted; almost every value is rejected by one comparison with the k-th best.
        // The same order as the general path, so the same indices.
        // Blocks whose largest value does not beat the k-th best are skipped after one
        // vectorised maximum (a tie loses too: it has the higher index).
        let mut best: Vec<usize> = Vec::with_capacity(k + 1);
        for start in (0..values.len()).step_by(16) {
            let block = &values[start..(start + 16).min(values.len())];
            if best.len() == k {
                let block_max = block.iter().fold(i32::MIN, |m, &v| m.max(order_key(v)));
                if block_max <= order_key(values[best[k - 1]]) {
                    continue;
                }
            }
            for i in start..start + block.len() {
                if best.len() == k && cmp(&i, &best[k - 1]).is_ge() {
                    continue;
                }
                let at = best.partition_point(|j| cmp(j, &i).is_lt());
                best.insert(at, i);
                best.truncate(k);
            }
        }
        return best;
    }
    let mut idx: Vec<usize> = (0..values.len()).collect();
    if k < idx.len() {
        idx.select_nth_unstable_by(k, cmp);
        idx.truncate(k);
    }
    idx.sort_by(cmp);
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
    // A token goes when its ascending cumulative probability is at most 1 - p. Only the
    // most likely tokens can stay, so only they are sorted: in growing prefixes until the
    // mass outside the prefix is safely below 1 - p (all of it goes). The cumulative sum
    // then starts from that mass and climbs the prefix in ascending order, as
    // transformers sums (in f64 here: over a large vocabulary an f32 sum drifts by 1e-5).
    // Ranks as an ascending stable sort gives them (ties: the lower index ranks lower).
    const MARGIN: f64 = 1e-5; // far above the rounding of the outside mass
    let cut = 1.0 - p as f64;
    let n = logits.len();
    let probs = softmax(logits);
    // One integer per token ordering as the ranks (larger: more likely; ties: the larger
    // index), so selecting and sorting compare plain u64s, not floats through indices.
    let keys: Vec<u64> = logits
        .iter()
        .enumerate()
        .map(|(i, &v)| ((order_key(v) as u32 ^ 0x8000_0000) as u64) << 32 | i as u64)
        .collect();
    let mut prefix = 64.max(min_keep).min(n);
    let (ranked, mut cumulative) = loop {
        let mut top = keys.clone();
        let mut inside = vec![true; n];
        if prefix < n {
            top.select_nth_unstable_by(prefix, |a, b| b.cmp(a));
            for &k in &top[prefix..] {
                inside[k as u32 as usize] = false;
            }
            top.truncate(prefix);
        }
        let outside = outside_mass(&probs, &inside);
        if outside <= cut - MARGIN || prefix == n {
            top.sort_unstable_by(|a, b| b.cmp(a));
            break (top, outside);
        }
        prefix = (prefix * 4).min(n);
    };
    let mut keep = vec![false; n];
    for (rank, &key) in ranked.iter().enumerate().rev() {
        let i = key as u32 as usize;
        cumulative += probs[i] as f64;
        keep[i] = cumulative > cut || rank < min_keep;
    }
    for (x, keep) in logits.iter_mut().zip(keep) {
        *x = if keep { *x } else { f32::NEG_INFINITY };
    }
}

/// The probability of the tokens not `inside`, summed in f64.
fn outside_mass(probs: &[f32], inside: &[bool]) -> f64 {
    let outside: Vec<f32> = probs
        .iter()
        .zip(inside)
        .map(|(&q, &inside)| if inside { 0.0 } else { q })
        .collect();
    sum_exact(&outside)
}

/// `MinPLogitsWarper`: removes tokens whose probability is below `min_p` times the top
/// probability, keeping the `min_keep` most likely.
pub fn min_p(logits: &mut [f32], min_p: f32, min_keep: usize) {
    let probs = softmax(logits);
    let top = probs.iter().copied().fold(0f32, f32::max);
    let threshold = min_p * top;
    let keep: Vec<(usize, f32)> = top_indices(logits, min_keep)
        .into_iter()
        .map(|i| (i, logits[i]))
        .collect();
    for (x, prob) in logits.iter_mut().zip(&probs) {
        *x = if *prob < threshold {
            f32::NEG_INFINITY
        } else {
            *x
        };
    }
    for (i, x) in keep {
        logits[i] = x;
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

/// `SuppressTokensLogitsProcessor`: the tokens of `suppressed` can never be generated.
/// Ids outside the vocabulary are ignored, as transformers' mask ignores them.
pub fn suppress_tokens(logits: &mut [f32], suppressed: &[u32]) {
    for &t in suppressed {
        if let Some(x) = logits.get_mut(t as usize) {
            *x = f32::NEG_INFINITY;
        }
    }
}

/// `SuppressTokensAtBeginLogitsProcessor`: `suppressed` cannot be generated at the
/// position `begin_index` (the prompt's length: the first new token); `length` is the
/// number of tokens so far.
pub fn begin_suppress_tokens(
    logits: &mut [f32],
    length: usize,
    begin_index: usize,
    suppressed: &[u32],
) {
    if length == begin_index {
        suppress_tokens(logits, suppressed);
    }
}

/// `MinLengthLogitsProcessor` and `MinNewTokensLengthLogitsProcessor`: the end-of-sequence
/// tokens `eos` cannot be generated while `length` (all tokens, or the new ones) is below
/// `minimum`.
pub fn min_length(logits: &mut [f32], length: usize, minimum: usize, eos: &[u32]) {
    if length < minimum {
        suppress_tokens(logits, eos);
    }
}

/// `EpsilonLogitsWarper` (epsilon sampling, Hewitt et al. 2022): removes the tokens whose
/// probability is below `epsilon`, keeping the `min_keep` most likely.
pub fn epsilon_cutoff(logits: &mut [f32], epsilon: f32, min_keep: usize) {
    let probs = softmax(logits);
    cut_below(logits, &probs, epsilon, min_keep);
}

/// `EtaLogitsWarper` (eta sampling, Hewitt et al. 2022): removes the tokens whose
/// probability is below `min(epsilon, sqrt(epsilon) · exp(-entropy))`, keeping the
/// `min_keep` most likely.
pub fn eta_cutoff(logits: &mut [f32], epsilon: f32, min_keep: usize) {
    let probs = softmax(logits);
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let log_sum = logits.iter().map(|v| (v - max).exp()).sum::<f32>().ln();
    // The entropy of the distribution (a removed token's `-inf` contributes nothing).
    let entropy: f32 = -logits
        .iter()
        .zip(&probs)
        .filter(|(v, _)| v.is_finite())
        .map(|(v, p)| (v - max - log_sum) * p)
        .sum::<f32>();
    let eta = epsilon.min(epsilon.sqrt() * (-entropy).exp());
    cut_below(logits, &probs, eta, min_keep);
}

/// Removes the tokens whose probability is below `threshold`, except any logit at least
/// the `min_keep`-th largest (transformers' rule for its cutoff warpers).
fn cut_below(logits: &mut [f32], probs: &[f32], threshold: f32, min_keep: usize) {
    let k = min_keep.clamp(1, logits.len().max(1));
    let kth = top_indices(logits, k)
        .into_iter()
        .map(|i| logits[i])
        .fold(f32::INFINITY, f32::min);
    for (x, &p) in logits.iter_mut().zip(probs) {
        if p < threshold && *x < kth {
            *x = f32::NEG_INFINITY;
        }
    }
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

    /// A seeded linear congruential generator: the next 64-bit state each call.
    fn lcg(mut state: u64) -> impl FnMut() -> u64 {
        move || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            state
        }
    }

    #[test]
    fn the_vectorised_exponential_is_within_2_ulp_of_the_library_one() {
        let ulp = |a: f32, b: f32| (a.to_bits() as i64 - b.to_bits() as i64).abs();
        let mut worst = 0;
        for i in 0..=2_000_000 {
            let x = -87.0 * i as f32 / 2_000_000.0;
            let (got, want) = (exp_nonpositive(x), x.exp());
            worst = worst.max(ulp(got, want));
            assert!(ulp(got, want) <= 2, "exp({x}): {got} vs {want}");
        }
        assert!(worst >= 1, "a different function, not a call to exp");
        assert_eq!(exp_nonpositive(0.0), 1.0);
        assert_eq!(exp_nonpositive(-87.5), 0.0);
        assert_eq!(exp_nonpositive(f32::NEG_INFINITY), 0.0);
    }

    /// transformers' definition step by step in f64: ascending stable sort, softmax,
    /// cumulative sum; each token's cumulative probability.
    fn ascending_cumulative(logits: &[f32]) -> Vec<f64> {
        let order = argsort(logits, false);
        let max = logits.iter().fold(f64::MIN, |m, &x| m.max(x as f64));
        let total: f64 = logits.iter().map(|&x| (x as f64 - max).exp()).sum();
        let mut cumulative = vec![0f64; logits.len()];
        let mut sum = 0f64;
        for &i in &order {
            sum += (logits[i] as f64 - max).exp() / total;
            cumulative[i] = sum;
        }
        cumulative
    }

    #[test]
    fn top_p_by_prefixes_agrees_with_the_definition_away_from_rounding() {
        let mut bits = lcg(99);
        let mut next = || (bits() >> 40) as f32 / (1u64 << 24) as f32;
        for (len, spread) in [
            (10, 1.0),
            (300, 0.5),
            (5000, 8.0),
            (5000, 0.05),
            (40_000, 3.0),
        ] {
            // Peaked and flat rows, with ties (values rounded to a grid).
            let row: Vec<f32> = (0..len)
                .map(|_| (next() * spread * 16.0).round() / 16.0)
                .collect();
            let cumulative = ascending_cumulative(&row);
            let mut rank_desc: Vec<usize> = argsort(&row, false);
            rank_desc.reverse();
            for p in [0.1f32, 0.5, 0.9, 0.95, 0.999] {
                for min_keep in [1, 3] {
                    let mut got = row.clone();
                    top_p(&mut got, p, min_keep);
                    for (rank, &i) in rank_desc.iter().enumerate() {
                        let kept = cumulative[i] > 1.0 - p as f64 || rank < min_keep;
                        if got[i].is_finite() != kept {
                            let off = (cumulative[i] - (1.0 - p as f64)).abs();
                            assert!(
                                off < 1e-5,
                                "len {len} p {p}: token {i} (rank {rank}) kept {} but its cumulative {} is {off} from the cut",
                                got[i].is_finite(),
                                cumulative[i]
                            );
                        }
                        if got[i].is_finite() {
                            assert_eq!(got[i], row[i], "kept logits are unchanged");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn top_indices_lists_what_a_stable_descending_sort_lists_first() {
        let values: Vec<f32> = (0..3000).map(|i| ((i * 7919) % 13) as f32 - 6.0).collect();
        for n in [0, 1, 2, 5, 14, 2999, 3000, 4000] {
            let sorted: Vec<usize> = argsort(&values, true).into_iter().take(n).collect();
            assert_eq!(top_indices(&values, n), sorted, "n {n}");
        }
    }

    #[test]
    fn kth_largest_agrees_with_a_full_sort() {
        let mut bits = lcg(12345);
        let mut next = || (bits() >> 33) as u32;
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

    /// The general path: sort every index by the same order.
    fn by_sorting(values: &[f32], k: usize) -> Vec<usize> {
        let mut idx: Vec<usize> = (0..values.len()).collect();
        idx.sort_by(|a, b| values[*b].total_cmp(&values[*a]).then(a.cmp(b)));
        idx.truncate(k);
        idx
    }

    #[test]
    fn the_one_pass_selection_picks_what_sorting_picks() {
        let mut x = 12345u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for round in 0..200 {
            let n = 50 + (next() % 3000) as usize;
            // Few distinct values (many ties), -inf and NaN included.
            let values: Vec<f32> = (0..n)
                .map(|_| match next() % 50 {
                    0 => f32::NEG_INFINITY,
                    1 => f32::NAN,
                    v => (v % 7) as f32 - 3.0 + if round % 2 == 0 { 0.0 } else { v as f32 * 1e-3 },
                })
                .collect();
            for k in [0, 1, 2, 6, 8, 16, 64, 65] {
                assert_eq!(
                    top_indices(&values, k),
                    by_sorting(&values, k),
                    "n {n} k {k}"
                );
            }
        }
    }
}
