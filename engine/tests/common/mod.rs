//! Test support: tiny random-weight models written as a Hugging Face
//! directory and as GGUF (with a small GGUF writer).
#![allow(dead_code)]

use half::f16;
use serde_json::json;
use std::io::Write;
use std::path::{Path, PathBuf};

pub struct Rng(u64);
impl Rng {
    pub fn new(s: u64) -> Self {
        Rng(s.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        ((self.0 >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Arch {
    Llama,
    Qwen2,
    Gpt2,
}

/// How the 2-D weights are stored in the GGUF.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Quant {
    F32,
    F16,
    BF16,
    Q8_0,
    Q4_0,
}

pub const HIDDEN: usize = 64;
pub const INTER: usize = 128;
pub const LAYERS: usize = 2;
pub const HEADS: usize = 4;
pub const CTX: usize = 128;

/// The GPT-2 byte-to-unicode table.
pub fn byte_chars() -> Vec<char> {
    let mut bs: Vec<u32> = (33..=126).chain(161..=172).chain(174..=255).collect();
    let mut cs = bs.clone();
    let mut n = 0;
    for b in 0..256u32 {
        if !bs.contains(&b) {
            bs.push(b);
            cs.push(256 + n);
            n += 1;
        }
    }
    let mut out = vec![' '; 256];
    for (b, c) in bs.iter().zip(cs) {
        out[*b as usize] = char::from_u32(c).unwrap();
    }
    out
}

/// Vocab: 3 specials, 256 byte tokens, then a few merges.
pub fn vocab() -> (Vec<String>, Vec<(String, String)>) {
    let bc = byte_chars();
    let mut toks: Vec<String> = vec![
        "<|endoftext|>".into(),
        "<|im_start|>".into(),
        "<|im_end|>".into(),
    ];
    toks.extend(bc.iter().map(|c| c.to_string()));
    let g = bc[b' ' as usize];
    let merges: Vec<(String, String)> = vec![
        (g.to_string(), "t".into()),
        ("h".into(), "e".into()),
        (format!("{g}t"), "he".into()),
        ("i".into(), "n".into()),
        ("a".into(), "n".into()),
    ];
    for (a, b) in &merges {
        toks.push(format!("{a}{b}"));
    }
    (toks, merges)
}

pub fn vocab_size() -> usize {
    vocab().0.len()
}

pub const CHATML: &str = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

pub fn tokenizer_json() -> serde_json::Value {
    let (toks, merges) = vocab();
    let vocab: serde_json::Map<String, serde_json::Value> = toks
        .iter()
        .enumerate()
        .map(|(i, t)| (t.clone(), json!(i)))
        .collect();
    let added: Vec<_> = (0..3)
        .map(|i| json!({"id": i, "content": toks[i], "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true}))
        .collect();
    json!({
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": added,
        "normalizer": null,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true},
        "post_processor": null,
        "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
        "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
                  "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
                  "vocab": vocab, "merges": merges.iter().map(|(a, b)| json!([a, b])).collect::<Vec<_>>()}
    })
}

pub fn kv_heads(arch: Arch) -> usize {
    if arch == Arch::Gpt2 {
        HEADS
    } else {
        2
    }
}

/// Round-trip a 2-D weight through the storage type, so both formats hold identical values.
fn storage_roundtrip(q: Quant, v: &[f32]) -> Vec<f32> {
    match q {
        Quant::F32 => v.to_vec(),
        Quant::F16 => v.iter().map(|&x| f16::from_f32(x).to_f32()).collect(),
        Quant::BF16 => v
            .iter()
            .map(|&x| half::bf16::from_f32(x).to_f32())
            .collect(),
        Quant::Q8_0 | Quant::Q4_0 => {
            let bytes = quantize(q, v);
            let mut out = Vec::new();
            let ty = if q == Quant::Q8_0 {
                engine::quant::GgmlType::Q8_0
            } else {
                engine::quant::GgmlType::Q4_0
            };
            engine::quant::dequantize(ty, &bytes, v.len(), &mut out).unwrap();
            out
        }
    }
}

pub fn quantize(q: Quant, v: &[f32]) -> Vec<u8> {
    let mut out = Vec::new();
    match q {
        Quant::F32 => v
            .iter()
            .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        Quant::F16 => v
            .iter()
            .for_each(|&x| out.extend_from_slice(&f16::from_f32(x).to_le_bytes())),
        Quant::BF16 => v
            .iter()
            .for_each(|&x| out.extend_from_slice(&half::bf16::from_f32(x).to_le_bytes())),
        Quant::Q8_0 => {
            for b in v.chunks(32) {
                let amax = b.iter().fold(0f32, |a, &x| a.max(x.abs()));
                let d = amax / 127.0;
                let id = if d > 0.0 { 1.0 / d } else { 0.0 };
                out.extend_from_slice(&f16::from_f32(d).to_le_bytes());
                out.extend(b.iter().map(|&x| ((x * id).round() as i8) as u8));
            }
        }
        Quant::Q4_0 => {
            for b in v.chunks(32) {
                let (mut amax, mut maxv) = (0f32, 0f32);
                for &x in b {
                    if x.abs() > amax {
                        amax = x.abs();
                        maxv = x;
                    }
                }
                let d = maxv / -8.0;
                let id = if d != 0.0 { 1.0 / d } else { 0.0 };
                out.extend_from_slice(&f16::from_f32(d).to_le_bytes());
                for j in 0..16 {
                    let q0 = ((b[j] * id + 8.5) as i32).clamp(0, 15) as u8;
                    let q1 = ((b[j + 16] * id + 8.5) as i32).clamp(0, 15) as u8;
                    out.push(q0 | (q1 << 4));
                }
            }
        }
    }
    out
}

/// A tensor: GGUF name, HF name, shape (PyTorch order), values (in HF layout).
pub struct W {
    pub gguf: String,
    pub hf: String,
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
    pub quantizable: bool,
}

pub struct Tiny {
    pub arch: Arch,
    pub quant: Quant,
    pub weights: Vec<W>,
}

impl Tiny {
    pub fn new(arch: Arch, quant: Quant, seed: u64) -> Self {
        let mut rng = Rng::new(seed);
        let v = vocab_size();
        let (h, i) = (HIDDEN, INTER);
        let hd = h / HEADS;
        let kv = kv_heads(arch) * hd;
        let mut weights = Vec::new();
        let mut add = |gguf: &str,
                       hf: &str,
                       shape: &[usize],
                       scale: f32,
                       quantizable: bool,
                       rng: &mut Rng| {
            let n: usize = shape.iter().product();
            let raw: Vec<f32> = (0..n).map(|_| rng.next() * scale).collect();
            let data = if quantizable {
                storage_roundtrip(quant, &raw)
            } else {
                raw
            };
            weights.push(W {
                gguf: gguf.into(),
                hf: hf.into(),
                shape: shape.to_vec(),
                data,
                quantizable,
            });
        };
        match arch {
            Arch::Llama | Arch::Qwen2 => {
                add(
                    "token_embd.weight",
                    "model.embed_tokens.weight",
                    &[v, h],
                    0.5,
                    true,
                    &mut rng,
                );
                for l in 0..LAYERS {
                    let (g, f) = (format!("blk.{l}"), format!("model.layers.{l}"));
                    add(
                        &format!("{g}.attn_norm.weight"),
                        &format!("{f}.input_layernorm.weight"),
                        &[h],
                        0.2,
                        false,
                        &mut rng,
                    );
                    for (gn, hn, rows) in [
                        ("attn_q", "q_proj", h),
                        ("attn_k", "k_proj", kv),
                        ("attn_v", "v_proj", kv),
                    ] {
                        add(
                            &format!("{g}.{gn}.weight"),
                            &format!("{f}.self_attn.{hn}.weight"),
                            &[rows, h],
                            0.3,
                            true,
                            &mut rng,
                        );
                        if arch == Arch::Qwen2 {
                            add(
                                &format!("{g}.{gn}.bias"),
                                &format!("{f}.self_attn.{hn}.bias"),
                                &[rows],
                                0.3,
                                false,
                                &mut rng,
                            );
                        }
                    }
                    add(
                        &format!("{g}.attn_output.weight"),
                        &format!("{f}.self_attn.o_proj.weight"),
                        &[h, h],
                        0.3,
                        true,
                        &mut rng,
                    );
                    add(
                        &format!("{g}.ffn_norm.weight"),
                        &format!("{f}.post_attention_layernorm.weight"),
                        &[h],
                        0.2,
                        false,
                        &mut rng,
                    );
                    add(
                        &format!("{g}.ffn_gate.weight"),
                        &format!("{f}.mlp.gate_proj.weight"),
                        &[i, h],
                        0.3,
                        true,
                        &mut rng,
                    );
                    add(
                        &format!("{g}.ffn_up.weight"),
                        &format!("{f}.mlp.up_proj.weight"),
                        &[i, h],
                        0.3,
                        true,
                        &mut rng,
                    );
                    add(
                        &format!("{g}.ffn_down.weight"),
                        &format!("{f}.mlp.down_proj.weight"),
                        &[h, i],
                        0.3,
                        true,
                        &mut rng,
                    );
                }
                add(
                    "output_norm.weight",
                    "model.norm.weight",
                    &[h],
                    0.2,
                    false,
                    &mut rng,
                );
                // norms around 1
                for w in weights.iter_mut().filter(|w| w.gguf.contains("norm")) {
                    w.data.iter_mut().for_each(|x| *x += 1.0);
                }
            }
            Arch::Gpt2 => {
                add(
                    "token_embd.weight",
                    "wte.weight",
                    &[v, h],
                    0.5,
                    true,
                    &mut rng,
                );
                add(
                    "position_embd.weight",
                    "wpe.weight",
                    &[CTX, h],
                    0.1,
                    true,
                    &mut rng,
                );
                for l in 0..LAYERS {
                    let (g, f) = (format!("blk.{l}"), format!("h.{l}"));
                    for (gn, hn) in [("attn_norm", "ln_1"), ("ffn_norm", "ln_2")] {
                        add(
                            &format!("{g}.{gn}.weight"),
                            &format!("{f}.{hn}.weight"),
                            &[h],
                            0.2,
                            false,
                            &mut rng,
                        );
                        add(
                            &format!("{g}.{gn}.bias"),
                            &format!("{f}.{hn}.bias"),
                            &[h],
                            0.1,
                            false,
                            &mut rng,
                        );
                    }
                    // GGUF layout [out, in]; the HF Conv1D weight is the transpose.
                    for (gn, hn, o, ii) in [
                        ("attn_qkv", "attn.c_attn", 3 * h, h),
                        ("attn_output", "attn.c_proj", h, h),
                        ("ffn_up", "mlp.c_fc", i, h),
                        ("ffn_down", "mlp.c_proj", h, i),
                    ] {
                        add(
                            &format!("{g}.{gn}.weight"),
                            &format!("{f}.{hn}.weight"),
                            &[o, ii],
                            0.3,
                            true,
                            &mut rng,
                        );
                        add(
                            &format!("{g}.{gn}.bias"),
                            &format!("{f}.{hn}.bias"),
                            &[o],
                            0.1,
                            false,
                            &mut rng,
                        );
                    }
                }
                add(
                    "output_norm.weight",
                    "ln_f.weight",
                    &[h],
                    0.2,
                    false,
                    &mut rng,
                );
                add("output_norm.bias", "ln_f.bias", &[h], 0.1, false, &mut rng);
                for w in weights
                    .iter_mut()
                    .filter(|w| w.gguf.contains("norm.weight"))
                {
                    w.data.iter_mut().for_each(|x| *x += 1.0);
                }
            }
        }
        Tiny {
            arch,
            quant,
            weights,
        }
    }

    fn arch_name(&self) -> &'static str {
        match self.arch {
            Arch::Llama => "llama",
            Arch::Qwen2 => "qwen2",
            Arch::Gpt2 => "gpt2",
        }
    }

    pub fn config_json(&self) -> serde_json::Value {
        match self.arch {
            Arch::Gpt2 => json!({
                "model_type": "gpt2", "vocab_size": vocab_size(), "n_embd": HIDDEN, "n_layer": LAYERS,
                "n_head": HEADS, "n_positions": CTX, "n_inner": INTER, "layer_norm_epsilon": 1e-5,
                "bos_token_id": 1, "eos_token_id": 2
            }),
            _ => json!({
                "model_type": self.arch_name(), "vocab_size": vocab_size(), "hidden_size": HIDDEN,
                "intermediate_size": INTER, "num_hidden_layers": LAYERS, "num_attention_heads": HEADS,
                "num_key_value_heads": kv_heads(self.arch), "rope_theta": 10000.0, "rms_norm_eps": 1e-5,
                "max_position_embeddings": CTX, "tie_word_embeddings": true,
                "bos_token_id": 1, "eos_token_id": 2
            }),
        }
    }

    /// Write `dir/` as a HF directory.
    pub fn write_hf(&self, dir: &Path) {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join("config.json"), self.config_json().to_string()).unwrap();
        std::fs::write(dir.join("tokenizer.json"), tokenizer_json().to_string()).unwrap();
        std::fs::write(
            dir.join("tokenizer_config.json"),
            json!({"chat_template": CHATML, "bos_token": "<|im_start|>", "eos_token": "<|im_end|>", "pad_token": "<|im_end|>"}).to_string(),
        )
        .unwrap();
        let mut tensors: Vec<(String, Vec<usize>, Vec<f32>)> = Vec::new();
        for w in &self.weights {
            let conv = self.arch == Arch::Gpt2 && w.shape.len() == 2 && w.hf.starts_with("h.");
            if conv {
                let (o, i) = (w.shape[0], w.shape[1]);
                let mut t = vec![0f32; o * i];
                for r in 0..o {
                    for c in 0..i {
                        t[c * o + r] = w.data[r * i + c];
                    }
                }
                tensors.push((w.hf.clone(), vec![i, o], t));
            } else {
                tensors.push((w.hf.clone(), w.shape.clone(), w.data.clone()));
            }
        }
        write_safetensors(&dir.join("model.safetensors"), &tensors);
    }

    /// Write a GGUF file.
    pub fn write_gguf(&self, path: &Path) {
        self.write_gguf_with(path, |_| {}, |_, s| s.to_vec())
    }

    /// Write a GGUF file; `setup` runs on the writer first, `reshape` may change a tensor's shape.
    pub fn write_gguf_with(
        &self,
        path: &Path,
        setup: impl FnOnce(&mut GgufWriter),
        reshape: impl Fn(&str, &[usize]) -> Vec<usize>,
    ) {
        let mut g = GgufWriter::default();
        setup(&mut g);
        let a = self.arch_name();
        g.kv_str("general.architecture", a);
        g.kv_str("general.name", "tiny");
        g.kv_u32(&format!("{a}.block_count"), LAYERS as u32);
        g.kv_u32(&format!("{a}.context_length"), CTX as u32);
        g.kv_u32(&format!("{a}.embedding_length"), HIDDEN as u32);
        g.kv_u32(&format!("{a}.feed_forward_length"), INTER as u32);
        g.kv_u32(&format!("{a}.attention.head_count"), HEADS as u32);
        g.kv_u32(
            &format!("{a}.attention.head_count_kv"),
            kv_heads(self.arch) as u32,
        );
        if self.arch == Arch::Gpt2 {
            g.kv_f32(&format!("{a}.attention.layer_norm_epsilon"), 1e-5);
        } else {
            g.kv_f32(&format!("{a}.rope.freq_base"), 10000.0);
            g.kv_f32(&format!("{a}.attention.layer_norm_rms_epsilon"), 1e-5);
        }
        let (toks, merges) = vocab();
        g.kv_str("tokenizer.ggml.model", "gpt2");
        g.kv_str("tokenizer.ggml.pre", "gpt2");
        g.kv_str_arr("tokenizer.ggml.tokens", &toks);
        let types: Vec<i32> = (0..toks.len()).map(|i| if i < 3 { 3 } else { 1 }).collect();
        g.kv_i32_arr("tokenizer.ggml.token_type", &types);
        let m: Vec<String> = merges.iter().map(|(a, b)| format!("{a} {b}")).collect();
        g.kv_str_arr("tokenizer.ggml.merges", &m);
        g.kv_u32("tokenizer.ggml.bos_token_id", 1);
        g.kv_u32("tokenizer.ggml.eos_token_id", 2);
        g.kv_u32("tokenizer.ggml.padding_token_id", 2);
        g.kv_str("tokenizer.chat_template", CHATML);
        let hd = HIDDEN / HEADS;
        for w in &self.weights {
            let mut data = w.data.clone();
            // llama.cpp permutes Q/K rows for arch `llama` (interleaved RoPE).
            if self.arch == Arch::Llama
                && (w.gguf.contains("attn_q.") || w.gguf.contains("attn_k."))
            {
                let nh = if w.gguf.contains("attn_q.") {
                    HEADS
                } else {
                    kv_heads(self.arch)
                };
                data = permute(&data, nh, hd, w.shape.get(1).copied().unwrap_or(1));
            }
            let q = if w.quantizable {
                self.quant
            } else {
                Quant::F32
            };
            g.tensor(&w.gguf, &reshape(&w.gguf, &w.shape), q, &data);
        }
        g.write(path);
    }
}

/// llama.cpp's permute: rows [head][2][hd/2] -> [head][hd/2][2].
pub fn permute(data: &[f32], n_head: usize, hd: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0f32; data.len()];
    let half = hd / 2;
    for h in 0..n_head {
        for two in 0..2 {
            for i in 0..half {
                let src = h * hd + two * half + i;
                let dst = h * hd + i * 2 + two;
                out[dst * cols..(dst + 1) * cols]
                    .copy_from_slice(&data[src * cols..(src + 1) * cols]);
            }
        }
    }
    out
}

pub fn write_safetensors(path: &Path, tensors: &[(String, Vec<usize>, Vec<f32>)]) {
    let mut header = serde_json::Map::new();
    let mut off = 0usize;
    for (name, shape, data) in tensors {
        let n = data.len() * 4;
        header.insert(
            name.clone(),
            json!({"dtype": "F32", "shape": shape, "data_offsets": [off, off + n]}),
        );
        off += n;
    }
    let mut h = serde_json::Value::Object(header).to_string().into_bytes();
    while !h.len().is_multiple_of(8) {
        h.push(b' ');
    }
    let mut f = std::fs::File::create(path).unwrap();
    f.write_all(&(h.len() as u64).to_le_bytes()).unwrap();
    f.write_all(&h).unwrap();
    for (_, _, data) in tensors {
        for x in data {
            f.write_all(&x.to_le_bytes()).unwrap();
        }
    }
}

#[derive(Default)]
pub struct GgufWriter {
    kv: Vec<u8>,
    n_kv: u64,
    infos: Vec<u8>,
    data: Vec<u8>,
    n_tensors: u64,
    /// Override a tensor type id (bad-file tests).
    pub type_override: Option<(String, u32)>,
}

fn put_str(b: &mut Vec<u8>, s: &str) {
    b.extend_from_slice(&(s.len() as u64).to_le_bytes());
    b.extend_from_slice(s.as_bytes());
}

impl GgufWriter {
    pub fn kv_str(&mut self, k: &str, v: &str) {
        put_str(&mut self.kv, k);
        self.kv.extend_from_slice(&8u32.to_le_bytes());
        put_str(&mut self.kv, v);
        self.n_kv += 1;
    }
    pub fn kv_u32(&mut self, k: &str, v: u32) {
        put_str(&mut self.kv, k);
        self.kv.extend_from_slice(&4u32.to_le_bytes());
        self.kv.extend_from_slice(&v.to_le_bytes());
        self.n_kv += 1;
    }
    pub fn kv_f32(&mut self, k: &str, v: f32) {
        put_str(&mut self.kv, k);
        self.kv.extend_from_slice(&6u32.to_le_bytes());
        self.kv.extend_from_slice(&v.to_le_bytes());
        self.n_kv += 1;
    }
    pub fn kv_str_arr(&mut self, k: &str, v: &[String]) {
        put_str(&mut self.kv, k);
        self.kv.extend_from_slice(&9u32.to_le_bytes());
        self.kv.extend_from_slice(&8u32.to_le_bytes());
        self.kv.extend_from_slice(&(v.len() as u64).to_le_bytes());
        for s in v {
            put_str(&mut self.kv, s);
        }
        self.n_kv += 1;
    }
    pub fn kv_i32_arr(&mut self, k: &str, v: &[i32]) {
        put_str(&mut self.kv, k);
        self.kv.extend_from_slice(&9u32.to_le_bytes());
        self.kv.extend_from_slice(&5u32.to_le_bytes());
        self.kv.extend_from_slice(&(v.len() as u64).to_le_bytes());
        for x in v {
            self.kv.extend_from_slice(&x.to_le_bytes());
        }
        self.n_kv += 1;
    }
    /// Add a tensor; `shape` in PyTorch order (written reversed, as ggml does).
    pub fn tensor(&mut self, name: &str, shape: &[usize], q: Quant, data: &[f32]) {
        let ty: u32 = match q {
            Quant::F32 => 0,
            Quant::F16 => 1,
            Quant::Q4_0 => 2,
            Quant::Q8_0 => 8,
            Quant::BF16 => 30,
        };
        let ty = match &self.type_override {
            Some((n, t)) if n == name => *t,
            _ => ty,
        };
        put_str(&mut self.infos, name);
        self.infos
            .extend_from_slice(&(shape.len() as u32).to_le_bytes());
        for d in shape.iter().rev() {
            self.infos.extend_from_slice(&(*d as u64).to_le_bytes());
        }
        self.infos.extend_from_slice(&ty.to_le_bytes());
        while !self.data.len().is_multiple_of(32) {
            self.data.push(0);
        }
        self.infos
            .extend_from_slice(&(self.data.len() as u64).to_le_bytes());
        self.data.extend(quantize(q, data));
        self.n_tensors += 1;
    }
    pub fn bytes(&self) -> Vec<u8> {
        let mut b = b"GGUF".to_vec();
        b.extend_from_slice(&3u32.to_le_bytes());
        b.extend_from_slice(&self.n_tensors.to_le_bytes());
        b.extend_from_slice(&self.n_kv.to_le_bytes());
        b.extend_from_slice(&self.kv);
        b.extend_from_slice(&self.infos);
        while !b.len().is_multiple_of(32) {
            b.push(0);
        }
        b.extend_from_slice(&self.data);
        b
    }
    pub fn write(&self, path: &Path) {
        std::fs::write(path, self.bytes()).unwrap();
    }
}

/// A fresh temp dir under the target dir.
pub fn tmpdir(name: &str) -> PathBuf {
    let base =
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    std::fs::create_dir_all(&base).unwrap();
    base
}
