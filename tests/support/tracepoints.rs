//! Tracepoint probes on the socket workload, checked against what it reports it did: run
//! natively (the build machines' kernel loads tracepoint programs) and in both VMs.

/// The workload's `connect` through the syscall event ftrace makes (read from its trace
/// record), its sockets' TCP state changes through a raw tracepoint (with the socket's
/// family reached through `$sk`), and its `exec` with the file name read through `$bprm`
/// and its process id through the task: as an argument, as `task_current()` cast, and as
/// a local holding the argument, cast.
pub const SCRIPT: &str = r#"
probe kernel.trace("syscalls:sys_enter_connect") {
  printf("connect fd=%d addrlen=%d\n", $fd, $addrlen)
  printf("parms %s\n", $$parms)
  printf("vars %s\n", $$vars)
}
probe kernel.trace("sock:inet_sock_set_state") {
  if ($sk->sk_protocol == 6)
    printf("state from=%d to=%d family=%d\n", $oldstate, $newstate,
           $sk->__sk_common->skc_family)
}
probe kernel.trace("sched_process_exec") {
  task = $p
  printf("exec %s old_pid=%d pid=%d tgid=%d current=%d bound=%d at=%s:%s %s\n",
         kernel_string($bprm->filename), $old_pid, pid(), $p->tgid,
         @cast(task_current(), "struct task_struct", "kernel<linux/sched.h>")->tgid,
         @cast(task, "task_struct")->tgid, $$system, $$name, pp())
}
"#;

/// `TCP_CLOSE`, `TCP_SYN_SENT` and `TCP_LISTEN` in the kernel's `enum tcp_state`.
const TCP_CLOSE: i64 = 7;
const TCP_SYN_SENT: i64 = 2;
const TCP_LISTEN: i64 = 10;
/// x86-64's `__NR_connect`.
const NR_CONNECT: i64 = 42;

/// The lines of `text` whose first word is `word`.
pub fn lines_of<'a>(text: &'a str, word: &str) -> Vec<&'a str> {
    text.lines()
        .filter(|line| line.split(' ').next() == Some(word))
        .collect()
}

/// `key=value` fields of a line whose values are decimal or `0x` hexadecimal numbers.
fn numbers(line: &str) -> std::collections::BTreeMap<&str, i64> {
    line.split(' ')
        .filter_map(|field| field.split_once('='))
        .filter_map(|(key, value)| {
            let number = match value.strip_prefix("0x") {
                Some(hex) => i64::from_str_radix(hex, 16).ok(),
                None => value.parse().ok(),
            };
            Some((key, number?))
        })
        .collect()
}

/// Checks a trace of [`SCRIPT`] against the workload's report; `described` is shown with
/// a failure.
pub fn check(trace: &str, report: &str, described: &str) {
    // connect()'s arguments, from the syscall's trace record.
    let connects = lines_of(report, "connect");
    assert!(
        !connects.is_empty(),
        "the workload reported no connect: {report}"
    );
    assert_eq!(lines_of(trace, "connect"), connects, "{described}");
    let parms = lines_of(trace, "parms");
    assert_eq!(parms.len(), connects.len(), "{described}");
    // A tracepoint has no locals: `$$vars` is `$$parms`.
    let vars: Vec<&str> = lines_of(trace, "vars").iter().map(|l| &l[5..]).collect();
    let parms_text: Vec<&str> = parms.iter().map(|l| &l[6..]).collect();
    assert_eq!(vars, parms_text, "{described}");
    for (line, connect) in parms.iter().zip(&connects) {
        let (got, passed) = (numbers(line), numbers(connect));
        assert_eq!(got["__syscall_nr"], NR_CONNECT, "{line}");
        assert_eq!(
            (got["fd"], got["addrlen"]),
            (passed["fd"], passed["addrlen"]),
            "{line}"
        );
        assert!(line.contains(" uservaddr=0x"), "{line}");
    }

    // Every TCP connect and listen of the workload, as its socket's state change; states
    // that change in interrupts may run in another task, and are not counted.
    let states = lines_of(trace, "state");
    assert!(
        states.iter().all(|line| numbers(line)["family"] == 2),
        "AF_INET sockets only: {states:?}"
    );
    let changes = |from: i64, to: i64| {
        states
            .iter()
            .filter(|line| {
                let f = numbers(line);
                (f["from"], f["to"]) == (from, to)
            })
            .count()
    };
    let tcp_sockets: Vec<i64> = lines_of(report, "socket")
        .iter()
        .map(|line| numbers(line))
        .filter(|f| (f["family"], f["type"]) == (2, 1))
        .map(|f| f["fd"])
        .collect();
    let tcp_connects = connects
        .iter()
        .filter(|line| tcp_sockets.contains(&numbers(line)["fd"]))
        .count();
    assert!(tcp_connects > 0, "no TCP connect in the report: {report}");
    assert_eq!(
        changes(TCP_CLOSE, TCP_SYN_SENT),
        tcp_connects,
        "{described}"
    );
    let listens = lines_of(report, "listen").len();
    assert!(listens > 0, "no listen in the report: {report}");
    assert_eq!(changes(TCP_CLOSE, TCP_LISTEN), listens, "{described}");

    // The workload's own exec: the file it runs from, in its own process.
    let execs = lines_of(trace, "exec");
    let own = execs
        .iter()
        .filter(|line| {
            line.split(' ')
                .nth(1)
                .is_some_and(|file| file.ends_with("/socket-workload"))
        })
        .collect::<Vec<_>>();
    assert_eq!(own.len(), 1, "{described}");
    let f = numbers(own[0]);
    for field in ["old_pid", "tgid", "current", "bound"] {
        assert_eq!(f[field], f["pid"], "{field}: {}", own[0]);
    }
    assert!(
        own[0].ends_with(" at=sched:sched_process_exec kernel.trace(\"sched:sched_process_exec\")"),
        "{}",
        own[0]
    );
}
