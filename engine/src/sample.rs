//! CPU-side sampling with a per-candidate RNG, so results depend only on the
//! seed, never on thread timing.

/// SplitMix64: small, fast, reproducible.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }
    /// Seed for candidate `i` of a request seeded with `seed`.
    pub fn for_candidate(seed: u64, i: usize) -> Self {
        let mut r = Rng(seed ^ 0x5851_F42D_4C95_7F2D);
        for _ in 0..=i {
            r.next_u64();
        }
        Rng(r.next_u64() ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15))
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

/// Sampling parameters for one step.
#[derive(Debug, Clone, Copy)]
pub struct SamplingParams {
    pub temperature: f32,
    pub top_k: Option<usize>,
    pub top_p: Option<f32>,
    pub repetition_penalty: Option<f32>,
}

/// HF-style repetition penalty over the tokens in `context`.
pub fn apply_repetition_penalty(logits: &mut [f32], context: &[u32], penalty: f32) {
    if penalty == 1.0 {
        return;
    }
    let mut seen = std::collections::HashSet::with_capacity(context.len());
    for &t in context {
        if seen.insert(t) {
            if let Some(l) = logits.get_mut(t as usize) {
                *l = if *l < 0.0 { *l * penalty } else { *l / penalty };
            }
        }
    }
}

/// Index of the largest logit (first one on ties, like `torch.argmax`).
pub fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0usize;
    let mut bv = f32::NEG_INFINITY;
    for (i, &v) in logits.iter().enumerate() {
        if v > bv {
            bv = v;
            best = i;
        }
    }
    best as u32
}

/// Pick the next token from one row of logits (modified in place).
pub fn sample(logits: &mut [f32], context: &[u32], p: &SamplingParams, rng: &mut Rng) -> u32 {
    if let Some(rp) = p.repetition_penalty {
        apply_repetition_penalty(logits, context, rp);
    }
    if p.temperature <= 0.0 || p.top_k == Some(1) {
        return argmax(logits);
    }
    let inv_t = 1.0 / p.temperature as f64;
    let maxv = logits
        .iter()
        .copied()
        .filter(|v| !v.is_nan())
        .fold(f32::NEG_INFINITY, f32::max) as f64;
    // Top-k threshold on the raw logits.
    let kth = match p.top_k {
        Some(k) if k > 0 && k < logits.len() => {
            let mut v: Vec<f32> = logits.to_vec();
            let (_, kth, _) = v.select_nth_unstable_by(k - 1, |a, b| b.total_cmp(a));
            *kth
        }
        _ => f32::NEG_INFINITY,
    };
    let mut probs: Vec<f64> = logits
        .iter()
        .map(|&l| {
            if l >= kth && !l.is_nan() {
                ((l as f64 - maxv) * inv_t).exp()
            } else {
                0.0
            }
        })
        .collect();
    let total: f64 = probs.iter().sum();
    if total.is_nan() || total <= 0.0 || !total.is_finite() {
        return argmax(logits);
    }
    if let Some(top_p) = p.top_p.filter(|&x| x > 0.0 && x < 1.0) {
        let top_p = top_p as f64;
        // Tokens below eps can never be in the nucleus: their total mass is < (1-p)/2.
        let eps = (1.0 - top_p) / (2.0 * probs.len() as f64) * total;
        let mut cand: Vec<(f64, usize)> = probs
            .iter()
            .enumerate()
            .filter(|(_, &q)| q >= eps && q > 0.0)
            .map(|(i, &q)| (q, i))
            .collect();
        cand.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        let mut keep = vec![false; probs.len()];
        let mut cum = 0.0;
        for &(q, i) in &cand {
            keep[i] = true;
            cum += q;
            if cum >= top_p * total {
                break;
            }
        }
        for (q, k) in probs.iter_mut().zip(keep) {
            if !k {
                *q = 0.0;
            }
        }
    }
    let total: f64 = probs.iter().sum();
    let mut r = rng.next_f64() * total;
    let mut last = 0;
    for (i, &q) in probs.iter().enumerate() {
        if q > 0.0 {
            last = i;
            if r < q {
                return i as u32;
            }
            r -= q;
        }
    }
    last as u32
}
