//! Rotating the key that seals id numbers and openids: `gradphoto admin id-key rotate`, `reseal`, `retire`, in the
//! order the deployment guide gives, with students signing in with their initial password (which the service
//! derives by opening their id number) before, between and after, and the refusals of steps out of order.

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::support::{id_number, student_no};
use gradphoto_store::Vault;
use gradphoto_store::db::{NewSchool, SealedKind, StudentUpsert};
use gradphoto_web::secrets::Secrets;

const STUDENTS: usize = 3;
const OPENID: &str = "o-rotation-test-openid";

fn gradphoto(data: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gradphoto"))
        .arg("--data")
        .arg(data)
        .args(["admin", "id-key"])
        .args(args)
        .env_remove("GRADPHOTO_DATABASE_URL")
        .output()
        .expect("gradphoto runs")
}

fn said(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// `gradphoto serve` on the data folder until dropped.
struct Serve(Child);

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn serve(data: &Path, port: u16) -> Serve {
    let child = Command::new(env!("CARGO_BIN_EXE_gradphoto"))
        .arg("--data")
        .arg(data)
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .env("GRADPHOTO_COOKIE_SECURE", "false")
        .env("GRADPHOTO_CHECK_WORKERS", "0")
        .env("GRADPHOTO_LOG", "warn")
        .env_remove("GRADPHOTO_DATABASE_URL")
        .env_remove("GRADPHOTO_STORE")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("gradphoto serve starts");
    let deadline = Instant::now() + Duration::from_secs(60);
    while reqwest::get(format!("http://127.0.0.1:{port}/healthz")).await.map(|r| r.status() != 200).unwrap_or(true) {
        assert!(Instant::now() < deadline, "the service did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Serve(child)
}

/// Signs student `i` in with the initial password (the id number's last six characters); the status.
async fn sign_in(http: &reqwest::Client, port: u16, i: usize) -> u16 {
    let page = format!("http://127.0.0.1:{port}/s/keys/login");
    http.get(&page).send().await.unwrap();
    let pre = http
        .get(&page)
        .send()
        .await
        .unwrap()
        .cookies()
        .find(|c| c.name() == "gp_pre")
        .map(|c| c.value().to_string())
        .expect("the sign-in page sets gp_pre");
    let id = id_number(i);
    let form = [("username", student_no(i)), ("password", id[id.len() - 6..].to_string()), ("csrf", pre)];
    http.post(&page).header("accept", "application/json").form(&form).send().await.unwrap().status().as_u16()
}

/// Every sealed value as the key file now on disk opens it: (id numbers, openids), or None where it does not.
async fn open_all(data: &Path, only_current: bool) -> (Vec<Option<String>>, Vec<Option<String>>) {
    let (secrets, _) = Secrets::load_or_create(data).unwrap();
    let vault =
        if only_current { Vault::from_base64(&secrets.id_key, &secrets.lookup_key).unwrap() } else { secrets.vault() };
    let db =
        gradphoto_store::Db::connect(&gradphoto_web::Config::load(data).unwrap().database_url(data)).await.unwrap();
    let ids = db.sealed_values(SealedKind::IdNumber, 0, 100).await.unwrap();
    let openids = db.sealed_values(SealedKind::Openid, 0, 100).await.unwrap();
    let id_context =
        |v: &gradphoto_store::db::SealedValue| gradphoto_web::public::id_context(v.school_id.unwrap(), &v.kind);
    (
        ids.iter().map(|v| vault.open(&id_context(v), &v.cipher).ok()).collect(),
        openids.iter().map(|v| vault.open(gradphoto_web::wechat::OPENID_CONTEXT, &v.cipher).ok()).collect(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_id_key_rotates_while_students_keep_signing_in() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let refused = gradphoto(&data, &["rotate"]);
    assert!(!refused.status.success() && said(&refused).contains("no keys.toml"), "{}", said(&refused));

    // A school's roster and one WeChat binding, sealed as the service seals them.
    let (secrets, _) = Secrets::load_or_create(&data).unwrap();
    let vault = secrets.vault();
    let db =
        gradphoto_store::Db::connect(&gradphoto_web::Config::load(&data).unwrap().database_url(&data)).await.unwrap();
    let region = db.upsert_region("北京市", "北京市").await.unwrap();
    let school = db
        .create_school(&NewSchool {
            region_id: region,
            code: "keys".into(),
            name: "密钥大学".into(),
            fee_cents: 0,
            opens_at: None,
            closes_at: None,
            backgrounds: "blue".into(),
        })
        .await
        .unwrap();
    let rows: Vec<StudentUpsert> = (0..STUDENTS)
        .map(|i| StudentUpsert {
            student_no: student_no(i),
            name: format!("学生{i}"),
            id_kind: "mainland".into(),
            id_cipher: vault.seal(&gradphoto_web::public::id_context(school, "mainland"), &id_number(i)),
            id_hash: vault.lookup_hash(&id_number(i)),
            college: None,
            degree_level: None,
        })
        .collect();
    db.import_students(school, &rows).await.unwrap();
    let first = db.student_by_no(school, &student_no(0)).await.unwrap().unwrap();
    let openid_cipher = vault.seal(gradphoto_web::wechat::OPENID_CONTEXT, OPENID);
    db.bind_wechat(first.id, &vault.keyed(b"wechat-openid", OPENID.as_bytes()), &openid_cipher).await.unwrap();
    drop(db);
    let plain = ((0..STUDENTS).map(|i| Some(id_number(i))).collect::<Vec<_>>(), vec![Some(OPENID.to_string())]);
    assert_eq!(open_all(&data, true).await, plain);

    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    // One client per student for the whole test: the account stays bound to its first device.
    let phones: Vec<reqwest::Client> =
        (0..STUDENTS).map(|_| reqwest::Client::builder().cookie_store(true).build().unwrap()).collect();
    let everyone_signs_in = |when: &'static str| {
        let phones = phones.clone();
        async move {
            for (i, phone) in phones.iter().enumerate() {
                assert_eq!(sign_in(phone, port, i).await, 200, "student {i} signs in {when}");
            }
        }
    };
    let service = serve(&data, port).await;
    everyone_signs_in("before the rotation").await;
    drop(service);

    // rotate: a new key first, the old one kept; a second rotate and a retire are refused meanwhile.
    let old_key = secrets.id_key.clone();
    let o = gradphoto(&data, &["rotate"]);
    assert!(o.status.success(), "{}", said(&o));
    let (rotated, _) = Secrets::load_or_create(&data).unwrap();
    assert_ne!(rotated.id_key, old_key);
    assert_eq!(rotated.previous_id_keys, vec![old_key.clone()]);
    assert_eq!(
        (rotated.lookup_key.as_str(), rotated.seal_keys.as_str()),
        (secrets.lookup_key.as_str(), secrets.seal_keys.as_str())
    );
    let o = gradphoto(&data, &["rotate"]);
    assert!(!o.status.success() && said(&o).contains("under way"), "{}", said(&o));
    let o = gradphoto(&data, &["retire"]);
    assert!(!o.status.success() && said(&o).contains("4 rows are still sealed with an old key"), "{}", said(&o));
    assert_eq!(open_all(&data, false).await, plain, "the ring opens every row");
    assert_eq!(open_all(&data, true).await.0, vec![None; STUDENTS], "the new key alone opens none yet");

    // The nodes restarted with the ring: students sign in; reseal while the service runs.
    let service = serve(&data, port).await;
    everyone_signs_in("with the ring, before the reseal").await;
    let o = gradphoto(&data, &["reseal"]);
    assert!(
        o.status.success() && said(&o).contains("re-sealed 4 rows with the new key (0 were already)"),
        "{}",
        said(&o)
    );
    everyone_signs_in("after the reseal").await;
    assert_eq!(open_all(&data, true).await, plain, "the new key alone opens every row");
    let o = gradphoto(&data, &["reseal"]);
    assert!(
        o.status.success() && said(&o).contains("re-sealed 0 rows with the new key (4 were already)"),
        "{}",
        said(&o)
    );

    // retire: the old key leaves the file; the restarted service still opens everything.
    let o = gradphoto(&data, &["retire"]);
    assert!(o.status.success() && said(&o).contains("retired 1 old keys"), "{}", said(&o));
    drop(service);
    let text = std::fs::read_to_string(data.join("keys.toml")).unwrap();
    assert!(!text.contains(&old_key) && !text.contains("previous_id_keys"), "the old key is gone from keys.toml");
    let old = Vault::from_base64(&old_key, &secrets.lookup_key).unwrap();
    let db =
        gradphoto_store::Db::connect(&gradphoto_web::Config::load(&data).unwrap().database_url(&data)).await.unwrap();
    for v in db.sealed_values(SealedKind::IdNumber, 0, 100).await.unwrap() {
        let context = gradphoto_web::public::id_context(v.school_id.unwrap(), &v.kind);
        assert!(old.open(&context, &v.cipher).is_err(), "no row opens with the retired key");
    }
    drop(db);
    let _service = serve(&data, port).await;
    everyone_signs_in("after the old key is retired").await;
    let o = gradphoto(&data, &["reseal"]);
    assert!(!o.status.success() && said(&o).contains("no rotation is under way"), "{}", said(&o));
}
