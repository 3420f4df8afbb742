//! Line-oriented questions for the setup wizard and `--update`: a prompt on the output, one line
//! from the input. Secrets are read without echo when stdin is a terminal and as a plain line
//! otherwise (scripts, tests). End of input is an error, never an endless loop.

use std::io::{BufRead, Write};

use crate::error::{Error, Result};

pub struct Prompter<'a> {
    input: &'a mut dyn BufRead,
    out: &'a mut dyn Write,
    /// stdin is a terminal: read secrets with echo off.
    tty: bool,
}

impl<'a> Prompter<'a> {
    pub fn new(input: &'a mut dyn BufRead, out: &'a mut dyn Write, tty: bool) -> Self {
        Prompter { input, out, tty }
    }

    /// Print a line (not a question).
    pub fn say(&mut self, text: &str) {
        let _ = writeln!(self.out, "{text}");
    }

    /// Ask and return the trimmed answer.
    pub fn ask(&mut self, question: &str) -> Result<String> {
        let _ = write!(self.out, "{question}: ");
        let _ = self.out.flush();
        let mut line = String::new();
        let n = self
            .input
            .read_line(&mut line)
            .map_err(|e| Error::Terminal { what: "cannot read the answer", source: e })?;
        if n == 0 {
            let _ = writeln!(self.out);
            return Err(Error::Refused {
                what: "setup",
                why: format!("input ended before an answer to \"{question}\"; nothing was written"),
            });
        }
        Ok(line.trim().to_string())
    }

    /// Ask for a secret: not echoed on a terminal.
    pub fn secret(&mut self, question: &str) -> Result<String> {
        if !self.tty {
            return self.ask(question);
        }
        let _ = write!(self.out, "{question}: ");
        let _ = self.out.flush();
        let answer =
            rpassword::read_password().map_err(|e| Error::Terminal { what: "cannot read the answer", source: e })?;
        Ok(answer.trim().to_string())
    }

    /// A yes/no question; an empty answer takes `default`.
    pub fn yes_no(&mut self, question: &str, default: bool) -> Result<bool> {
        let hint = if default { "Y/n" } else { "y/N" };
        loop {
            let a = self.ask(&format!("{question} [{hint}]"))?.to_ascii_lowercase();
            match a.as_str() {
                "" => return Ok(default),
                "y" | "yes" => return Ok(true),
                "n" | "no" => return Ok(false),
                _ => self.say("Please answer y or n."),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_trimmed_and_eof_is_an_error() {
        let mut input: &[u8] = b"  hello \n";
        let mut out = Vec::new();
        let mut p = Prompter::new(&mut input, &mut out, false);
        assert_eq!(p.ask("Q").unwrap(), "hello");
        let err = p.ask("Again").unwrap_err();
        assert!(err.to_string().contains("\"Again\""), "{err}");
    }

    #[test]
    fn yes_no_repeats_until_understood() {
        let mut input: &[u8] = b"maybe\nY\n\n";
        let mut out = Vec::new();
        let mut p = Prompter::new(&mut input, &mut out, false);
        assert!(p.yes_no("Go?", false).unwrap());
        assert!(!p.yes_no("Go?", false).unwrap());
        assert!(String::from_utf8(out).unwrap().contains("Please answer y or n."));
    }

    #[test]
    fn secret_without_a_terminal_is_a_plain_line() {
        let mut input: &[u8] = b"key123\n";
        let mut out = Vec::new();
        let mut p = Prompter::new(&mut input, &mut out, false);
        assert_eq!(p.secret("Key").unwrap(), "key123");
        assert!(!String::from_utf8(out).unwrap().contains("key123"));
    }
}
