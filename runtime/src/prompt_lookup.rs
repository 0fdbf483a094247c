//! Prompt lookup decoding (transformers' `prompt_lookup_num_tokens`; Saxena, 2023): the
//! next tokens are guessed from the context itself, as the tokens that followed an
//! earlier occurrence of its last few tokens, and the model checks all the guesses in one
//! forward pass, each kept while it is what the sampler chain picks there. The output is
//! unchanged, greedy or sampled (a sampled token still takes one draw of the session's
//! generator, in order); when the text repeats its input (a summary quoting its source,
//! code being edited), several tokens come out of one pass.

/// Up to `count` tokens that followed the most recent earlier occurrence of the last `n`
/// tokens of `context`, trying `n` from `max_ngram` down to 1; empty when none occurs.
pub(crate) fn draft(context: &[u32], max_ngram: usize, count: usize) -> Vec<u32> {
    if count == 0 {
        return Vec::new();
    }
    for n in (1..=max_ngram.min(context.len().saturating_sub(1))).rev() {
        let tail = &context[context.len() - n..];
        // Starts of earlier occurrences, the most recent first; the tail itself excluded.
        let found = (0..context.len() - n)
            .rev()
            .find(|&start| &context[start..start + n] == tail);
        if let Some(start) = found {
            let from = start + n;
            let to = (from + count).min(context.len());
            return context[from..to].to_vec();
        }
    }
    Vec::new()
}

#[cfg(test)]
mod tests {
    use super::draft;

    #[test]
    fn drafts_what_followed_the_latest_earlier_occurrence_of_the_longest_tail() {
        // "1 2 3 4 | 9 2 3 5 6 | 2 3": the tail (2, 3) last occurred before 5 6 2 3.
        let context = [1, 2, 3, 4, 9, 2, 3, 5, 6, 2, 3];
        assert_eq!(draft(&context, 2, 3), vec![5, 6, 2]);
        assert_eq!(draft(&context, 2, 10), vec![5, 6, 2, 3]);
        // A longer match wins over a more recent shorter one.
        let context = [7, 8, 9, 1, 9, 4, 7, 8, 9];
        assert_eq!(draft(&context, 3, 2), vec![1, 9]);
        assert_eq!(draft(&context, 1, 2), vec![4, 7]);
        // Nothing repeats: no draft.
        assert!(draft(&[1, 2, 3], 2, 5).is_empty());
        assert!(draft(&[], 2, 5).is_empty());
        assert!(draft(&[4, 4], 2, 0).is_empty());
        assert_eq!(draft(&[4, 4], 2, 3), vec![4]);
    }
}
