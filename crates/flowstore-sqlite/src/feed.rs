//! SQLite's change feed (see [`flowstore_core::change`]): the backends one process
//! opened on the same file tell each other of their write commits. A backend hears
//! nothing of its own commits (its server wakes its own waiters after each write)
//! nor of other processes' (SQLite has no notifications; their changes are found by
//! polling, which therefore stays as frequent as without a feed), so with one
//! backend per file, the usual case, a commit costs one uncontended lock here.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};

use flowstore_core::change::{Change, ChangeSink};

/// The sinks listening to the backends of one database file.
#[derive(Default)]
pub(crate) struct Feed {
    sinks: Mutex<Vec<(u64, Arc<dyn ChangeSink>)>>,
}

/// One backend's place in the feed of its file.
#[derive(Clone)]
pub(crate) struct FeedHandle {
    feed: Arc<Feed>,
    origin: u64,
}

/// The feeds of the files open in this process.
fn feeds() -> &'static Mutex<HashMap<PathBuf, Weak<Feed>>> {
    static FEEDS: OnceLock<Mutex<HashMap<PathBuf, Weak<Feed>>>> = OnceLock::new();
    FEEDS.get_or_init(Default::default)
}

impl FeedHandle {
    /// The feed of `file`, shared with the other backends of this process on it; a
    /// database in memory (`None`) is only ever this backend's.
    pub(crate) fn open(file: Option<&Path>) -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let origin = NEXT.fetch_add(1, Ordering::Relaxed);
        let feed = match file {
            None => Arc::new(Feed::default()),
            Some(path) => {
                let key = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
                let mut all = feeds().lock().unwrap_or_else(|p| p.into_inner());
                all.retain(|_, f| f.strong_count() > 0);
                match all.get(&key).and_then(Weak::upgrade) {
                    Some(feed) => feed,
                    None => {
                        let feed = Arc::new(Feed::default());
                        all.insert(key, Arc::downgrade(&feed));
                        feed
                    }
                }
            }
        };
        FeedHandle { feed, origin }
    }

    /// Delivers the commits of the other backends on this file to `sink`. It never
    /// says [`Change::Listening`]: other processes' commits are not heard, so the
    /// listener keeps polling as often as without a feed.
    pub(crate) fn listen(&self, sink: Arc<dyn ChangeSink>) {
        self.sinks().push((self.origin, sink));
    }

    /// Tells the other backends' sinks that this backend committed a write: without
    /// knowing what it wrote, every kind of change.
    pub(crate) fn committed(&self) {
        let mut sinks = self.sinks();
        if sinks.iter().all(|(origin, _)| *origin == self.origin) {
            return;
        }
        sinks.retain(|(origin, sink)| {
            *origin == self.origin
                || [Change::Work { at: None }, Change::Events, Change::Access]
                    .into_iter()
                    .all(|c| sink.changed(c))
        });
    }

    fn sinks(&self) -> std::sync::MutexGuard<'_, Vec<(u64, Arc<dyn ChangeSink>)>> {
        self.feed.sinks.lock().unwrap_or_else(|p| p.into_inner())
    }
}
