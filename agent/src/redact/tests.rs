//! The redaction corpus (`agent/testdata/redaction/corpus.txt`) and the API's promises.

use super::*;

/// One case of the corpus.
struct Case {
    line: usize,
    kind: String,
    /// What is redacted, marks removed.
    input: Vec<String>,
    /// What must come out.
    expected: String,
    has_secret: bool,
}

const OPEN: char = '«';
const CLOSE: char = '»';

fn strip_marks(s: &str) -> String {
    s.chars().filter(|c| *c != OPEN && *c != CLOSE).collect()
}

fn mask_marks(s: &str) -> String {
    let mut out = String::new();
    let mut inside = false;
    for c in s.chars() {
        match c {
            OPEN => {
                inside = true;
                out.push_str(MASK);
            }
            CLOSE => inside = false,
            _ if inside => {}
            _ => out.push(c),
        }
    }
    out
}

/// Splits like a POSIX shell: whitespace separates words, `'...'` is literal, `"..."` keeps
/// `\"` and `\\` escapes.
fn shell_words(line: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => return Err("unclosed '".into()),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\')) => word.push(c),
                            Some(c) => {
                                word.push('\\');
                                word.push(c);
                            }
                            None => return Err("trailing \\".into()),
                        },
                        Some(c) => word.push(c),
                        None => return Err("unclosed \"".into()),
                    }
                }
            }
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

fn corpus() -> Vec<Case> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/redaction/corpus.txt");
    let text = std::fs::read_to_string(path).unwrap();
    let mut cases = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let line = n + 1;
        if raw.trim().is_empty() || raw.starts_with('#') {
            continue;
        }
        let (kind, rest) = raw
            .split_once(' ')
            .unwrap_or_else(|| panic!("corpus line {line}: no KIND"));
        let has_secret = rest.contains(OPEN);
        let (input, expected) = match kind {
            "argv" => {
                let words = shell_words(rest).unwrap_or_else(|e| panic!("corpus line {line}: {e}"));
                let input = words.iter().map(|w| strip_marks(w)).collect();
                let expected: Vec<String> = words.iter().map(|w| mask_marks(w)).collect();
                (input, expected.join(" "))
            }
            "title" | "text" => (vec![strip_marks(rest)], mask_marks(rest)),
            "output" => {
                let rest = rest.replace("\\n", "\n");
                (vec![strip_marks(&rest)], mask_marks(&rest))
            }
            other => panic!("corpus line {line}: unknown kind {other:?}"),
        };
        cases.push(Case {
            line,
            kind: kind.to_owned(),
            input,
            expected,
            has_secret,
        });
    }
    cases
}

fn redact_case(case: &Case) -> String {
    match case.kind.as_str() {
        "argv" | "title" => redact_command(&case.input),
        "output" => redact_output(case.input.first().map_or("", String::as_str)),
        _ => redact_text(case.input.first().map_or("", String::as_str)),
    }
}

#[test]
fn every_corpus_case_is_masked_exactly_and_look_alikes_stay_readable() {
    let cases = corpus();
    let secrets = cases.iter().filter(|c| c.has_secret).count();
    let look_alikes = cases.len() - secrets;
    assert!(
        secrets >= 150,
        "the corpus must keep at least 150 secret forms, has {secrets}"
    );
    assert!(
        look_alikes >= 40,
        "the corpus must keep at least 40 look-alikes, has {look_alikes}"
    );
    let mut failures = Vec::new();
    for case in &cases {
        let got = redact_case(case);
        if got != case.expected {
            failures.push(format!(
                "line {} ({}): {:?}\n    expected {:?}\n    got      {:?}",
                case.line, case.kind, case.input, case.expected, got
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} corpus cases fail:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn no_marked_secret_survives_in_any_form() {
    // Independent of the exact expected text: the secret itself is gone and the mask is there.
    for case in corpus().iter().filter(|c| c.has_secret) {
        let got = redact_case(case);
        let raw = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/testdata/redaction/corpus.txt"
        ))
        .unwrap();
        let source = raw.lines().nth(case.line - 1).unwrap_or("");
        for secret in source
            .split(OPEN)
            .skip(1)
            .filter_map(|s| s.split(CLOSE).next())
        {
            let secret = secret.replace("\\n", "\n");
            if secret.len() >= 4 {
                assert!(
                    !got.contains(&secret),
                    "line {}: {secret:?} leaked in {got:?}",
                    case.line
                );
            }
        }
        assert!(got.contains(MASK), "line {}: no mask in {got:?}", case.line);
    }
}

#[test]
fn redaction_is_idempotent_on_the_corpus() {
    for case in corpus() {
        let once = redact_case(&case);
        let twice = if case.kind == "output" {
            redact_output(&once)
        } else {
            redact_text(&once)
        };
        assert_eq!(twice, once, "line {}", case.line);
    }
}

#[test]
fn long_command_lines_are_bounded() {
    let long = vec!["x".repeat(2000)];
    let out = redact_command(&long);
    assert_eq!(out.chars().count(), MAX_COMMAND_CHARS + 1);
    assert!(out.ends_with('…'));
}

#[test]
fn output_keeps_its_lines_and_masks_a_private_key_across_them() {
    let output = "key:\r\n-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEA\nAAAABG5vbmUAAAAEbm9uZQ\n-----END OPENSSH PRIVATE KEY-----\ndone";
    assert_eq!(
        redact_output(output),
        "key:\r\n-----BEGIN OPENSSH PRIVATE KEY-----***\n***\n***\n-----END OPENSSH PRIVATE KEY-----\ndone"
    );
}

proptest::proptest! {
    #[test]
    fn any_text_or_argument_vector_is_redacted_without_panicking(
        text in "\\PC{0,120}",
        argv in proptest::collection::vec("[ -~«é]{0,24}", 0..8),
    ) {
        let _ = redact_text(&text);
        let _ = redact_output(&text);
        let _ = redact_command_line(&text);
        let out = redact_command(&argv);
        proptest::prop_assert!(out.chars().count() <= MAX_COMMAND_CHARS + 1);
    }
}
