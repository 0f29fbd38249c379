//! Named secrets: the first stored value wins, for every caller.

use pp_store::{SqliteStore, Store};

use crate::support::TempDb;

#[tokio::test]
async fn the_first_value_stored_is_returned_to_every_later_caller() {
    let db = TempDb::new();
    let store = db.open().await;
    let first = store
        .get_or_create_secret("cookie-key", "first")
        .await
        .expect("create");
    assert_eq!(first, "first");
    let again = store
        .get_or_create_secret("cookie-key", "second")
        .await
        .expect("get");
    assert_eq!(again, "first");
    let other = store
        .get_or_create_secret("sealing-key", "third")
        .await
        .expect("another name");
    assert_eq!(other, "third");

    // Survives reopening.
    drop(store);
    let store = db.open().await;
    let reopened = store
        .get_or_create_secret("cookie-key", "fourth")
        .await
        .expect("get");
    assert_eq!(reopened, "first");
}

#[tokio::test]
async fn two_stores_creating_one_secret_together_agree_on_it() {
    let db = TempDb::new();
    let a = db.open().await;
    let b = SqliteStore::connect(&db.url()).await.expect("connect b");
    let (va, vb) = tokio::join!(
        a.get_or_create_secret("cookie-key", "from-a"),
        b.get_or_create_secret("cookie-key", "from-b"),
    );
    let (va, vb) = (va.expect("a"), vb.expect("b"));
    assert_eq!(va, vb);
    assert!(va == "from-a" || va == "from-b", "{va}");
}
