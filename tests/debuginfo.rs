//! Debug info discovery and source-function resolution against small C programs compiled
//! with `cc -g` at test time, a debuginfod server on 127.0.0.1, and (when
//! `RSTAP_TEST_VMLINUX` names it) a real kernel vmlinux.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use rstap::resolve::build_id::BuildId;
use rstap::resolve::debuginfo::{locate, DebugInfoError, DebugInfoQuery};
use rstap::resolve::debuginfod::DebuginfodError;
use rstap::resolve::dwarf::SourceFunction;
use rstap::resolve::index_cache::{FunctionIndex, SourcePattern};
use rstap::resolve::vmlinux::{Vmlinux, VmlinuxError};

const HEADER: &str = r#"
struct thing { int value; };
static inline int helper_add(int a, int b) { return a + b; }
int declared_in_header(int x);
"#;

const SOURCE: &str = r#"
#include "helper.h"
static __attribute__((noinline)) int noinline_one(const char *s) { return s[0] + 1; }
static inline int only_inlined(int v) { return v * 3; }
static __attribute__((noinline)) int takes_struct(struct thing *t) { return only_inlined(t->value); }
int declared_in_header(int x) { return helper_add(x, 1); }
int main(int argc, char **argv) {
    struct thing t = { argc };
    return noinline_one(argv[0]) + takes_struct(&t) + declared_in_header(argc);
}
"#;

/// Compiles the test program into `dir` and returns the binary's path.
fn compile(dir: &Path, debug: bool) -> PathBuf {
    std::fs::write(dir.join("helper.h"), HEADER).unwrap();
    std::fs::write(dir.join("prog.c"), SOURCE).unwrap();
    let out = dir.join(if debug { "prog" } else { "prog-nodebug" });
    let mut cc = Command::new("cc");
    cc.current_dir(dir)
        .args(["-O2", "-Wl,--build-id=sha1", "-o"])
        .arg(&out)
        .arg("prog.c");
    if debug {
        cc.arg("-g");
    }
    let status = cc
        .status()
        .expect("a C compiler (cc) is needed for these tests");
    assert!(status.success());
    out
}

fn resolve(binary: &Path, function: &str, file: &str) -> Vec<SourceFunction> {
    let vmlinux = Vmlinux::open(binary).unwrap();
    let mut index = FunctionIndex::open(&vmlinux, None).unwrap();
    index
        .resolve(&vmlinux, &SourcePattern::new(function, file).unwrap())
        .unwrap()
}

fn names(functions: &[SourceFunction]) -> Vec<&str> {
    functions.iter().map(|f| f.name.as_str()).collect()
}

#[test]
fn functions_of_a_file_follow_systemtap_rules() {
    let dir = tempfile::tempdir().unwrap();
    let binary = compile(dir.path(), true);
    let found = resolve(&binary, "*", "prog.c");
    let names = names(&found);
    for expected in [
        "declared_in_header",
        "main",
        "noinline_one",
        "takes_struct",
        "only_inlined",
    ] {
        assert!(
            names.contains(&expected),
            "{expected} missing from {names:?}"
        );
    }
    // Declared in the header, inlined into prog.c: not a function of prog.c.
    assert!(!names.contains(&"helper_add"), "{names:?}");
    assert!(
        found.iter().all(|f| f.decl_file.ends_with("prog.c")),
        "{found:?}"
    );

    let noinline = found.iter().find(|f| f.name == "noinline_one").unwrap();
    assert!(noinline.entry_address.is_some());
    assert_eq!(noinline.decl_line, 3);
    assert_eq!(noinline.parameters.len(), 1);
    assert_eq!(noinline.parameters[0].name, "s");
    assert_eq!(noinline.parameters[0].type_name, "char const*");

    let takes_struct = found.iter().find(|f| f.name == "takes_struct").unwrap();
    assert_eq!(takes_struct.parameters[0].type_name, "struct thing*");

    let only_inlined = found.iter().find(|f| f.name == "only_inlined").unwrap();
    assert!(only_inlined.inlined);
    assert_eq!(only_inlined.entry_address, None);

    // Defined in prog.c though declared in the header first: its definition is in prog.c.
    let defined = found
        .iter()
        .find(|f| f.name == "declared_in_header")
        .unwrap();
    assert_eq!(defined.decl_line, 6);
    assert!(defined.entry_address.is_some());

    let mut entries: Vec<u64> = found.iter().filter_map(|f| f.entry_address).collect();
    let total = entries.len();
    entries.dedup();
    assert_eq!(entries.len(), total, "one entry per address");
}

#[test]
fn header_glob_finds_header_inlines_and_function_glob_filters() {
    let dir = tempfile::tempdir().unwrap();
    let binary = compile(dir.path(), true);
    let found = resolve(&binary, "*", "helper.h");
    assert_eq!(names(&found), vec!["helper_add"]);
    assert!(found[0].inlined);
    assert_eq!(found[0].decl_file, "helper.h");

    let found = resolve(&binary, "*_one", "*");
    assert_eq!(names(&found), vec!["noinline_one"]);
    assert!(resolve(&binary, "*", "other.c").is_empty());
}

#[test]
fn cached_index_gives_the_same_answer() {
    let dir = tempfile::tempdir().unwrap();
    let binary = compile(dir.path(), true);
    let cache = dir.path().join("cache");
    let vmlinux = Vmlinux::open(&binary).unwrap();
    let pattern = SourcePattern::new("*", "prog.c").unwrap();
    let first = FunctionIndex::open(&vmlinux, Some(&cache))
        .unwrap()
        .resolve(&vmlinux, &pattern)
        .unwrap();
    let cache_file = cache.join(format!("index/{}.idx", vmlinux.build_id()));
    assert!(cache_file.exists());
    let second = FunctionIndex::open(&vmlinux, Some(&cache))
        .unwrap()
        .resolve(&vmlinux, &pattern)
        .unwrap();
    assert_eq!(first, second);

    std::fs::write(&cache_file, b"not an index").unwrap();
    let after_corruption = FunctionIndex::open(&vmlinux, Some(&cache))
        .unwrap()
        .resolve(&vmlinux, &pattern)
        .unwrap();
    assert_eq!(first, after_corruption);
}

fn query(expected: BuildId) -> DebugInfoQuery {
    DebugInfoQuery {
        release: "6.1.0-test".to_string(),
        expected_build_id: expected,
        explicit_path: None,
        search_paths: Vec::new(),
        debuginfod_urls: Vec::new(),
        cache_dir: None,
        show_progress: false,
    }
}

#[test]
fn search_paths_are_tried_in_order_and_checked() {
    let dir = tempfile::tempdir().unwrap();
    let binary = compile(dir.path(), true);
    let id = Vmlinux::open(&binary).unwrap().build_id().clone();
    let mut q = query(id.clone());
    q.search_paths = vec![dir.path().join("absent"), binary.clone()];
    assert_eq!(locate(&q).unwrap().path(), binary);

    let other = BuildId::from_hex("00112233").unwrap();
    let mut q = query(other.clone());
    q.search_paths = vec![binary.clone()];
    let err = locate(&q).err().unwrap();
    let message = err.to_string();
    assert!(
        matches!(err, DebugInfoError::WrongBuildId { .. }),
        "{message}"
    );
    assert!(
        message.contains(&id.to_hex()) && message.contains("00112233"),
        "{message}"
    );
}

#[test]
fn explicit_path_errors_are_distinct() {
    let dir = tempfile::tempdir().unwrap();
    let binary = compile(dir.path(), true);
    let bytes = std::fs::read(&binary).unwrap();
    let id = Vmlinux::open(&binary).unwrap().build_id().clone();
    let with_path = |path: PathBuf| {
        let mut q = query(id.clone());
        q.explicit_path = Some(path);
        locate(&q).err().unwrap()
    };

    let truncated = dir.path().join("truncated");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let err = with_path(truncated);
    assert!(
        matches!(
            err,
            DebugInfoError::Unusable(VmlinuxError::Truncated { .. })
        ),
        "{err}"
    );

    let corrupt = dir.path().join("corrupt");
    std::fs::write(&corrupt, b"this is not an ELF file at all").unwrap();
    let err = with_path(corrupt);
    assert!(
        matches!(err, DebugInfoError::Unusable(VmlinuxError::Corrupt { .. })),
        "{err}"
    );

    let err = with_path(compile(dir.path(), false));
    assert!(
        matches!(err, DebugInfoError::Unusable(VmlinuxError::NoDwarf { .. })),
        "{err}"
    );

    let err = with_path(dir.path().join("missing"));
    assert!(
        matches!(err, DebugInfoError::Unusable(VmlinuxError::Open { .. })),
        "{err}"
    );
}

/// A one-file debuginfod: answers `/buildid/<id>/debuginfo` for `id`, 404 otherwise.
fn serve(body: Vec<u8>, id: BuildId) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let requests = Arc::new(AtomicUsize::new(0));
    let counter = requests.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let mut stream = stream.unwrap();
            let mut request_line = String::new();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            reader.read_line(&mut request_line).unwrap();
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                if line == "\r\n" || line.is_empty() {
                    break;
                }
            }
            counter.fetch_add(1, Ordering::SeqCst);
            let wanted = format!("GET /buildid/{id}/debuginfo ");
            if request_line.starts_with(&wanted) {
                write!(
                    stream,
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                )
                .unwrap();
                stream.write_all(&body).unwrap();
            } else {
                stream
                    .write_all(
                        b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                    )
                    .unwrap();
            }
        }
    });
    (url, requests)
}

#[test]
fn debuginfod_download_is_verified_and_cached() {
    let dir = tempfile::tempdir().unwrap();
    let binary = compile(dir.path(), true);
    let id = Vmlinux::open(&binary).unwrap().build_id().clone();
    let (url, requests) = serve(std::fs::read(&binary).unwrap(), id.clone());
    let mut q = query(id.clone());
    q.debuginfod_urls = vec![url];
    q.cache_dir = Some(dir.path().join("cache"));

    let fetched = locate(&q).unwrap();
    assert_eq!(fetched.build_id(), &id);
    assert!(fetched.path().starts_with(dir.path().join("cache")));
    assert_eq!(requests.load(Ordering::SeqCst), 1);

    let again = locate(&q).unwrap();
    assert_eq!(again.path(), fetched.path());
    assert_eq!(
        requests.load(Ordering::SeqCst),
        1,
        "second lookup must not ask the server"
    );
}

#[test]
fn debuginfod_failures_are_distinct() {
    let dir = tempfile::tempdir().unwrap();
    let binary = compile(dir.path(), true);
    let id = Vmlinux::open(&binary).unwrap().build_id().clone();

    // The server has another build-id only: HTTP 404.
    let (url, _) = serve(Vec::new(), BuildId::from_hex("ffff").unwrap());
    let mut q = query(id.clone());
    q.debuginfod_urls = vec![url];
    q.cache_dir = Some(dir.path().join("cache"));
    match locate(&q).err().unwrap() {
        DebugInfoError::Debuginfod(errors) => {
            assert!(
                matches!(errors[..], [DebuginfodError::Http { status: 404, .. }]),
                "{errors:?}"
            )
        }
        other => panic!("{other}"),
    }

    // The server serves another build's debug info under our id (same source, compiled in
    // another directory, so another build-id).
    let elsewhere = dir.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    let other = compile(&elsewhere, true);
    let (url, _) = serve(std::fs::read(&other).unwrap(), id.clone());
    q.debuginfod_urls = vec![url];
    match locate(&q).err().unwrap() {
        DebugInfoError::Debuginfod(errors) => {
            assert!(
                matches!(errors[..], [DebuginfodError::WrongBuildId { .. }]),
                "{errors:?}"
            )
        }
        other => panic!("{other}"),
    }
    let cached = dir
        .path()
        .join("cache/debuginfod")
        .join(id.to_hex())
        .join("debuginfo");
    assert!(!cached.exists(), "a rejected download must not be cached");

    // Nobody listens on the port any more.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    q.debuginfod_urls = vec![format!("http://127.0.0.1:{port}")];
    match locate(&q).err().unwrap() {
        DebugInfoError::Debuginfod(errors) => {
            assert!(
                matches!(errors[..], [DebuginfodError::Unreachable { .. }]),
                "{errors:?}"
            )
        }
        other => panic!("{other}"),
    }
}

#[test]
fn real_kernel_socket_functions() {
    let Some(path) = std::env::var_os("RSTAP_TEST_VMLINUX") else {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "RSTAP_TEST_VMLINUX must name a kernel vmlinux with DWARF in CI"
        );
        eprintln!("skipped: RSTAP_TEST_VMLINUX is not set");
        return;
    };
    let found = resolve(Path::new(&path), "*", "net/socket.c");
    let names = names(&found);
    for expected in [
        "sock_poll",
        "__sys_connect",
        "__sys_sendto",
        "sock_sendmsg",
        "sock_alloc",
    ] {
        assert!(names.contains(&expected), "{expected} missing");
    }
    assert!(
        found.iter().all(|f| f.decl_file == "net/socket.c"),
        "a header function leaked in"
    );
    assert!(found.iter().filter(|f| f.entry_address.is_some()).count() > 100);
    let sock_poll = found.iter().find(|f| f.name == "sock_poll").unwrap();
    let params: Vec<String> = sock_poll
        .parameters
        .iter()
        .map(|p| format!("${}:{}", p.name, p.type_name))
        .collect();
    assert_eq!(params, ["$file:struct file*", "$wait:poll_table*"]);
}
