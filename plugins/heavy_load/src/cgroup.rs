//! How much memory this process's cgroup still lets it have.
//!
//! Under a cgroup memory limit (a container's `--memory`, a Kubernetes `limits.memory`) the kernel does not
//! refuse an mmap, even one far over the limit: overcommit lets the mapping succeed and the OOM killer ends the
//! agent when the pages are touched. So `gobble_ram` asks the cgroup first, and treats a size that does not fit
//! like a refused mmap. cgroup v2 (`memory.max`, `memory.current`) and v1 (`memory.limit_in_bytes`,
//! `memory.usage_in_bytes`) are both read, at this cgroup and every ancestor the process can see: the
//! tightest level wins. Inactive page cache counts as free, since the kernel reclaims it before it kills.

use std::path::{Path, PathBuf};

/// A cgroup v1 limit at or above this means "no limit" (v1 writes 2^63 rounded down to a page).
const V1_UNLIMITED: u64 = 1 << 60;

/// The tightest memory limit over this cgroup and its ancestors, and what is left under it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Room {
    /// Bytes that may still be taken before the limit.
    pub available: u64,
    pub limit: u64,
    pub usage: u64,
    /// The file that set the limit, for messages.
    pub source: PathBuf,
}

/// The room under this process's cgroup memory limit; `None` when no cgroup limits memory.
pub fn room() -> Option<Room> {
    let cgroups = procfs::process::Process::myself().ok()?.cgroups().ok()?;
    let lines: Vec<(String, String)> = cgroups.into_iter().map(|cg| (cg.controllers.join(","), cg.pathname)).collect();
    room_at(Path::new("/sys/fs/cgroup"), &lines)
}

/// The room for a process whose `/proc/self/cgroup` lines are `(controllers, path)`, with the cgroup file
/// systems mounted at `root`. Split from [`room`] so both versions can be checked on any machine.
pub fn room_at(root: &Path, cgroups: &[(String, String)]) -> Option<Room> {
    // v1: the line whose controllers include `memory`; v2: the line with no controllers (`0::/path`).
    let v1 = cgroups.iter().find(|(controllers, _)| controllers.split(',').any(|c| c == "memory"));
    match v1 {
        Some((_, path)) => tightest(&mount_dir(&root.join("memory"), path), &root.join("memory"), read_v1),
        None => {
            let (_, path) = cgroups.iter().find(|(controllers, _)| controllers.is_empty())?;
            tightest(&mount_dir(root, path), root, read_v2)
        }
    }
}

/// The directory of `path` under a mount. Inside a container the mount's root already is the container's
/// cgroup while `/proc/self/cgroup` still names the host's path, which then does not exist below the mount.
fn mount_dir(mount: &Path, path: &str) -> PathBuf {
    let dir = mount.join(path.trim_start_matches('/'));
    if dir.is_dir() {
        dir
    } else {
        mount.to_owned()
    }
}

/// Walks from `dir` up to `mount` and keeps the level with the least room.
fn tightest(dir: &Path, mount: &Path, read: fn(&Path) -> Option<Room>) -> Option<Room> {
    let mut best: Option<Room> = None;
    for level in dir.ancestors() {
        if let Some(room) = read(level) {
            if best.as_ref().is_none_or(|b| room.available < b.available) {
                best = Some(room);
            }
        }
        if level == mount || !level.starts_with(mount) {
            break;
        }
    }
    best
}

fn read_number(path: &Path) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// A key of `memory.stat` (`inactive_file 123`).
fn stat_value(dir: &Path, key: &str) -> u64 {
    std::fs::read_to_string(dir.join("memory.stat"))
        .ok()
        .and_then(|text| text.lines().find_map(|line| line.strip_prefix(key)?.strip_prefix(' ')?.trim().parse().ok()))
        .unwrap_or(0)
}

fn room_of(limit: u64, usage: u64, reclaimable: u64, source: PathBuf) -> Room {
    let used = usage.saturating_sub(reclaimable);
    Room { available: limit.saturating_sub(used), limit, usage, source }
}

fn read_v2(dir: &Path) -> Option<Room> {
    let source = dir.join("memory.max");
    let text = std::fs::read_to_string(&source).ok()?;
    let limit: u64 = text.trim().parse().ok()?; // `max` means no limit at this level
    let usage = read_number(&dir.join("memory.current"))?;
    Some(room_of(limit, usage, stat_value(dir, "inactive_file"), source))
}

fn read_v1(dir: &Path) -> Option<Room> {
    let source = dir.join("memory.limit_in_bytes");
    let limit = read_number(&source).filter(|l| *l < V1_UNLIMITED)?;
    let usage = read_number(&dir.join("memory.usage_in_bytes"))?;
    Some(room_of(limit, usage, stat_value(dir, "total_inactive_file"), source))
}

#[cfg(test)]
mod tests {
    //! These build cgroup trees in a temp dir (a stand-in for /sys/fs/cgroup, which a test cannot shape):
    //! the real reading of a limited cgroup is checked by tests/heavy_load.rs in a v1 cgroup the test makes.
    use super::*;

    fn write(dir: &Path, files: &[(&str, &str)]) {
        std::fs::create_dir_all(dir).unwrap();
        for (name, text) in files {
            std::fs::write(dir.join(name), text).unwrap();
        }
    }

    #[test]
    fn v2_takes_the_tightest_level_and_counts_inactive_cache_as_free() {
        let root = tempfile::tempdir().unwrap();
        let parent = root.path().join("kubepods");
        write(&parent, &[("memory.max", "1073741824\n"), ("memory.current", "104857600\n")]);
        let pod = parent.join("pod1");
        write(
            &pod,
            &[
                ("memory.max", "268435456\n"),
                ("memory.current", "67108864\n"),
                ("memory.stat", "anon 50331648\ninactive_file 16777216\n"),
            ],
        );
        let room = room_at(root.path(), &[(String::new(), "/kubepods/pod1".into())]).unwrap();
        assert_eq!(room.limit, 256 << 20);
        assert_eq!(room.available, (256 - 64 + 16) << 20);
        assert!(room.source.ends_with("pod1/memory.max"));
    }

    #[test]
    fn v2_without_a_limit_is_none_and_a_container_root_is_read() {
        let root = tempfile::tempdir().unwrap();
        write(root.path(), &[("memory.max", "max\n"), ("memory.current", "1\n")]);
        assert_eq!(room_at(root.path(), &[(String::new(), "/".into())]), None);
        // Inside a container /proc/self/cgroup names a path the mount does not have; the mount root is read.
        write(root.path(), &[("memory.max", "1000\n"), ("memory.current", "400\n")]);
        let room = room_at(root.path(), &[(String::new(), "/docker/abc".into())]).unwrap();
        assert_eq!((room.limit, room.available), (1000, 600));
    }

    #[test]
    fn v1_reads_the_memory_hierarchy_and_ignores_the_unlimited_value() {
        let root = tempfile::tempdir().unwrap();
        let memory = root.path().join("memory");
        write(&memory, &[("memory.limit_in_bytes", "9223372036854771712\n"), ("memory.usage_in_bytes", "5\n")]);
        let lines = [("cpu,cpuacct".to_owned(), "/".to_owned()), ("memory".to_owned(), "/test".to_owned())];
        assert_eq!(room_at(root.path(), &lines), None);
        write(
            &memory.join("test"),
            &[
                ("memory.limit_in_bytes", "268435456\n"),
                ("memory.usage_in_bytes", "33554432\n"),
                ("memory.stat", "cache 0\ntotal_inactive_file 0\n"),
            ],
        );
        let room = room_at(root.path(), &lines).unwrap();
        assert_eq!(room.available, (256 - 32) << 20);
    }
}
