use super::*;

#[test]
fn a_file_of_another_schema_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    {
        let db = redb::Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(META)
            .unwrap()
            .insert(SCHEMA_KEY, 2u64.to_be_bytes().as_slice())
            .unwrap();
        txn.commit().unwrap();
    }
    assert!(matches!(
        IndexDb::open_with(&path, StoreOptions::default()),
        Err(StoreError::Corrupt("schema version"))
    ));

    // A file of this version opens again, and its path is reported.
    let other = dir.path().join("db2");
    drop(IndexDb::open_with(&other, StoreOptions::default()).unwrap());
    assert_eq!(
        IndexDb::open_with(&other, StoreOptions::default())
            .unwrap()
            .path(),
        other
    );
}

#[test]
fn an_unopenable_path_is_an_open_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("no-such-dir").join("db");
    match IndexDb::open_with(&path, StoreOptions::default()) {
        Err(StoreError::Open { path: p, .. }) => assert_eq!(p, path),
        other => panic!("expected Open, got {other:?}"),
    }
}

#[test]
fn a_made_store_counts_every_table() {
    let dir = tempfile::tempdir().unwrap();
    let store = IndexDb::open_with(dir.path().join("db"), StoreOptions::default()).unwrap();
    assert!(store.initialized().unwrap());
    drop(store);
    let store = IndexDb::open_with(dir.path().join("db"), StoreOptions::default()).unwrap();
    assert!(store.initialized().unwrap());
}
