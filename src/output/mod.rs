//! Where a run's words go: what the script prints, and what rstap says about the run.
//!
//! Every probe body prints into a [`Sink`], and every warning, run-time error and `-v`
//! note goes through the same sink, so that an output format other than SystemTap's text
//! (JSON, say) can carry all of them, in order, by implementing this one trait.

pub mod printf;

use std::io::{self, BufWriter, Write};

/// A run's output. What the script prints is written through [`Write`]; what rstap says
/// about the run comes through the other calls.
pub trait Sink: Write {
    /// A warning, as SystemTap words it after `WARNING: `: the run goes on.
    fn warning(&mut self, message: &str);
    /// A run-time error, as SystemTap words it after `ERROR: `.
    fn error(&mut self, message: &str);
    /// What `-v` asks rstap to tell about the run: attach counts, timings, skips.
    fn note(&mut self, message: &str);
}

/// SystemTap's own text: the script's output as it printed it (on stdout, or the `-o`
/// file), `WARNING: ...`, `ERROR: ...` and rstap's notes on stderr.
pub struct StapText {
    output: BufWriter<Box<dyn Write>>,
    diagnostics: Box<dyn Write>,
}

/// Enough for SystemTap's 64 KiB transport buffer's worth of lines between flushes.
const OUTPUT_BUFFER_BYTES: usize = 64 * 1024;

impl StapText {
    pub fn new(output: Box<dyn Write>, diagnostics: Box<dyn Write>) -> Self {
        StapText {
            output: BufWriter::with_capacity(OUTPUT_BUFFER_BYTES, output),
            diagnostics,
        }
    }

    /// Writes a line to stderr, after what the script printed before it, so that a
    /// terminal shows both in the order they happened.
    fn say(&mut self, prefix: &str, message: &str) {
        // A diagnostic that cannot be written has nowhere else to go.
        let _ = self.output.flush();
        let _ = writeln!(self.diagnostics, "{prefix}{message}");
    }
}

impl Write for StapText {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.output.write(bytes)
    }

    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.output.write_all(bytes)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.output.flush()
    }
}

impl Sink for StapText {
    fn warning(&mut self, message: &str) {
        self.say("WARNING: ", message);
    }

    fn error(&mut self, message: &str) {
        self.say("ERROR: ", message);
    }

    fn note(&mut self, message: &str) {
        self.say("rstap: ", message);
    }
}

/// A sink that keeps everything, for tests and benchmarks: the output as bytes, the
/// reports as SystemTap's lines.
#[derive(Debug, Default)]
pub struct Captured {
    pub output: Vec<u8>,
    pub reports: Vec<String>,
}

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.output.write(bytes)
    }

    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.output.extend_from_slice(bytes);
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Sink for Captured {
    fn warning(&mut self, message: &str) {
        self.reports.push(format!("WARNING: {message}"));
    }

    fn error(&mut self, message: &str) {
        self.reports.push(format!("ERROR: {message}"));
    }

    fn note(&mut self, message: &str) {
        self.reports.push(format!("rstap: {message}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// A writer whose bytes the test can read after the sink is done with it.
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn stap_text_flushes_the_output_before_each_report() {
        let (out, err) = (Shared::default(), Shared::default());
        let mut sink = StapText::new(Box::new(out.clone()), Box::new(err.clone()));
        sink.write_all(b"printed\n").unwrap();
        assert!(out.0.lock().unwrap().is_empty(), "the output is buffered");
        sink.warning("careful");
        assert_eq!(*out.0.lock().unwrap(), b"printed\n");
        sink.error("division by 0");
        sink.note("detached in 3 ms");
        assert_eq!(
            String::from_utf8(err.0.lock().unwrap().clone()).unwrap(),
            "WARNING: careful\nERROR: division by 0\nrstap: detached in 3 ms\n"
        );
    }
}
