//! Secrets in command lines: which words of an argument vector hold one.
//!
//! Two kinds of rules. Generic rules hold for every program: a long flag whose name says
//! "secret" (see [`names`]) masks its value, with `=` or as the next word. Tool rules hold only
//! for the program they are written for, matched on its base name after skipping wrappers
//! (`sudo`, `env VAR=x`, `nice`, `timeout 5`, a path): many tools use `-p` for harmless things
//! (a port, "parents", "preserve"), so short flags are never masked for every program.
//!
//! The same planner serves argument vectors (each word one argument) and free text (each word a
//! whitespace-separated piece of a log line, a process title or `sh -c` string).

use std::ops::Range;

use super::names::{self, NameKind, SecretClass};

/// Programs that run the command that follows their own options.
struct Wrapper {
    names: &'static [&'static str],
    /// Options that take a value as the next word.
    value_flags: &'static [&'static str],
    /// Positional words before the command (`timeout 5 cmd`).
    positionals: usize,
}

const WRAPPERS: &[Wrapper] = &[
    Wrapper {
        names: &["sudo"],
        value_flags: &[
            "-u", "-g", "-C", "-D", "-h", "-p", "-r", "-t", "-U", "-R", "-T",
        ],
        positionals: 0,
    },
    Wrapper {
        names: &["doas"],
        value_flags: &["-u", "-C"],
        positionals: 0,
    },
    Wrapper {
        names: &["env"],
        value_flags: &["-u", "-C", "-S", "--unset", "--chdir"],
        positionals: 0,
    },
    Wrapper {
        names: &["nice"],
        value_flags: &["-n", "--adjustment"],
        positionals: 0,
    },
    Wrapper {
        names: &["ionice"],
        value_flags: &["-c", "-n", "-p", "-P", "-u"],
        positionals: 0,
    },
    Wrapper {
        names: &["timeout"],
        value_flags: &["-s", "-k", "--signal", "--kill-after"],
        positionals: 1,
    },
    Wrapper {
        names: &["runuser", "su"],
        value_flags: &["-u", "-g", "-G", "--user", "--group"],
        positionals: 0,
    },
    Wrapper {
        names: &["chrt", "taskset", "flock", "chroot"],
        value_flags: &["-p", "-w", "-E"],
        positionals: 1,
    },
    Wrapper {
        names: &["stdbuf"],
        value_flags: &["-i", "-o", "-e"],
        positionals: 0,
    },
    Wrapper {
        names: &["watch"],
        value_flags: &["-n", "-d", "--interval"],
        positionals: 0,
    },
    Wrapper {
        names: &["systemd-run", "run0"],
        value_flags: &[
            "-p",
            "-u",
            "-M",
            "-E",
            "--unit",
            "--property",
            "--setenv",
            "--uid",
            "--gid",
        ],
        positionals: 0,
    },
    Wrapper {
        names: &["setpriv"],
        value_flags: &[
            "--reuid",
            "--regid",
            "--groups",
            "--inh-caps",
            "--bounding-set",
        ],
        positionals: 0,
    },
    Wrapper {
        names: &[
            "nohup",
            "setsid",
            "time",
            "exec",
            "command",
            "builtin",
            "xargs",
            "unbuffer",
            "torsocks",
            "proxychains",
            "proxychains4",
            "firejail",
            "busybox",
            "toybox",
            "script",
        ],
        value_flags: &[],
        positionals: 0,
    },
];

/// Which positional words of a tool hold a secret.
#[derive(Clone, Copy)]
enum Pick {
    /// The n-th positional (0-based) after the anchor word.
    Nth(usize),
    /// The last positional after the anchor word.
    Last,
    /// Every positional after the anchor word.
    All,
}

#[derive(Clone, Copy)]
enum Positional {
    None,
    /// Positionals after one of these words (empty: from the program on).
    After(&'static [&'static str], Pick),
    /// The last positional, when a flag cluster holds this letter (`htpasswd -b FILE USER X`).
    LastWithFlag(char),
    /// The word after a positional that names a secret (`git config user.password X`,
    /// `nmcli ... password X`, `mysqladmin password X`).
    AfterSecretName,
    /// The positional after `//server/share` (`smbclient //srv/share PASSWORD`).
    AfterShare,
    /// `net use \\srv\share PASSWORD`, `net user NAME PASSWORD`.
    Net,
    /// `user/password@db` (Oracle tools), also after `userid=`.
    SlashCredentials,
}

/// Rules for one family of programs.
struct Tool {
    names: &'static [&'static str],
    /// Flag rules apply only after one of these words (`docker login -p X`, never `docker run -p`).
    after: &'static [&'static str],
    /// Flags whose value is a secret: the next word, or the rest of the same word (`-pX`).
    secret_flags: &'static [&'static str],
    /// Flags whose secret must be attached (`mysql -pX`); alone they prompt for it.
    attached_only: &'static [&'static str],
    /// Flags whose value is `user<separator>secret`.
    user_secret: &'static [(&'static str, char)],
    /// Flags that take a (harmless) value, so it is not counted as a positional.
    value_flags: &'static [&'static str],
    positional: Positional,
    /// Flags that prompt for the secret when written alone (`mysql --password db`).
    prompting: &'static [&'static str],
    /// Short flags may carry their value attached (`-pX`); false for tools whose options are
    /// whole words (`openssl -key` is not `-k ey`).
    attached: bool,
    /// The first positional starts another command (`sshpass -p X ssh -p 22 host`).
    runs_command: bool,
}

const NO_TOOL: Tool = Tool {
    names: &[],
    after: &[],
    secret_flags: &[],
    attached_only: &[],
    user_secret: &[],
    value_flags: &[],
    positional: Positional::None,
    prompting: &[],
    attached: true,
    runs_command: false,
};

const MYSQL: &[&str] = &[
    "mysql",
    "mysqldump",
    "mysqladmin",
    "mysqlshow",
    "mysqlcheck",
    "mysqlimport",
    "mysqlpump",
    "mysqlslap",
    "mysqlbinlog",
    "mysqlsh",
    "mariadb",
    "mariadb-dump",
    "mariadb-admin",
    "mariadb-check",
    "mariadb-import",
    "mariadb-show",
    "mariadb-slap",
    "mariadb-binlog",
    "mariadb-backup",
    "mariabackup",
    "xtrabackup",
    "mysql_upgrade",
    "mariadb-upgrade",
];

const TOOLS: &[Tool] = &[
    Tool {
        names: &["sshpass"],
        secret_flags: &["-p"],
        value_flags: &["-f", "-d", "-P"],
        runs_command: true,
        ..NO_TOOL
    },
    Tool {
        names: &["redis-cli", "valkey-cli", "keydb-cli"],
        secret_flags: &["-a"],
        value_flags: &["-h", "-p", "-n", "-u", "--user"],
        positional: Positional::After(&["auth", "AUTH"], Pick::Last),
        ..NO_TOOL
    },
    Tool {
        names: &["openssl"],
        secret_flags: &["-k", "-K", "-pass", "-passin", "-passout", "-password"],
        value_flags: &["-salt", "-in", "-out"],
        positional: Positional::After(&["passwd"], Pick::All),
        attached: false,
        ..NO_TOOL
    },
    Tool {
        names: &["unzip", "zip", "zipcloak", "funzip"],
        secret_flags: &["-P"],
        ..NO_TOOL
    },
    Tool {
        names: &["7z", "7za", "7zr", "7zz", "7zzs", "p7zip", "rar", "unrar"],
        attached_only: &["-p"],
        ..NO_TOOL
    },
    Tool {
        names: &[
            "docker", "podman", "nerdctl", "buildah", "skopeo", "helm", "oras", "crane", "az",
            "oc", "cf",
        ],
        after: &["login"],
        secret_flags: &["-p"],
        user_secret: &[
            ("--creds", ':'),
            ("--src-creds", ':'),
            ("--dest-creds", ':'),
        ],
        ..NO_TOOL
    },
    Tool {
        names: MYSQL,
        attached_only: &["-p"],
        value_flags: &["-u", "-h", "-P", "-S", "-e", "-D"],
        positional: Positional::AfterSecretName,
        prompting: &["--password"],
        ..NO_TOOL
    },
    Tool {
        names: &["curl"],
        user_secret: &[
            ("-u", ':'),
            ("--user", ':'),
            ("-U", ':'),
            ("--proxy-user", ':'),
            ("-E", ':'),
            ("--cert", ':'),
        ],
        ..NO_TOOL
    },
    Tool {
        names: &[
            "smbclient",
            "rpcclient",
            "smbcacls",
            "smbcquotas",
            "smbget",
            "samba-tool",
            "smbtorture",
            "mount.smb3",
        ],
        secret_flags: &[],
        user_secret: &[("-U", '%'), ("--user", '%')],
        value_flags: &[
            "-W", "-I", "-p", "-m", "-c", "-D", "-A", "-s", "-l", "-O", "-n",
        ],
        positional: Positional::AfterShare,
        ..NO_TOOL
    },
    Tool {
        names: &["net"],
        user_secret: &[("-U", '%'), ("--user", '%')],
        value_flags: &["-W", "-I", "-S", "-p"],
        positional: Positional::Net,
        ..NO_TOOL
    },
    Tool {
        names: &["wbinfo"],
        user_secret: &[("-a", '%'), ("--authenticate", '%')],
        ..NO_TOOL
    },
    Tool {
        names: &["smbtar"],
        secret_flags: &["-p"],
        ..NO_TOOL
    },
    Tool {
        names: &["lftp"],
        user_secret: &[("-u", ',')],
        ..NO_TOOL
    },
    Tool {
        names: &[
            "ncftp",
            "ncftpget",
            "ncftpput",
            "ncftpls",
            "rdesktop",
            "psexec",
            "psexec.py",
            "PsExec",
            "PsExec64",
            "mongo",
            "mongosh",
            "mongodump",
            "mongorestore",
            "mongoexport",
            "mongoimport",
            "mongostat",
            "mongotop",
            "mongofiles",
        ],
        secret_flags: &["-p"],
        ..NO_TOOL
    },
    Tool {
        names: &[
            "xfreerdp",
            "wlfreerdp",
            "sdl-freerdp",
            "freerdp",
            "xfreerdp3",
            "sdl-freerdp3",
        ],
        secret_flags: &["/p:", "/gp:", "/pth:", "/password:"],
        ..NO_TOOL
    },
    Tool {
        names: &[
            "ipmitool",
            "sqlcmd",
            "bcp",
            "osql",
            "mosquitto_pub",
            "mosquitto_sub",
            "mosquitto_rr",
        ],
        secret_flags: &["-P"],
        value_flags: &["-U", "-H", "-S", "-u", "-h"],
        ..NO_TOOL
    },
    Tool {
        names: &["isql", "iusql"],
        positional: Positional::After(&[], Pick::Nth(2)),
        ..NO_TOOL
    },
    Tool {
        names: &[
            "ldapsearch",
            "ldapadd",
            "ldapmodify",
            "ldapdelete",
            "ldapmodrdn",
            "ldapcompare",
            "ldapwhoami",
            "ldapexop",
            "ldapvc",
        ],
        secret_flags: &["-w"],
        ..NO_TOOL
    },
    Tool {
        names: &["ldappasswd"],
        secret_flags: &["-w", "-s", "-a"],
        ..NO_TOOL
    },
    Tool {
        names: &["htpasswd"],
        value_flags: &["-C", "-r"],
        positional: Positional::LastWithFlag('b'),
        ..NO_TOOL
    },
    Tool {
        names: &["vault", "bao"],
        positional: Positional::After(&["login", "unseal"], Pick::Nth(0)),
        value_flags: &["-method", "-address", "-namespace", "-path"],
        ..NO_TOOL
    },
    Tool {
        names: &["mkpasswd"],
        value_flags: &["-m", "-S", "-R", "-P", "--method", "--salt", "--rounds"],
        positional: Positional::After(&[], Pick::Nth(0)),
        ..NO_TOOL
    },
    Tool {
        names: &["wpa_passphrase"],
        positional: Positional::After(&[], Pick::Nth(1)),
        ..NO_TOOL
    },
    Tool {
        names: &["useradd", "usermod", "adduser"],
        secret_flags: &["-p"],
        ..NO_TOOL
    },
    Tool {
        names: &[
            "git",
            "npm",
            "pnpm",
            "yarn",
            "aws",
            "pip",
            "pip3",
            "nmcli",
            "wpa_cli",
            "pdftk",
            "gsettings",
            "dconf",
            "composer",
            "conda",
            "gcloud",
            "heroku",
        ],
        positional: Positional::AfterSecretName,
        ..NO_TOOL
    },
    Tool {
        names: &["rabbitmqctl"],
        positional: Positional::After(
            &["add_user", "change_password", "authenticate_user"],
            Pick::Nth(1),
        ),
        ..NO_TOOL
    },
    Tool {
        names: &["ssh-keygen"],
        secret_flags: &["-N", "-P"],
        value_flags: &["-t", "-b", "-f", "-C"],
        ..NO_TOOL
    },
    Tool {
        names: &["plink", "pscp", "psftp", "putty"],
        secret_flags: &["-pw"],
        ..NO_TOOL
    },
    Tool {
        names: &["schtasks", "schtasks.exe"],
        secret_flags: &["/RP", "/rp", "/P", "/p"],
        ..NO_TOOL
    },
    Tool {
        names: &[
            "snmpwalk",
            "snmpget",
            "snmpset",
            "snmpbulkwalk",
            "snmpbulkget",
            "snmpgetnext",
            "snmptrap",
            "snmptable",
            "snmpdelta",
            "snmpstatus",
            "snmptest",
        ],
        secret_flags: &["-A", "-X", "-c"],
        ..NO_TOOL
    },
    Tool {
        names: &[
            "pdftotext",
            "pdfinfo",
            "pdftoppm",
            "pdfimages",
            "pdftohtml",
            "pdftocairo",
            "pdffonts",
        ],
        secret_flags: &["-upw", "-opw"],
        ..NO_TOOL
    },
    Tool {
        names: &["sendemail", "sendEmail"],
        secret_flags: &["-xp"],
        ..NO_TOOL
    },
    Tool {
        names: &["swaks"],
        secret_flags: &["-ap", "--auth-password"],
        ..NO_TOOL
    },
    Tool {
        names: &["doctl"],
        secret_flags: &["-t"],
        ..NO_TOOL
    },
    Tool {
        names: &["kubectl"],
        secret_flags: &["--from-literal="],
        ..NO_TOOL
    },
    Tool {
        names: &[
            "sqlplus", "expdp", "impdp", "exp", "imp", "sqlldr", "rman", "dgmgrl",
        ],
        positional: Positional::SlashCredentials,
        ..NO_TOOL
    },
];

/// Shells whose `-c` argument is a command line.
const SHELLS: &[&str] = &["sh", "bash", "dash", "zsh", "ksh", "ash", "fish", "busybox"];

fn base_name(word: &str) -> &str {
    let word = word.rsplit(['/', '\\']).next().unwrap_or(word);
    word.strip_suffix(".exe").unwrap_or(word)
}

fn tool(name: &str) -> Option<&'static Tool> {
    TOOLS.iter().find(|t| t.names.contains(&name))
}

fn wrapper(name: &str) -> Option<&'static Wrapper> {
    WRAPPERS.iter().find(|w| w.names.contains(&name))
}

/// Words that end one command and start the next.
fn is_separator(word: &str) -> bool {
    matches!(
        word,
        ";" | "|" | "||" | "&&" | "&" | "(" | ")" | "{" | "}" | "then" | "do" | "else" | "!"
    )
}

/// An environment assignment before a command (`LANG=C`).
fn is_assignment(word: &str) -> bool {
    word.split_once('=').is_some_and(|(k, _)| {
        !k.is_empty()
            && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !k.starts_with(|c: char| c.is_ascii_digit())
    })
}

/// A `ps` TIME or START column, after which `ps` prints the command.
fn is_ps_time(word: &str) -> bool {
    let mut parts = word.split([':', '-']);
    let all_digits = |p: &str| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit());
    word.contains(':')
        && parts.all(|p| all_digits(p) || p.split('.').all(all_digits))
        && word.len() <= 12
}

/// Which bytes of which words to mask.
pub type Plan = Vec<Option<Range<usize>>>;

fn mask_all(plan: &mut Plan, i: usize, words: &[&str]) {
    if let (Some(slot), Some(w)) = (plan.get_mut(i), words.get(i))
        && !names::is_placeholder(w)
        && slot.is_none()
    {
        *slot = Some(0..w.len());
    }
}

fn mask_from(plan: &mut Plan, i: usize, words: &[&str], from: usize) {
    if let (Some(slot), Some(w)) = (plan.get_mut(i), words.get(i)) {
        let rest = w.get(from..).unwrap_or("");
        if from < w.len() && !names::is_placeholder(rest) && slot.is_none() {
            *slot = Some(from..w.len());
        }
    }
}

/// The plan for `words`, the first of which is a command (an argument vector, a process title,
/// a shell's `-c` string) or not (a log line).
pub fn plan(words: &[&str], starts_with_command: bool) -> Plan {
    let mut plan: Plan = vec![None; words.len()];
    let mut command_at = starts_with_command;
    let mut i = 0;
    while i < words.len() {
        let word = words.get(i).copied().unwrap_or("");
        if is_separator(word) {
            command_at = true;
            i += 1;
            continue;
        }
        let program = base_name(word);
        let known = tool(program);
        let after_ps_time = i > 0 && words.get(i - 1).is_some_and(|w| is_ps_time(w));
        if command_at || after_ps_time {
            if is_assignment(word) {
                generic(words, i, &mut plan);
                i += 1;
                continue;
            }
            if let Some(w) = wrapper(program) {
                i = skip_wrapper(words, i + 1, w, &mut plan);
                command_at = true;
                continue;
            }
        }
        if let Some(t) = known {
            i = apply_tool(t, words, i, command_at || after_ps_time, &mut plan);
            command_at = false;
            continue;
        }
        command_at = word.ends_with(';');
        if SHELLS.contains(&program) && words.get(i + 1) == Some(&"-c") {
            // `sh -c mysql -pX` written out in a log line: the command follows `-c`.
            command_at = true;
            i += 2;
            continue;
        }
        i += generic(words, i, &mut plan);
    }
    plan
}

fn skip_wrapper(words: &[&str], mut i: usize, w: &Wrapper, plan: &mut Plan) -> usize {
    let mut positionals = w.positionals;
    while let Some(word) = words.get(i) {
        if word.starts_with('-') {
            i += if w.value_flags.contains(word) { 2 } else { 1 };
        } else if is_assignment(word) {
            generic(words, i, plan);
            i += 1;
        } else if positionals > 0 {
            positionals -= 1;
            i += 1;
        } else {
            break;
        }
    }
    i
}

/// Generic rules for word `i`; returns how many words were consumed.
fn generic(words: &[&str], i: usize, plan: &mut Plan) -> usize {
    let Some(word) = words.get(i) else { return 1 };
    if word.contains(char::is_whitespace) {
        // A command line in one argument: the caller redacts it as text.
        return 1;
    }
    // `--secret-key=X`, `-Dapp.password=X`, `PGPASSWORD=X`, `/pass:X`.
    let split = if word.starts_with('/') {
        word.split_once(':')
            .filter(|(k, _)| k.len() > 2 && k[1..].chars().all(|c| c.is_ascii_alphabetic()))
    } else {
        word.split_once('=')
    };
    if let Some((key, value)) = split {
        if let Some(class) = names::secret_name(key, NameKind::Flag) {
            if value.is_empty() {
                // `sc config svc password= X`
                if words.get(i + 1).is_some_and(|n| !n.starts_with('-')) {
                    mask_value(plan, i + 1, words, 0, class);
                    return 2;
                }
            } else {
                // `client_secret="X"`: the quote stays.
                let quote = usize::from(value.starts_with(['"', '\'']));
                mask_value(plan, i, words, key.len() + 1 + quote, class);
            }
        }
        return 1;
    }
    // `--db-pass X`, `-storepass X`: long flags only; short ones are per tool.
    let name = word.trim_start_matches('-');
    let long = word.starts_with("--") || (word.starts_with('-') && name.len() > 2);
    if long
        && !name.is_empty()
        && let Some(class) = names::secret_name(name, NameKind::Flag)
        && let Some(next) = words.get(i + 1)
        && (!next.starts_with('-') || next.len() == 1)
    {
        mask_value(plan, i + 1, words, 0, class);
        return 2;
    }
    1
}

fn mask_value(plan: &mut Plan, i: usize, words: &[&str], from: usize, class: SecretClass) {
    let value = words.get(i).and_then(|w| w.get(from..)).unwrap_or("");
    if class == SecretClass::KeyOrFile && names::is_path(value) {
        return;
    }
    mask_from(plan, i, words, from);
}

/// Applies `t`'s rules to the command starting at `start`; returns where it ends.
fn apply_tool(
    t: &Tool,
    words: &[&str],
    start: usize,
    positional_ok: bool,
    plan: &mut Plan,
) -> usize {
    let mut active = t.after.is_empty();
    let (anchors, pick) = match t.positional {
        Positional::After(anchors, pick) => (anchors, Some(pick)),
        _ => (&[][..], None),
    };
    let mut anchored = anchors.is_empty();
    let mut positionals: Vec<usize> = Vec::new();
    let mut all_positionals: Vec<usize> = Vec::new();
    let mut flag_letters = String::new();
    let mut i = start + 1;
    while let Some(&word) = words.get(i) {
        if is_separator(word) {
            break;
        }
        if word.ends_with(';') {
            i += 1;
            break;
        }
        let is_flag = (word.starts_with('-') && word.len() > 1)
            || (word.starts_with('/') && word.contains(':') && !word.contains("//"))
            || (t.secret_flags.iter().any(|f| f.starts_with('/'))
                && t.secret_flags.contains(&word));
        if is_flag {
            if t.prompting.contains(&word) {
                i += 1;
                continue;
            }
            if active && let Some(consumed) = tool_flag(t, words, i, plan) {
                i += consumed;
                continue;
            }
            if word.starts_with('-') && !word.starts_with("--") {
                flag_letters.push_str(&word[1..]);
            }
            let consumed = generic(words, i, plan);
            if consumed > 1 {
                i += consumed;
                continue;
            }
            i += if t.value_flags.contains(&word) { 2 } else { 1 };
            continue;
        }
        if t.runs_command {
            // The rest is a command of its own.
            let inner = plan_from(words, i);
            for (slot, m) in plan.iter_mut().zip(inner).skip(i) {
                if slot.is_none() {
                    *slot = m;
                }
            }
            return words.len();
        }
        generic(words, i, plan);
        if !active && t.after.contains(&word) {
            active = true;
        }
        all_positionals.push(i);
        if anchored {
            positionals.push(i);
        } else if anchors.contains(&word) {
            anchored = true;
        }
        i += 1;
    }
    if positional_ok {
        positional_rules(
            t,
            pick,
            words,
            &positionals,
            &all_positionals,
            &flag_letters,
            plan,
        );
    }
    i
}

/// A plan for the words from `start` on, as a command of their own.
fn plan_from(words: &[&str], start: usize) -> Plan {
    let mut out: Plan = vec![None; start];
    out.extend(plan(words.get(start..).unwrap_or_default(), true));
    out
}

fn tool_flag(t: &Tool, words: &[&str], i: usize, plan: &mut Plan) -> Option<usize> {
    let word = *words.get(i)?;
    for flag in t.secret_flags {
        if word == *flag {
            let next = words.get(i + 1)?;
            if next.starts_with('-') && next.len() > 1 {
                return Some(1);
            }
            mask_all(plan, i + 1, words);
            return Some(2);
        }
        let attached =
            (t.attached && flag.len() == 2) || flag.ends_with(':') || flag.ends_with('=');
        if attached && word.len() > flag.len() && word.starts_with(flag) {
            let from = if flag.ends_with('=') {
                // `--from-literal=NAME=VALUE`: the value after the name.
                word[flag.len()..]
                    .find('=')
                    .map_or(flag.len(), |p| flag.len() + p + 1)
            } else {
                flag.len()
            };
            mask_from(plan, i, words, from);
            return Some(1);
        }
    }
    for flag in t.attached_only {
        if word.len() > flag.len() && word.starts_with(flag) {
            mask_from(plan, i, words, flag.len());
            return Some(1);
        }
    }
    for (flag, sep) in t.user_secret {
        let value_at = if word == *flag {
            Some((i + 1, 0))
        } else if word.len() > flag.len() && word.starts_with(flag) {
            let rest = &word[flag.len()..];
            let skip = usize::from(rest.starts_with('='));
            (flag.len() == 2 || skip == 1).then_some((i, flag.len() + skip))
        } else {
            None
        };
        if let Some((at, from)) = value_at {
            if let Some(value) = words.get(at).and_then(|w| w.get(from..))
                && let Some(p) = value.find(*sep)
            {
                // Not a Windows drive (`C:\certs\client.pem`).
                let drive = *sep == ':' && p == 1 && value[2..].starts_with('\\');
                if !drive {
                    mask_from(plan, at, words, from + p + 1);
                }
            }
            return Some(if at == i { 1 } else { 2 });
        }
    }
    None
}

fn positional_rules(
    t: &Tool,
    pick: Option<Pick>,
    words: &[&str],
    after_anchor: &[usize],
    all: &[usize],
    flag_letters: &str,
    plan: &mut Plan,
) {
    match (t.positional, pick) {
        (Positional::After(..), Some(Pick::Nth(n))) => {
            if let Some(&i) = after_anchor.get(n)
                && !words.get(i).is_some_and(|w| w.contains('='))
            {
                mask_all(plan, i, words);
            }
        }
        (Positional::After(..), Some(Pick::Last)) => {
            if let Some(&i) = after_anchor.last() {
                mask_all(plan, i, words);
            }
        }
        (Positional::After(..), Some(Pick::All)) => {
            for &i in after_anchor {
                mask_all(plan, i, words);
            }
        }
        (Positional::LastWithFlag(letter), _) => {
            if flag_letters.contains(letter)
                && let Some(&i) = all.last()
            {
                mask_all(plan, i, words);
            }
        }
        (Positional::AfterSecretName, _) => {
            for pair in all.windows(2) {
                if let [name, value] = pair {
                    let is_name = words.get(*name).is_some_and(|w| {
                        !w.contains('=') && names::secret_name(w, NameKind::Key).is_some()
                    });
                    if is_name && *value == name + 1 {
                        mask_all(plan, *value, words);
                    }
                }
            }
        }
        (Positional::AfterShare, _) => {
            if let Some(p) = all.iter().position(|&i| {
                words
                    .get(i)
                    .is_some_and(|w| w.starts_with("//") || w.starts_with("\\\\"))
            }) && let Some(&i) = all.get(p + 1)
            {
                mask_all(plan, i, words);
            }
        }
        (Positional::Net, _) => {
            let at = |k: usize| {
                all.get(k)
                    .and_then(|&i| words.get(i))
                    .map(|w| w.to_ascii_lowercase())
            };
            match at(0).as_deref() {
                Some("use") => {
                    if let Some(p) = all.iter().position(|&i| {
                        words
                            .get(i)
                            .is_some_and(|w| w.starts_with("\\\\") || w.starts_with("//"))
                    }) && let Some(&i) = all.get(p + 1)
                        && words
                            .get(i)
                            .is_some_and(|w| *w != "*" && !w.starts_with('/'))
                    {
                        mask_all(plan, i, words);
                    }
                }
                Some("user") => {
                    if let Some(&i) = all.get(2)
                        && words
                            .get(i)
                            .is_some_and(|w| *w != "*" && !w.starts_with('/'))
                    {
                        mask_all(plan, i, words);
                    }
                }
                _ => {}
            }
        }
        (Positional::SlashCredentials, _) => {
            for &i in all {
                let Some(word) = words.get(i) else { continue };
                let from = word.find('=').map_or(0, |p| p + 1);
                let value = &word[from..];
                if let Some(slash) = value.find('/')
                    && slash > 0
                    && !value.starts_with('/')
                {
                    let end = value.find('@').unwrap_or(value.len());
                    if end > slash + 1
                        && let Some(slot) = plan.get_mut(i)
                    {
                        *slot = Some(from + slash + 1..from + end);
                    }
                }
            }
        }
        _ => {}
    }
}
