//! Command output the book shows is captured from real runs into
//! `src/captured/`. Tests compare what they see with the committed capture;
//! `UPDATE_CAPTURES=1` (what `cargo xtask capture` sets) rewrites it instead.

use crate::paths;

pub fn check_or_update(relative: &str, actual: &str) {
    let path = paths::repo_root().join("src/captured").join(relative);
    if std::env::var_os("UPDATE_CAPTURES").is_some() {
        std::fs::create_dir_all(path.parent().expect("capture has a parent"))
            .expect("create capture directory");
        std::fs::write(&path, actual).expect("write capture");
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == actual,
        "{} is out of date; run `cargo xtask capture` to refresh it.\n--- committed\n{committed}\n--- now\n{actual}",
        path.display()
    );
}
