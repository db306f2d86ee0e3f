//! Chat templates rendered with the model's own Jinja template (minijinja,
//! with Python-compatible string/dict methods), falling back to ChatML.

use crate::error::{EngineError, Result};
use minijinja::{Environment, ErrorKind};
// The domain's message type: what is stored is what the template renders.
use domain::Message;

/// Used when a model has no template of its own.
pub const CHATML_TEMPLATE: &str = "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

/// Render `messages` with `template` (HF conventions: `messages`,
/// `add_generation_prompt`, `bos_token`, `eos_token`, `raise_exception`).
pub fn render(
    template: &str,
    messages: &[Message],
    add_generation_prompt: bool,
    bos_token: &str,
    eos_token: &str,
) -> Result<String> {
    let mut env = Environment::new();
    // transformers renders with trim_blocks and lstrip_blocks.
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
    env.add_function(
        "raise_exception",
        |msg: String| -> std::result::Result<String, minijinja::Error> {
            Err(minijinja::Error::new(ErrorKind::InvalidOperation, msg))
        },
    );
    // A template comes with a model file: bound its work and its output, so that a
    // hostile one fails instead of hanging a worker or filling its memory.
    env.set_fuel(Some(FUEL + FUEL_PER_MESSAGE * messages.len() as u64));
    env.add_template("chat", template)
        .map_err(|e| EngineError::Template(e.to_string()))?;
    let tmpl = env
        .get_template("chat")
        .map_err(|e| EngineError::Template(e.to_string()))?;
    let text: usize = messages
        .iter()
        .map(|m| m.content.len() + m.role.len())
        .sum();
    let mut out = Bounded {
        bytes: Vec::new(),
        limit: OUTPUT_BYTES + 4 * text,
    };
    tmpl.render_captured_to(
        minijinja::context! {
            messages => messages,
            add_generation_prompt => add_generation_prompt,
            bos_token => bos_token,
            eos_token => eos_token,
        },
        &mut out,
    )
    .map_err(|e| match e.kind() {
        ErrorKind::WriteFailure => EngineError::Template(format!(
            "the chat template writes more than {} bytes for these messages",
            out.limit
        )),
        ErrorKind::OutOfFuel => {
            EngineError::Template("the chat template runs too long (out of fuel)".into())
        }
        _ => EngineError::Template(format!("{e:#}")),
    })?;
    String::from_utf8(out.bytes)
        .map_err(|_| EngineError::Template("the chat template wrote invalid UTF-8".into()))
}

/// Template instructions any prompt may take, and more per message: real chat templates
/// take about 25 per message.
const FUEL: u64 = 100_000;
const FUEL_PER_MESSAGE: u64 = 200;

/// Output any prompt may have beyond four times its messages' text.
const OUTPUT_BYTES: usize = 1 << 20;

/// A buffer that refuses to grow past `limit`.
struct Bounded {
    bytes: Vec<u8>,
    limit: usize,
}

impl std::io::Write for Bounded {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.bytes.len() + buf.len() > self.limit {
            return Err(std::io::Error::other("chat template output over its limit"));
        }
        self.bytes.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(role: &str, content: &str) -> Message {
        Message {
            role: role.into(),
            content: content.into(),
        }
    }

    #[test]
    fn chatml_fallback() {
        let s = render(CHATML_TEMPLATE, &[msg("user", "hi")], true, "", "").unwrap();
        assert_eq!(s, "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n");
        let s = render(CHATML_TEMPLATE, &[msg("user", "hi")], false, "", "").unwrap();
        assert_eq!(s, "<|im_start|>user\nhi<|im_end|>\n");
    }

    #[test]
    fn python_methods_blocks_and_exceptions() {
        // Llama-2-style template: .strip(), bos/eos, raise_exception, trim/lstrip blocks.
        let t = "{{ bos_token }}\n{% for m in messages %}\n  {% if m['role'] == 'user' %}\n[INST] {{ m['content'].strip() }} [/INST]\n  {% elif m['role'] == 'assistant' %}\n{{ m['content'] | trim }}{{ eos_token }}\n  {% else %}\n{{ raise_exception('bad role ' + m['role']) }}\n  {% endif %}\n{% endfor %}";
        let s = render(
            t,
            &[msg("user", "  hi  "), msg("assistant", "yo ")],
            false,
            "<s>",
            "</s>",
        )
        .unwrap();
        // trim_blocks drops the newline after block tags only, as in jinja2
        assert_eq!(s, "<s>\n[INST] hi [/INST]\nyo</s>\n");
        let e = render(t, &[msg("tool", "x")], false, "<s>", "</s>").unwrap_err();
        assert!(e.to_string().contains("bad role tool"), "{e}");
        assert!(render("{% for %}", &[], false, "", "").is_err());
    }

    /// Found by `make fuzz` (chat_template): a template that loops 10^10 times, and one that
    /// writes 100,000 copies of a 100 MB string, now fail at once.
    #[test]
    fn hostile_templates_run_out_of_fuel_or_room() {
        let hi = [msg("user", "hi")];
        let e = render(
            "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
            &hi,
            false,
            "",
            "",
        )
        .unwrap_err();
        assert!(e.to_string().contains("out of fuel"), "{e}");
        let e = render(
            "{% for i in range(100000) %}{{ 'a' * 100000000 }}{% endfor %}",
            &hi,
            false,
            "",
            "",
        )
        .unwrap_err();
        assert!(e.to_string().contains("writes more than"), "{e}");
        // A real template over many messages stays well inside both.
        let many: Vec<Message> = (0..2000)
            .map(|i| msg("user", &"x".repeat(i % 50)))
            .collect();
        assert!(render(CHATML_TEMPLATE, &many, true, "", "").is_ok());
    }
}
