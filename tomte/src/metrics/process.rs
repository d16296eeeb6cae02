//! The process collector: memory, CPU time, file descriptors and start time of the daemon's
//! own process, read from `/proc/self` at each scrape (two small files and a directory), with
//! the names every Prometheus client library uses.

use std::sync::OnceLock;

use super::text::{Encoder, Kind};

/// Clock ticks per second of `/proc` times. Linux fixes `USER_HZ` at 100 for user space on
/// every architecture (the kernel's own `HZ` may differ); Prometheus's Go collector assumes
/// the same.
const USER_HZ: f64 = 100.0;

/// What `/proc/self/stat` says: CPU seconds, start (ticks after boot), virtual size.
#[derive(Debug, Default, PartialEq)]
struct Stat {
    cpu_seconds: f64,
    start_ticks: u64,
    vsize: u64,
}

/// Fields after the command name, which is in parentheses and may hold anything.
fn parse_stat(text: &str) -> Option<Stat> {
    let rest = &text[text.rfind(')')? + 1..];
    // `rest` starts at field 3 (state): utime is field 14, stime 15, starttime 22, vsize 23.
    let mut fields = rest.split_ascii_whitespace();
    let mut nth = |n: usize| -> Option<u64> { fields.nth(n)?.parse().ok() };
    let utime = nth(14 - 3)?;
    let stime = nth(0)?;
    let start_ticks = nth(22 - 15 - 1)?;
    let vsize = nth(0)?;
    Some(Stat { cpu_seconds: (utime + stime) as f64 / USER_HZ, start_ticks, vsize })
}

/// `VmRSS` of `/proc/self/status`, in bytes (the kernel writes kB).
pub(crate) fn parse_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line["VmRSS:".len()..].trim().trim_end_matches("kB").trim().parse().ok()?;
    Some(kb * 1024)
}

/// The boot time, seconds since the epoch (`btime` of `/proc/stat`), read once.
fn boot_time() -> Option<u64> {
    static BOOT: OnceLock<Option<u64>> = OnceLock::new();
    *BOOT.get_or_init(|| {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        stat.lines().find_map(|l| l.strip_prefix("btime ")).and_then(|v| v.trim().parse().ok())
    })
}

/// Writes the `process_*` families; a file that cannot be read leaves its families out.
pub(crate) fn render(e: &mut Encoder<'_>, buf: &mut String) {
    use std::io::Read;
    let read = |path: &str, buf: &mut String| {
        buf.clear();
        std::fs::File::open(path).and_then(|mut f| f.read_to_string(buf)).is_ok()
    };
    if read("/proc/self/stat", buf) {
        if let Some(stat) = parse_stat(buf) {
            e.family("process_cpu_seconds", Kind::Counter, "Total user and system CPU time spent in seconds.");
            e.sample("process_cpu_seconds", "_total", &[], stat.cpu_seconds);
            e.family("process_virtual_memory_bytes", Kind::Gauge, "Virtual memory size in bytes.");
            e.sample("process_virtual_memory_bytes", "", &[], stat.vsize);
            if let Some(boot) = boot_time() {
                let start = boot as f64 + stat.start_ticks as f64 / USER_HZ;
                e.family(
                    "process_start_time_seconds",
                    Kind::Gauge,
                    "Start time of the process since unix epoch in seconds.",
                );
                e.sample("process_start_time_seconds", "", &[], start);
            }
        }
    }
    if read("/proc/self/status", buf) {
        if let Some(rss) = parse_rss(buf) {
            e.family("process_resident_memory_bytes", Kind::Gauge, "Resident memory size in bytes.");
            e.sample("process_resident_memory_bytes", "", &[], rss);
        }
    }
    if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
        // The directory's own descriptor is among the entries while it is read.
        let fds = dir.count().saturating_sub(1);
        e.family("process_open_fds", Kind::Gauge, "Number of open file descriptors.");
        e.sample("process_open_fds", "", &[], fds);
    }
    if let Some(max) = rustix::process::getrlimit(rustix::process::Resource::Nofile).current {
        e.family("process_max_fds", Kind::Gauge, "Maximum number of open file descriptors.");
        e.sample("process_max_fds", "", &[], max);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_found_past_a_command_name_with_spaces_and_parens() {
        let line = "4242 (my (odd) name) S 1 4242 4242 0 -1 4194560 120 0 0 0 250 50 0 0 20 0 1 0 12345 9437184 300 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0";
        assert_eq!(parse_stat(line), Some(Stat { cpu_seconds: 3.0, start_ticks: 12345, vsize: 9437184 }));
        assert_eq!(parse_rss("Name:\tx\nVmRSS:\t    2048 kB\n"), Some(2048 * 1024));
    }

    #[test]
    fn this_process_is_read() {
        let mut out = Vec::new();
        let mut e = Encoder::new(&mut out, crate::metrics::Format::Prometheus);
        render(&mut e, &mut String::new());
        let text = String::from_utf8(out).unwrap();
        for name in [
            "process_cpu_seconds_total ",
            "process_resident_memory_bytes ",
            "process_virtual_memory_bytes ",
            "process_open_fds ",
            "process_max_fds ",
            "process_start_time_seconds ",
        ] {
            assert!(text.contains(name), "{name} in\n{text}");
        }
    }
}
