//! Group commit for uploads. A burst of students uploading at once would otherwise queue one transaction each
//! behind the database's single writer (SQLite) and flush the disk once per upload; here the uploads that arrive
//! while one commit runs are committed together in the next, so the answer to the last of 200 waits for a handful
//! of commits, not for 200. Each upload is still committed before it is answered.

use gradphoto_store::db::{NewPhoto, Uploaded};
use gradphoto_store::{Db, DbError};
use tokio::sync::{mpsc, oneshot};

/// At most this many uploads in one transaction (a bound on how long the writer is held).
const MAX_BATCH: usize = 64;

type Request = (NewPhoto, oneshot::Sender<Result<Uploaded, DbError>>);

pub struct Committer {
    requests: mpsc::Sender<Request>,
}

impl Committer {
    /// Starts the committing task on the current runtime.
    pub fn start(db: Db) -> Committer {
        let (requests, queue) = mpsc::channel(4 * MAX_BATCH);
        tokio::spawn(run(db, queue));
        Committer { requests }
    }

    /// Commits `photo` with whatever other uploads are waiting, and returns when it is durable.
    pub async fn record(&self, photo: NewPhoto) -> Result<Uploaded, DbError> {
        let (tx, rx) = oneshot::channel();
        self.requests.send((photo, tx)).await.map_err(|_| DbError::State)?;
        rx.await.map_err(|_| DbError::State)?
    }
}

async fn run(db: Db, mut queue: mpsc::Receiver<Request>) {
    while let Some(first) = queue.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(r) => batch.push(r),
                Err(_) => break,
            }
        }
        let (photos, replies): (Vec<NewPhoto>, Vec<_>) = batch.into_iter().unzip();
        match db.record_uploads(&photos).await {
            Ok(done) => {
                for (reply, uploaded) in replies.into_iter().zip(done) {
                    let _ = reply.send(Ok(uploaded));
                }
            }
            // One upload's error must not fail the others: each alone, so each gets its own answer.
            Err(_) => {
                for (photo, reply) in photos.iter().zip(replies) {
                    let _ = reply.send(db.record_upload(photo).await);
                }
            }
        }
    }
}
