//! The database side of `poh index`: the schema of SPEC §11, where a session resumes, and
//! the two writes, each one SQL transaction: a batch of rows with the cursor, and a run of
//! headers with the rows they seal.

use futures_util::SinkExt as _;
use tokio_postgres::{Client, Statement};

use super::{
    IndexError,
    row::{self, Row},
    seal::{Resume, Seal, Span},
};

/// The schema, exactly as SPEC §11 gives it, made idempotent. The indexes carry the names
/// PostgreSQL gives the SPEC's unnamed ones, so a schema created from the SPEC by hand is
/// recognised and not doubled.
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS poh_transactions (
  chain_id text NOT NULL, tx_id text NOT NULL, holder_id text NOT NULL,
  timestamp double precision NOT NULL, payload bytea NOT NULL, parent_ids text[] NOT NULL,
  public_key bytea, signature bytea,
  poh_seq bigint NOT NULL, poh_hash bytea NOT NULL, status text NOT NULL,
  header_id text, received_at double precision NOT NULL,
  PRIMARY KEY (chain_id, tx_id));
CREATE INDEX IF NOT EXISTS poh_transactions_chain_id_holder_id_poh_seq_idx
  ON poh_transactions (chain_id, holder_id, poh_seq);
CREATE INDEX IF NOT EXISTS poh_transactions_parent_ids_idx
  ON poh_transactions USING gin (parent_ids);
CREATE TABLE IF NOT EXISTS poh_headers (
  chain_id text NOT NULL, height bigint NOT NULL, header_id text NOT NULL UNIQUE,
  level text NOT NULL, poh_start bigint NOT NULL, poh_end bigint NOT NULL,
  item_count bigint NOT NULL, timestamp double precision NOT NULL, header_json jsonb NOT NULL,
  PRIMARY KEY (chain_id, height));
CREATE TABLE IF NOT EXISTS poh_index_cursor (chain_id text PRIMARY KEY, next_seq bigint NOT NULL);
";

/// Two indexers starting at once would race in `CREATE … IF NOT EXISTS` (which is not
/// atomic in PostgreSQL); they take turns under this advisory lock.
const SCHEMA_LOCK: i64 = 0x706f_685f_6964_7801;
/// The class of the lock a session holds on its chain (the chain id's hash is the other key).
const CHAIN_LOCK: i32 = 0x706f_6869;

/// Rows go through a staging table of the session's own, emptied by each commit.
const STAGING: &str = "CREATE TEMP TABLE IF NOT EXISTS poh_index_staging \
     (LIKE poh_transactions) ON COMMIT DELETE ROWS";

/// One connection, its schema made and its statements prepared.
pub(super) struct Db {
    client: Client,
    shown: String,
    copy: Statement,
    copy_direct: Statement,
    lock: Statement,
    upsert: Statement,
    cursor: Statement,
    header: Statement,
    seal: Statement,
    sweep: Statement,
    arrived: Statement,
}

impl Db {
    pub(super) async fn prepare(mut client: Client, shown: String) -> Result<Self, IndexError> {
        let db = |e| IndexError::Db {
            shown: shown.clone(),
            error: e,
        };
        let schema = client.transaction().await.map_err(db)?;
        schema
            .execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK])
            .await
            .map_err(db)?;
        schema.batch_execute(SCHEMA).await.map_err(db)?;
        schema.commit().await.map_err(db)?;
        client.batch_execute(STAGING).await.map_err(db)?;
        let columns = row::COLUMNS;
        let copy = format!("COPY poh_index_staging ({columns}) FROM STDIN (FORMAT binary)");
        let copy_direct = format!("COPY poh_transactions ({columns}) FROM STDIN (FORMAT binary)");
        let lock = "SELECT next_seq FROM poh_index_cursor WHERE chain_id = $1 FOR UPDATE";
        // A row written again (after a restart) keeps what the database learned since the
        // record was read: its header, and that its parents came. Otherwise it takes what
        // the node says now.
        let upsert = format!(
            "INSERT INTO poh_transactions AS t ({columns}) SELECT {columns} FROM \
             poh_index_staging ON CONFLICT (chain_id, tx_id) DO UPDATE SET \
             header_id = COALESCE(t.header_id, EXCLUDED.header_id), \
             status = CASE \
               WHEN EXCLUDED.status = 'PENDING' AND t.status <> 'PENDING' THEN t.status \
               WHEN EXCLUDED.status = 'PENDING' THEN 'PENDING' \
               WHEN COALESCE(t.header_id, EXCLUDED.header_id) IS NULL THEN 'ORDERED' \
               ELSE 'SEALED' END \
             WHERE t.header_id IS NULL OR t.status = 'PENDING'"
        );
        let cursor = "INSERT INTO poh_index_cursor (chain_id, next_seq) VALUES ($1, $2) \
             ON CONFLICT (chain_id) DO UPDATE SET \
             next_seq = GREATEST(poh_index_cursor.next_seq, EXCLUDED.next_seq) \
             RETURNING next_seq";
        let header = "INSERT INTO poh_headers (chain_id, height, header_id, level, poh_start, \
             poh_end, item_count, timestamp, header_json) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::text::jsonb) ON CONFLICT DO NOTHING";
        // A transaction still waiting for a parent keeps PENDING with its header, as the
        // node answers it (SPEC §2: SEALED follows ORDERED).
        let sealed = "header_id = $2, \
             status = CASE WHEN status = 'PENDING' THEN 'PENDING' ELSE 'SEALED' END";
        let seal = format!(
            "UPDATE poh_transactions SET {sealed} \
             WHERE chain_id = $1 AND tx_id = ANY($3) AND header_id IS NULL"
        );
        let sweep = format!(
            "UPDATE poh_transactions SET {sealed} \
             WHERE chain_id = $1 AND poh_seq >= $3 AND poh_seq < $4 AND header_id IS NULL"
        );
        // The node's PENDING ends when the last missing parent is stored: `$2` are rows
        // waiting for one that the batch may hold ([`super::waiting`]).
        let arrived = "UPDATE poh_transactions AS t SET status = \
             CASE WHEN t.header_id IS NULL THEN 'ORDERED' ELSE 'SEALED' END \
             WHERE t.chain_id = $1 AND t.tx_id = ANY($2) AND t.status = 'PENDING' \
             AND NOT EXISTS (SELECT 1 FROM unnest(t.parent_ids) AS p(id) \
               WHERE NOT EXISTS (SELECT 1 FROM poh_transactions AS q \
                 WHERE q.chain_id = t.chain_id AND q.tx_id = p.id)) \
             RETURNING t.tx_id";
        Ok(Self {
            copy: client.prepare(&copy).await.map_err(db)?,
            copy_direct: client.prepare(&copy_direct).await.map_err(db)?,
            lock: client.prepare(lock).await.map_err(db)?,
            upsert: client.prepare(&upsert).await.map_err(db)?,
            cursor: client.prepare(cursor).await.map_err(db)?,
            header: client.prepare(header).await.map_err(db)?,
            seal: client.prepare(&seal).await.map_err(db)?,
            sweep: client.prepare(&sweep).await.map_err(db)?,
            arrived: client.prepare(arrived).await.map_err(db)?,
            client,
            shown,
        })
    }

    fn error(&self, e: tokio_postgres::Error) -> IndexError {
        IndexError::Db {
            shown: self.shown.clone(),
            error: e,
        }
    }

    /// Takes the chain for this connection, waiting while another indexer holds it. An
    /// indexer killed mid-commit has its last transaction committed by its server process
    /// after it died: the lock is that process's until it ends, so this session reads where
    /// indexing left off only once every commit of the one before it has landed. It also
    /// keeps two indexers from writing one chain at once.
    pub(super) async fn hold(&self, chain_id: &str) -> Result<(), IndexError> {
        let key = "SELECT pg_try_advisory_lock($1::int4, hashtext($2))";
        let free: bool = self
            .client
            .query_one(key, &[&CHAIN_LOCK, &chain_id])
            .await
            .and_then(|r| r.try_get(0))
            .map_err(|e| self.error(e))?;
        if !free {
            tracing::warn!(
                chain_id,
                "another indexer holds this chain; waiting for it to end"
            );
            self.client
                .execute(
                    "SELECT pg_advisory_lock($1::int4, hashtext($2))",
                    &[&CHAIN_LOCK, &chain_id],
                )
                .await
                .map_err(|e| self.error(e))?;
        }
        Ok(())
    }

    /// Where the indexing of `chain_id` left off.
    pub(super) async fn resume(&self, chain_id: &str) -> Result<Resume, IndexError> {
        let next_seq: i64 = self
            .client
            .query_opt(
                "SELECT next_seq FROM poh_index_cursor WHERE chain_id = $1",
                &[&chain_id],
            )
            .await
            .map_err(|e| self.error(e))?
            .map_or(Ok(0), |r| r.try_get(0))
            .map_err(|e| self.error(e))?;
        let sums = self
            .client
            .query_one(
                "SELECT count(*), coalesce(max(height) + 1, 0), \
                 coalesce(sum(item_count), 0)::bigint FROM poh_headers WHERE chain_id = $1",
                &[&chain_id],
            )
            .await
            .map_err(|e| self.error(e))?;
        let (count, next_height, sealed_to): (i64, i64, i64) = (
            sums.try_get(0).map_err(|e| self.error(e))?,
            sums.try_get(1).map_err(|e| self.error(e))?,
            sums.try_get(2).map_err(|e| self.error(e))?,
        );
        if count != next_height {
            return Err(IndexError::Gap {
                chain_id: chain_id.to_string(),
                count,
                next_height,
            });
        }
        // Every row below both the cursor and the stored headers' reach should have its
        // header. Indexers killed under a heavy load have left thousands that had not (in about
        // one loaded run in ten of the kill test; the cause is not found yet), so the first
        // such row is where this session starts again, and the headers it knows seal it: one
        // pass over the chain's rows per session, as no index is on `poh_seq` or `header_id`.
        let unsealed: Option<i64> = self
            .client
            .query_one(
                "SELECT min(poh_seq) FROM poh_transactions \
                 WHERE chain_id = $1 AND header_id IS NULL AND poh_seq < $2",
                &[&chain_id, &next_seq.min(sealed_to)],
            )
            .await
            .map_err(|e| self.error(e))?
            .try_get(0)
            .map_err(|e| self.error(e))?;
        if let Some(seq) = unsealed {
            tracing::warn!(
                seq,
                next_seq,
                "rows below the cursor lack their header; indexing again from the first"
            );
        }
        let start = next_seq.min(sealed_to).min(unsealed.unwrap_or(i64::MAX));
        let ahead = if sealed_to > start {
            self.ahead(chain_id, start).await?
        } else {
            Vec::new()
        };
        let unsigned = |n: i64| u64::try_from(n).unwrap_or(0);
        Ok(Resume {
            next_seq: unsigned(next_seq),
            next_height: unsigned(next_height),
            sealed_to: unsigned(sealed_to),
            unsealed_from: unsealed.map(unsigned),
            ahead,
        })
    }

    /// The stored headers that seal seqs from `from` on, in order.
    async fn ahead(&self, chain_id: &str, from: i64) -> Result<Vec<Span>, IndexError> {
        let rows = self
            .client
            .query(
                "SELECT header_id, hi - item_count, hi FROM (SELECT header_id, item_count, \
                 (sum(item_count) OVER (ORDER BY height))::bigint AS hi FROM poh_headers \
                 WHERE chain_id = $1) s WHERE hi > $2 ORDER BY hi",
                &[&chain_id, &from],
            )
            .await
            .map_err(|e| self.error(e))?;
        rows.iter()
            .map(|r| {
                let (lo, hi): (i64, i64) = (r.try_get(1)?, r.try_get(2)?);
                Ok(Span {
                    header_id: r.try_get(0)?,
                    lo: u64::try_from(lo).unwrap_or(0),
                    hi: u64::try_from(hi).unwrap_or(0),
                })
            })
            .collect::<Result<_, tokio_postgres::Error>>()
            .map_err(|e| self.error(e))
    }

    /// Writes `rows` of `chain_id`, ends the `PENDING` of those of `waiting` whose parents
    /// are now all stored, and moves the cursor to `next_seq` (never back), in one
    /// transaction; the cursor as it then is, and the rows no longer `PENDING`.
    pub(super) async fn write_rows(
        &mut self,
        chain_id: &str,
        rows: &[Row],
        waiting: &[String],
        next_seq: u64,
    ) -> Result<(u64, Vec<String>), IndexError> {
        let shown = self.shown.clone();
        let db = |e| IndexError::Db {
            shown: shown.clone(),
            error: e,
        };
        let next = i64::try_from(next_seq).unwrap_or(i64::MAX);
        let tx = self.client.transaction().await.map_err(db)?;
        if let Some(first) = rows.first() {
            // Every row stored so far came with a cursor beyond its seq, so rows from the
            // cursor on are new: they are copied straight into the table, without the
            // staging table's second pass and its conflict checks. Rows before it (written
            // again after a restart) take the upsert. The lock orders indexers of one chain.
            let cursor: Option<i64> = tx
                .query_opt(&self.lock, &[&chain_id])
                .await
                .map_err(db)?
                .map(|r| r.try_get(0))
                .transpose()
                .map_err(db)?;
            let fresh = cursor.is_none_or(|c| big(first.poh_seq) >= c);
            let copy = if fresh { &self.copy_direct } else { &self.copy };
            let sink = tx.copy_in(copy).await.map_err(db)?;
            futures_util::pin_mut!(sink);
            sink.send(row::encode(chain_id, rows).freeze())
                .await
                .map_err(db)?;
            sink.finish().await.map_err(db)?;
            if !fresh {
                tx.execute(&self.upsert, &[]).await.map_err(db)?;
            }
        }
        let mut resolved = Vec::new();
        if !waiting.is_empty() {
            for row in tx
                .query(&self.arrived, &[&chain_id, &waiting])
                .await
                .map_err(db)?
            {
                resolved.push(row.try_get(0).map_err(db)?);
            }
        }
        let cursor: i64 = tx
            .query_one(&self.cursor, &[&chain_id, &next])
            .await
            .map_err(db)?
            .try_get(0)
            .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok((u64::try_from(cursor).unwrap_or(0), resolved))
    }

    /// The rows of `chain_id` waiting for a parent, and the parents they name: one pass over
    /// the chain's rows, since no index is on `status`.
    pub(super) async fn pending(
        &self,
        chain_id: &str,
    ) -> Result<Vec<(String, Vec<String>)>, IndexError> {
        let rows = self
            .client
            .query(
                "SELECT tx_id, parent_ids FROM poh_transactions \
                 WHERE chain_id = $1 AND status = 'PENDING'",
                &[&chain_id],
            )
            .await
            .map_err(|e| self.error(e))?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect::<Result<_, tokio_postgres::Error>>()
            .map_err(|e| self.error(e))
    }

    /// Stores `headers` of `chain_id` and seals the rows each one covers, in one transaction.
    pub(super) async fn write_headers(
        &mut self,
        chain_id: &str,
        headers: &[(HeaderRow, Seal)],
    ) -> Result<(), IndexError> {
        let shown = self.shown.clone();
        let db = |e| IndexError::Db {
            shown: shown.clone(),
            error: e,
        };
        let tx = self.client.transaction().await.map_err(db)?;
        for (h, seal) in headers {
            let id = &seal.span.header_id;
            tx.execute(
                &self.header,
                &[
                    &chain_id,
                    &h.height,
                    id,
                    &h.level,
                    &h.poh_start,
                    &h.poh_end,
                    &h.item_count,
                    &h.timestamp,
                    &h.json,
                ],
            )
            .await
            .map_err(db)?;
            if !seal.tx_ids.is_empty() {
                tx.execute(&self.seal, &[&chain_id, id, &seal.tx_ids])
                    .await
                    .map_err(db)?;
            }
            if let Some((lo, hi)) = seal.sweep {
                let (lo, hi) = (big(lo), big(hi));
                tx.execute(&self.sweep, &[&chain_id, id, &lo, &hi])
                    .await
                    .map_err(db)?;
            }
        }
        tx.commit().await.map_err(db)
    }
}

/// A header's columns besides `chain_id` and `header_id`.
#[derive(Clone, Debug)]
pub(super) struct HeaderRow {
    pub height: i64,
    pub level: String,
    pub poh_start: i64,
    pub poh_end: i64,
    pub item_count: i64,
    pub timestamp: f64,
    /// The header's JSON exactly as the node served it.
    pub json: String,
}

/// A seq or height as a bigint (the node's never come near 2^63).
pub(super) fn big(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}
