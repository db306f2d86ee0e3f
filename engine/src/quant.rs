//! Dequantisers for the ggml block formats (reference layouts from ggml).
//!
//! Each function takes the raw bytes of a tensor (a whole number of blocks)
//! and appends `n` f32 values to `out`.

use crate::error::{EngineError, Result};
use half::{bf16, f16};

/// The ggml tensor types this engine reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum GgmlType {
    F32,
    F16,
    BF16,
    Q4_0,
    Q4_1,
    Q8_0,
    Q4K,
    Q6K,
}

impl GgmlType {
    /// Map the GGUF numeric type id.
    pub fn from_id(id: u32) -> Result<Self> {
        Ok(match id {
            0 => GgmlType::F32,
            1 => GgmlType::F16,
            2 => GgmlType::Q4_0,
            3 => GgmlType::Q4_1,
            8 => GgmlType::Q8_0,
            12 => GgmlType::Q4K,
            14 => GgmlType::Q6K,
            30 => GgmlType::BF16,
            other => {
                return Err(EngineError::Unsupported(format!(
                    "ggml tensor type {other} (supported: F32, F16, BF16, Q4_0, Q4_1, Q8_0, Q4_K, Q6_K)"
                )))
            }
        })
    }

    pub fn id(self) -> u32 {
        match self {
            GgmlType::F32 => 0,
            GgmlType::F16 => 1,
            GgmlType::Q4_0 => 2,
            GgmlType::Q4_1 => 3,
            GgmlType::Q8_0 => 8,
            GgmlType::Q4K => 12,
            GgmlType::Q6K => 14,
            GgmlType::BF16 => 30,
        }
    }

    /// (elements per block, bytes per block)
    pub fn block(self) -> (usize, usize) {
        match self {
            GgmlType::F32 => (1, 4),
            GgmlType::F16 | GgmlType::BF16 => (1, 2),
            GgmlType::Q4_0 => (32, 18),
            GgmlType::Q4_1 => (32, 20),
            GgmlType::Q8_0 => (32, 34),
            GgmlType::Q4K => (256, 144),
            GgmlType::Q6K => (256, 210),
        }
    }

    /// Bytes needed for `n` elements, or an error when `n` is not a whole number of blocks.
    pub fn bytes_for(self, n: usize) -> Result<usize> {
        let (be, bb) = self.block();
        if !n.is_multiple_of(be) {
            return Err(EngineError::Gguf(format!(
                "{n} elements is not a multiple of the {self:?} block size {be}"
            )));
        }
        (n / be)
            .checked_mul(bb)
            .ok_or_else(|| EngineError::Gguf("tensor size overflows".into()))
    }
}

fn f16_at(b: &[u8], i: usize) -> f32 {
    f16::from_le_bytes([b[i], b[i + 1]]).to_f32()
}

/// Dequantise `n` elements of type `ty` from `data` into `out`.
pub fn dequantize(ty: GgmlType, data: &[u8], n: usize, out: &mut Vec<f32>) -> Result<()> {
    let need = ty.bytes_for(n)?;
    if data.len() < need {
        return Err(EngineError::Gguf(format!(
            "tensor data truncated: {} bytes, need {need}",
            data.len()
        )));
    }
    let data = &data[..need];
    out.reserve(n);
    match ty {
        GgmlType::F32 => out.extend(
            data.chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
        ),
        GgmlType::F16 => out.extend(
            data.chunks_exact(2)
                .map(|c| f16::from_le_bytes([c[0], c[1]]).to_f32()),
        ),
        GgmlType::BF16 => out.extend(
            data.chunks_exact(2)
                .map(|c| bf16::from_le_bytes([c[0], c[1]]).to_f32()),
        ),
        GgmlType::Q4_0 => {
            for b in data.chunks_exact(18) {
                let d = f16_at(b, 0);
                let qs = &b[2..18];
                out.extend(qs.iter().map(|&q| ((q & 0xF) as i32 - 8) as f32 * d));
                out.extend(qs.iter().map(|&q| ((q >> 4) as i32 - 8) as f32 * d));
            }
        }
        GgmlType::Q4_1 => {
            for b in data.chunks_exact(20) {
                let d = f16_at(b, 0);
                let m = f16_at(b, 2);
                let qs = &b[4..20];
                out.extend(qs.iter().map(|&q| (q & 0xF) as f32 * d + m));
                out.extend(qs.iter().map(|&q| (q >> 4) as f32 * d + m));
            }
        }
        GgmlType::Q8_0 => {
            for b in data.chunks_exact(34) {
                let d = f16_at(b, 0);
                out.extend(b[2..34].iter().map(|&q| (q as i8) as f32 * d));
            }
        }
        GgmlType::Q4K => {
            for b in data.chunks_exact(144) {
                let d = f16_at(b, 0);
                let dmin = f16_at(b, 2);
                let scales = &b[4..16];
                let mut q = &b[16..144];
                let mut is = 0;
                for _ in 0..4 {
                    let (sc1, m1) = scale_min_k4(is, scales);
                    let (sc2, m2) = scale_min_k4(is + 1, scales);
                    let (d1, m1) = (d * sc1 as f32, dmin * m1 as f32);
                    let (d2, m2) = (d * sc2 as f32, dmin * m2 as f32);
                    out.extend(q[..32].iter().map(|&x| d1 * (x & 0xF) as f32 - m1));
                    out.extend(q[..32].iter().map(|&x| d2 * (x >> 4) as f32 - m2));
                    q = &q[32..];
                    is += 2;
                }
            }
        }
        GgmlType::Q6K => {
            for b in data.chunks_exact(210) {
                let ql_all = &b[0..128];
                let qh_all = &b[128..192];
                let sc_all = &b[192..208];
                let d = f16_at(b, 208);
                let mut y = [0f32; 256];
                for half in 0..2 {
                    let ql = &ql_all[half * 64..];
                    let qh = &qh_all[half * 32..];
                    let sc = &sc_all[half * 8..];
                    let yy = &mut y[half * 128..];
                    for l in 0..32 {
                        let is = l / 16;
                        let q1 = ((ql[l] & 0xF) | ((qh[l] & 3) << 4)) as i32 - 32;
                        let q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) as i32 - 32;
                        let q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) as i32 - 32;
                        let q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) as i32 - 32;
                        yy[l] = d * (sc[is] as i8) as f32 * q1 as f32;
                        yy[l + 32] = d * (sc[is + 2] as i8) as f32 * q2 as f32;
                        yy[l + 64] = d * (sc[is + 4] as i8) as f32 * q3 as f32;
                        yy[l + 96] = d * (sc[is + 6] as i8) as f32 * q4 as f32;
                    }
                }
                out.extend_from_slice(&y);
            }
        }
    }
    Ok(())
}

/// ggml's `get_scale_min_k4`: 6-bit scale and min number `j` (0..8) of a Q4_K block.
fn scale_min_k4(j: usize, q: &[u8]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        (
            (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4),
            (q[j + 4] >> 4) | ((q[j] >> 6) << 4),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deq(ty: GgmlType, data: &[u8], n: usize) -> Vec<f32> {
        let mut out = Vec::new();
        dequantize(ty, data, n, &mut out).unwrap();
        out
    }

    fn h(x: f32) -> [u8; 2] {
        f16::from_f32(x).to_le_bytes()
    }

    #[test]
    fn f32_f16_bf16() {
        let mut b = Vec::new();
        for x in [1.5f32, -2.0, 0.0] {
            b.extend_from_slice(&x.to_le_bytes());
        }
        assert_eq!(deq(GgmlType::F32, &b, 3), vec![1.5, -2.0, 0.0]);
        // 0x3C00 = 1.0, 0xC000 = -2.0, 0x3800 = 0.5
        let b = [0x00, 0x3C, 0x00, 0xC0, 0x00, 0x38];
        assert_eq!(deq(GgmlType::F16, &b, 3), vec![1.0, -2.0, 0.5]);
        // bf16 0x3F80 = 1.0, 0xC020 = -2.5
        let b = [0x80, 0x3F, 0x20, 0xC0];
        assert_eq!(deq(GgmlType::BF16, &b, 2), vec![1.0, -2.5]);
    }

    #[test]
    fn q4_0() {
        let mut b = h(0.5).to_vec();
        for j in 0..16u8 {
            b.push(j | ((15 - j) << 4));
        }
        let y = deq(GgmlType::Q4_0, &b, 32);
        for j in 0..16 {
            assert_eq!(y[j], (j as f32 - 8.0) * 0.5);
            assert_eq!(y[j + 16], ((15 - j) as f32 - 8.0) * 0.5);
        }
    }

    #[test]
    fn q4_1() {
        let mut b = h(0.25).to_vec();
        b.extend_from_slice(&h(-1.0));
        for j in 0..16u8 {
            b.push(j | ((15 - j) << 4));
        }
        let y = deq(GgmlType::Q4_1, &b, 32);
        for j in 0..16 {
            assert_eq!(y[j], j as f32 * 0.25 - 1.0);
            assert_eq!(y[j + 16], (15 - j) as f32 * 0.25 - 1.0);
        }
    }

    #[test]
    fn q8_0() {
        let mut b = h(2.0).to_vec();
        let qs: Vec<i8> = (0..32).map(|i| [-128i8, -1, 0, 1, 127][i % 5]).collect();
        b.extend(qs.iter().map(|&q| q as u8));
        let y = deq(GgmlType::Q8_0, &b, 32);
        for i in 0..32 {
            assert_eq!(y[i], qs[i] as f32 * 2.0);
        }
    }

    #[test]
    fn q4_k() {
        let mut b = h(1.0).to_vec();
        b.extend_from_slice(&h(0.5));
        // scales[0..4]: sub-block 0..3 scales (6 bits; bit 6 of [0] feeds sub-block 4's scale)
        // scales[4..8]: sub-block 0..3 mins; scales[8..12]: low nibble scale / high nibble min of 4..7.
        b.extend_from_slice(&[1 | (1 << 6), 2, 3, 4, 5, 6, 7, 8, 0x21, 0x43, 0x65, 0x87]);
        b.extend(std::iter::repeat_n(0x52u8, 128)); // low nibble 2, high nibble 5
        assert_eq!(b.len(), 144);
        let y = deq(GgmlType::Q4K, &b, 256);
        // (scale, min, q) per sub-block of 32: values d*scale*q - dmin*min.
        let subs = [
            (1.0, 5.0, 2.0),
            (2.0, 6.0, 5.0),
            (3.0, 7.0, 2.0),
            (4.0, 8.0, 5.0),
            (17.0, 2.0, 2.0),
            (3.0, 4.0, 5.0),
            (5.0, 6.0, 2.0),
            (7.0, 8.0, 5.0),
        ];
        let want = [-0.5f32, 7.0, 2.5, 16.0, 33.0, 13.0, 7.0, 31.0];
        for (s, &(sc, m, q)) in subs.iter().enumerate() {
            assert_eq!(1.0 * sc * q - 0.5 * m, want[s]);
            for l in 0..32 {
                assert_eq!(y[s * 32 + l], want[s], "sub-block {s} element {l}");
            }
        }
    }

    #[test]
    fn q6_k() {
        let mut b = vec![0x21u8; 128]; // ql: low nibble 1, high nibble 2
        b.extend(std::iter::repeat_n(0xE4u8, 64)); // qh: 2-bit fields 0,1,2,3
        let scales: Vec<i8> = (0..16).map(|i| i as i8 - 8).collect();
        b.extend(scales.iter().map(|&s| s as u8));
        b.extend_from_slice(&h(0.5));
        assert_eq!(b.len(), 210);
        let y = deq(GgmlType::Q6K, &b, 256);
        // q for the four 32-wide groups of each 128 half: (1|0<<4)-32, (1|1<<4)-32, (2|2<<4)-32, (2|3<<4)-32
        let qv = [-31.0f32, -15.0, 2.0, 18.0];
        for (i, &got) in y.iter().enumerate() {
            let (half, r) = (i / 128, i % 128);
            let (g, l) = (r / 32, r % 32);
            let sc = scales[half * 8 + l / 16 + 2 * g] as f32;
            assert_eq!(got, 0.5 * sc * qv[g], "element {i}");
        }
    }

    #[test]
    fn truncated_and_partial_blocks_are_errors() {
        let mut out = Vec::new();
        assert!(dequantize(GgmlType::Q8_0, &[0u8; 33], 32, &mut out).is_err());
        assert!(dequantize(GgmlType::Q4_0, &[0u8; 18], 16, &mut out).is_err());
        assert!(GgmlType::from_id(99).is_err());
    }
}
