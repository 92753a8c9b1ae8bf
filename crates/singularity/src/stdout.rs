//! Standard output of `config` and `apply`. A reader that stops early
//! (`singularity config | head -1`) ends the output; that is not an error and
//! never a panic.

use std::io::{self, Write};

/// Standard output could not be written (other than by a closed pipe).
#[derive(Debug, thiserror::Error)]
#[error("cannot write to standard output: {0}")]
pub struct StdoutError(#[source] pub io::Error);

/// Writes `text` to standard output. A closed pipe (EPIPE) is a normal end.
pub fn print(text: &str) -> Result<(), StdoutError> {
    write_to(&mut io::stdout().lock(), text)
}

fn write_to(out: &mut impl Write, text: &str) -> Result<(), StdoutError> {
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(StdoutError(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Closed;

    impl Write for Closed {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::Error::from_raw_os_error(libc::EPIPE))
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    struct Full;

    impl Write for Full {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::Error::from_raw_os_error(libc::ENOSPC))
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_closed_pipe_ends_the_output_and_other_errors_are_reported() {
        assert!(write_to(&mut Closed, "x\n").is_ok());
        let err = write_to(&mut Full, "x\n").unwrap_err();
        assert_eq!(err.0.raw_os_error(), Some(libc::ENOSPC));
        assert!(err.to_string().starts_with("cannot write to standard output: "));
    }
}
