//! Inclusion proofs: the links that show an item ordered by this chain's header, and by the
//! headers of the levels above (asked of the parent over `Federation/Prove`, which asks its
//! own parent in turn). A level that cannot be reached, or has not sealed over the item yet,
//! ends the proof there: what is returned always verifies.

use std::time::Duration;

use poh_core::{Hash, proof::ProofLink};
use poh_proto::federation::{ProveRequest, federation_client::FederationClient};
use poh_store::Store;
use tonic::transport::Channel;

use super::{link::covered_entries, parent::MAX_MESSAGE_BYTES};
use crate::{
    NodeError,
    network::client::{Bearer, ClientTls, grpc_channel},
    wire::protobuf::link_from_pb,
};

/// Most levels a proof climbs (municipality, continental, global, and room to spare).
const MAX_LINKS: usize = 8;

/// This node's link for the item with `poh_seq` `seq`, recorded in entry `entry_index`;
/// `None` until a header covers it.
pub(crate) fn own_link(
    store: &dyn Store,
    entry_index: u64,
    seq: u64,
) -> Result<Option<ProofLink>, poh_store::StoreError> {
    let Some((header, first_seq)) = store.header_at_entry(entry_index)? else {
        return Ok(None);
    };
    let items: Vec<Hash> = covered_entries(store, &header)?
        .into_iter()
        .flat_map(|e| e.mixins)
        .collect();
    let index = seq
        .checked_sub(first_seq)
        .and_then(|i| usize::try_from(i).ok());
    Ok(index.and_then(|i| poh_core::proof::link(&items, i, header)))
}

/// The way up: the parent's `Federation` service.
pub(crate) struct Upward {
    parent: String,
    channel: Channel,
    bearer: Option<Bearer>,
}

impl Upward {
    /// A lazily connected client of `parent`, trusted and authenticated like every link.
    pub(crate) fn new(parent: &str, tls: &ClientTls, timeout: Duration) -> Result<Self, NodeError> {
        let config = tls.grpc_config()?;
        let channel = grpc_channel(parent, config.as_ref(), timeout)
            .map_err(|why| NodeError::Config(format!("--parent {parent}: {why}")))?;
        Ok(Self {
            parent: parent.to_string(),
            channel,
            bearer: tls.token.clone(),
        })
    }

    /// The links above this node's header `header_hash`, as far as the levels above know.
    pub(crate) async fn links_above(&self, header_hash: Hash) -> Vec<ProofLink> {
        let mut client = FederationClient::new(self.channel.clone())
            .max_decoding_message_size(MAX_MESSAGE_BYTES);
        let mut request = tonic::Request::new(ProveRequest {
            header_hash: header_hash.0.to_vec(),
        });
        if let Some(b) = &self.bearer {
            b.authorize(&mut request);
        }
        let links = match client.prove(request).await {
            Ok(answer) => answer.into_inner().links,
            Err(status) => {
                tracing::info!(parent = %self.parent, %status, "the parent did not prove a header; the proof stops at this level");
                return Vec::new();
            }
        };
        let mut out = Vec::new();
        for link in links.into_iter().take(MAX_LINKS) {
            match link_from_pb(link) {
                Ok(link) => out.push(link),
                Err(why) => {
                    tracing::warn!(parent = %self.parent, %why, "the parent sent a bad proof link");
                    break;
                }
            }
        }
        out
    }
}
