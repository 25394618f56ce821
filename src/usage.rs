//! What the process used so far, from `/proc/self/status` (Linux): for the debug log line
//! at the end of a run, and for the benchmarks.

/// The peak resident set size, in KiB (`VmHWM`), if the kernel says.
pub fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status_field_kib(&status, "VmHWM:")
}

/// CPU time this thread has used so far (`/proc/thread-self/schedstat`, nanoseconds), if the
/// kernel says: what a piece of synchronous work cost, whatever else the machine is doing.
pub fn thread_cpu() -> Option<std::time::Duration> {
    let schedstat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let nanos = schedstat.split_whitespace().next()?.parse().ok()?;
    Some(std::time::Duration::from_nanos(nanos))
}

/// Frees `value` on a thread of its own, which the process does not wait for when it
/// exits: at fleet size, freeing a run's records and manifest (hundreds of thousands of
/// allocations) takes longer than planning them. If no thread can be started, `value` is
/// freed at once, as usual.
pub fn free_aside<T: Send + 'static>(value: T) {
    let _detached = std::thread::Builder::new()
        .name("free-aside".to_owned())
        .spawn(move || drop(value));
}

/// A `Name:   1234 kB` field of a `/proc/<pid>/status` text, in KiB.
pub fn status_field_kib(status: &str, name: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|line| line.strip_prefix(name))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_status_field() {
        let status = "Name:\tx\nVmHWM:\t   12345 kB\nVmRSS:\t  999 kB\n";
        assert_eq!(status_field_kib(status, "VmHWM:"), Some(12345));
        assert_eq!(status_field_kib(status, "VmRSS:"), Some(999));
        assert_eq!(status_field_kib(status, "VmSwap:"), None);
        assert!(peak_rss_kib().is_some_and(|kib| kib > 0));
    }

    #[test]
    fn thread_cpu_grows_with_work() {
        let before = thread_cpu().expect("schedstat");
        let mut x = 0u64;
        for n in 0..5_000_000u64 {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(n));
        }
        assert!(thread_cpu().expect("schedstat") > before, "{x}");
    }
}
