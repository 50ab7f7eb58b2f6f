//! Placeholders in `run:` commands become shell variables, never script text.
//!
//! A `{{name}}` in a `run:` command is replaced by a reference to an environment variable that holds the value
//! (`"${SWEEP_HOST}"`), and the value is handed to `sh` in that variable. A value then can never be read as
//! code: `127.0.0.1;touch PWNED` from a Consul registration or a `--sweep` is one argument, not two commands.
//! Where the placeholder stands decides the reference: outside quotes `"${VAR}"`, inside double quotes
//! `${VAR}` (already quoted); inside single quotes nothing can expand, so that is an error naming the step.

/// The environment variable a sweep parameter reaches `run:` commands in: `SWEEP_` and its name in capitals,
/// every character that is not a letter or digit as `_` (`max-rate` -> `SWEEP_MAX_RATE`).
pub fn sweep_variable(name: &str) -> String {
    let mut variable = String::with_capacity(name.len() + 6);
    variable.push_str("SWEEP_");
    variable.extend(name.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { '_' }));
    variable
}

/// Where a placeholder stands in a command.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Quote {
    None,
    Single,
    Double,
}

/// `command` with each `{{name}}` that `variable_of` knows replaced by a reference to its variable; other
/// `{{...}}` are left as written. The error says which placeholder stands inside single quotes.
pub fn placeholders_to_variables(
    command: &str,
    variable_of: impl Fn(&str) -> Option<String>,
) -> Result<String, String> {
    let mut out = String::with_capacity(command.len() + 16);
    let mut quote = Quote::None;
    let mut rest = command;
    while let Some(c) = rest.chars().next() {
        if rest.starts_with("{{") {
            if let Some(end) = rest[2..].find("}}") {
                let name = &rest[2..2 + end];
                if let Some(variable) = variable_of(name) {
                    match quote {
                        Quote::None => out.push_str(&format!("\"${{{variable}}}\"")),
                        Quote::Double => out.push_str(&format!("${{{variable}}}")),
                        Quote::Single => {
                            return Err(format!(
                                "`{{{{{name}}}}}` stands inside single quotes, where the shell cannot expand it; \
                                 write it without quotes (its value is quoted for you) or use ${variable}"
                            ))
                        }
                    }
                    rest = &rest[2 + end + 2..];
                    continue;
                }
            }
        }
        match (quote, c) {
            (Quote::None, '\'') => quote = Quote::Single,
            (Quote::Single, '\'') => quote = Quote::None,
            (Quote::None, '"') => quote = Quote::Double,
            (Quote::Double, '"') => quote = Quote::None,
            (Quote::None | Quote::Double, '\\') => {
                // The escaped character is copied as it is, whatever it is.
                out.push(c);
                rest = &rest[1..];
                if let Some(escaped) = rest.chars().next() {
                    out.push(escaped);
                    rest = &rest[escaped.len_utf8()..];
                }
                continue;
            }
            _ => {}
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known(name: &str) -> Option<String> {
        (name == "host" || name == "public").then(|| sweep_variable(name))
    }

    #[test]
    fn placeholders_become_quoted_variable_references_wherever_they_stand() {
        let cases = [
            ("ping {{host}}", "ping \"${SWEEP_HOST}\""),
            ("echo \"at {{host}} now\"", "echo \"at ${SWEEP_HOST} now\""),
            ("echo \\\"{{host}}", "echo \\\"\"${SWEEP_HOST}\""),
            ("echo {{other}} {{host", "echo {{other}} {{host"),
            ("a 'b' \"c\" {{public}}", "a 'b' \"c\" \"${SWEEP_PUBLIC}\""),
            ("é {{host}}", "é \"${SWEEP_HOST}\""),
        ];
        for (command, want) in cases {
            assert_eq!(placeholders_to_variables(command, known).unwrap(), want, "{command}");
        }
        let err = placeholders_to_variables("echo '{{host}}'", known).unwrap_err();
        assert!(err.contains("single quotes") && err.contains("{{host}}"), "{err}");
        assert_eq!(sweep_variable("max-rate.2"), "SWEEP_MAX_RATE_2");
    }

    /// The attack from the issue: the value is one argument to `sh`, and nothing it holds runs.
    #[test]
    fn a_value_with_shell_syntax_runs_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let planted = dir.path().join("PWNED");
        let value = format!("127.0.0.1;touch {};echo", planted.display());
        let script = placeholders_to_variables("printf '%s' {{host}}", known).unwrap();
        let output = std::process::Command::new("sh").args(["-c", &script]).env("SWEEP_HOST", &value).output().unwrap();
        assert!(!planted.exists(), "the value ran as a command");
        assert_eq!(String::from_utf8_lossy(&output.stdout), value);
    }
}
