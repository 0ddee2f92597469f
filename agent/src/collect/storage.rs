//! The storage section: mounted filesystems with space and inode use, block devices.
//!
//! Mounts come from `/proc/self/mountinfo` (which also tells read-only mounts), figures from
//! `statvfs`, removable flags from sysinfo's disk list, devices from `/sys/block`.

use std::collections::HashSet;
use std::path::Path;

use lifeline_shared::v1::snapshot::{BlockDevice, Filesystem, Storage};

use super::{Options, Problems, read_trimmed};

/// Filesystem types that hold no user data.
const PSEUDO_FS: &[&str] = &[
    "autofs",
    "binfmt_misc",
    "bpf",
    "cgroup",
    "cgroup2",
    "configfs",
    "debugfs",
    "devpts",
    "devtmpfs",
    "efivarfs",
    "fusectl",
    "hugetlbfs",
    "mqueue",
    "nsfs",
    "proc",
    "pstore",
    "ramfs",
    "rpc_pipefs",
    "securityfs",
    "selinuxfs",
    "sysfs",
    "tracefs",
    "fuse.gvfsd-fuse",
    "fuse.portal",
    "squashfs",
    "nfsd",
];

/// One line of `/proc/self/mountinfo`, the parts we use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub mount_point: String,
    pub fs_type: String,
    pub source: String,
    pub read_only: bool,
}

/// Parses mountinfo (see proc(5)); malformed lines are skipped.
pub fn parse_mountinfo(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let left: Vec<&str> = left.split(' ').collect();
            let mut right = right.split(' ');
            let fs_type = right.next()?;
            let source = right.next()?;
            let options = left.get(5)?;
            Some(Mount {
                mount_point: unescape(left.get(4)?),
                fs_type: fs_type.to_owned(),
                // `curlftpfs#ftp://u:X@host/`, `//srv/share` with credentials: masked here, so
                // no reported mount holds a secret.
                source: crate::redact::redact_text(&unescape(source)),
                read_only: options.split(',').any(|o| o == "ro"),
            })
        })
        .collect()
}

/// Undoes the kernel's octal escapes (`\040` for a space).
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 4 <= bytes.len() {
            let octal = std::str::from_utf8(&bytes[i + 1..i + 4]).unwrap_or("");
            if let Ok(b) = u8::from_str_radix(octal, 8) {
                out.push(b);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Mounts worth reporting: real filesystems, each mount point once (the last mount wins, as it
/// hides the earlier ones).
pub fn relevant(mounts: Vec<Mount>) -> Vec<Mount> {
    let mut seen = HashSet::new();
    let mut out: Vec<Mount> = mounts
        .into_iter()
        .rev()
        .filter(|m| !PSEUDO_FS.contains(&m.fs_type.as_str()))
        .filter(|m| {
            // tmpfs holds user data only where people put files: /tmp, not /run, /dev or /sys.
            let system_tmpfs = ["/run", "/dev", "/sys", "/proc"]
                .iter()
                .any(|p| m.mount_point == *p || m.mount_point.starts_with(&format!("{p}/")));
            !(m.fs_type == "tmpfs" && system_tmpfs)
        })
        .filter(|m| !m.mount_point.starts_with("/snap/"))
        .filter(|m| seen.insert(m.mount_point.clone()))
        .collect();
    out.reverse();
    out
}

pub fn collect(_options: &Options) -> (Storage, Problems) {
    let mut problems = Vec::new();
    let mounts = match std::fs::read_to_string("/proc/self/mountinfo") {
        Ok(text) => relevant(parse_mountinfo(&text)),
        Err(e) => {
            problems.push(format!("/proc/self/mountinfo: {e}"));
            Vec::new()
        }
    };
    let removable: HashSet<String> = sysinfo::Disks::new_with_refreshed_list()
        .map(|disks| {
            disks
                .iter()
                .filter(|d| d.is_removable())
                .map(|d| d.mount_point().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    let mut filesystems = Vec::new();
    for m in mounts {
        match rustix::fs::statvfs(m.mount_point.as_str()) {
            Ok(st) => {
                let frsize = st.f_frsize.max(1);
                filesystems.push(Filesystem {
                    total_bytes: st.f_blocks.saturating_mul(frsize),
                    used_bytes: st
                        .f_blocks
                        .saturating_sub(st.f_bfree)
                        .saturating_mul(frsize),
                    available_bytes: st.f_bavail.saturating_mul(frsize),
                    inodes_total: st.f_files,
                    inodes_free: st.f_ffree,
                    read_only: m.read_only
                        || st.f_flag.contains(rustix::fs::StatVfsMountFlags::RDONLY),
                    removable: removable.contains(&m.mount_point),
                    mount_point: m.mount_point,
                    device: m.source,
                    fs_type: m.fs_type,
                });
            }
            Err(e) => problems.push(format!("statvfs {}: {e}", m.mount_point)),
        }
    }
    let block_devices = block_devices(Path::new("/sys/block"), &mut problems);
    (
        Storage {
            filesystems,
            block_devices,
        },
        problems,
    )
}

/// Whole disks from `/sys/block`, without loop and RAM devices.
pub fn block_devices(root: &Path, problems: &mut Problems) -> Vec<BlockDevice> {
    let entries = match std::fs::read_dir(root) {
        Ok(e) => e,
        Err(e) => {
            problems.push(format!("{}: {e}", root.display()));
            return Vec::new();
        }
    };
    let mut out: Vec<BlockDevice> = entries
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with("loop") || name.starts_with("ram") {
                return None;
            }
            let dir = entry.path();
            let flag = |file: &str| read_trimmed(dir.join(file)).map(|v| v == "1");
            let sectors: u64 = read_trimmed(dir.join("size"))?.parse().ok()?;
            Some(BlockDevice {
                size_bytes: sectors * 512,
                model: read_trimmed(dir.join("device/model")),
                rotational: flag("queue/rotational"),
                removable: flag("removable").unwrap_or(false),
                read_only: flag("ro").unwrap_or(false),
                name,
            })
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = include_str!("../../testdata/mountinfo_desktop.txt");

    #[test]
    fn parses_mountinfo_with_escapes_and_read_only_flags() {
        let mounts = parse_mountinfo(MOUNTINFO);
        let root = mounts.iter().find(|m| m.mount_point == "/").unwrap();
        assert_eq!(root.fs_type, "ext4");
        assert_eq!(root.source, "/dev/nvme0n1p2");
        assert!(!root.read_only);
        let usb = mounts
            .iter()
            .find(|m| m.mount_point == "/media/alice/My Stick")
            .unwrap();
        assert_eq!(usb.fs_type, "vfat");
        let cd = mounts
            .iter()
            .find(|m| m.mount_point == "/media/cdrom")
            .unwrap();
        assert!(cd.read_only);
    }

    #[test]
    fn keeps_real_filesystems_once_and_drops_pseudo_ones() {
        let kept: Vec<String> = relevant(parse_mountinfo(MOUNTINFO))
            .into_iter()
            .map(|m| m.mount_point)
            .collect();
        assert_eq!(
            kept,
            [
                "/",
                "/boot/efi",
                "/home",
                "/tmp",
                "/media/alice/My Stick",
                "/media/cdrom"
            ]
        );
    }

    #[test]
    fn credentials_in_mount_sources_are_masked() {
        let mounts = parse_mountinfo(concat!(
            "40 1 0:50 / /mnt/ftp rw,nosuid - fuse curlftpfs#ftp://u:Fr33dom@ftp.example.com/ rw\n",
            "41 1 0:51 / /mnt/dav rw - fuse https://bob:DavPw@cloud.example.com/dav rw\n",
            "42 1 0:52 / /mnt/share rw - cifs //fileserver/share rw,vers=3.0,username=bob\n",
        ));
        let sources: Vec<&str> = mounts.iter().map(|m| m.source.as_str()).collect();
        assert_eq!(
            sources,
            [
                "curlftpfs#ftp://u:***@ftp.example.com/",
                "https://bob:***@cloud.example.com/dav",
                "//fileserver/share"
            ]
        );
    }

    #[test]
    fn malformed_lines_are_skipped() {
        assert!(parse_mountinfo("garbage\n\n1 2 3").is_empty());
    }

    #[test]
    fn reads_block_devices_from_sysfs() {
        let dir = tempfile::tempdir().unwrap();
        let disk = dir.path().join("sda");
        std::fs::create_dir_all(disk.join("queue")).unwrap();
        std::fs::create_dir_all(disk.join("device")).unwrap();
        std::fs::write(disk.join("size"), "1953525168\n").unwrap();
        std::fs::write(disk.join("queue/rotational"), "1\n").unwrap();
        std::fs::write(disk.join("removable"), "0\n").unwrap();
        std::fs::write(disk.join("device/model"), "WDC WD10EZEX    \n").unwrap();
        std::fs::create_dir_all(dir.path().join("loop0")).unwrap();
        let mut problems = Vec::new();
        let devices = block_devices(dir.path(), &mut problems);
        assert_eq!(devices.len(), 1);
        assert_eq!(devices[0].size_bytes, 1953525168 * 512);
        assert_eq!(devices[0].model.as_deref(), Some("WDC WD10EZEX"));
        assert_eq!(devices[0].rotational, Some(true));
        assert!(problems.is_empty());
    }
}
