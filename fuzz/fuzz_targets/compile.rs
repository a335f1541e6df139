//! Feeds arbitrary bytes through the whole script front end: lexer, parser and checks.
//! Any input must give a script or a `ScriptError`; a panic, an abort (stack overflow) or
//! a hang is a bug.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rstap::script::{compile, SourceFile};

fuzz_target!(|data: &[u8]| {
    // rstap refuses non-UTF-8 scripts before compiling; lossy decoding still lets the
    // fuzzer's byte mutations reach the lexer.
    let text = String::from_utf8_lossy(data).into_owned();
    let source = SourceFile::new("<fuzz>", text);
    if let Err(error) = compile(&source) {
        // Rendering the error walks the source excerpt and its spans: it must not panic either.
        let _ = error.to_string();
    }
});
