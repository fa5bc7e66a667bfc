//! The band index kept between runs (docs/band-index.md): for every band, the band value of
//! each indexed item with a 32-bit hash of the item's key, sorted, in a file beside the SQLite
//! database. An update looks the new members' values up in it instead of reading and probing
//! every old signature in the window.
//!
//! What a lookup names is a superset of the items that hold a value: an entry may be stale (an
//! item deleted or signed again since) and two items may share a hash. Clustering compares
//! real signatures, so neither changes a key. An entry must never be missing; keeping the file
//! complete is the pipeline's part (`pipeline::bands`).
//!
//! The file: a header (magic, format version, band count, token, room per band, each band's
//! count, a checksum of the header), then one section per band of `room` entries, the first
//! `count` of them used, sorted. An entry is `value << 32 | item`, 8 bytes little-endian.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::{BANDS, Signature, band_key};

const MAGIC: [u8; 8] = *b"FLOOMBND";
/// The format, and the formula of the band values it holds: bumped when either changes, so a
/// file of another build is not read as this one's. 2: signatures by one-permutation MinHash.
const VERSION: u32 = 2;
/// Magic, version, band count, token, room per band, the bands' counts, the checksum.
const HEADER: usize = 8 + 4 + 4 + 8 + 8 + 8 * BANDS + 8;
/// Entries of a band held before they are written while a file is built (8 KB a band, 512 KB
/// in all: a first run builds the file at its peak of memory, and on the runtime's thread).
const PENDING: usize = 1024;

/// The 32-bit hash of an item's key an entry names it by.
pub fn item_hash(source: &str, id: &str) -> u32 {
    let mut h = xxhash_rust::xxh3::Xxh3Default::new();
    h.update(source.as_bytes());
    h.update(&[0xFF]);
    h.update(id.as_bytes());
    (h.digest() >> 32) as u32
}

/// The value of band `b` of a signature, as entries hold it (and `assign` groups it).
pub fn band_value(sig: &Signature, b: usize) -> u32 {
    (band_key(sig, b) >> 32) as u32
}

/// The entry of an item's value.
pub fn entry(value: u32, item: u32) -> u64 {
    u64::from(value) << 32 | u64::from(item)
}

/// The entries of an item's signature, by band.
pub fn entries(item: u32, sig: &Signature) -> impl Iterator<Item = u64> + '_ {
    (0..BANDS).map(move |b| entry(band_value(sig, b), item))
}

/// The file of the index `token` beside the database `base`.
pub fn path_of(base: &Path, token: u64) -> PathBuf {
    sibling(base, &format!("bands-{token:016x}"))
}

fn sibling(base: &Path, suffix: &str) -> PathBuf {
    let mut name = base.file_name().unwrap_or_default().to_os_string();
    name.push("-");
    name.push(suffix);
    base.with_file_name(name)
}

/// Removes the index files beside `base` other than the one of `keep` (those of indexes
/// replaced, or written by a run that stopped before the store named them), and a file left
/// half built.
pub fn sweep(base: &Path, keep: u64) -> io::Result<()> {
    let keep = path_of(base, keep);
    let Some(prefix) = sibling(base, "bands-")
        .file_name()
        .and_then(|n| n.to_str())
        .map(str::to_owned)
    else {
        return Ok(());
    };
    let dir = match base.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    for e in std::fs::read_dir(dir)? {
        let path = e?.path();
        let ours = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with(&prefix));
        let half_built = path.file_name() == sibling(base, "bands.tmp").file_name();
        if (ours || half_built) && path.file_name() != keep.file_name() {
            match std::fs::remove_file(&path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
    }
    Ok(())
}

/// Sorted entries as the bytes a delta is stored as (duplicates dropped).
pub fn encode(entries: &mut Vec<u64>) -> Vec<u8> {
    entries.sort_unstable();
    entries.dedup();
    entries.iter().flat_map(|e| e.to_le_bytes()).collect()
}

/// Hands `hit` every entry in `sorted` (entries as bytes, sorted) whose value is one of
/// `values` (sorted). The values are met in order, each searched for from where the one
/// before ended, by steps that double and then halve (a few thousand values among hundreds of
/// thousands of entries: short searches, in memory read forwards).
pub fn find(sorted: &[u8], values: &[u32], mut hit: impl FnMut(u64)) {
    let at = |i: usize| u64::from_le_bytes(sorted[i * 8..i * 8 + 8].try_into().expect("8 bytes"));
    let len = sorted.len() / 8;
    let mut from = 0;
    for value in values {
        let low = u64::from(*value) << 32;
        from = gallop(from, len, |i| at(i) < low);
        while from < len && at(from) >> 32 == u64::from(*value) {
            hit(at(from));
            from += 1;
        }
        if from == len {
            return;
        }
    }
}

/// The first place in `from..len` that is not `below`, where every place `below` comes before
/// every other: bounded by steps that double from `from`, then bisected (cheap when it is near).
pub fn gallop(mut from: usize, len: usize, below: impl Fn(usize) -> bool) -> usize {
    let mut step = 1;
    let mut hi = from;
    while hi < len && below(hi) {
        from = hi + 1;
        hi += step;
        step *= 2;
    }
    let mut hi = hi.min(len);
    while from < hi {
        let mid = from + (hi - from) / 2;
        if below(mid) {
            from = mid + 1;
        } else {
            hi = mid;
        }
    }
    from
}

/// A file being built: entries are added in any order, each band's held in a small buffer and
/// written to its section; `finish` sorts each section and names the file.
pub struct Builder {
    file: File,
    tmp: PathBuf,
    base: PathBuf,
    room: usize,
    counts: [usize; BANDS],
    pending: Vec<Vec<u64>>,
    bytes: Vec<u8>,
    /// Whether `finish` named the file (else dropping it removes it).
    named: bool,
}

impl Builder {
    /// A file for the entries of up to `room` items beside `base`.
    pub fn create(base: &Path, room: usize) -> io::Result<Builder> {
        let tmp = sibling(base, "bands.tmp");
        let file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        file.set_len((HEADER + BANDS * room * 8) as u64)?;
        Ok(Builder {
            file,
            tmp,
            base: base.to_path_buf(),
            room,
            counts: [0; BANDS],
            pending: (0..BANDS).map(|_| Vec::with_capacity(PENDING)).collect(),
            bytes: Vec::with_capacity(PENDING * 8),
            named: false,
        })
    }

    /// Adds the entries of an item's signature.
    pub fn add(&mut self, item: u32, sig: &Signature) -> io::Result<()> {
        for (b, e) in entries(item, sig).enumerate() {
            self.pending[b].push(e);
            if self.pending[b].len() == PENDING {
                self.flush(b)?;
            }
        }
        Ok(())
    }

    fn flush(&mut self, b: usize) -> io::Result<()> {
        let n = self.pending[b].len();
        if self.counts[b] + n > self.room {
            return Err(io::Error::other(format!(
                "band index: more than the {} items it was made for",
                self.room
            )));
        }
        self.bytes.clear();
        self.bytes
            .extend(self.pending[b].drain(..).flat_map(u64::to_le_bytes));
        let at = HEADER + (b * self.room + self.counts[b]) * 8;
        self.file.seek(SeekFrom::Start(at as u64))?;
        self.file.write_all(&self.bytes)?;
        self.counts[b] += n;
        Ok(())
    }

    /// Sorts each band's entries, writes the header, makes the file durable and names it by a
    /// new token, which it returns (the store then names that token in its state).
    pub fn finish(mut self) -> io::Result<u64> {
        for b in 0..BANDS {
            self.flush(b)?;
        }
        self.pending = Vec::new();
        let mut section: Vec<u64> = Vec::new();
        for b in 0..BANDS {
            let at = (HEADER + b * self.room * 8) as u64;
            self.bytes.resize(self.counts[b] * 8, 0);
            self.file.seek(SeekFrom::Start(at))?;
            self.file.read_exact(&mut self.bytes)?;
            section.clear();
            section.extend(
                self.bytes
                    .chunks_exact(8)
                    .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes"))),
            );
            section.sort_unstable();
            section.dedup();
            self.counts[b] = section.len();
            self.bytes.clear();
            self.bytes
                .extend(section.iter().flat_map(|e| e.to_le_bytes()));
            self.file.seek(SeekFrom::Start(at))?;
            self.file.write_all(&self.bytes)?;
        }
        let token = getrandom::u64().map_err(|e| io::Error::other(e.to_string()))?;
        self.file.seek(SeekFrom::Start(0))?;
        self.file
            .write_all(&header(token, self.room, &self.counts))?;
        self.file.sync_all()?;
        std::fs::rename(&self.tmp, path_of(&self.base, token))?;
        self.named = true;
        Ok(token)
    }
}

impl Drop for Builder {
    /// A file not finished goes: it may hold hundreds of megabytes a failed build wrote.
    fn drop(&mut self) {
        if !self.named {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

fn header(token: u64, room: usize, counts: &[usize; BANDS]) -> Vec<u8> {
    let mut h = Vec::with_capacity(HEADER);
    h.extend_from_slice(&MAGIC);
    h.extend_from_slice(&VERSION.to_le_bytes());
    h.extend_from_slice(&(BANDS as u32).to_le_bytes());
    h.extend_from_slice(&token.to_le_bytes());
    h.extend_from_slice(&(room as u64).to_le_bytes());
    for c in counts {
        h.extend_from_slice(&(*c as u64).to_le_bytes());
    }
    let sum = xxhash_rust::xxh3::xxh3_64(&h);
    h.extend_from_slice(&sum.to_le_bytes());
    debug_assert_eq!(h.len(), HEADER);
    h
}

/// An index file opened for lookups.
pub struct Index {
    file: File,
    room: usize,
    counts: [usize; BANDS],
}

impl Index {
    /// The file of `token` beside `base`; `None` when there is none, or it is not that
    /// token's file of this format, whole (then the caller builds another).
    pub fn open(base: &Path, token: u64) -> io::Result<Option<Index>> {
        let mut file = match File::open(path_of(base, token)) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut h = [0u8; HEADER];
        match file.read_exact(&mut h) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(e),
        }
        let word = |at: usize| u64::from_le_bytes(h[at..at + 8].try_into().expect("8 bytes"));
        let room = word(24) as usize;
        let mut counts = [0usize; BANDS];
        for (b, c) in counts.iter_mut().enumerate() {
            *c = word(32 + 8 * b) as usize;
        }
        let whole = h[..8] == MAGIC
            && h[8..12] == VERSION.to_le_bytes()
            && h[12..16] == (BANDS as u32).to_le_bytes()
            && word(16) == token
            && word(HEADER - 8) == xxhash_rust::xxh3::xxh3_64(&h[..HEADER - 8])
            && counts.iter().all(|c| *c <= room)
            && room
                .checked_mul(8 * BANDS)
                .and_then(|s| s.checked_add(HEADER))
                .is_some_and(|len| file.metadata().is_ok_and(|m| m.len() >= len as u64));
        Ok(whole.then_some(Index { file, room, counts }))
    }

    /// The bytes of its entries.
    pub fn bytes(&self) -> u64 {
        self.counts.iter().map(|c| *c as u64 * 8).sum()
    }

    /// Reads band `b`'s sorted entries into `buf` (as bytes, for [`find`]).
    pub fn section(&mut self, b: usize, buf: &mut Vec<u8>) -> io::Result<()> {
        buf.resize(self.counts[b] * 8, 0);
        self.file
            .seek(SeekFrom::Start((HEADER + b * self.room * 8) as u64))?;
        self.file.read_exact(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sig(seed: u16) -> Signature {
        Signature {
            full: std::array::from_fn(|i| seed.wrapping_mul(31).wrapping_add(i as u16 / 3)),
            head: [seed; super::super::HEAD_HASHES],
        }
    }

    /// A built file gives back every entry added, by value, and only a file of its token,
    /// whole, is opened.
    #[test]
    fn built_files_find_what_was_added() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("store.db");
        let sigs: Vec<Signature> = (0..5000).map(|s| sig(s % 1700)).collect();
        let mut b = Builder::create(&base, sigs.len()).unwrap();
        for (n, s) in sigs.iter().enumerate() {
            b.add(n as u32, s).unwrap();
        }
        let token = b.finish().unwrap();
        let mut index = Index::open(&base, token).unwrap().expect("opens");
        assert!(Index::open(&base, token ^ 1).unwrap().is_none());
        let mut buf = Vec::new();
        for band in [0, 17, BANDS - 1] {
            index.section(band, &mut buf).unwrap();
            for (n, s) in sigs.iter().enumerate().step_by(97) {
                let mut hits = Vec::new();
                find(&buf, &[band_value(s, band)], |e| hits.push(e as u32));
                assert!(hits.contains(&(n as u32)), "band {band}, item {n}");
                // Every hit holds the value.
                for h in hits {
                    assert_eq!(band_value(&sigs[h as usize], band), band_value(s, band));
                }
            }
        }
        // A damaged header is not read as the file.
        let path = path_of(&base, token);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[30] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        assert!(Index::open(&base, token).unwrap().is_none());
        // A later file's sweep takes this one away.
        sweep(&base, token ^ 1).unwrap();
        assert!(!path.exists());
    }

    /// `find` gives what filtering every entry gives, for values sorted, repeated runs, values
    /// absent, before the first and past the last.
    #[test]
    fn find_gives_every_entry_of_the_values() {
        let mut next = crate::cluster::tests::seeded(99);
        for len in [0usize, 1, 2, 7, 100, 5000] {
            let mut entries: Vec<u64> = (0..len)
                .map(|_| entry(next(300) as u32 * 3, next(1 << 32) as u32))
                .collect();
            let bytes = encode(&mut entries);
            let mut values: Vec<u32> = (0..next(60) + 1).map(|_| next(1000) as u32).collect();
            values.sort_unstable();
            values.dedup();
            let mut got = Vec::new();
            find(&bytes, &values, |i| got.push(i));
            let want: Vec<u64> = entries
                .iter()
                .filter(|e| values.contains(&((*e >> 32) as u32)))
                .copied()
                .collect();
            assert_eq!(got, want, "{len} entries, values {values:?}");
        }
    }

    /// A file that cannot hold what is added fails to finish, and leaves nothing behind.
    #[test]
    fn more_items_than_room_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let mut b = Builder::create(&dir.path().join("db"), 1).unwrap();
        b.add(1, &sig(1)).unwrap();
        b.add(2, &sig(2)).unwrap();
        assert!(b.finish().is_err());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        // A half-built file a crash left is swept.
        std::fs::write(dir.path().join("db-bands.tmp"), b"x").unwrap();
        sweep(&dir.path().join("db"), 1).unwrap();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
