//! rstap's tapsets on the socket workload, checked against what it reports it did: run
//! natively (the build machines' kernel loads tracepoint programs) and in both VMs.

use crate::tracepoint_checks::lines_of;

/// `syscall.listen` with its variables and the event task's credentials and parent (as
/// `uid()`, `pexecname()` and the task functions read them), its return, `syscall_any`
/// and its return, `kprocess.exec_complete` and `scheduler.process_exit`.
pub const SCRIPT: &str = r#"
probe syscall.listen {
  printf("listen fd=%d backlog=%d argstr=%s name=%s pn=%s\n", sockfd, backlog, argstr, name, pn())
  printf("arguments fd=%d backlog=%d\n", int_arg(1), uint_arg(2))
  printf("task uid=%d euid=%d ppid=%d parent=%d pexecname=%s parent_name=%s pid=%d tid=%d\n",
         uid(), euid(), ppid(), task_pid(task_parent(task_current())), pexecname(),
         task_execname(task_parent(task_current())), task_pid(task_current()),
         task_tid(task_current()))
}
probe syscall.accept4 {
  if (pid() == target())
    printf("accept peer=%s\n", user_string($upeer_sockaddr, "none"))
}
probe syscall.execve {
  if (pid() == target())
    printf("execve filename=%s\n", filename)
}
probe syscall.listen.return { printf("listened retval=%d retstr=%s\n", retval, retstr) }
probe syscall_any {
  if (name == "connect" || name == "listen")
    printf("any %s nr=%d\n", name, syscall_nr)
}
probe syscall_any.return {
  if (name == "socket")
    printf("socket fd=%d\n", retval)
}
probe kprocess.exec_complete { printf("exec success=%d retstr=%s\n", success, retstr) }
probe scheduler.process_exit { printf("exit pid=%d current=%d\n", pid, pid()) }
"#;

/// x86-64's `__NR_connect` and `__NR_listen`.
const NR_CONNECT: i64 = 42;
const NR_LISTEN: i64 = 50;

/// The value of `key=` in a line, up to the next space.
pub fn field<'a>(line: &'a str, key: &str) -> &'a str {
    line.split(' ')
        .find_map(|part| part.strip_prefix(key)?.strip_prefix('='))
        .unwrap_or_else(|| panic!("no {key}= in {line}"))
}

pub fn number(line: &str, key: &str) -> i64 {
    let value = field(line, key);
    value
        .parse()
        .unwrap_or_else(|_| panic!("{key}={value} is not a number in {line}"))
}

/// Checks a trace of [`SCRIPT`] against the workload's report, as root; `described` is
/// shown with a failure.
pub fn check(trace: &str, report: &str, described: &str) {
    let listens = lines_of(report, "listen");
    assert!(
        !listens.is_empty(),
        "the workload reported no listen: {report}"
    );
    let traced = lines_of(trace, "listen");
    assert_eq!(traced.len(), listens.len(), "{described}");
    for (line, passed) in traced.iter().zip(&listens) {
        let (fd, backlog) = (number(passed, "fd"), number(passed, "backlog"));
        assert_eq!(
            *line,
            format!("listen fd={fd} backlog={backlog} argstr={fd}, {backlog} name=listen pn=syscall.listen"),
            "{described}"
        );
    }
    // The workload's accept4 passes no address: the copy faults, and gives the fallback.
    let accepts = lines_of(trace, "accept");
    assert_eq!(accepts.len(), listens.len(), "{described}");
    assert!(
        accepts.iter().all(|line| *line == "accept peer=none"),
        "{described}"
    );
    // The -c command's execs: a file name is a quoted string, as user_string_quoted()
    // gives it; the last exec is the workload's.
    let execs = lines_of(trace, "execve");
    assert!(
        execs
            .last()
            .is_some_and(|line| line.ends_with("/socket-workload\"")),
        "{described}: {execs:?}"
    );
    assert!(
        execs
            .iter()
            .all(|line| line.starts_with("execve filename=\"/") && line.ends_with('"')),
        "{described}: {execs:?}"
    );
    // int_arg(n) counts a syscall tracepoint's fields after the call's number.
    let arguments = lines_of(trace, "arguments");
    assert_eq!(arguments.len(), listens.len(), "{described}");
    for (line, passed) in arguments.iter().zip(&listens) {
        let (fd, backlog) = (number(passed, "fd"), number(passed, "backlog"));
        assert_eq!(
            *line,
            format!("arguments fd={fd} backlog={backlog}"),
            "{described}"
        );
    }
    // The workload runs as root, the child of rstap, which started it for -c.
    for line in lines_of(trace, "task") {
        assert_eq!(
            (number(line, "uid"), number(line, "euid")),
            (0, 0),
            "{line}"
        );
        assert_eq!(number(line, "ppid"), number(line, "parent"), "{line}");
        assert_ne!(number(line, "ppid"), number(line, "pid"), "{line}");
        assert_eq!(field(line, "pexecname"), "rstap", "{line}");
        assert_eq!(field(line, "parent_name"), "rstap", "{line}");
        assert_eq!(number(line, "pid"), number(line, "tid"), "{line}");
    }
    assert_eq!(
        lines_of(trace, "listened"),
        vec!["listened retval=0 retstr=0"; listens.len()],
        "{described}"
    );

    let any = lines_of(trace, "any");
    let count = |name: &str, nr: i64| {
        let wanted = format!("any {name} nr={nr}");
        any.iter().filter(|line| **line == wanted).count()
    };
    assert_eq!(count("listen", NR_LISTEN), listens.len(), "{described}");
    let connects = lines_of(report, "connect").len();
    assert!(connects > 0, "the workload reported no connect: {report}");
    assert_eq!(count("connect", NR_CONNECT), connects, "{described}");
    assert_eq!(any.len(), listens.len() + connects, "{described}");

    let sockets: Vec<i64> = lines_of(report, "socket")
        .iter()
        .map(|line| number(line, "fd"))
        .collect();
    let returned: Vec<i64> = lines_of(trace, "socket")
        .iter()
        .map(|line| number(line, "fd"))
        .collect();
    assert_eq!(returned, sockets, "{described}");

    // rstap's -c child execs a shell, which execs the workload: one or two execs, each
    // a success.
    let execs = lines_of(trace, "exec");
    assert!(
        (1..=2).contains(&execs.len()) && execs.iter().all(|l| *l == "exec success=1 retstr=0"),
        "{described}"
    );
    let exits = lines_of(trace, "exit");
    assert!(
        exits
            .iter()
            .any(|line| number(line, "pid") == number(line, "current")),
        "the workload's exit: {described}"
    );
}
