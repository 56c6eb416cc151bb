//! Rebuilds ferry-store when a migration is added or changed: `sqlx::migrate!` embeds the
//! files of `migrations/`, but Cargo notices a new file only in a directory it watches.

fn main() {
    println!("cargo:rerun-if-changed=../../migrations");
}
