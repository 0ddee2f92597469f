//! The user section: who runs the agent, who is logged in, session type, locale.

use lifeline_shared::v1::snapshot::{Session, User};
use time::OffsetDateTime;

use super::{Options, Problems, read_trimmed};

const UTMP: &str = "/var/run/utmp";
/// Size of one glibc `struct utmp` record on Linux (all 64-bit and 32-bit ABIs use 32-bit times).
const UTMP_RECORD: usize = 384;
const USER_PROCESS: i16 = 7;

pub fn collect(_options: &Options) -> (User, Problems) {
    let mut problems = Vec::new();
    let uid = rustix::process::geteuid().as_raw();
    let current_user = sysinfo::Users::new_with_refreshed_list()
        .ok()
        .and_then(|users| {
            users
                .iter()
                .find(|u| u.id().to_string() == uid.to_string())
                .map(|u| u.name().to_owned())
        });
    let sessions = match std::fs::read(UTMP) {
        Ok(bytes) => parse_utmp(&bytes),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => {
            problems.push(format!("{UTMP}: {e}"));
            Vec::new()
        }
    };
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let session_type = env("XDG_SESSION_TYPE").or_else(|| {
        if env("WAYLAND_DISPLAY").is_some() {
            Some("wayland".to_owned())
        } else if env("DISPLAY").is_some() {
            Some("x11".to_owned())
        } else {
            None
        }
    });
    let locale = env("LC_ALL")
        .or_else(|| env("LANG"))
        .or_else(|| system_locale("/etc/default/locale"))
        .or_else(|| system_locale("/etc/locale.conf"));
    (
        User {
            current_user,
            uid: Some(uid),
            sessions,
            session_type,
            desktop: env("XDG_CURRENT_DESKTOP"),
            locale,
        },
        problems,
    )
}

/// `LANG=` from a locale configuration file.
fn system_locale(path: &str) -> Option<String> {
    read_trimmed(path)?
        .lines()
        .find_map(|l| l.strip_prefix("LANG="))
        .map(|v| v.trim_matches('"').to_owned())
}

fn c_string(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|b| *b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

/// Logged-in sessions from utmp records; records of other types and a truncated tail are skipped.
pub fn parse_utmp(bytes: &[u8]) -> Vec<Session> {
    bytes
        .chunks_exact(UTMP_RECORD)
        .filter_map(|r| {
            let ut_type = i16::from_ne_bytes([r[0], r[1]]);
            if ut_type != USER_PROCESS {
                return None;
            }
            let user = c_string(&r[44..76]);
            if user.is_empty() {
                return None;
            }
            let host = c_string(&r[76..332]);
            let secs = i32::from_ne_bytes([r[340], r[341], r[342], r[343]]);
            Some(Session {
                user,
                line: c_string(&r[8..40]),
                host: (!host.is_empty()).then_some(host),
                login_time: OffsetDateTime::from_unix_timestamp(i64::from(secs)).ok(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(ut_type: i16, line: &str, user: &str, host: &str, secs: i32) -> Vec<u8> {
        let mut r = vec![0u8; UTMP_RECORD];
        r[0..2].copy_from_slice(&ut_type.to_ne_bytes());
        r[8..8 + line.len()].copy_from_slice(line.as_bytes());
        r[44..44 + user.len()].copy_from_slice(user.as_bytes());
        r[76..76 + host.len()].copy_from_slice(host.as_bytes());
        r[340..344].copy_from_slice(&secs.to_ne_bytes());
        r
    }

    #[test]
    fn lists_user_sessions_from_utmp() {
        let mut bytes = record(2, "~", "reboot", "6.1.0", 1_795_400_000); // BOOT_TIME
        bytes.extend(record(USER_PROCESS, "tty2", "alice", ":0", 1_795_421_600));
        bytes.extend(record(
            USER_PROCESS,
            "pts/1",
            "bob",
            "10.1.2.3",
            1_795_421_700,
        ));
        bytes.extend(record(8, "pts/2", "", "", 0)); // DEAD_PROCESS
        bytes.extend_from_slice(&[1, 2, 3]); // torn write at the end
        let sessions = parse_utmp(&bytes);
        assert_eq!(sessions.len(), 2);
        assert_eq!(sessions[0].user, "alice");
        assert_eq!(sessions[0].line, "tty2");
        assert_eq!(sessions[1].host.as_deref(), Some("10.1.2.3"));
        assert_eq!(
            sessions[0].login_time,
            Some(time::macros::datetime!(2026-11-23 08:13:20 UTC))
        );
    }

    #[test]
    fn garbage_utmp_gives_no_sessions() {
        assert!(parse_utmp(&[0xff; 1000]).is_empty());
        assert!(parse_utmp(&[]).is_empty());
    }
}
