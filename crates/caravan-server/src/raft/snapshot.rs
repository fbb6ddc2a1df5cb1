//! The snapshot file format, written and read as a stream.
//!
//! Version 3 (current):
//!
//! ```text
//! CARAVAN-SNAPSHOT 3\n                       the magic line
//! u32 length, header                         Raft's metadata (MessagePack)
//! 'S' u16 length, name, u64 rows             a section (one per table)
//!     rows × (u32 length, row)               each row MessagePack
//! ...                                        more sections
//! 'E' SHA-256                                the trailer: the digest of
//!                                            every byte before it
//! ```
//!
//! Integers are big-endian. The writer streams the state table by table
//! through a hashing writer, so the state is never serialised whole in
//! memory; the reader checks the magic line and the header before it reads
//! any table, decodes the sections into a new state, and hands it over only
//! once the trailer's digest matches and nothing follows it.
//!
//! Versions 1 (`{"meta":...}` line, then the state's JSON, no checksum) and
//! 2 (`CARAVAN-SNAPSHOT 2 sha256:<hex>` line, then the same) are still read,
//! whole, as before.

use std::io::{self, Read, Write};

use caravan_state::{SectionSink, State, StateRestore};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::raft::types::SnapshotMeta;

pub const SNAPSHOT_MAGIC: &str = "CARAVAN-SNAPSHOT";
/// The version this build writes.
pub const SNAPSHOT_VERSION: u32 = 3;
/// The longest header accepted (Raft's membership; far above any real one).
const MAX_HEADER_BYTES: u32 = 16 << 20;
/// The longest row accepted (a node is a few KiB).
const MAX_ROW_BYTES: u32 = 64 << 20;
/// The longest first line looked at before deciding on the version.
const MAX_MAGIC_LINE: usize = 128;
const FRAME_SECTION: u8 = b'S';
const FRAME_END: u8 = b'E';

/// Raft's metadata, the snapshot's header.
#[derive(Serialize, Deserialize)]
struct Header {
    meta: SnapshotMeta,
}

/// The JSON header line of versions 1 and 2, exactly as it was (so that a
/// damaged version 2 file cannot pass for a version 1 file).
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct LegacyHeader {
    meta: SnapshotMeta,
}

/// A snapshot read and verified.
#[derive(Debug)]
pub struct Loaded {
    pub meta: SnapshotMeta,
    pub state: State,
    /// The format version it was written in.
    pub version: u32,
    /// Sections this version does not know, read past (a newer version's
    /// tables).
    pub skipped: Vec<String>,
}

pub(crate) fn corrupt(why: impl std::fmt::Display) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("corrupt snapshot: {why}"),
    )
}

/// Reading past the end of the data means it was cut short.
fn short(error: io::Error) -> io::Error {
    match error.kind() {
        io::ErrorKind::UnexpectedEof => corrupt("the file ends early (truncated)"),
        _ => error,
    }
}

/// A writer that hashes what passes through it.
struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let written = self.inner.write(bytes)?;
        self.hasher.update(&bytes[..written]);
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A reader that hashes what passes through it.
struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        let read = self.inner.read(buffer)?;
        self.hasher.update(&buffer[..read]);
        Ok(read)
    }
}

impl<W: Write> SectionSink for HashingWriter<W> {
    fn section(&mut self, name: &str, rows: u64) -> io::Result<()> {
        let length = u16::try_from(name.len()).map_err(|_| io::Error::other("section name"))?;
        self.write_all(&[FRAME_SECTION])?;
        self.write_all(&length.to_be_bytes())?;
        self.write_all(name.as_bytes())?;
        self.write_all(&rows.to_be_bytes())
    }

    fn row(&mut self, encoded: &[u8]) -> io::Result<()> {
        let length = u32::try_from(encoded.len())
            .ok()
            .filter(|length| *length <= MAX_ROW_BYTES)
            .ok_or_else(|| io::Error::other(format!("a row of {} bytes", encoded.len())))?;
        self.write_all(&length.to_be_bytes())?;
        self.write_all(encoded)
    }
}

/// Writes `state` with `meta` as a version 3 snapshot into `out` (give it a
/// buffered writer) and returns `out`, flushed.
pub fn write<W: Write>(out: W, meta: &SnapshotMeta, state: &State) -> io::Result<W> {
    let mut out = HashingWriter {
        inner: out,
        hasher: Sha256::new(),
    };
    writeln!(out, "{SNAPSHOT_MAGIC} {SNAPSHOT_VERSION}")?;
    let header =
        caravan_state::codec::encode(&Header { meta: meta.clone() }).map_err(io::Error::other)?;
    let length = u32::try_from(header.len()).map_err(io::Error::other)?;
    out.write_all(&length.to_be_bytes())?;
    out.write_all(&header)?;
    state
        .write_sections(&mut out)
        .map_err(|error| io::Error::other(error.to_string()))?;
    out.write_all(&[FRAME_END])?;
    let digest = out.hasher.finalize();
    let mut inner = out.inner;
    inner.write_all(&digest)?;
    inner.flush()?;
    Ok(inner)
}

/// What the first line says.
enum Kind {
    /// Version 1: the first line is already the JSON header.
    V1,
    V2,
    V3,
}

/// Reads the first line (at most [`MAX_MAGIC_LINE`] bytes, or up to its
/// end for version 1) and decides on the version: anything but 1, 2 or 3
/// is refused here, before any state is read.
fn read_kind(input: &mut impl Read) -> io::Result<(Kind, Vec<u8>)> {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        if input.read(&mut byte)? == 0 {
            break;
        }
        line.push(byte[0]);
        if byte[0] == b'\n' || line.len() >= MAX_MAGIC_LINE {
            break;
        }
    }
    if line.starts_with(b"{") {
        return Ok((Kind::V1, line));
    }
    let text = std::str::from_utf8(&line)
        .ok()
        .filter(|text| text.starts_with(SNAPSHOT_MAGIC) && text.ends_with('\n'))
        .ok_or_else(|| corrupt("not a Caravan snapshot"))?;
    let version = text[SNAPSHOT_MAGIC.len()..].split_whitespace().next();
    let kind = match version {
        Some("2") => Kind::V2,
        Some("3") if text == format!("{SNAPSHOT_MAGIC} 3\n") => Kind::V3,
        Some(version) if version.chars().all(|c| c.is_ascii_digit()) && version != "3" => {
            return Err(corrupt(format!(
                "unsupported snapshot version {version:?} (this build reads 1 to \
                 {SNAPSHOT_VERSION}); was it written by a newer Caravan?"
            )))
        }
        _ => return Err(corrupt(format!("bad first line {text:?}"))),
    };
    Ok((kind, line))
}

/// Reads only Raft's metadata from the start of a snapshot, without
/// checking its checksum (whoever loads the state checks it): what the
/// log store compares its log against at start, and how a follower learns
/// the metadata of a snapshot a leader sent.
pub fn read_meta(mut input: impl Read) -> io::Result<SnapshotMeta> {
    let (kind, mut line) = read_kind(&mut input)?;
    match kind {
        Kind::V1 => {
            if !line.ends_with(b"\n") {
                read_line(&mut input, &mut line)?;
            }
            legacy_header(&line)
        }
        Kind::V2 => {
            let mut header = Vec::new();
            read_line(&mut input, &mut header)?;
            legacy_header(&header)
        }
        Kind::V3 => read_header(&mut input),
    }
}

/// Appends to `line` up to and including the next newline (bounded).
fn read_line(input: &mut impl Read, line: &mut Vec<u8>) -> io::Result<()> {
    let mut byte = [0u8; 1];
    while !line.ends_with(b"\n") {
        if line.len() > MAX_HEADER_BYTES as usize {
            return Err(corrupt("no header"));
        }
        if input.read(&mut byte)? == 0 {
            return Err(corrupt("no header"));
        }
        line.push(byte[0]);
    }
    Ok(())
}

fn legacy_header(line: &[u8]) -> io::Result<SnapshotMeta> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let header: LegacyHeader = serde_json::from_slice(line).map_err(corrupt)?;
    Ok(header.meta)
}

fn read_u8(input: &mut impl Read) -> io::Result<u8> {
    let mut bytes = [0u8; 1];
    input.read_exact(&mut bytes).map_err(short)?;
    Ok(bytes[0])
}

fn read_u16(input: &mut impl Read) -> io::Result<u16> {
    let mut bytes = [0u8; 2];
    input.read_exact(&mut bytes).map_err(short)?;
    Ok(u16::from_be_bytes(bytes))
}

fn read_u32(input: &mut impl Read) -> io::Result<u32> {
    let mut bytes = [0u8; 4];
    input.read_exact(&mut bytes).map_err(short)?;
    Ok(u32::from_be_bytes(bytes))
}

fn read_u64(input: &mut impl Read) -> io::Result<u64> {
    let mut bytes = [0u8; 8];
    input.read_exact(&mut bytes).map_err(short)?;
    Ok(u64::from_be_bytes(bytes))
}

/// Reads `length` bytes into `buffer`, refusing lengths over `max`.
fn read_frame(input: &mut impl Read, buffer: &mut Vec<u8>, max: u32, what: &str) -> io::Result<()> {
    let length = read_u32(input)?;
    if length > max {
        return Err(corrupt(format!("{what} of {length} bytes (at most {max})")));
    }
    // Read as it comes rather than allocated up front: a damaged length
    // must not cost a 64 MiB allocation before the data runs out.
    buffer.clear();
    buffer.reserve((length as usize).min(1 << 20));
    let read = input.take(u64::from(length)).read_to_end(buffer)?;
    if read != length as usize {
        return Err(corrupt("the file ends early (truncated)"));
    }
    Ok(())
}

fn read_header(input: &mut impl Read) -> io::Result<SnapshotMeta> {
    let mut bytes = Vec::new();
    read_frame(input, &mut bytes, MAX_HEADER_BYTES, "a header")?;
    let header: Header = caravan_state::codec::decode(&bytes).map_err(corrupt)?;
    Ok(header.meta)
}

/// Reads a whole snapshot into a new state, verifying it: the version and
/// the header first (and that the header agrees with `expected`, the
/// metadata Raft sent with it), then the tables, then the checksum. Any
/// damage is an error and nothing of the snapshot is returned.
pub fn read(input: impl Read, expected: Option<&SnapshotMeta>) -> io::Result<Loaded> {
    let mut input = HashingReader {
        inner: input,
        hasher: Sha256::new(),
    };
    let (kind, line) = read_kind(&mut input)?;
    let check = |meta: &SnapshotMeta| match expected {
        Some(expected) if expected.last_log_id != meta.last_log_id => Err(corrupt(
            "the snapshot header does not match the metadata Raft sent",
        )),
        _ => Ok(()),
    };
    match kind {
        Kind::V1 | Kind::V2 => {
            let mut bytes = line;
            input.inner.read_to_end(&mut bytes)?;
            let (meta, state) = split_legacy(&bytes)?;
            check(&meta)?;
            let state: State = serde_json::from_slice(state).map_err(corrupt)?;
            let version = if matches!(kind, Kind::V1) { 1 } else { 2 };
            Ok(Loaded {
                meta,
                state,
                version,
                skipped: Vec::new(),
            })
        }
        Kind::V3 => {
            let meta = read_header(&mut input)?;
            check(&meta)?;
            let mut restore = StateRestore::new();
            let mut name = Vec::new();
            loop {
                match read_u8(&mut input)? {
                    FRAME_SECTION => {
                        let length = read_u16(&mut input)?;
                        name.resize(usize::from(length), 0);
                        input.read_exact(&mut name).map_err(short)?;
                        let name = std::str::from_utf8(&name)
                            .map_err(|_| corrupt("a section name that is not UTF-8"))?;
                        let rows = read_u64(&mut input)?;
                        let reader = &mut input;
                        restore
                            .section(name, rows, |buffer| {
                                read_frame(reader, buffer, MAX_ROW_BYTES, "a row")
                            })
                            .map_err(|error| match error {
                                caravan_state::SectionError::Io(error) => error,
                                error => corrupt(error),
                            })?;
                    }
                    FRAME_END => break,
                    other => return Err(corrupt(format!("unknown frame {other:#04x}"))),
                }
            }
            let actual = input.hasher.finalize();
            let mut written = [0u8; 32];
            input.inner.read_exact(&mut written).map_err(short)?;
            if written[..] != actual[..] {
                return Err(corrupt(format!(
                    "checksum mismatch (the trailer says sha256 {}, the contents hash to {})",
                    hex(&written),
                    hex(&actual)
                )));
            }
            if input.inner.read(&mut [0u8; 1])? != 0 {
                return Err(corrupt("bytes after the trailer"));
            }
            let skipped = restore.skipped().to_vec();
            Ok(Loaded {
                meta,
                state: restore.finish(),
                version: 3,
                skipped,
            })
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Version 2 bytes: the checksum line, the header line, the state's JSON.
/// Kept so tests and the benchmark can write what older versions wrote.
pub fn encode_v2(meta: &SnapshotMeta, state: &State) -> io::Result<Vec<u8>> {
    let mut body =
        serde_json::to_vec(&LegacyHeader { meta: meta.clone() }).map_err(io::Error::other)?;
    body.push(b'\n');
    serde_json::to_writer(&mut body, state).map_err(io::Error::other)?;
    let first = format!(
        "{SNAPSHOT_MAGIC} 2 sha256:{}\n",
        hex(&Sha256::digest(&body))
    );
    let mut bytes = first.into_bytes();
    bytes.extend_from_slice(&body);
    Ok(bytes)
}

/// Splits version 1 or 2 bytes into Raft's metadata and the state's JSON,
/// verifying a version 2 checksum first.
fn split_legacy(bytes: &[u8]) -> io::Result<(SnapshotMeta, &[u8])> {
    let body = if bytes.starts_with(SNAPSHOT_MAGIC.as_bytes()) {
        verify_v2(bytes)?
    } else {
        // Version 1: no checksum.
        tracing::warn!("snapshot has no checksum (written by an older version)");
        bytes
    };
    let split = body
        .iter()
        .position(|byte| *byte == b'\n')
        .ok_or_else(|| corrupt("no header"))?;
    let meta = legacy_header(&body[..split])?;
    Ok((meta, &body[split + 1..]))
}

/// Checks version 2's checksum line; returns what follows it.
fn verify_v2(bytes: &[u8]) -> io::Result<&[u8]> {
    let split = bytes
        .iter()
        .position(|byte| *byte == b'\n')
        .ok_or_else(|| corrupt("no checksum line"))?;
    let line = std::str::from_utf8(&bytes[..split]).map_err(|_| corrupt("bad checksum line"))?;
    let mut words = line.split(' ');
    let (Some(SNAPSHOT_MAGIC), Some("2"), Some(sum), None) =
        (words.next(), words.next(), words.next(), words.next())
    else {
        return Err(corrupt(format!("bad checksum line {line:?}")));
    };
    let expected = sum
        .strip_prefix("sha256:")
        .ok_or_else(|| corrupt(format!("bad checksum line {line:?}")))?;
    let body = &bytes[split + 1..];
    let actual = hex(&Sha256::digest(body));
    if actual != expected {
        return Err(corrupt(format!(
            "checksum mismatch (the file says sha256 {expected}, its contents hash to {actual})"
        )));
    }
    Ok(body)
}

#[cfg(test)]
#[path = "snapshot_tests.rs"]
pub(crate) mod tests;
