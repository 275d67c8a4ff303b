//! What the console says, in words a person can act on: service errors
//! as sentences, sizes and times as people read them.

use crate::core::CoreError;

/// A sentence for a service error (never a code or a trace).
pub fn for_error(error: &CoreError) -> String {
    match error {
        CoreError::NoSuchBucket => "There is no such bucket, or it is not yours to see.".into(),
        CoreError::NoSuchKey => "That file is not there (any more).".into(),
        CoreError::AccessDenied => "You do not have access to that.".into(),
        CoreError::BucketNotEmpty => {
            "The bucket still holds files, or uploads in parts that are not finished (they expire after a day without a new part). Delete the files first, then the bucket.".into()
        }
        CoreError::BucketAlreadyOwnedByYou => "You already have a bucket of that name.".into(),
        CoreError::BucketAlreadyExists => {
            "That bucket name is taken. Bucket names are shared by everyone on this server; pick another.".into()
        }
        CoreError::InvalidBucketName(why) => format!(
            "That is not a valid bucket name ({why}). Use 3 to 63 lower-case letters, digits, dots and hyphens."
        ),
        CoreError::KeyTooLong => "That name is too long (at most 1024 bytes).".into(),
        CoreError::BadLogin => "The name or password is wrong.".into(),
        CoreError::AccountDisabled(_) => "This account is disabled. Ask an administrator.".into(),
        CoreError::TooManyAttempts(secs) => {
            format!("Too many failed sign-ins. Wait {secs} seconds and try again.")
        }
        CoreError::SignupDisabled => {
            "Sign-up is turned off on this server. Ask an administrator for an account.".into()
        }
        CoreError::UserExists => "Someone already has that name; pick another.".into(),
        CoreError::NoSuchUser => "There is no user of that name.".into(),
        CoreError::UserOwnsBuckets => {
            "That user still owns buckets. Delete with purge to remove them too.".into()
        }
        CoreError::QuotaExceeded { scope, quota, used } => format!(
            "That would go over the {scope} quota of {} ({} in use).",
            size(*quota),
            size(*used)
        ),
        CoreError::Busy(_) | CoreError::Unavailable(_) => {
            "The server is busy or its storage is unavailable. Try again in a moment.".into()
        }
        CoreError::Internal(_) => {
            "Something went wrong on the server. It has been logged; try again.".into()
        }
        other => capitalised(&other.to_string()),
    }
}

fn capitalised(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => format!(
            "{}{}.",
            first.to_uppercase(),
            chars.as_str().trim_end_matches('.')
        ),
        None => String::new(),
    }
}

/// A size in bytes as people read it: `0 B`, `532 B`, `1.4 KiB`, `12 MiB`.
pub fn size(bytes: i64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut value = bytes.max(0) as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else if value < 10.0 {
        format!("{value:.1} {}", UNITS[unit])
    } else {
        format!("{value:.0} {}", UNITS[unit])
    }
}

/// A moment as `2026-12-01 14:05 UTC`.
pub fn time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_like_a_person_writes_them() {
        assert_eq!(size(0), "0 B");
        assert_eq!(size(1023), "1023 B");
        assert_eq!(size(1536), "1.5 KiB");
        assert_eq!(size(200 * 1024 * 1024), "200 MiB");
    }

    #[test]
    fn errors_become_sentences() {
        assert_eq!(
            for_error(&CoreError::InvalidRange),
            "The requested range is not satisfiable."
        );
        assert!(for_error(&CoreError::BucketNotEmpty).contains("Delete the files first"));
    }
}
