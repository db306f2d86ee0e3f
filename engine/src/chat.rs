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
    env.add_template("chat", template)
        .map_err(|e| EngineError::Template(e.to_string()))?;
    let tmpl = env
        .get_template("chat")
        .map_err(|e| EngineError::Template(e.to_string()))?;
    tmpl.render(minijinja::context! {
        messages => messages,
        add_generation_prompt => add_generation_prompt,
        bos_token => bos_token,
        eos_token => eos_token,
    })
    .map_err(|e| EngineError::Template(format!("{e:#}")))
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
}
