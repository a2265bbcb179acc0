//! Running the `esp-sim` binary as a child process.

use std::ffi::OsStr;
use std::io::{self, BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};

/// An `esp-sim` child process serving a board.
///
/// Its stdin is held open: the simulator stops on SIGTERM or when stdin
/// closes, and then writes its `--dump` file.
#[derive(Debug)]
pub struct SimProcess {
    child: Child,
    stdin: Option<ChildStdin>,
    path: PathBuf,
}

impl SimProcess {
    /// Starts `program` (the `esp-sim` binary) with `args` and waits for the
    /// pty path it prints first.
    pub fn spawn<S: AsRef<OsStr>>(
        program: impl AsRef<OsStr>,
        args: impl IntoIterator<Item = S>,
    ) -> io::Result<Self> {
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        let stdin = child.stdin.take();
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| io::Error::other("no stdout"))?;
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line)?;
        let path = PathBuf::from(line.trim_end());
        if path.as_os_str().is_empty() {
            let status = child.wait()?;
            return Err(io::Error::other(format!(
                "esp-sim printed no pty path ({status})"
            )));
        }
        Ok(SimProcess { child, stdin, path })
    }

    /// The pty device the simulator serves.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The child's process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Ends the simulator by closing its stdin and waits for it (and its
    /// dump) to finish.
    pub fn stop(mut self) -> io::Result<ExitStatus> {
        drop(self.stdin.take());
        self.child.wait()
    }

    /// Sends SIGTERM and waits for the simulator to finish.
    pub fn terminate(mut self) -> io::Result<ExitStatus> {
        let pid = libc::pid_t::try_from(self.child.id()).map_err(io::Error::other)?;
        // SAFETY: signalling our own child, which has not been reaped yet.
        if unsafe { libc::kill(pid, libc::SIGTERM) } != 0 {
            return Err(io::Error::last_os_error());
        }
        self.child.wait()
    }
}

impl Drop for SimProcess {
    fn drop(&mut self) {
        if self.stdin.take().is_some() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
