//! The DAG (SPEC §2): a transaction that names no parents is linked to current tips, and a
//! tip is a stored transaction that no stored transaction names, whichever of a parent and
//! its child arrives first.

use reqwest::Client;
use serde_json::{Value, json};

use crate::common::{TestNode, json, start, tx};

async fn submit(c: &Client, node: &TestNode, id: &str, parents: &[&str]) {
    let mut t = tx(id);
    t.parent_ids = parents.iter().map(|p| p.to_string()).collect();
    let r = c
        .post(node.http("/v1/tx"))
        .json(&json(&t))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{id}");
}

async fn get(c: &Client, node: &TestNode, id: &str) -> Value {
    c.get(node.http(&format!("/v1/tx/{id}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_parent_first_stops_being_a_tip_when_its_child_arrives() {
    let (node, c) = (start().await, Client::new());
    submit(&c, &node, "p", &[]).await;
    submit(&c, &node, "c", &["p"]).await;
    submit(&c, &node, "z", &[]).await;
    assert_eq!(get(&c, &node, "z").await["dag_parents"], json!(["c"]));
    node.stop().await;
}

#[tokio::test]
async fn a_parent_after_its_child_is_no_tip_and_never_its_childs_child() {
    let (node, c) = (start().await, Client::new());
    submit(&c, &node, "c", &["p"]).await;
    assert_eq!(get(&c, &node, "c").await["status"], "PENDING");
    submit(&c, &node, "p", &[]).await;
    let p = get(&c, &node, "p").await;
    assert_eq!(
        p["dag_parents"],
        json!([]),
        "p linked to its own child: a cycle"
    );
    assert_eq!(get(&c, &node, "c").await["status"], "ORDERED");
    submit(&c, &node, "z", &[]).await;
    assert_eq!(
        get(&c, &node, "z").await["dag_parents"],
        json!(["c"]),
        "p is named by c, so it is no tip"
    );

    // The same within one commit: the child first in a batch.
    let batch = json!([
        json(&{
            let mut t = tx("c2");
            t.parent_ids = vec!["p2".into()];
            t
        }),
        json(&tx("p2"))
    ]);
    let r = c
        .post(node.http("/v1/tx/batch"))
        .json(&batch)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let p2 = get(&c, &node, "p2").await;
    let linked: Vec<&str> = p2["dag_parents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        !linked.contains(&"c2"),
        "p2 linked to its own child: {linked:?}"
    );
    submit(&c, &node, "z2", &[]).await;
    assert_eq!(get(&c, &node, "z2").await["dag_parents"], json!(["c2"]));
    node.stop().await;
}
