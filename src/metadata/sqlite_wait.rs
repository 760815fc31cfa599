//! How a SQLite connection waits for a lock another connection holds. SQLite's own busy handler (what
//! `busy_timeout` installs) sleeps 1, 2, 5, 10, 15 … ms between tries, while a write here holds the lock
//! for tens of microseconds: under concurrent pushes, connections slept with the lock long free (`perf
//! stat`: 126–146 sleeps of 1 ms or more for 300 pushes and pulls of 1 MiB). This handler tries
//! again after short pauses that double from [`FIRST_PAUSE`] up to [`LONGEST_PAUSE`], and gives up (the
//! statement then fails with `SQLITE_BUSY`) once its pauses add up to [`LOCK_WAIT`].

use std::ffi::{c_int, c_void};
use std::sync::LazyLock;
use std::time::Duration;

use libsqlite3_sys as ffi;
use sqlx::SqliteConnection;

const FIRST_PAUSE: Duration = Duration::from_micros(20);
const LONGEST_PAUSE: Duration = Duration::from_millis(1);

/// The pause before try number `tries + 1` (counted from 0, as SQLite counts them).
fn pause(tries: u32) -> Duration {
    FIRST_PAUSE.saturating_mul(1 << tries.min(16)).min(LONGEST_PAUSE)
}

/// How many tries fit in `wait`: their pauses add up to at least `wait`.
fn tries_within(wait: Duration) -> u32 {
    let (mut tries, mut waited) = (0u32, Duration::ZERO);
    while waited < wait {
        waited += pause(tries);
        tries += 1;
    }
    tries
}

/// How long a statement waits for a lock before it fails with `SQLITE_BUSY`.
pub const LOCK_WAIT: Duration = Duration::from_secs(10);

/// The try to give up at: the pauses before it add up to [`LOCK_WAIT`].
static GIVE_UP_AT: LazyLock<u32> = LazyLock::new(|| tries_within(LOCK_WAIT));

/// SQLite calls this with the number of times it already called it for the same lock; nonzero means "try
/// again".
extern "C" fn wait_for_lock(_: *mut c_void, tries: c_int) -> c_int {
    let tries = u32::try_from(tries).unwrap_or(u32::MAX);
    if tries >= *GIVE_UP_AT {
        return 0;
    }
    std::thread::sleep(pause(tries));
    1
}

/// Replaces the busy handler of `conn` with [`wait_for_lock`].
pub async fn install(conn: &mut SqliteConnection) -> sqlx::Result<()> {
    let mut handle = conn.lock_handle().await?;
    // SAFETY: the handle is a live connection, held locked until `handle` drops; the callback is a plain
    // function that ignores its argument.
    unsafe {
        ffi::sqlite3_busy_handler(
            handle.as_raw_handle().as_ptr(),
            Some(wait_for_lock),
            std::ptr::null_mut(),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_double_to_a_millisecond_and_add_up_to_the_wait() {
        assert_eq!(pause(0), Duration::from_micros(20));
        assert_eq!(pause(3), Duration::from_micros(160));
        assert_eq!(pause(6), LONGEST_PAUSE);
        assert_eq!(pause(u32::MAX), LONGEST_PAUSE);
        let tries = tries_within(Duration::from_secs(10));
        let waited: Duration = (0..tries).map(pause).sum();
        assert!(waited >= Duration::from_secs(10) && waited < Duration::from_secs(10) + LONGEST_PAUSE);
        assert_eq!(tries_within(Duration::ZERO), 0);
    }
}
