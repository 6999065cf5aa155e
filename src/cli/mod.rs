//! The command-line front ends; `src/bin/fdm.rs` parses arguments and calls these.
pub mod device;
pub mod inpaint;
pub mod inspect;
pub mod profile;
pub mod reproduce;
pub mod reproduce_table4;

/// An error as one line, `what: why: cause`: the causes come from several layers (the command's
/// context, the file layer, the OS), and a layer often repeats the one below it in its own text,
/// so a cause already in the line is left out, as is a cause's leading `NAME: ` when the line
/// already names NAME (usually a file's path).
pub fn one_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        let text = match text.split_once(": ") {
            Some((head, rest)) if !head.is_empty() && line.contains(head) => rest.to_string(),
            _ => text,
        };
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}
