//! `midge passwd`: creates and updates password files for `midged`, in the
//! format and with the flags of Mosquitto's `mosquitto_passwd`.

use std::io::{BufRead, IsTerminal};
use std::path::{Path, PathBuf};

use clap::Args;
use midge_auth::{check_user_name, PasswordFile, PasswordHash, DEFAULT_ITERATIONS, SALT_LEN};

use crate::exit::{Exit, Failure};

/// `midge passwd [-c] [-b] [-D] FILE USER [PASSWORD]`.
#[derive(Debug, Clone, Args)]
pub(crate) struct PasswdArgs {
    /// Create the file, replacing any file already there.
    #[arg(short = 'c', long = "create", conflicts_with = "delete")]
    pub(crate) create: bool,

    /// Batch mode: take the password from the command line (it shows in
    /// the process list and shell history; prefer the prompt).
    #[arg(short = 'b', long = "batch", requires = "password")]
    pub(crate) batch: bool,

    /// Delete USER instead of setting a password.
    #[arg(short = 'D', long = "delete", conflicts_with_all = ["batch", "password"])]
    pub(crate) delete: bool,

    /// The password file.
    #[arg(value_name = "FILE")]
    pub(crate) file: PathBuf,

    /// The user name.
    #[arg(value_name = "USER")]
    pub(crate) user: String,

    /// The password, with -b only. Without it, the password is asked twice
    /// on a terminal (not echoed), or read as two lines from stdin.
    #[arg(value_name = "PASSWORD", requires = "batch")]
    pub(crate) password: Option<String>,
}

/// Runs `midge passwd`.
///
/// # Errors
/// A bad user name or password (exit 2), an unreadable or unwritable file,
/// an unknown user with -D, or passwords that differ (exit 1).
pub(crate) fn run(args: &PasswdArgs) -> Result<(), Failure> {
    check_user_name(&args.user)
        .map_err(|e| Failure::new(Exit::Usage, format!("user {:?}: {e}", args.user)))?;
    let mut file = if args.create {
        PasswordFile::new()
    } else {
        read(&args.file)?
    };
    if args.delete {
        if !file.remove(&args.user) {
            return Err(Failure::new(
                Exit::Other,
                format!("user {} not found in {}", args.user, args.file.display()),
            ));
        }
    } else {
        let password = match &args.password {
            Some(password) => password.clone(),
            None => ask()?,
        };
        if password.is_empty() || password.contains('\0') {
            return Err(Failure::new(
                Exit::Usage,
                "the password must not be empty or hold a NUL character",
            ));
        }
        let mut salt = [0u8; SALT_LEN];
        getrandom::fill(&mut salt)
            .map_err(|e| Failure::new(Exit::Other, format!("no OS randomness: {e}")))?;
        let hash = PasswordHash::pbkdf2(password.as_bytes(), &salt, DEFAULT_ITERATIONS)
            .map_err(|e| Failure::new(Exit::Other, format!("cannot hash: {e}")))?;
        file.set(&args.user, hash)
            .map_err(|e| Failure::new(Exit::Usage, format!("user {:?}: {e}", args.user)))?;
    }
    write(&args.file, &file.to_string())
}

fn read(path: &Path) -> Result<PasswordFile, Failure> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        let hint = if e.kind() == std::io::ErrorKind::NotFound {
            " (use -c to create it)"
        } else {
            ""
        };
        Failure::new(
            Exit::Other,
            format!("cannot read {}: {e}{hint}", path.display()),
        )
    })?;
    PasswordFile::parse(&text)
        .map_err(|e| Failure::new(Exit::Other, format!("{}: {e}", path.display())))
}

/// Writes `text` next to `path` and renames it over, so a reader never
/// sees half a file; the file is readable by its owner only.
fn write(path: &Path, text: &str) -> Result<(), Failure> {
    let fail = |e: std::io::Error| {
        Failure::new(Exit::Other, format!("cannot write {}: {e}", path.display()))
    };
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp{}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let result = (|| {
        use std::io::Write;
        let mut out = options.open(&tmp)?;
        out.write_all(text.as_bytes())?;
        out.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(fail)
}

/// The password, typed twice: on a terminal without echo, else two lines
/// of stdin.
fn ask() -> Result<String, Failure> {
    let (first, second) = if std::io::stdin().is_terminal() {
        let prompt = |text: &str| {
            rpassword::prompt_password(text)
                .map_err(|e| Failure::new(Exit::Other, format!("cannot read the password: {e}")))
        };
        (prompt("Password: ")?, prompt("Reenter password: ")?)
    } else {
        let mut lines = std::io::stdin().lock().lines();
        let mut next = || match lines.next() {
            Some(Ok(line)) => Ok(line.strip_suffix('\r').unwrap_or(&line).to_string()),
            Some(Err(e)) => Err(Failure::new(
                Exit::Other,
                format!("cannot read the password from stdin: {e}"),
            )),
            None => Err(Failure::new(
                Exit::Other,
                "stdin ended before the password was given twice",
            )),
        };
        (next()?, next()?)
    };
    if first == second {
        Ok(first)
    } else {
        Err(Failure::new(Exit::Other, "the passwords do not match"))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use clap::Parser;

    fn args(list: &[&str]) -> PasswdArgs {
        let mut all = vec!["midge", "passwd"];
        all.extend_from_slice(list);
        match crate::cli::Cli::try_parse_from(all).unwrap().command {
            crate::cli::Command::Passwd(a) => a,
            other => panic!("parsed {other:?}"),
        }
    }

    fn temp(name: &str) -> PathBuf {
        let path = std::env::temp_dir().join(format!("midge-passwd-{}-{name}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        path
    }

    #[test]
    fn create_update_and_delete_users() {
        let path = temp("cud");
        let file = path.to_str().unwrap();
        run(&args(&["-c", "-b", file, "alice", "one"])).unwrap();
        run(&args(&["-b", file, "bob", "two"])).unwrap();
        run(&args(&["-b", file, "alice", "three"])).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("alice:$7$10000$"), "{text}");
        let parsed = PasswordFile::parse(&text).unwrap();
        assert_eq!(parsed.users(), ["alice", "bob"]);
        assert!(parsed.verify("alice", b"three") && !parsed.verify("alice", b"one"));
        assert!(parsed.verify("bob", b"two"));
        run(&args(&["-D", file, "bob"])).unwrap();
        let failure = run(&args(&["-D", file, "bob"])).unwrap_err();
        assert_eq!(failure.exit, Exit::Other);
        let parsed = PasswordFile::parse(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(parsed.users(), ["alice"]);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn refusals() {
        let path = temp("refusals");
        let file = path.to_str().unwrap();
        // No file without -c.
        assert_eq!(
            run(&args(&["-b", file, "a", "x"])).unwrap_err().exit,
            Exit::Other
        );
        assert_eq!(
            run(&args(&["-c", "-b", file, "a:b", "x"]))
                .unwrap_err()
                .exit,
            Exit::Usage
        );
        assert_eq!(
            run(&args(&["-c", "-b", file, "a", ""])).unwrap_err().exit,
            Exit::Usage
        );
        // A password without -b, -D with -c: usage errors from clap.
        for bad in [
            vec![file, "a", "x"],
            vec!["-c", "-D", file, "a"],
            vec!["-b", file, "a"],
        ] {
            let mut all = vec!["midge", "passwd"];
            all.extend_from_slice(&bad);
            assert!(crate::cli::Cli::try_parse_from(all).is_err(), "{bad:?}");
        }
        // A file that is not a password file is not overwritten.
        std::fs::write(&path, "alice:plaintext\n").unwrap();
        assert_eq!(
            run(&args(&["-b", file, "bob", "x"])).unwrap_err().exit,
            Exit::Other
        );
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "alice:plaintext\n");
        let _ = std::fs::remove_file(&path);
    }
}
